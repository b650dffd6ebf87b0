"""``/maps/...``: the map pages, with a Content-Security-Policy that forbids outside hosts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import SessionDep, SettingsDep
from api.problems import PROBLEM_RESPONSES
from maps.assets import csp_for
from maps.hotspots import HotspotFilters
from maps.pages import compare_page, hotspots_page, workload_page

router = APIRouter(tags=["maps"], responses=PROBLEM_RESPONSES, default_response_class=HTMLResponse)

District = Annotated[str, Query(min_length=1, description="district code")]


def _page(html: str, settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": csp_for(settings.maps)})


@router.get("/maps/hotspots", response_class=HTMLResponse)
def hotspots(
    session: SessionDep,
    settings: SettingsDep,
    district: District,
    category: Annotated[str | None, Query(max_length=64)] = None,
    subcategory: Annotated[str | None, Query(max_length=64)] = None,
    date_from: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(alias="to", description="YYYY-MM-DD")] = None,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
) -> HTMLResponse:
    """Reports per grid (classed choropleth), a heat layer and filters."""
    filters = HotspotFilters.parse(category, subcategory, date_from, date_to, status)
    html = hotspots_page(session, district, filters, basemap=settings.maps, asset_mode="served")
    return _page(html, settings)


@router.get("/maps/workload", response_class=HTMLResponse)
def workload(
    session: SessionDep,
    settings: SettingsDep,
    district: District,
    plan: Annotated[
        int | None, Query(ge=1, le=2_147_483_647, description="plan id (default: published)")
    ] = None,
    low: Annotated[int, Query(ge=1, description="band: fewest households")] = 300,
    high: Annotated[int, Query(ge=2, description="band: most households")] = 500,
) -> HTMLResponse:
    """Households, residents, buildings and open reports per grid against the band."""
    from geo.errors import InvalidInput

    if low >= high:
        raise InvalidInput(f"band {low}-{high} is empty", field="low", fix="use low < high")
    html = workload_page(
        session, district, plan, (low, high), basemap=settings.maps, asset_mode="served"
    )
    return _page(html, settings)


@router.get("/maps/compare", response_class=HTMLResponse)
def compare(
    session: SessionDep,
    settings: SettingsDep,
    district: District,
    a: Annotated[int, Query(ge=1, le=2_147_483_647, description="old plan id")],
    b: Annotated[int, Query(ge=1, le=2_147_483_647, description="new plan id")],
) -> HTMLResponse:
    """Plan ``b`` coloured by the change in load, plan ``a``'s boundaries as toggleable lines."""
    html = compare_page(session, district, a, b, basemap=settings.maps, asset_mode="served")
    return _page(html, settings)
