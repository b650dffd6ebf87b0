"""``gridmap map hotspots | workload | compare ... --out FILE.html``: standalone map files."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from api.console import out, reports_errors, runtime

map_app = typer.Typer(
    help="Write a map as one standalone HTML file (works offline).", no_args_is_help=True
)

Out = typer.Option(..., "--out", help="the .html file to write")


def _write(path: Path, html: str, started: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    out.print(
        f"Wrote {path} ({len(html.encode()) / 1e6:.2f} MB) in {time.perf_counter() - started:.1f} s"
    )


@map_app.command("hotspots")
@reports_errors
def hotspots_command(
    ctx: typer.Context,
    district: str = typer.Option(..., "--district"),
    out_path: Path = Out,
    category: str | None = typer.Option(None, "--category"),
    subcategory: str | None = typer.Option(None, "--subcategory"),
    date_from: str | None = typer.Option(None, "--from", help="YYYY-MM-DD"),
    date_to: str | None = typer.Option(None, "--to", help="YYYY-MM-DD"),
    status: str | None = typer.Option(None, "--status", help="comma-separated statuses"),
) -> None:
    """Reports per grid, a heat layer and filters."""
    from maps.hotspots import HotspotFilters
    from maps.pages import hotspots_page

    started = time.perf_counter()
    rt = runtime(ctx)
    filters = HotspotFilters.parse(category, subcategory, date_from, date_to, status)
    with rt.transaction() as session:
        html = hotspots_page(
            session, district, filters, basemap=rt.settings.maps, asset_mode="inline"
        )
    _write(out_path, html, started)


@map_app.command("workload")
@reports_errors
def workload_command(
    ctx: typer.Context,
    district: str = typer.Option(..., "--district"),
    out_path: Path = Out,
    plan: int | None = typer.Option(None, "--plan", help="plan id (default: published)"),
    households: str = typer.Option("300-500", "--households", help="target band"),
) -> None:
    """Households, residents, buildings and open reports per grid against the band."""
    from api.commands.plan import parse_band
    from geo.regrid import check_band
    from maps.pages import workload_page

    started = time.perf_counter()
    rt = runtime(ctx)
    parsed = parse_band(households)
    assert parsed is not None
    band = check_band(parsed)
    with rt.transaction() as session:
        html = workload_page(
            session, district, plan, band, basemap=rt.settings.maps, asset_mode="inline"
        )
    _write(out_path, html, started)


@map_app.command("compare")
@reports_errors
def compare_command(
    ctx: typer.Context,
    district: str = typer.Option(..., "--district"),
    a: int = typer.Option(..., "--a", help="old plan id"),
    b: int = typer.Option(..., "--b", help="new plan id"),
    out_path: Path = Out,
) -> None:
    """Two plans over each other, coloured by the change in load."""
    from maps.pages import compare_page

    started = time.perf_counter()
    rt = runtime(ctx)
    with rt.transaction() as session:
        html = compare_page(session, district, a, b, basemap=rt.settings.maps, asset_mode="inline")
    _write(out_path, html, started)
