"""Which grid owns a coordinate, across every district's published plan (or the plan of a date).

The in-memory ``GridIndex`` of each plan is built once and kept; the set of published
plans is re-read from the database at most every ``refresh_s`` seconds, so a publish or a
``gridmap load --replace`` in another process is picked up without a query per lookup.

A point that no grid covers lies outside every district (a district's grids tile it): its
answer has no district and no plan, only the nearest grid, the nearest district and the
distance to them. Filing a report there is refused (``require_district``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.assign import GridIndex
from geo.crs import Coordsys
from geo.errors import InvalidInput, NotFound
from geo.store.session import transaction


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


def load_plan_index(session: Session, plan_id: int) -> PlanIndex:
    """Build the in-memory index of one plan from the store."""
    rows = session.execute(
        text(
            """SELECT g.code, g.name, c.code AS community_code, s.code AS street_code,
                      d.code AS district_code, ST_AsBinary(g.geom) AS wkb
               FROM grids g
               JOIN communities c ON c.id = g.community_id
               JOIN streets s ON s.id = c.street_id
               JOIN grid_plans p ON p.id = g.plan_id
               JOIN districts d ON d.id = p.district_id
               WHERE g.plan_id = :plan ORDER BY g.code"""
        ),
        {"plan": plan_id},
    ).all()
    if not rows:
        raise NotFound(f"plan {plan_id} has no grids", field="plan")
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows])
    # Stored plans were validated when they were loaded or drafted: skip is_valid here.
    index = GridIndex.from_arrays([r.code for r in rows], geoms, validated=True)
    info = {
        r.code: GridInfo(r.code, r.name, r.community_code, r.street_code, r.district_code)
        for r in rows
    }
    b = shapely.total_bounds(geoms)
    return PlanIndex(plan_id, rows[0].district_code, index, info, (b[0], b[1], b[2], b[3]))


class GridLookup:
    """Thread-safe cache of plan indexes for the API and the CLI.

    It opens its own short transactions, and only when the cache must be refreshed, so a
    lookup served from the cache touches no database connection at all.
    """

    def __init__(self, database_url: str, refresh_s: float = 2.0) -> None:
        self.database_url = database_url
        self.refresh_s = refresh_s
        self._plans: dict[int, PlanIndex] = {}
        self._published: dict[str, int] = {}
        self._checked = -1e9
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._checked = -1e9

    def published(self) -> dict[str, int]:
        """district code -> published plan id, re-read at most every ``refresh_s``.

        The query runs outside the lock: a request holding a pooled connection must never
        wait on a lock held by another request that waits for a connection.
        """
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return self._published
        with transaction(self.database_url) as session:
            rows = session.execute(
                text(
                    """SELECT d.code, p.id FROM grid_plans p
                       JOIN districts d ON d.id = p.district_id
                       WHERE p.status = 'published' ORDER BY d.code"""
                )
            ).all()
        published = {str(code): int(pid) for code, pid in rows}
        with self._lock:
            self._published = published
            live = set(published.values())
            # Drop indexes of plans that are no longer published (kept ones stay warm).
            self._plans = {k: v for k, v in self._plans.items() if k in live}
            self._checked = now
        return published

    def plan(self, plan_id: int) -> PlanIndex:
        found = self._plans.get(plan_id)
        if found is None:
            with transaction(self.database_url) as session:
                found = load_plan_index(session, plan_id)
            with self._lock:
                self._plans[plan_id] = found
        return found

    def plans_for(self, district: str | None, as_of: datetime | None) -> list[PlanIndex]:
        if as_of is not None:
            with transaction(self.database_url) as session:
                ids = plans_in_force(session, as_of, district)
        else:
            published = self.published()
            if district is not None:
                if district not in published:
                    with transaction(self.database_url) as session:
                        _refuse_unknown_district(session, district)
                    raise NotFound(f"district {district} has no published plan", field="district")
                ids = [published[district]]
            else:
                ids = list(published.values())
        return [self.plan(pid) for pid in ids]

    def lookup(
        self,
        lon: float,
        lat: float,
        *,
        coordsys: Coordsys = Coordsys.WGS84,
        district: str | None = None,
        as_of: datetime | None = None,
        snap_m: float = 0.0,
    ) -> LookupAnswer:
        """One point: the plain-WGS 84 case inside a grid is answered without the batch path."""
        coordsys = Coordsys(coordsys)
        if not coordsys.is_offset:
            check_lonlat(lon, lat)
            for plan in self.plans_for(district, as_of):
                result = plan.index.assign([lon], [lat], snap_m=snap_m)
                if result.grid_code[0] is not None and not result.snapped[0]:
                    return _answer(lon, lat, coordsys, None, (plan, result, 0), None)
        return self.lookup_many(
            [lon],
            [lat],
            coordsys=coordsys,
            district=district,
            as_of=as_of,
            snap_m=snap_m,
        )[0]

    def lookup_many(
        self,
        lons: Sequence[float],
        lats: Sequence[float],
        *,
        coordsys: Coordsys = Coordsys.WGS84,
        district: str | None = None,
        as_of: datetime | None = None,
        snap_m: float = 0.0,
    ) -> list[LookupAnswer]:
        """Assign many points; a point lies in at most one district's published plan."""
        coordsys = Coordsys(coordsys)
        for i, (lon, lat) in enumerate(zip(lons, lats, strict=True)):
            try:
                check_lonlat(float(lon), float(lat))
            except InvalidInput as exc:
                if len(lons) > 1:
                    exc.field = f"[{i}].{exc.field}"
                raise
        x = np.asarray(lons, dtype=np.float64)
        y = np.asarray(lats, dtype=np.float64)
        converted = None
        if coordsys.is_offset:
            x, y = coordsys.to_wgs84(x, y)
            converted = f"converted from {coordsys.label} to WGS 84 before lookup"
        plans = self.plans_for(district, as_of)
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


def _refuse_unknown_district(session: Session, district: str) -> None:
    exists = session.execute(
        text("SELECT 1 FROM districts WHERE code = :c"), {"c": district}
    ).first()
    if exists is None:
        raise NotFound(f"no district with code {district!r}", field="district")


def plans_in_force(session: Session, as_of: datetime, district: str | None) -> list[int]:
    """Plans whose validity range holds ``as_of`` (published or retired), per district."""
    if district is not None:
        _refuse_unknown_district(session, district)
    rows = session.execute(
        text(
            """SELECT DISTINCT ON (d.code) p.id FROM grid_plans p
               JOIN districts d ON d.id = p.district_id
               WHERE p.status IN ('published', 'retired')
                 AND p.effective_from <= :t
                 AND (p.effective_to IS NULL OR p.effective_to > :t)
                 AND (CAST(:d AS text) IS NULL OR d.code = :d)
               ORDER BY d.code, p.effective_from DESC"""
        ),
        {"t": as_of, "d": district},
    ).all()
    return [int(r[0]) for r in rows]


def sql_lookup(session: Session, lon: float, lat: float, plan_id: int) -> str | None:
    """The same rule in SQL: ST_Covers, smallest code on shared boundaries (tests compare)."""
    return session.scalar(
        text(
            """SELECT code FROM grids
               WHERE plan_id = :plan AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))
               ORDER BY code COLLATE "C" LIMIT 1"""
        ),
        {"plan": plan_id, "x": lon, "y": lat},
    )
