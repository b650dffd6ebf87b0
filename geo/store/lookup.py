"""The plans a lookup searches, read from the store and kept in memory between requests.

The in-memory ``GridIndex`` of each plan is built once and kept; the set of published
plans is re-read from the database at most every ``refresh_s`` seconds, so a publish or a
``gridmap load --replace`` in another process is picked up without a query per lookup.
The answers themselves are ``geo.lookup``'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from geo.assign import GridIndex
from geo.crs import Coordsys
from geo.errors import NotFound
from geo.lookup import (
    GridInfo,
    LookupAnswer,
    PlanIndex,
    answer_inside,
    answer_points,
    check_lonlat,
    lonlat_arrays,
)
from geo.store.session import transaction


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


def published_plans(session: Session) -> dict[str, int]:
    """district code -> id of its published plan."""
    rows = session.execute(
        text(
            """SELECT d.code, p.id FROM grid_plans p
               JOIN districts d ON d.id = p.district_id
               WHERE p.status = 'published' ORDER BY d.code"""
        )
    ).all()
    return {str(code): int(pid) for code, pid in rows}


def refuse_unknown_district(session: Session, district: str) -> None:
    exists = session.execute(
        text("SELECT 1 FROM districts WHERE code = :c"), {"c": district}
    ).first()
    if exists is None:
        raise NotFound(f"no district with code {district!r}", field="district")


def plans_in_force(session: Session, as_of: datetime, district: str | None) -> list[int]:
    """Plans whose validity range holds ``as_of`` (published or retired), per district."""
    if district is not None:
        refuse_unknown_district(session, district)
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


class GridLookup:
    """Thread-safe cache of plan indexes for the API and the CLI.

    It opens its own short transactions from ``sessions``, and only when the cache must be
    refreshed, so a lookup served from the cache touches no database connection at all.
    """

    def __init__(self, sessions: sessionmaker[Session], refresh_s: float = 2.0) -> None:
        self.sessions = sessions
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
        with transaction(self.sessions) as session:
            published = published_plans(session)
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
            with transaction(self.sessions) as session:
                found = load_plan_index(session, plan_id)
            with self._lock:
                self._plans[plan_id] = found
        return found

    def plans_for(self, district: str | None, as_of: datetime | None) -> list[PlanIndex]:
        if as_of is not None:
            with transaction(self.sessions) as session:
                ids = plans_in_force(session, as_of, district)
        else:
            published = self.published()
            if district is not None:
                if district not in published:
                    with transaction(self.sessions) as session:
                        refuse_unknown_district(session, district)
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
            inside = answer_inside(self.plans_for(district, as_of), lon, lat, coordsys, snap_m)
            if inside is not None:
                return inside
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
        x, y, converted = lonlat_arrays(lons, lats, coordsys)
        return answer_points(
            self.plans_for(district, as_of),
            x,
            y,
            coordsys=coordsys,
            converted=converted,
            snap_m=snap_m,
        )
