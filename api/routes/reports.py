"""``POST /reports``: a resident's report, filed as a case and assigned to its grid on arrival."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.auth import CasesDep, check_filing_rate
from api.deps import LookupDep, SessionDep
from api.problems import PROBLEM_RESPONSES
from api.schemas import ReportIn, ReportOut
from geo.cases import ANONYMOUS
from geo.store.cases import file_case

router = APIRouter(tags=["reports"], responses=PROBLEM_RESPONSES)


@router.post("/reports", response_model=ReportOut, status_code=status.HTTP_201_CREATED)
def create_report(
    body: ReportIn, request: Request, session: SessionDep, grids: LookupDep, cases: CasesDep
) -> ReportOut:
    """Store a report; it is assigned by the lookup rule to a grid of the published plan.

    It is a case like any other (``POST /cases`` without a key): the same responsibility
    list, the same limit per address, its first event in the history. A point outside
    every district is refused (422 naming lon/lat and the nearest district): a report must
    reach a grid team, not be parked in the nearest district.
    """
    # Lookup first: it may open its own short transaction, before this session holds one.
    answer = grids.lookup(body.lon, body.lat, coordsys=body.coordsys)
    check_filing_rate(request, cases, ANONYMOUS)
    filed = file_case(
        session,
        answer,
        taxonomy=cases.taxonomy.get(session),
        category=body.category,
        subcategory=body.subcategory,
        description=body.description,
        actor=ANONYMOUS,
        reported_at=body.reported_at,
        report_id=body.report_id,
        channel="reports",
        subcategory_field="subcategory",
    )
    return ReportOut(
        report_id=filed["case_id"],
        district_code=filed["district_code"],
        category=filed["category"],
        subcategory=filed["subcategory"],
        status=filed["status"],
        reported_at=filed["reported_at"],
        grid_code=filed["grid_code"],
        on_boundary=answer.on_boundary,
        nearest_grid_code=answer.nearest_grid_code,
        distance_m=answer.distance_m,
    )
