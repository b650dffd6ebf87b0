"""The ``gridmap`` command: a thin Typer layer over the same geo functions the API calls."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from api.commands.assign import assign_command
from api.commands.cases import cases_app, keys_app
from api.commands.db import db_app
from api.commands.demo import demo_command
from api.commands.lookup import lookup_command
from api.commands.maps import map_app
from api.commands.plan import plan_app, regrid_command
from api.console import database_url, out, print_json, reports_errors, settings, stages

app = typer.Typer(
    name="gridmap",
    help="Community grid governance: grid plans, assignment, regridding and maps over PostGIS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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
    from geo.grids import naive_times, read_district, validate_district
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
            naive = naive_times(data)
            if naive:
                step(f"[yellow]note[/] {naive:,} report times had no offset: taken as +08:00")
            step("[green]valid[/]; nothing stored (--dry-run)")
            if json_output:
                print_json(
                    {
                        "valid": True,
                        "district_code": data.code,
                        "repairs": len(repairs),
                        "naive_times": naive,
                    }
                )
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
        + (
            f" {summary.naive_times:,} report times without an offset were taken as +08:00."
            if summary.naive_times
            else ""
        )
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


app.add_typer(db_app, name="db")
app.add_typer(plan_app, name="plan")
app.add_typer(cases_app, name="cases")
app.add_typer(keys_app, name="keys")
app.add_typer(map_app, name="map")
app.command(name="assign")(reports_errors(assign_command))
app.command(name="lookup")(reports_errors(lookup_command))
app.command(name="regrid")(reports_errors(regrid_command))
app.command(name="demo")(reports_errors(demo_command))
