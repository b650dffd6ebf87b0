"""``/lookup``: which grid owns a coordinate or an address."""

from __future__ import annotations

import math
from datetime import date, datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import LimitsDep, LookupDep
from api.problems import PROBLEM_RESPONSES
from api.schemas import AddressResult, LookupResult, PointIn
from geo.crs import Coordsys
from geo.errors import InvalidInput
from geo.store.address import AddressBook
from geo.store.lookup import GridLookup
from geo.store.session import transaction

router = APIRouter(tags=["lookup"], responses=PROBLEM_RESPONSES)

CHINA = ZoneInfo("Asia/Shanghai")
Crs = Literal["EPSG:4326", "EPSG:4490"]
COORDSYS_NAMES = tuple(c.value for c in Coordsys)


def _as_of(value: date | None) -> datetime | None:
    """A date means the end of that day in China time; a datetime is taken as given."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=CHINA)
    return datetime.combine(value, time(23, 59, 59), tzinfo=CHINA)


def _coordsys(crs: str, coordsys: str | None) -> Coordsys:
    """``coordsys`` as named; else what ``crs`` implies (EPSG:4490 is CGCS2000)."""
    if coordsys is not None:
        return Coordsys(coordsys)
    return Coordsys.CGCS2000 if crs == "EPSG:4490" else Coordsys.WGS84


#: The parameters of ``GET /lookup``, documented here and parsed by ``_parse_query``.
#: Declaring them as FastAPI ``Query`` arguments costs more per request (pydantic per
#: parameter) than the lookup itself; this route is the hot path of every dispatch centre.
LOOKUP_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "lon",
        "in": "query",
        "description": "longitude (decimal degrees)",
        "schema": {"type": "number", "minimum": -180, "maximum": 180},
    },
    {
        "name": "lat",
        "in": "query",
        "description": "latitude (decimal degrees)",
        "schema": {"type": "number", "minimum": -90, "maximum": 90},
    },
    {
        "name": "address",
        "in": "query",
        "description": "a Chinese address, or a community or grid name (instead of lon/lat); "
        "a district, street or community it names confines the match to that place",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    {
        "name": "crs",
        "in": "query",
        "description": "CRS of lon/lat; CGCS2000 = WGS 84 here",
        "schema": {"type": "string", "enum": ["EPSG:4326", "EPSG:4490"], "default": "EPSG:4326"},
    },
    {
        "name": "coordsys",
        "in": "query",
        "description": "gcj02 for points copied from AMap/Gaode, bd09 for points copied from "
        "Baidu maps: converted to WGS 84 before the lookup (said in `converted`)",
        "schema": {"type": "string", "enum": list(COORDSYS_NAMES)},
    },
    {
        "name": "district",
        "in": "query",
        "description": "search one district",
        "schema": {"type": "string", "minLength": 1},
    },
    {
        "name": "as_of",
        "in": "query",
        "description": "answer with the plan in force on this date",
        "schema": {"type": "string", "format": "date"},
    },
    {
        "name": "snap_m",
        "in": "query",
        "description": "snap tolerance, metres",
        "schema": {"type": "number", "minimum": 0, "maximum": 10000, "default": 0},
    },
    {
        "name": "limit",
        "in": "query",
        "description": "address candidates",
        "schema": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
    },
]


def _number(query: Any, name: str, low: float, high: float) -> float | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {text!r}", field=name) from None
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {text!r}", field=name)
    if name in ("lon", "lat"):
        return value  # range and swapped axes are judged together by geo.lookup.check_lonlat
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}", field=name)
    return value


def _choice(query: Any, name: str, allowed: tuple[str, ...]) -> str | None:
    text = query.get(name)
    if text is not None and text not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}", field=name)
    return text


def _text(query: Any, name: str, longest: int) -> str | None:
    text = query.get(name)
    if text is not None and not 1 <= len(text) <= longest:
        raise InvalidInput(f"{name} must have 1 to {longest} characters", field=name)
    return text


def _date(query: Any, name: str) -> date | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{name} must be a date (YYYY-MM-DD), got {text!r}", field=name
        ) from None


@router.get(
    "/lookup",
    response_model=LookupResult | AddressResult,
    openapi_extra={"parameters": LOOKUP_PARAMETERS},
)
async def lookup(request: Request) -> Any:
    """The grid that owns a point (``lon`` + ``lat``) or an address (``address``).

    A point belongs to the grid of the published plan whose closed polygon covers it; on a
    boundary shared by several grids, to the smallest grid code; outside every grid the
    point is outside every district: no district, no plan, and the answer names the nearest
    grid and district and the distance in metres (``snap_m`` assigns it).
    """
    query = request.query_params
    lon = _number(query, "lon", -180, 180)
    lat = _number(query, "lat", -90, 90)
    address = _text(query, "address", 200)
    crs = _choice(query, "crs", ("EPSG:4326", "EPSG:4490")) or "EPSG:4326"
    coordsys = _choice(query, "coordsys", COORDSYS_NAMES)
    district = _text(query, "district", 100)
    as_of = _date(query, "as_of")
    snap_m = _number(query, "snap_m", 0, 10_000) or 0.0
    limit_value = _number(query, "limit", 1, 20)
    if limit_value is not None and not limit_value.is_integer():
        raise InvalidInput("limit must be a whole number", field="limit")
    limit = int(limit_value or 5)
    if address is not None:
        if lon is not None or lat is not None:
            raise InvalidInput("give either lon/lat or address, not both", field="address")
        return await run_in_threadpool(
            _search_address, request, request.app.state.addresses, address, district, limit
        )
    if lon is None or lat is None:
        missing = "lon" if lon is None else "lat"
        raise InvalidInput(
            f"{missing} is required (or give address=)",
            field=missing,
            fix="send both lon and lat in decimal degrees, or an address",
        )
    # Served from the in-memory index on the event loop: no connection, no thread hop, and
    # returned as a ready JSONResponse (the answer is built to the schema already).
    grids: GridLookup = request.app.state.lookup
    answer = grids.lookup(
        lon,
        lat,
        coordsys=_coordsys(crs, coordsys),
        district=district,
        as_of=_as_of(as_of),
        snap_m=snap_m,
    )
    return JSONResponse(answer.as_dict())


def _search_address(
    request: Request, addresses: AddressBook, address: str, district: str | None, limit: int
) -> dict[str, Any]:
    with transaction(request.app.state.sessions) as session:
        return addresses.search(session, address, district=district, limit=limit)


class BatchLookupResult(LookupResult):
    id: str | int | None = None


class GeoJSONPoint(BaseModel):
    type: Literal["Point"]
    coordinates: list[float]


class PointFeature(BaseModel):
    type: Literal["Feature"]
    id: str | int | None = None
    geometry: GeoJSONPoint
    properties: dict[str, Any] | None = None


class PointCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[PointFeature]


@router.post("/lookup", response_model=list[BatchLookupResult])
def lookup_batch(
    grids: LookupDep,
    limits: LimitsDep,
    points: Annotated[
        list[PointIn] | PointCollection,
        Body(description="a JSON list of {lon, lat, id} or a GeoJSON FeatureCollection of Points"),
    ],
    crs: Annotated[Crs, Query()] = "EPSG:4326",
    coordsys: Annotated[Coordsys | None, Query()] = None,
    district: Annotated[str | None, Query(min_length=1)] = None,
    as_of: Annotated[date | None, Query()] = None,
    snap_m: Annotated[float, Query(ge=0, le=10_000, allow_inf_nan=False)] = 0.0,
) -> list[dict[str, Any]]:
    """Look up many points at once (at most ``GRIDMAP_LOOKUP_BATCH_LIMIT``, 10,000 by default)."""
    if isinstance(points, PointCollection):
        rows: list[tuple[Any, float, float]] = []
        for i, f in enumerate(points.features):
            if len(f.geometry.coordinates) < 2:
                raise InvalidInput(
                    "a Point needs [lon, lat]", field=f"features[{i}].geometry.coordinates"
                )
            ident = f.id if f.id is not None else (f.properties or {}).get("id")
            rows.append((ident, f.geometry.coordinates[0], f.geometry.coordinates[1]))
    else:
        rows = [(p.id, p.lon, p.lat) for p in points]
    limit = limits.lookup_batch_limit
    if len(rows) > limit:
        raise InvalidInput(
            f"{len(rows):,} points is over the batch limit of {limit:,}",
            field="body",
            fix="split the batch, or use `gridmap assign` for files",
        )
    if not rows:
        return []
    answers = grids.lookup_many(
        [r[1] for r in rows],
        [r[2] for r in rows],
        coordsys=_coordsys(crs, coordsys),
        district=district,
        as_of=_as_of(as_of),
        snap_m=snap_m,
    )
    return [{"id": r[0], **a.as_dict()} for r, a in zip(rows, answers, strict=True)]
