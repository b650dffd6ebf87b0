"""What pages and answers show of a stored district: its boundaries, teams, loads, grids.

Only whitelisted columns are read (``public_reports`` never joins a reporter's personal
data), so whatever these return may reach a public page.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.frames import finish_frame, read_frame


def district_name(session: Session, district_pk: int) -> str:
    return str(session.scalar(text("SELECT name FROM districts WHERE id = :d"), {"d": district_pk}))


def boundary_layers(
    session: Session, district_pk: int
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Communities (with their street), streets and roads: what a map draws under its grids."""
    communities = finish_frame(
        read_frame(
            session,
            """SELECT c.code, c.name, s.code AS street_code, c.geom FROM communities c
               JOIN streets s ON s.id = c.street_id WHERE c.district_id = :d ORDER BY c.code""",
            d=district_pk,
        )
    )
    streets = finish_frame(
        read_frame(
            session,
            "SELECT code, name, geom FROM streets WHERE district_id = :d ORDER BY code",
            d=district_pk,
        )
    )
    roads = finish_frame(
        read_frame(
            session,
            "SELECT name, geom FROM roads WHERE district_id = :d ORDER BY id",
            d=district_pk,
        )
    )
    return communities, streets, roads


def grid_teams(session: Session, district_pk: int) -> pd.DataFrame:
    """Each grid code's leader, deputy and party secretary (members stay off pages)."""
    rows = session.execute(
        text(
            """SELECT grid_code, leader, deputy, party_secretary FROM grid_teams
               WHERE district_id = :d ORDER BY grid_code"""
        ),
        {"d": district_pk},
    ).all()
    return pd.DataFrame(rows, columns=["grid_code", "leader", "deputy", "party_secretary"])


def public_reports(session: Session, district_pk: int, plan_id: int) -> gpd.GeoDataFrame:
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
            d=district_pk,
            plan=plan_id,
        )
    )


def building_loads(session: Session, district_pk: int) -> gpd.GeoDataFrame:
    """Buildings with households and residents (0 when unknown), by building id."""
    return finish_frame(
        read_frame(
            session,
            """SELECT building_id, households, coalesce(residents, 0) AS residents, geom
               FROM buildings WHERE district_id = :d ORDER BY building_id""",
            d=district_pk,
        )
    )


_PUBLISHED_GRIDS_SQL = """
SELECT g.code, g.name, c.code AS community_code, s.code AS street_code, d.code AS district_code,
       g.plan_id, ST_AsGeoJSON(g.geom, 15) AS geometry,
       (SELECT count(*) FROM buildings b WHERE b.grid_id = g.id) AS buildings,
       (SELECT coalesce(sum(b.households), 0) FROM buildings b WHERE b.grid_id = g.id)
         AS households
FROM grids g
JOIN grid_plans p ON p.id = g.plan_id AND p.status = 'published'
JOIN districts d ON d.id = p.district_id
JOIN communities c ON c.id = g.community_id
JOIN streets s ON s.id = c.street_id
"""


def published_grids(
    session: Session, *, district: str | None = None, code: str | None = None
) -> list[dict[str, Any]]:
    """Grids of published plans (of one district, or with one code) in code order.

    Each is its properties (codes, plan, buildings and households assigned to it) and its
    ``geometry`` as a GeoJSON mapping in EPSG:4326.
    """
    rows = session.execute(
        text(
            _PUBLISHED_GRIDS_SQL
            + """ WHERE (CAST(:d AS text) IS NULL OR d.code = :d)
                    AND (CAST(:c AS text) IS NULL OR g.code = :c)
                  ORDER BY g.code"""
        ),
        {"d": district, "c": code},
    ).mappings()
    grids = []
    for row in rows:
        grid = dict(row)
        grid["geometry"] = json.loads(grid["geometry"])
        grid["households"] = int(grid["households"])
        grids.append(grid)
    return grids
