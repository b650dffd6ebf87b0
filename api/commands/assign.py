"""`gridmap assign`: points -> grid codes, from files (no database) or for a stored district."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from api.console import Runtime, runtime
from geo.errors import InvalidInput

#: Files with more points than this get a progress bar.
_PROGRESS_MIN_POINTS = 200_000


def assign_command(
    ctx: typer.Context,
    grids: Path | None = typer.Option(
        None, "--grids", help="Grids file (.gpkg/.geojson/.parquet/.shp) with a 'code' column."
    ),
    points: Path | None = typer.Option(
        None,
        "--points",
        help="Points file (.gpkg/.geojson/.parquet/.shp, or .csv with lon,lat in UTF-8 or GBK).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output file; its extension chooses the format."
    ),
    district: str | None = typer.Option(
        None, "--district", help="Re-assign every stored building and report of this district."
    ),
    snap_m: float = typer.Option(
        0.0, "--snap-m", min=0.0, help="Assign points this close (metres) to their nearest grid."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Assign points to the grid whose closed polygon covers them (ties: smallest code)."""
    console = Console(stderr=json_output)
    if district is not None:
        if grids or points or out:
            raise InvalidInput(
                "--district works on the database; it takes no --grids/--points/--out",
                field="--district",
            )
        _assign_district(runtime(ctx), district, json_output, console)
        return
    missing = [
        name
        for name, value in (("--grids", grids), ("--points", points), ("--out", out))
        if value is None
    ]
    if missing:
        raise InvalidInput(
            f"file mode needs {', '.join(missing)}",
            field=missing[0],
            fix="give --grids, --points and --out, or --district CODE",
        )
    assert grids is not None and points is not None and out is not None
    from geo.assign import assign_files

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=json_output,
    ) as bar:
        task = bar.add_task("assigning points", total=None, visible=False)

        def progress(done: int, total: int) -> None:
            if total >= _PROGRESS_MIN_POINTS:
                bar.update(task, completed=done, total=total, visible=True)

        summary = assign_files(
            grids, points, out, snap_m=snap_m, progress=progress, limits=runtime(ctx).limits
        )

    if json_output:
        typer.echo(json.dumps(summary.as_dict(), ensure_ascii=False))
        return
    table = Table(title=f"assigned {points.name} to {summary.grids:,} grids", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, Any]] = [
        ("points", f"{summary.points:,}"),
        ("assigned", f"{summary.assigned:,}"),
        ("on a boundary", f"{summary.on_boundary:,}"),
        ("unassigned (outside every grid)", f"{summary.unassigned:,}"),
    ]
    if snap_m > 0:
        rows.append((f"snapped (within {snap_m:g} m)", f"{summary.snapped:,}"))
    rows.append(("time", f"{summary.seconds:.2f} s"))
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    console.print(f"written to [bold]{summary.out_path}[/bold]")


def _assign_district(rt: Runtime, district: str, json_output: bool, console: Console) -> None:
    """Re-assign everything stored for a district in one transaction."""
    from geo.store.queries import reassign_district

    with rt.transaction() as session:
        result = reassign_district(session, district)
    payload = (
        result if isinstance(result, dict) else getattr(result, "__dict__", {"result": result})
    )
    if json_output:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
        return
    table = Table(title=f"re-assigned district {district}", show_header=False)
    for key, value in payload.items():
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
