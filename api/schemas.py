"""Response and request bodies: the JSON field names are the public contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geo.crs import Coordsys


class LookupResult(BaseModel):
    """Which grid owns a point (``grid_code``, ``district_code`` and ``plan_id`` null when none
    covers it: the point is outside every district, ``distance_m`` from the nearest one)."""

    lon: float = Field(description="longitude used for the lookup (WGS 84)")
    lat: float = Field(description="latitude used for the lookup (WGS 84)")
    coordsys: Coordsys = Field(description="coordinate system of the input")
    converted: str | None = Field(None, description="set when the input was converted")
    grid_code: str | None
    grid_name: str | None
    community_code: str | None
    street_code: str | None
    district_code: str | None
    plan_id: int | None
    on_boundary: bool
    snapped: bool = False
    nearest_grid_code: str | None = None
    distance_m: float | None = None
    nearest_district_code: str | None = Field(
        None, description="outside every grid: the district of nearest_grid_code"
    )


class AddressCandidate(BaseModel):
    building_id: str
    address: str
    score: float
    grid_code: str | None
    district_code: str
    lon: float
    lat: float


class AddressUnit(BaseModel):
    """A community or a grid whose name the query is (``GET /lookup?address=金鸿社区``)."""

    level: Literal["community", "grid"]
    code: str
    name: str
    district_code: str | None
    street_code: str | None = None
    community_code: str | None = Field(None, description="a grid's community")
    grids: list[str] | None = Field(None, description="a community's grids (published plan)")


class AddressResult(BaseModel):
    """Buildings ranked for an address, or the community or grid it names (``units``).

    A query naming a district, street or community is matched only inside it.
    """

    query: str
    normalized: str
    ambiguous: bool
    reason: str | None = None
    best: AddressCandidate | None
    candidates: list[AddressCandidate]
    units: list[AddressUnit] = Field(default_factory=list)


class PointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)
    id: str | int | None = Field(None, description="echoed back to match answers to points")


class DistrictSummary(BaseModel):
    code: str
    name: str
    plan_id: int | None
    streets: int
    communities: int
    grids: int
    buildings: int
    households: int
    reports: int
    roads: int
    area_km2: float


class ReportIn(BaseModel):
    """A resident's report; it is assigned to its grid on arrival."""

    model_config = ConfigDict(extra="forbid")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    category: str = Field(min_length=1, max_length=64)
    subcategory: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=4000)
    reported_at: datetime | None = None
    report_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    coordsys: Coordsys = Coordsys.WGS84


class ReportOut(BaseModel):
    report_id: str
    district_code: str
    category: str
    subcategory: str | None
    status: str
    reported_at: datetime
    grid_code: str | None
    on_boundary: bool
    nearest_grid_code: str | None = None
    distance_m: float | None = None


class Feature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str | None = None
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature]
