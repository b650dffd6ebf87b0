"""The ``gridmap`` command: a thin Typer layer over the same geo functions the API calls."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from geo.errors import DataRefused, GridmapError
from geo.settings import GridmapSettings

app = typer.Typer(
    name="gridmap",
    help="Community grid governance: grid plans, assignment, regridding and maps over PostGIS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> GridmapSettings:
    """Settings built at call time (never at import), from GRIDMAP_* variables."""
    return GridmapSettings()


def reports_errors(func: F) -> F:
    """Print a GridmapError as lines naming what to fix, exit 1, no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DataRefused as exc:
            err.print(f"[bold red]refused:[/] {exc.reason}")
            for problem in exc.problems:
                err.print(f"  [red]-[/] {problem}", highlight=False)
            raise typer.Exit(1) from None
        except GridmapError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def database_url(config: GridmapSettings) -> str:
    """The URL in use, starting the embedded cluster and migrating it when needed."""
    from geo.store.cluster import ensure_running
    from geo.store.migrate import upgrade_database

    url = ensure_running(config)
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


@app.command()
@reports_errors
def load(
    files: list[Path] = typer.Argument(
        ..., help="GeoPackage, or per-layer GeoJSON/GeoParquet/CSV files, or a folder of them"
    ),
    replace: bool = typer.Option(False, "--replace", help="replace the district if it exists"),
    repair: bool = typer.Option(
        False, "--repair", help="fix what is safe to fix (make_valid, slivers) and report it"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate only; store nothing"),
    json_output: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Load a district that follows the data contract, in one transaction."""
    from geo.grids import read_district, validate_district
    from geo.io import InputLimits
    from geo.store.queries import store_district
    from geo.store.session import transaction

    config = settings()
    limits = InputLimits(
        config.max_file_bytes, config.max_vertices_per_feature, config.max_nesting_depth
    )
    with stages(json_output) as step:
        step(f"reading {', '.join(str(f) for f in files)}")
        data = read_district(files, limits)
        step(
            f"validating district {data.code} {data.name}: {len(data.grids)} grids, "
            f"{len(data.buildings):,} buildings, {len(data.reports):,} reports"
        )
        data, repairs = validate_district(data, repair=repair, progress=step)
        for fix in repairs:
            step(f"[yellow]repaired[/] {fix}")
        if dry_run:
            step("[green]valid[/]; nothing stored (--dry-run)")
            if json_output:
                print_json({"valid": True, "district_code": data.code, "repairs": len(repairs)})
            return
        url = database_url(config)
        with transaction(url) as session:
            summary = store_district(
                session,
                data,
                replace=replace,
                repairs=repairs,
                source=", ".join(str(f) for f in files),
                progress=step,
            )
    if json_output:
        print_json(summary.as_dict())
        return
    table = Table(title=f"Loaded district {summary.district_code} {summary.district_name}")
    table.add_column("layer")
    table.add_column("features", justify="right")
    for label, value in (
        ("streets", summary.streets),
        ("communities", summary.communities),
        (f"grids (published plan {summary.plan_id})", summary.grids),
        ("buildings", summary.buildings),
        ("households", summary.households),
        ("reports", summary.reports),
        ("roads", summary.roads),
    ):
        table.add_row(label, f"{value:,}")
    out.print(table)
    out.print(
        f"Outside every grid: {summary.buildings_unassigned:,} buildings, "
        f"{summary.reports_unassigned:,} reports. "
        f"{'Replaced the stored district. ' if summary.replaced else ''}"
        f"{len(summary.repairs)} repairs. Stored in {summary.seconds:.1f} s."
    )


@app.command()
@reports_errors
def export(
    district: str = typer.Option(..., "--district", help="district code"),
    out_path: Path = typer.Option(
        ..., "--out", help="a .gpkg (all layers), a folder (GeoJSON per layer) or .parquet"
    ),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Write a stored district back in the data contract (load -> export -> load is lossless)."""
    from geo.grids import write_district_layers
    from geo.store.queries import load_district_data
    from geo.store.session import transaction

    config = settings()
    with transaction(database_url(config)) as session:
        data = load_district_data(session, district)
    written = write_district_layers(data, out_path)
    if json_output:
        print_json({"district_code": district, "files": sorted({str(p) for p in written})})
    else:
        out.print(f"Wrote district {district} to {', '.join(sorted({str(p) for p in written}))}")


@app.command()
@reports_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(1, "--workers"),
) -> None:
    """Serve the API (FastAPI on uvicorn)."""
    import uvicorn

    config = settings()
    database_url(config)
    out.print(f"gridmap API on [bold]http://{host}:{port}/[/] (docs at /docs)")
    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info"
    )


def _register_optional() -> None:
    """Sub-commands live in api/commands/; each module adds itself if present."""
    import importlib

    for module_name, attr, name in (
        ("api.commands.db", "db_app", "db"),
        ("api.commands.plan", "plan_app", "plan"),
        ("api.commands.maps", "map_app", "map"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.add_typer(getattr(module, attr), name=name)
    for module_name, attr, name in (
        ("api.commands.assign", "assign_command", "assign"),
        ("api.commands.lookup", "lookup_command", "lookup"),
        ("api.commands.regrid", "regrid_command", "regrid"),
        ("api.commands.demo", "demo_command", "demo"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.command(name=name)(reports_errors(getattr(module, attr)))


_register_optional()
