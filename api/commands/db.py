"""``gridmap db up|down|status|url``: the database gridmap uses, embedded or external.

Each command is idempotent and takes ``--json``; errors print as one red line, exit 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape

from api import embedded_postgres
from api.console import note, runtime
from geo.errors import GridmapError

db_app = typer.Typer(
    help="The database: a private PostgreSQL + PostGIS cluster, or GRIDMAP_DATABASE_URL.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead.")]


def _stderr() -> Console:
    # Built per call so that CliRunner's replaced sys.stderr is the one written to.
    return Console(stderr=True, soft_wrap=True, highlight=False)


@contextmanager
def _reported() -> Iterator[None]:
    """Turn a GridmapError (bad GRIDMAP_* settings too) into one red line and exit code 1."""
    try:
        yield
    except GridmapError as err:
        _stderr().print(f"[red]error:[/red] {escape(str(err))}")
        raise typer.Exit(1) from None


def _masked(url: str | None) -> str | None:
    """The URL with its password replaced, for output people paste into issues."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _status_dict(status: embedded_postgres.ClusterStatus) -> dict[str, Any]:
    return {
        "running": status.running,
        "external": status.external,
        "pid": status.pid,
        "port": status.port,
        "data_dir": str(status.data_dir) if status.data_dir else None,
        "url": _masked(status.url),
    }


def _emit(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload))


@db_app.command()
def up(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Start the embedded cluster if needed, migrate to head, print the URL (password masked).

    The full URL is for scripts (``gridmap db url``); logs of ``up`` should not carry it.
    """
    with _reported():
        rt = runtime(ctx)
        url = rt.url
        if json_output:
            _emit({**_status_dict(embedded_postgres.status(rt.settings)), "url": _masked(url)})
        else:
            typer.echo(f"database ready: {_masked(url)} (full URL: gridmap db url)")


@db_app.command()
def down(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Stop the embedded cluster; nothing to do for an external database."""
    with _reported():
        settings = runtime(ctx).settings
        stopped = embedded_postgres.stop(settings, notify=note)
        external = settings.database_url is not None
        if json_output:
            _emit({"stopped": stopped, "external": external})
        elif external:
            typer.echo("GRIDMAP_DATABASE_URL is set: that server is not gridmap's to stop")
        else:
            typer.echo("stopped the embedded cluster" if stopped else "it was not running")


@db_app.command()
def status(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Say whether the database runs, where, and on which port (password masked)."""
    with _reported():
        info = _status_dict(embedded_postgres.status(runtime(ctx).settings))
        if json_output:
            _emit(info)
            return
        kind = "external (GRIDMAP_DATABASE_URL)" if info["external"] else "embedded"
        state = "[green]running[/green]" if info["running"] else "[red]not running[/red]"
        out = Console(soft_wrap=True, highlight=False)
        out.print(f"{kind}: {state}")
        for key in ("pid", "port", "data_dir", "url"):
            if info[key] is not None:
                out.print(f"  {key}: {escape(str(info[key]))}")


@db_app.command()
def url(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Print only the URL in use (with password), for scripts and psql; starts nothing."""
    with _reported():
        settings = runtime(ctx).settings
        value = embedded_postgres.database_url(settings)
        if json_output:
            _emit({"url": value, "external": settings.database_url is not None})
        else:
            typer.echo(value)
