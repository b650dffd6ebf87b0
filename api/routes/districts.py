"""Districts and the grids of their published plans, as JSON and GeoJSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from api.deps import SessionDep
from api.problems import PROBLEM_RESPONSES
from api.schemas import DistrictSummary, Feature, FeatureCollection
from geo.errors import NotFound
from geo.store.districts import published_grids
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


def _feature(grid: dict[str, Any]) -> Feature:
    properties = dict(grid)
    geometry = properties.pop("geometry")
    return Feature(id=properties["code"], geometry=geometry, properties=properties)


@router.get("/grids", response_model=FeatureCollection)
def list_grids(
    session: SessionDep,
    district: str = Query(..., min_length=1, description="district code"),
) -> FeatureCollection:
    """The published plan's grids of a district as GeoJSON (EPSG:4326)."""
    district_counts(session, district)  # 404 for an unknown district
    return FeatureCollection(
        features=[_feature(g) for g in published_grids(session, district=district)]
    )


@router.get("/grids/{code}", response_model=Feature)
def get_grid(code: str, session: SessionDep) -> Feature:
    """One grid of a published plan as a GeoJSON Feature."""
    found = published_grids(session, code=code)
    if not found:
        raise NotFound(f"no grid {code!r} in any published plan", field="code")
    return _feature(found[0])
