"""Address lookup across the stored districts: one ``AddressIndex`` over every published plan.

The index and the answer are ``geo.address``'s; here they are fed from the store.

One index, not one per district, so that a query naming its district, street or community
is matched inside that place and nowhere else, and one naming no place is ambiguous when
two districts have the same building. The index is built on first use from the buildings
(with their grid in the published plan and the names of their community, street and
district) and the communities and grids (found by name), and kept until a plan changes.
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.address import AddressIndex, Places, answer_fields
from geo.errors import InvalidInput, NotFound

_BUILDINGS_SQL = """
SELECT b.building_id, b.address, g.code AS grid_code, d.code AS district_code,
       c.name AS community_name, s.name AS street_name, d.name AS district_name,
       d.attrs->>'city' AS city_name, ST_X(b.geom) AS lon, ST_Y(b.geom) AS lat
FROM buildings b
JOIN districts d ON d.id = b.district_id
JOIN grid_plans p ON p.district_id = d.id AND p.status = 'published'
LEFT JOIN grids g ON g.id = b.grid_id
LEFT JOIN communities c ON c.id = g.community_id
LEFT JOIN streets s ON s.id = c.street_id
ORDER BY d.code, b.building_id
"""

#: Communities (with the grids of the published plan) and named grids, found by name.
_UNITS_SQL = """
SELECT 'community' AS level, c.code, c.name, d.code AS district_code, s.code AS street_code,
       NULL AS community_code, d.name AS district_name, s.name AS street_name,
       c.name AS community_name, d.attrs->>'city' AS city_name,
       ARRAY(SELECT g.code FROM grids g WHERE g.community_id = c.id AND g.plan_id = p.id
             ORDER BY g.code COLLATE "C") AS grids
FROM communities c
JOIN streets s ON s.id = c.street_id
JOIN districts d ON d.id = c.district_id
JOIN grid_plans p ON p.district_id = d.id AND p.status = 'published'
UNION ALL
SELECT 'grid', g.code, g.name, d.code, s.code, c.code, d.name, s.name, c.name,
       d.attrs->>'city', NULL
FROM grids g
JOIN grid_plans p ON p.id = g.plan_id AND p.status = 'published'
JOIN districts d ON d.id = p.district_id
JOIN communities c ON c.id = g.community_id
JOIN streets s ON s.id = c.street_id
WHERE g.name IS NOT NULL AND g.name <> ''
ORDER BY 4, 1, 2
"""

_PLANS_SQL = """
SELECT d.code, p.id FROM grid_plans p JOIN districts d ON d.id = p.district_id
WHERE p.status = 'published' ORDER BY d.code
"""

Plans = tuple[tuple[str, int], ...]


class AddressBook:
    """Thread-safe cache of the address index, keyed by the set of published plans."""

    def __init__(self) -> None:
        self._plans: Plans = ()
        self._index: AddressIndex | None = None
        self._where: Places = {}
        self._lock = threading.Lock()

    def _index_for(self, session: Session, plans: Plans) -> tuple[AddressIndex, Places]:
        with self._lock:
            if self._index is not None and self._plans == plans:
                return self._index, self._where
        frame = pd.DataFrame(session.execute(text(_BUILDINGS_SQL)).mappings().all())
        if frame.empty:
            frame = pd.DataFrame(
                columns=["building_id", "address", "grid_code", "district_code", "lon", "lat"]
            )
        units = pd.DataFrame(session.execute(text(_UNITS_SQL)).mappings().all())
        index = AddressIndex(frame, units=units if not units.empty else None, prefixes=["中国"])
        columns = (frame[c] for c in ("district_code", "building_id", "lon", "lat"))
        where: Places = {
            (str(d), str(b)): (float(x), float(y)) for d, b, x, y in zip(*columns, strict=True)
        }
        with self._lock:
            self._plans, self._index, self._where = plans, index, where
        return index, where

    def search(
        self, session: Session, query: str, *, district: str | None = None, limit: int = 5
    ) -> dict[str, Any]:
        """Ranked candidates over one district or all; the answer's field names are the API's."""
        if not query or not query.strip():
            raise InvalidInput("address is empty", field="address")
        plans: Plans = tuple(
            (str(code), int(pid)) for code, pid in session.execute(text(_PLANS_SQL)).all()
        )
        if district is not None and district not in dict(plans):
            raise NotFound(
                f"no district with code {district!r} and a published plan", field="district"
            )
        index, where = self._index_for(session, plans)
        answer = index.search(query, limit=limit, district=district)
        return answer_fields(query, answer, where)
