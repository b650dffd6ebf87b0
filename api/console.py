"""What every ``gridmap`` command shares: the runtime, errors, progress, JSON."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property, wraps
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from geo.errors import DataRefused, GridmapError, InvalidInput, problem_lines, translate
from geo.settings import GridmapSettings, InputLimits

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def read_settings() -> GridmapSettings:
    """The GRIDMAP_* variables (and ``.env``) as they are now; a bad value is refused naming
    its variable, as one line instead of pydantic's report."""
    try:
        return GridmapSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = "GRIDMAP_" + "__".join(str(part) for part in first["loc"]).upper()
        raise InvalidInput(first["msg"], field=variable) from None


@dataclass
class Runtime:
    """What the commands of one ``gridmap`` process share, built once by the CLI's callback.

    Settings and input limits are read at once. The database is reached only by commands
    that use it, on first use: the embedded cluster is started if needed and the migrations
    are applied, once per process. ``gridmap --help``, ``gridmap assign`` on files and
    ``gridmap db`` never get that far.
    """

    settings: GridmapSettings = field(default_factory=read_settings)

    @cached_property
    def limits(self) -> InputLimits:
        """The hostile-input caps, for commands that read files."""
        return self.settings.input_limits

    @cached_property
    def url(self) -> str:
        """The URL of a database that runs and is migrated."""
        from api.embedded_postgres import ensure_running
        from geo.store.migrate import upgrade_database

        url = ensure_running(self.settings, notify=note)
        upgrade_database(url)
        return url

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """The one session factory of this process, on that database."""
        from geo.store.session import session_factory

        return session_factory(self.url)

    def transaction(self, *, read_only: bool = False) -> AbstractContextManager[Session]:
        """One transaction on the database (see ``geo.store.session.transaction``)."""
        from geo.store.session import transaction

        return transaction(self.sessions, read_only=read_only)


def runtime(ctx: typer.Context) -> Runtime:
    """The runtime on the context; a sub-app invoked on its own (as tests do) builds one."""
    return ctx.ensure_object(Runtime)


def note(message: str) -> None:
    """A remark on stderr (a port changed, packages installed) that is not an error."""
    err.print(f"[yellow]note:[/] {escape(message)}")


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
