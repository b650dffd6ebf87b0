"""What every ``gridmap`` command shares: settings, the database, errors, progress, JSON."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from geo.errors import DataRefused, GridmapError
from geo.settings import GridmapSettings

out = Console()
err = Console(stderr=True)

if TYPE_CHECKING:
    from geo.io import InputLimits

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> GridmapSettings:
    """Settings built at call time (never at import), from GRIDMAP_* variables."""
    return GridmapSettings()


def input_limits(config: GridmapSettings) -> InputLimits:
    """The hostile-input caps of the settings, for every command that reads files."""
    from geo.io import InputLimits

    return InputLimits(
        config.max_file_bytes, config.max_vertices_per_feature, config.max_nesting_depth
    )


def reports_errors(func: F) -> F:
    """Print a GridmapError as lines naming what to fix, exit 1, no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DataRefused as exc:
            if kwargs.get("json_output"):
                print_json({"refused": True, "problems": [p.as_dict() for p in exc.problems]})
            err.print(f"[bold red]refused:[/] {escape(exc.reason)}")
            for problem in exc.problems:
                err.print(f"  [red]-[/] {escape(str(problem))}", highlight=False)
            raise typer.Exit(1) from None
        except GridmapError as exc:
            if kwargs.get("json_output"):
                print_json(
                    {"error": True, "field": exc.field, "reason": exc.reason, "fix": exc.fix}
                )
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def database_url(config: GridmapSettings) -> str:
    """The URL in use, starting the embedded cluster and migrating it when needed."""
    from geo.store.cluster import ensure_running
    from geo.store.migrate import upgrade_database

    url = ensure_running(config, notify=lambda note: err.print(f"[yellow]note:[/] {note}"))
    upgrade_database(url)
    return url


@contextmanager
def stages(json_output: bool) -> Iterator[Callable[[str], None]]:
    """A spinner with one timed line per stage (on stderr when --json keeps stdout clean)."""
    console = err if json_output else out
    started = time.perf_counter()
    with console.status("starting") as status:

        def step(message: str) -> None:
            console.print(f"[dim]{time.perf_counter() - started:6.1f}s[/] {message}")
            status.update(message)

        yield step


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
