"""Address lookup across the stored districts: one ``AddressIndex`` per published plan.

The index is built on first use from the buildings (with their grid in the published
plan and the names of their community, street and district) and kept until the plan
changes; an answer is ambiguous rather than a silent wrong pick.
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.address import AddressIndex
from geo.errors import InvalidInput, NotFound

_BUILDINGS_SQL = """
SELECT b.building_id, b.address, g.code AS grid_code, c.name AS community_name,
       s.name AS street_name, d.name AS district_name, d.attrs->>'city' AS city_name,
       ST_X(b.geom) AS lon, ST_Y(b.geom) AS lat
FROM buildings b
JOIN districts d ON d.id = b.district_id
LEFT JOIN grids g ON g.id = b.grid_id
LEFT JOIN communities c ON c.id = g.community_id
LEFT JOIN streets s ON s.id = c.street_id
WHERE d.code = :d
ORDER BY b.building_id
"""


class AddressBook:
    """Thread-safe cache of address indexes, keyed by district and published plan."""

    def __init__(self) -> None:
        self._indexes: dict[tuple[str, int], tuple[AddressIndex, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def _index(
        self, session: Session, district: str, plan_id: int
    ) -> tuple[AddressIndex, pd.DataFrame]:
        key = (district, plan_id)
        found = self._indexes.get(key)
        if found is None:
            frame = pd.DataFrame(
                session.execute(text(_BUILDINGS_SQL), {"d": district}).mappings().all()
            )
            if frame.empty:
                frame = pd.DataFrame(columns=["building_id", "address", "grid_code", "lon", "lat"])
            index = AddressIndex(frame, prefixes=["中国"])
            found = (index, frame.set_index("building_id"))
            with self._lock:
                self._indexes = {k: v for k, v in self._indexes.items() if k[0] != district}
                self._indexes[key] = found
        return found

    def search(
        self, session: Session, query: str, *, district: str | None = None, limit: int = 5
    ) -> dict[str, Any]:
        """Ranked candidates over one district or all; the answer's field names are the API's."""
        if not query or not query.strip():
            raise InvalidInput("address is empty", field="address")
        plans: dict[str, int] = dict(
            session.execute(
                text(
                    """SELECT d.code, p.id FROM grid_plans p
                       JOIN districts d ON d.id = p.district_id
                       WHERE p.status = 'published' AND (CAST(:d AS text) IS NULL OR d.code = :d)"""
                ),
                {"d": district},
            ).all()
        )
        if district is not None and district not in plans:
            raise NotFound(
                f"no district with code {district!r} and a published plan", field="district"
            )
        candidates: list[dict[str, Any]] = []
        normalized = ""
        reasons: list[str] = []
        ambiguous = False
        for code in sorted(plans):
            index, frame = self._index(session, code, int(plans[code]))
            answer = index.search(query, limit=limit)
            normalized = answer.normalized
            ambiguous = ambiguous or answer.ambiguous
            if answer.reason:
                reasons.append(answer.reason)
            for c in answer.candidates:
                row = frame.loc[c.building_id]
                candidates.append(
                    {
                        "building_id": c.building_id,
                        "address": c.address,
                        "score": round(float(c.score), 1),
                        "grid_code": c.grid_code,
                        "district_code": code,
                        "lon": float(row["lon"]),
                        "lat": float(row["lat"]),
                    }
                )
        candidates.sort(key=lambda c: (-c["score"], c["district_code"], c["building_id"]))
        candidates = candidates[:limit]
        if (
            len(plans) > 1
            and len(candidates) > 1
            and candidates[0]["score"] - candidates[1]["score"] < 5
        ):
            ambiguous = True
        best = (
            candidates[0] if candidates and not ambiguous and candidates[0]["score"] >= 70 else None
        )
        return {
            "query": query,
            "normalized": normalized,
            "ambiguous": ambiguous,
            "reason": "; ".join(reasons) or None,
            "best": best,
            "candidates": candidates,
        }
