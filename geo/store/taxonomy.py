"""The responsibility list in force, stored: the newest stored list wins, else the shipped one.

Older lists stay for the record; a server process keeps the one in force in a
``TaxonomyCache``. What a list is and how it is checked is ``geo.taxonomy``'s.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.taxonomy import Taxonomy, parse_taxonomy, read_taxonomy, shipped_taxonomy


def replace_taxonomy(session: Session, path: Path) -> Taxonomy:
    """Store the list in ``path`` as the one in force; the old ones stay for the record."""
    parsed = read_taxonomy(path)
    version = session.scalar(
        text(
            "INSERT INTO responsibility_lists (source, data) VALUES (:s, CAST(:d AS jsonb))"
            " RETURNING id"
        ),
        {"s": str(path), "d": json.dumps(parsed.as_dict(), ensure_ascii=False)},
    )
    return Taxonomy(
        version, parsed.description, parsed.categories, parsed.departments, parsed.subcategories
    )


def current_version(session: Session) -> int | None:
    return session.scalar(text("SELECT max(id) FROM responsibility_lists"))


def load_taxonomy(session: Session) -> Taxonomy:
    """The list in force: the newest stored one, else the shipped one."""
    row = session.execute(
        text("SELECT id, data FROM responsibility_lists ORDER BY id DESC LIMIT 1")
    ).first()
    if row is None:
        return shipped_taxonomy()
    parsed = parse_taxonomy(row.data, f"responsibility_lists/{row.id}")
    return Taxonomy(
        row.id, parsed.description, parsed.categories, parsed.departments, parsed.subcategories
    )


class TaxonomyCache:
    """The list in force for a server process, re-checked at most every ``refresh_s`` seconds,
    so filing a case costs no JSON parsing and a reload elsewhere is still picked up."""

    def __init__(self, refresh_s: float = 2.0) -> None:
        self.refresh_s = refresh_s
        self._taxonomy: Taxonomy | None = None
        self._checked = -1e9
        self._lock = threading.Lock()

    def get(self, session: Session) -> Taxonomy:
        now = time.monotonic()
        cached = self._taxonomy
        if cached is not None and now - self._checked < self.refresh_s:
            return cached
        version = current_version(session)
        with self._lock:
            if self._taxonomy is None or self._taxonomy.version != version:
                self._taxonomy = load_taxonomy(session)
            self._checked = now
            return self._taxonomy
