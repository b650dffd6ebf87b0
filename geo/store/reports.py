"""Filing single reports (the API path); bulk reports go through ``queries.copy_reports``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput
from geo.lookup import LookupAnswer


def file_report(
    session: Session,
    answer: LookupAnswer,
    *,
    category: str,
    subcategory: str | None,
    description: str | None,
    reported_at: datetime,
    report_id: str | None,
) -> dict[str, Any]:
    """Insert one report already assigned by ``answer``; its id is generated when not given."""
    if answer.district_code is None:
        raise InvalidInput(
            "the point is in no district gridmap knows", field="lon", fix="check lon/lat"
        )
    if reported_at.tzinfo is None:
        raise InvalidInput("reported_at needs a UTC offset", field="reported_at")
    row = session.execute(
        text(
            """SELECT d.id AS district_id, g.id AS grid_id
               FROM districts d
               LEFT JOIN grids g ON g.plan_id = :plan AND g.code = :code
               WHERE d.code = :district"""
        ),
        {"plan": answer.plan_id, "code": answer.grid_code, "district": answer.district_code},
    ).one()
    pk = session.scalar(text("SELECT nextval(pg_get_serial_sequence('reports', 'id'))"))
    report_id = report_id or f"API{pk:010d}"
    exists = session.scalar(
        text("SELECT 1 FROM reports WHERE district_id = :d AND report_id = :r"),
        {"d": row.district_id, "r": report_id},
    )
    if exists:
        raise Conflict(f"report {report_id} exists already", field="report_id")
    session.execute(
        text(
            """INSERT INTO reports (id, district_id, report_id, category, subcategory,
                                    reported_at, status, description, grid_id, geom)
               VALUES (:id, :d, :r, :cat, :sub, :at, 'reported', :desc, :g,
                       ST_SetSRID(ST_MakePoint(:x, :y), 4326))"""
        ),
        {
            "id": pk,
            "d": row.district_id,
            "r": report_id,
            "cat": category,
            "sub": subcategory,
            "at": reported_at,
            "desc": description,
            "g": row.grid_id,
            "x": answer.lon,
            "y": answer.lat,
        },
    )
    return {
        "report_id": report_id,
        "district_code": answer.district_code,
        "category": category,
        "subcategory": subcategory,
        "status": "reported",
        "reported_at": reported_at,
        "grid_code": answer.grid_code,
        "on_boundary": answer.on_boundary,
        "nearest_grid_code": answer.nearest_grid_code,
        "distance_m": answer.distance_m,
    }
