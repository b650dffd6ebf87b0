"""What every ``gridmap`` command shares: settings, the database, errors, progress, JSON."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from geo.errors import DataRefused, GridmapError, problem_lines, translate
from geo.settings import GridmapSettings

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> GridmapSettings:
    """Settings built at call time (never at import), from GRIDMAP_* variables."""
    return GridmapSettings()


def reports_errors(func: F) -> F:
    """Print a GridmapError as lines naming what to fix, exit 1, no traceback.

    GEOS, GDAL and database failures are translated here too (``geo.errors.translate``):
    the command's transaction has already rolled back when they arrive.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            error = translate(exc)
            if error is None:
                raise
            report(error, json_output=bool(kwargs.get("json_output")))
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def report(error: GridmapError, *, json_output: bool) -> None:
    """One line per problem on stderr (a sample of each kind and a count); JSON on stdout."""
    if isinstance(error, DataRefused):
        if json_output:
            print_json(
                {
                    "refused": True,
                    "total": len(error.problems),
                    "problems": [p.as_dict() for p in error.problems],
                }
            )
        err.print(f"[bold red]refused:[/] {escape(error.reason)}")
        for line in problem_lines(error.problems):
            err.print(f"  [red]-[/] {escape(line)}", highlight=False)
        return
    if json_output:
        print_json({"error": True, **error.details()})
    err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)


def database_url(config: GridmapSettings) -> str:
    """The URL in use, starting the embedded cluster and migrating it when needed."""
    from api.embedded_postgres import ensure_running
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
