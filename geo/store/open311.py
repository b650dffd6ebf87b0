"""What Open311 GeoReport v2 asks of the store beyond cases: jurisdictions and address ids.

A jurisdiction is a district code; an ``address_id`` is a building's ``building_id``.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound


def check_jurisdiction(session: Session, jurisdiction_id: str | None) -> None:
    """NotFound unless ``jurisdiction_id`` is a stored district; none given means all."""
    if jurisdiction_id and not session.scalar(
        text("SELECT 1 FROM districts WHERE code = :d"), {"d": jurisdiction_id}
    ):
        raise NotFound(f"no jurisdiction {jurisdiction_id!r}", field="jurisdiction_id")


def address_id_location(
    session: Session, address_id: str, jurisdiction_id: str | None
) -> tuple[float, float]:
    """lon, lat of the building whose ``building_id`` is ``address_id``."""
    row = session.execute(
        text(
            """SELECT ST_X(b.geom) AS lon, ST_Y(b.geom) AS lat FROM buildings b
               JOIN districts d ON d.id = b.district_id
               WHERE b.building_id = :b AND (CAST(:d AS text) IS NULL OR d.code = :d)"""
        ),
        {"b": address_id, "d": jurisdiction_id},
    ).first()
    if row is None:
        raise InvalidInput("no building with this address_id", field="address_id")
    return float(row.lon), float(row.lat)
