"""The ``gridmap`` command: a thin Typer layer over the same geo functions the API calls."""

from __future__ import annotations

from dataclasses import asdict
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
from api.console import Runtime, out, print_json, reports_errors, runtime, stages
from geo.crs import Coordsys
from geo.precision import DEFAULT_REPAIR_WIDTH_M

app = typer.Typer(
    name="gridmap",
    help="Community grid governance: grid plans, assignment, regridding and maps over PostGIS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
@reports_errors
def build_runtime(ctx: typer.Context) -> None:
    """Read the settings once; every command takes this runtime from ``ctx.obj``."""
    ctx.obj = Runtime()


@app.command()
@reports_errors
def load(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(
        ...,
        help="GeoPackage, or per-layer GeoJSON/GeoParquet/Shapefile/CSV files, or a folder of them",
    ),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="replace the district of the same code if it exists (its outline may then "
        "cover the old one's; any other stored district it overlaps refuses the load)",
    ),
    repair: bool = typer.Option(
        False,
        "--repair",
        help="fix what is safe to fix (make_valid; gaps and overlaps up to --repair-width-m) "
        "and report each fix",
    ),
    repair_width_m: float = typer.Option(
        DEFAULT_REPAIR_WIDTH_M,
        "--repair-width-m",
        min=0.0,
        help="widest gap or overlap --repair absorbs, in metres (pieces thinner than "
        "GRIDMAP_TOLERANCE_M are noise and always absorbed)",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="validate only; store nothing (still needs the database: one read-only "
        "transaction checks the code and the outline against the stored districts)",
    ),
    coordsys: Coordsys = typer.Option(
        Coordsys.WGS84,
        "--coordsys",
        help="the map the files were drawn on: gcj02 for AMap/Gaode, bd09 for Baidu "
        "(converted to WGS 84 before validation)",
    ),
    json_output: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Load a district that follows the data contract, in one transaction.

    A district whose outline overlaps another stored district by more than
    GRIDMAP_TOLERANCE_M is refused, naming both and the shared area in m².
    """
    from geo.grids import naive_times, read_district, shared_addresses, validate_district
    from geo.store.queries import check_district_fits, store_district

    rt = runtime(ctx)
    config, limits = rt.settings, rt.limits
    with stages(json_output) as step:
        step(f"reading {', '.join(str(f) for f in files)}")
        data = read_district(files, limits, coordsys=coordsys)
        if data.converted:
            step(f"[yellow]{data.converted}[/]")
        step(
            f"validating district {data.code} {data.name}: {len(data.grids)} grids, "
            f"{len(data.buildings):,} buildings, {len(data.reports):,} reports"
        )
        data, repairs = validate_district(
            data,
            repair=repair,
            tolerance_m=config.tolerance_m,
            repair_width_m=repair_width_m,
            progress=step,
        )
        for fix in repairs:
            step(f"[yellow]repaired[/] {fix}")
        if data.noding is not None:
            step(str(data.noding))
        source = ", ".join(str(f) for f in files)
        if dry_run:
            step("checking the code and the outline against the stored districts")
            with rt.transaction(read_only=True) as session:
                check_district_fits(
                    session, data, replace=replace, tolerance_m=config.tolerance_m, source=source
                )
            naive = naive_times(data)
            if naive:
                step(f"[yellow]note[/] {naive:,} report times had no offset: taken as +08:00")
            shared = shared_addresses(data)
            if shared:
                step(
                    f"[yellow]note[/] {shared:,} addresses are written on more than one building: "
                    "address lookups will answer them as ambiguous"
                )
            step("[green]valid[/]; nothing stored (--dry-run)")
            if json_output:
                print_json(
                    {
                        "valid": True,
                        "district_code": data.code,
                        "repairs": len(repairs),
                        "noding": asdict(data.noding) if data.noding else None,
                        "coordsys": data.coordsys,
                        "converted": data.converted,
                        "naive_times": naive,
                        "shared_addresses": shared,
                    }
                )
            return
        with rt.transaction() as session:
            summary = store_district(
                session,
                data,
                replace=replace,
                repairs=repairs,
                source=source,
                progress=step,
                tolerance_m=config.tolerance_m,
            )
    if json_output:
        print_json({**summary.as_dict(), "coordsys": data.coordsys, "converted": data.converted})
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
        + (
            f" {summary.shared_addresses:,} addresses are on more than one building (address "
            "lookups answer them as ambiguous)."
            if summary.shared_addresses
            else ""
        )
    )
    if data.converted:
        out.print(f"Coordinates {data.converted}.", highlight=False)
    if summary.noding is not None:
        out.print(
            f"Noded in {summary.noding['drawn_in']}: {summary.noding['vertices_moved']:,} "
            f"vertices moved (largest move {summary.noding['max_move_m'] * 1000:.1f} mm), "
            f"{summary.noding['noise_pieces']:,} noise pieces absorbed."
        )


@app.command()
@reports_errors
def export(
    ctx: typer.Context,
    district: str = typer.Option(..., "--district", help="district code"),
    out_path: Path = typer.Option(
        ..., "--out", help="a .gpkg (all layers), a folder (GeoJSON per layer) or .parquet"
    ),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Write a stored district back in the data contract (load -> export -> load is lossless)."""
    from geo.grids import write_district_layers
    from geo.store.queries import load_district_data

    with runtime(ctx).transaction() as session:
        data = load_district_data(session, district)
    written = write_district_layers(data, out_path)
    if json_output:
        print_json({"district_code": district, "files": sorted({str(p) for p in written})})
    else:
        out.print(f"Wrote district {district} to {', '.join(sorted({str(p) for p in written}))}")


@app.command()
@reports_errors
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(1, "--workers"),
) -> None:
    """Serve the API (FastAPI on uvicorn)."""
    import uvicorn

    url = runtime(ctx).url  # up and migrated here: create_app only resolves the URL
    out.print(
        f"gridmap API on [bold]http://{host}:{port}/[/] (docs at /docs), "
        f"database at {url.split('@')[-1]}"
    )
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
