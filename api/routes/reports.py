"""``POST /reports``: a resident's report, stored and assigned to its grid on arrival."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, status

from api.deps import LookupDep, SessionDep
from api.problems import PROBLEM_RESPONSES
from api.schemas import ReportIn, ReportOut
from geo.lookup import require_district
from geo.store.reports import file_report

router = APIRouter(tags=["reports"], responses=PROBLEM_RESPONSES)


@router.post("/reports", response_model=ReportOut, status_code=status.HTTP_201_CREATED)
def create_report(body: ReportIn, session: SessionDep, grids: LookupDep) -> dict[str, Any]:
    """Store a report; it is assigned by the lookup rule to a grid of the published plan.

    A point outside every district is refused (422 naming lon/lat and the nearest
    district): a report must reach a grid team, not be parked in the nearest district.
    """
    answer = require_district(grids.lookup(body.lon, body.lat, coordsys=body.coordsys))
    stored = file_report(
        session,
        answer,
        category=body.category,
        subcategory=body.subcategory,
        description=body.description,
        reported_at=body.reported_at or datetime.now(UTC),
        report_id=body.report_id,
    )
    return stored
