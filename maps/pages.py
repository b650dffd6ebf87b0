"""The three map pages for one stored district: fetch what each needs, render it.

Shared by ``GET /maps/...`` (assets served by gridmap) and ``gridmap map ... --out``
(a standalone file with every asset inlined). Only whitelisted report columns are read:
no reporter's personal data can reach a page.
"""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
import pandas as pd
from sqlalchemy.orm import Session

from geo.settings import MapSettings
from geo.store.frames import finish_frame, read_frame
from geo.store.queries import district_id, plan_grids, published_plan_id
from geo.store.stats import case_stats
from maps.hotspots import HotspotFilters, render_hotspots
from maps.plan_diff import render_compare
from maps.workload import render_workload

AssetMode = Literal["inline", "served"]


def _layers(session: Session, pk: int) -> tuple[gpd.GeoDataFrame, ...]:
    communities = finish_frame(
        read_frame(
            session,
            """SELECT c.code, c.name, s.code AS street_code, c.geom FROM communities c
               JOIN streets s ON s.id = c.street_id WHERE c.district_id = :d ORDER BY c.code""",
            d=pk,
        )
    )
    streets = finish_frame(
        read_frame(
            session,
            "SELECT code, name, geom FROM streets WHERE district_id = :d ORDER BY code",
            d=pk,
        )
    )
    roads = finish_frame(
        read_frame(session, "SELECT name, geom FROM roads WHERE district_id = :d ORDER BY id", d=pk)
    )
    return communities, streets, roads


def _title(session: Session, pk: int, what: str) -> str:
    from sqlalchemy import text

    name = session.scalar(text("SELECT name FROM districts WHERE id = :d"), {"d": pk})
    return f"{name} {what}"


def _teams(session: Session, pk: int) -> pd.DataFrame:
    from sqlalchemy import text

    rows = session.execute(
        text(
            """SELECT grid_code, leader, deputy, party_secretary FROM grid_teams
               WHERE district_id = :d ORDER BY grid_code"""
        ),
        {"d": pk},
    ).all()
    return pd.DataFrame(rows, columns=["grid_code", "leader", "deputy", "party_secretary"])


def _reports(session: Session, pk: int, plan_id: int) -> gpd.GeoDataFrame:
    """Reports with their grid in ``plan_id`` (assigned in the store), public columns only."""
    return finish_frame(
        read_frame(
            session,
            """SELECT r.category, r.subcategory, r.status,
                      to_char(r.reported_at AT TIME ZONE 'Asia/Shanghai',
                              'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS reported_at,
                      g.code AS grid_code, r.geom
               FROM reports r LEFT JOIN grids g ON g.id = r.grid_id AND g.plan_id = :plan
               WHERE r.district_id = :d ORDER BY r.id""",
            d=pk,
            plan=plan_id,
        )
    )


def _buildings(session: Session, pk: int) -> gpd.GeoDataFrame:
    return finish_frame(
        read_frame(
            session,
            """SELECT building_id, households, coalesce(residents, 0) AS residents, geom
               FROM buildings WHERE district_id = :d ORDER BY building_id""",
            d=pk,
        )
    )


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
    communities, streets, roads = _layers(session, pk)
    return render_hotspots(
        plan_grids(session, plan),
        communities,
        streets,
        roads,
        _reports(session, pk, plan),
        _teams(session, pk),
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
    communities, streets, roads = _layers(session, pk)
    reports = _reports(session, pk, plan)
    published = plan == published_plan_id(session, pk)
    if not published:
        reports = reports.drop(columns=["grid_code"])  # stored grids are the published plan's
    # Case statistics are per grid of the published plan (where cases are assigned): another
    # plan's grids may reuse its codes for other areas, so they get no case layer.
    cases = case_stats(session, district, level="grid") if published else None
    return render_workload(
        plan_grids(session, plan),
        _buildings(session, pk),
        reports,
        band,
        communities=communities,
        streets=streets,
        roads=roads,
        teams=_teams(session, pk),
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
    from geo.errors import InvalidInput
    from geo.store.plans import plan_row

    for field, plan in (("a", plan_a), ("b", plan_b)):
        if plan_row(session, plan).district_id != pk:
            raise InvalidInput(f"plan {plan} is not a plan of district {district}", field=field)
    communities, streets, roads = _layers(session, pk)
    return render_compare(
        plan_grids(session, plan_a),
        plan_grids(session, plan_b),
        _buildings(session, pk),
        communities=communities,
        streets=streets,
        roads=roads,
        teams=_teams(session, pk),
        labels=(f"方案 {plan_a}", f"方案 {plan_b}"),
        title=_title(session, pk, f"网格方案对比 {plan_a} → {plan_b}"),
        basemap=basemap,
        asset_mode=asset_mode,
    )
