"""``gridmap lookup``: the same answer as ``GET /lookup``, from the command line."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import typer

from geo.crs import Coordsys
from geo.errors import InvalidInput


def lookup_command(
    ctx: typer.Context,
    lon: float | None = typer.Option(None, "--lon", help="longitude"),
    lat: float | None = typer.Option(None, "--lat", help="latitude"),
    address: str | None = typer.Option(None, "--address", help="a Chinese address"),
    district: str | None = typer.Option(None, "--district", help="search one district"),
    coordsys: Coordsys = typer.Option(
        Coordsys.WGS84, "--coordsys", help="gcj02 for AMap points, bd09 for Baidu points"
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="plan in force on this date"),
    snap_m: float = typer.Option(0.0, "--snap-m", help="snap tolerance in metres"),
    limit: int = typer.Option(5, "--limit", help="address candidates"),
    json_output: bool = typer.Option(False, "--json", help="print the API's JSON answer"),
) -> None:
    """Which grid owns a coordinate or an address (the rule of GET /lookup)."""
    from api.console import out, print_json, runtime
    from geo.store.lookup import GridLookup

    when = None
    if as_of:
        try:
            parsed = date.fromisoformat(as_of)
        except ValueError:
            raise InvalidInput(f"{as_of!r} is not a date", field="as_of") from None
        when = datetime.combine(parsed, time(23, 59, 59), tzinfo=ZoneInfo("Asia/Shanghai"))
    if address is not None and (lon is not None or lat is not None):
        raise InvalidInput("give --lon and --lat, or --address, not both", field="address")
    rt = runtime(ctx)
    with rt.transaction() as session:
        answer: dict[str, Any]
        if address is not None:
            from geo.store.address import AddressBook

            answer = AddressBook().search(session, address, district=district, limit=limit)
        elif lon is None or lat is None:
            raise InvalidInput(
                "give --lon and --lat, or --address", field="lon" if lon is None else "lat"
            )
        else:
            answer = (
                GridLookup(rt.sessions)
                .lookup(
                    lon,
                    lat,
                    coordsys=coordsys,
                    district=district,
                    as_of=when,
                    snap_m=snap_m,
                )
                .as_dict()
            )
    if json_output:
        print_json(answer)
        return
    for key, value in answer.items():
        if value is not None and key not in ("candidates", "units"):
            out.print(f"[bold]{key}[/]: {value}", highlight=False)
    if "lon" in answer and answer["district_code"] is None and answer["nearest_district_code"]:
        out.print(
            f"outside every district: the nearest is district {answer['nearest_district_code']}"
            f" (grid {answer['nearest_grid_code']}), {answer['distance_m']:,.0f} m away",
            highlight=False,
        )
    for unit in answer.get("units", []):
        inside = f"community {unit['community_code']}, " if unit["community_code"] else ""
        grids = f": grids {', '.join(unit['grids'])}" if unit["grids"] else ""
        out.print(
            f"  {unit['level']} {unit['code']} {unit['name']} "
            f"({inside}district {unit['district_code']}){grids}",
            highlight=False,
        )
    for candidate in answer.get("candidates", []):
        out.print(
            f"  {candidate['score']:5.1f}  {candidate['address']}  "
            f"(building {candidate['building_id']}, grid {candidate['grid_code']})",
            highlight=False,
        )
