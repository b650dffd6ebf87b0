"""Which grid owns a coordinate, across every district's plan: the answers, from plan indexes.

The plans' indexes come from the store (``geo.store.lookup.GridLookup`` keeps them); here
are the rules of the answer. A point that no grid covers lies outside every district (a
district's grids tile it): its answer has no district and no plan, only the nearest grid,
the nearest district and the distance to them. Filing a report there is refused
(``require_district``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.assign import GridIndex
from geo.crs import Coordsys
from geo.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]


def check_lonlat(lon: float, lat: float) -> None:
    """Refuse coordinates that are not longitude/latitude, naming the field and the likely cause."""
    for name, value in (("lon", lon), ("lat", lat)):
        if not np.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number, got {value}", field=name)
    if not -90 <= lat <= 90:
        hint = (
            "; lon and lat look swapped (lat holds a longitude)"
            if -90 <= lon <= 90 and abs(lat) <= 180
            else ""
        )
        raise InvalidInput(
            f"lat must be between -90 and 90, got {lat}{hint}",
            field="lat",
            fix="send lon = longitude (x) and lat = latitude (y) in decimal degrees",
        )
    if not -180 <= lon <= 180:
        raise InvalidInput(f"lon must be between -180 and 180, got {lon}", field="lon")


@dataclass(frozen=True)
class GridInfo:
    code: str
    name: str | None
    community_code: str
    street_code: str
    district_code: str


@dataclass
class PlanIndex:
    """One plan's index plus what an answer names about each grid."""

    plan_id: int
    district_code: str
    index: GridIndex
    grids: dict[str, GridInfo]
    bounds: tuple[float, float, float, float]


@dataclass(frozen=True)
class LookupAnswer:
    """The answer of ``GET /lookup`` and ``gridmap lookup``; field names are the contract.

    ``district_code`` and ``plan_id`` name the plan whose grid holds the point (snapped
    included); outside every grid they are null and ``nearest_district_code`` names the
    district of ``nearest_grid_code``, ``distance_m`` away (the distance to that district).
    """

    lon: float
    lat: float
    coordsys: Coordsys
    converted: str | None
    grid_code: str | None
    grid_name: str | None
    community_code: str | None
    street_code: str | None
    district_code: str | None
    plan_id: int | None
    on_boundary: bool
    snapped: bool
    nearest_grid_code: str | None
    distance_m: float | None
    nearest_district_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)  # flat: a shallow copy, 10x cheaper than asdict()


def lonlat_arrays(
    lons: Sequence[float], lats: Sequence[float], coordsys: Coordsys
) -> tuple[FloatArray, FloatArray, str | None]:
    """Checked lon/lat arrays in WGS 84 and the note saying they were converted (or None).

    A bad coordinate of a batch is named by its row (``[3].lat``), of a single point by its
    field alone.
    """
    for i, (lon, lat) in enumerate(zip(lons, lats, strict=True)):
        try:
            check_lonlat(float(lon), float(lat))
        except InvalidInput as exc:
            if len(lons) > 1:
                exc.field = f"[{i}].{exc.field}"
            raise
    x = np.asarray(lons, dtype=np.float64)
    y = np.asarray(lats, dtype=np.float64)
    if not coordsys.is_offset:
        return x, y, None
    x, y = coordsys.to_wgs84(x, y)
    return x, y, f"converted from {coordsys.label} to WGS 84 before lookup"


def answer_inside(
    plans: Sequence[PlanIndex], lon: float, lat: float, coordsys: Coordsys, snap_m: float
) -> LookupAnswer | None:
    """The answer for one WGS 84 point that a grid covers, or None (then ``answer_points``).

    ``GET /lookup``'s usual case, answered without the batch path's arrays.
    """
    for plan in plans:
        result = plan.index.assign([lon], [lat], snap_m=snap_m)
        if result.grid_code[0] is not None and not result.snapped[0]:
            return _answer(lon, lat, coordsys, None, (plan, result, 0), None)
    return None


def answer_points(
    plans: Sequence[PlanIndex],
    x: FloatArray,
    y: FloatArray,
    *,
    coordsys: Coordsys,
    converted: str | None,
    snap_m: float,
) -> list[LookupAnswer]:
    """Answers for WGS 84 points over several plans; a point lies in at most one district.

    A point no plan covers gets the nearest grid over all plans, and is snapped to it when
    that grid is within ``snap_m``.
    """
    n = len(x)
    best: list[tuple[PlanIndex, Any, int] | None] = [None] * n
    nearest: list[tuple[float, PlanIndex, Any, int] | None] = [None] * n
    for plan in plans:
        result = plan.index.assign(x, y, snap_m=snap_m)
        for i in range(n):
            if result.grid_code[i] is not None and not result.snapped[i]:
                if best[i] is None:
                    best[i] = (plan, result, i)
            elif result.nearest_grid_code[i] is not None:
                d = float(result.distance_m[i])
                current = nearest[i]
                if current is None or d < current[0]:
                    nearest[i] = (d, plan, result, i)
    answers = []
    for i in range(n):
        hit = best[i]
        near = nearest[i]
        if hit is None and near is not None and snap_m > 0 and near[0] <= snap_m:
            hit = (near[1], near[2], i)
        answers.append(_answer(float(x[i]), float(y[i]), coordsys, converted, hit, near))
    return answers


def _answer(
    lon: float,
    lat: float,
    coordsys: Coordsys,
    converted: str | None,
    hit: tuple[PlanIndex, Any, int] | None,
    near: tuple[float, PlanIndex, Any, int] | None,
) -> LookupAnswer:
    if hit is not None:
        plan, result, i = hit
        code = str(result.grid_code[i])
        info = plan.grids[code]
        snapped = bool(result.snapped[i])
        return LookupAnswer(
            lon=lon,
            lat=lat,
            coordsys=coordsys,
            converted=converted,
            grid_code=code,
            grid_name=info.name,
            community_code=info.community_code,
            street_code=info.street_code,
            district_code=info.district_code,
            plan_id=plan.plan_id,
            on_boundary=bool(result.on_boundary[i]),
            snapped=snapped,
            nearest_grid_code=code if snapped else None,
            distance_m=round(float(result.distance_m[i]), 3) if snapped else None,
            nearest_district_code=info.district_code if snapped else None,
        )
    return LookupAnswer(
        lon=lon,
        lat=lat,
        coordsys=coordsys,
        converted=converted,
        grid_code=None,
        grid_name=None,
        community_code=None,
        street_code=None,
        district_code=None,
        plan_id=None,
        on_boundary=False,
        snapped=False,
        nearest_grid_code=str(near[2].nearest_grid_code[near[3]]) if near else None,
        distance_m=round(near[0], 3) if near else None,
        nearest_district_code=near[1].district_code if near else None,
    )


def require_district(answer: LookupAnswer) -> LookupAnswer:
    """Refuse a point outside every district: a report there would reach no one.

    Storing it under the nearest district would hand a case 100 km out at sea to a grid
    team that cannot go there; the caller is told where the nearest district is instead.
    """
    if answer.district_code is not None:
        return answer
    where = f"lon {answer.lon:.6f}, lat {answer.lat:.6f}"
    if answer.nearest_district_code is None:
        reason = f"{where} is outside every district, and no district has a published plan"
    else:
        reason = (
            f"{where} is outside every district; the nearest is district "
            f"{answer.nearest_district_code}, {answer.distance_m:,.0f} m away "
            f"(grid {answer.nearest_grid_code})"
        )
    raise InvalidInput(
        reason,
        field="lon",
        fix="check lon/lat (swapped? from AMap: coordsys=gcj02), or send a point inside the "
        "district that should handle it",
    )
