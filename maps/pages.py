"""The three map pages for one stored district: fetch what each needs from the store, render it.

Shared by ``GET /maps/...`` (assets served by gridmap) and ``gridmap map ... --out``
(a standalone file with every asset inlined). Only whitelisted report columns are read:
no reporter's personal data can reach a page.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.settings import MapSettings
from geo.store.districts import (
    boundary_layers,
    building_loads,
    district_name,
    grid_teams,
    public_reports,
)
from geo.store.plans import plan_row
from geo.store.queries import district_id, plan_grids, published_plan_id
from geo.store.stats import case_stats
from maps.hotspots import HotspotFilters, render_hotspots
from maps.plan_diff import render_compare
from maps.workload import render_workload

AssetMode = Literal["inline", "served"]


def _title(session: Session, district_pk: int, what: str) -> str:
    return f"{district_name(session, district_pk)} {what}"


def hotspots_page(
    session: Session,
    district: str,
    filters: HotspotFilters,
    *,
    basemap: MapSettings,
    asset_mode: AssetMode,
) -> str:
    pk = district_id(session, district)
    plan = published_plan_id(session, pk)
    communities, streets, roads = boundary_layers(session, pk)
    return render_hotspots(
        plan_grids(session, plan),
        communities,
        streets,
        roads,
        public_reports(session, pk, plan),
        grid_teams(session, pk),
        title=_title(session, pk, "案件热点图"),
        filters=filters,
        basemap=basemap,
        asset_mode=asset_mode,
    )


def workload_page(
    session: Session,
    district: str,
    plan_id: int | None,
    band: tuple[int, int],
    *,
    basemap: MapSettings,
    asset_mode: AssetMode,
) -> str:
    pk = district_id(session, district)
    plan = plan_id if plan_id is not None else published_plan_id(session, pk)
    communities, streets, roads = boundary_layers(session, pk)
    reports = public_reports(session, pk, plan)
    published = plan == published_plan_id(session, pk)
    if not published:
        reports = reports.drop(columns=["grid_code"])  # stored grids are the published plan's
    # Case statistics are per grid of the published plan (where cases are assigned): another
    # plan's grids may reuse its codes for other areas, so they get no case layer.
    cases = case_stats(session, district, level="grid") if published else None
    return render_workload(
        plan_grids(session, plan),
        building_loads(session, pk),
        reports,
        band,
        communities=communities,
        streets=streets,
        roads=roads,
        teams=grid_teams(session, pk),
        title=_title(session, pk, f"网格工作量 (方案 {plan})"),
        basemap=basemap,
        asset_mode=asset_mode,
        case_stats=cases,
    )


def compare_page(
    session: Session,
    district: str,
    plan_a: int,
    plan_b: int,
    *,
    basemap: MapSettings,
    asset_mode: AssetMode,
) -> str:
    pk = district_id(session, district)
    for field, plan in (("a", plan_a), ("b", plan_b)):
        if plan_row(session, plan).district_id != pk:
            raise InvalidInput(f"plan {plan} is not a plan of district {district}", field=field)
    communities, streets, roads = boundary_layers(session, pk)
    return render_compare(
        plan_grids(session, plan_a),
        plan_grids(session, plan_b),
        building_loads(session, pk),
        communities=communities,
        streets=streets,
        roads=roads,
        teams=grid_teams(session, pk),
        labels=(f"方案 {plan_a}", f"方案 {plan_b}"),
        title=_title(session, pk, f"网格方案对比 {plan_a} → {plan_b}"),
        basemap=basemap,
        asset_mode=asset_mode,
    )
