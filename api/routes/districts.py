"""Districts and the grids of their published plans, as JSON and GeoJSON."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query
from sqlalchemy import text

from api.deps import SessionDep
from api.problems import PROBLEM_RESPONSES
from api.schemas import DistrictSummary, Feature, FeatureCollection
from geo.errors import NotFound
from geo.store.queries import district_counts, list_district_codes

router = APIRouter(tags=["districts"], responses=PROBLEM_RESPONSES)


@router.get("/districts", response_model=list[DistrictSummary])
def list_districts(session: SessionDep) -> list[dict[str, object]]:
    """Every district in the database with its counts."""
    return [district_counts(session, code) for code in list_district_codes(session)]


@router.get("/districts/{code}", response_model=DistrictSummary)
def get_district(code: str, session: SessionDep) -> dict[str, object]:
    """One district's counts (streets, communities, grids of the published plan, ...)."""
    return district_counts(session, code)


_GRID_SQL = """
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


def _feature(row: object) -> Feature:
    props = dict(row._mapping)  # type: ignore[attr-defined]
    geometry = json.loads(props.pop("geometry"))
    props["households"] = int(props["households"])
    return Feature(id=props["code"], geometry=geometry, properties=props)


@router.get("/grids", response_model=FeatureCollection)
def list_grids(
    session: SessionDep,
    district: str = Query(..., min_length=1, description="district code"),
) -> FeatureCollection:
    """The published plan's grids of a district as GeoJSON (EPSG:4326)."""
    district_counts(session, district)  # 404 for an unknown district
    rows = session.execute(
        text(_GRID_SQL + " WHERE d.code = :d ORDER BY g.code"), {"d": district}
    ).all()
    return FeatureCollection(features=[_feature(r) for r in rows])


@router.get("/grids/{code}", response_model=Feature)
def get_grid(code: str, session: SessionDep) -> Feature:
    """One grid of a published plan as a GeoJSON Feature."""
    row = session.execute(text(_GRID_SQL + " WHERE g.code = :c"), {"c": code}).first()
    if row is None:
        raise NotFound(f"no grid {code!r} in any published plan", field="code")
    return _feature(row)
