"""Cases: file, list, read with history, step through the loop, blow the whistle, statistics.

A case's ``case_id`` is its Open311 ``service_request_id``. Every route here except
``GET /stats`` needs ``Authorization: Bearer KEY``; what a key sees and may do depends on
its role, grid or department (``geo/cases.py``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth import ActorDep, CasesDep, TaxonomyDep, check_filing_rate, current_actor
from api.deps import LookupDep, SessionDep
from api.problems import PROBLEM_RESPONSES
from geo.cases import ACK_HOURS, MAX_ACK_HOURS, MAX_REPORT_HOURS, REPORT_HOURS
from geo.crs import Coordsys
from geo.store.cases import (
    advance_case,
    blow_whistle,
    file_case,
    get_case,
    list_cases,
    list_escalations,
)
from geo.store.stats import case_stats

router = APIRouter(tags=["cases"], responses=PROBLEM_RESPONSES)


class ReporterIn(BaseModel):
    """The reporter's contact: stored apart, never returned by lists, maps or Open311."""

    model_config = ConfigDict(extra="forbid")
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=254)
    device_id: str | None = Field(None, max_length=200)
    account_id: str | None = Field(None, max_length=200)


class CaseIn(BaseModel):
    """A new case; status, grid and assignee are the workflow's to set, so they are refused."""

    model_config = ConfigDict(extra="forbid")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    subcategory: str = Field(min_length=1, max_length=64, description="a service_code")
    description: str | None = Field(None, max_length=4000)
    coordsys: Coordsys = Coordsys.WGS84
    reporter: ReporterIn | None = None


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(
        min_length=1,
        max_length=32,
        description="register, reject, dispatch, start, handle, verify, reopen, close, "
        "evaluate, acknowledge, report_back",
    )
    comment: str = Field("", max_length=4000, description="feedback for handle and report_back")
    subcategory: str | None = Field(None, max_length=64, description="register: reclassify")
    assignee: str | None = Field(None, max_length=64, description="dispatch: grid or department")
    reason: Literal["invalid", "duplicate"] | None = None
    duplicate_of: str | None = Field(None, max_length=64)
    satisfaction: int | None = Field(None, ge=1, le=5)


class WhistleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    departments: list[str] = Field(min_length=1, max_length=30)
    comment: str = Field(min_length=1, max_length=4000)
    ack_hours: float = Field(ACK_HOURS, gt=0, le=MAX_ACK_HOURS, description="报到 deadline")
    report_hours: float = Field(REPORT_HOURS, gt=0, le=MAX_REPORT_HOURS)


def _split(values: list[str] | None) -> list[str]:
    return [v for item in values or [] for v in item.split(",") if v]


@router.post("/cases", status_code=status.HTTP_201_CREATED)
def create_case(
    body: CaseIn,
    request: Request,
    session: SessionDep,
    grids: LookupDep,
    cases: CasesDep,
) -> dict[str, Any]:
    """File a case; it is assigned to its grid on arrival and waits to be registered."""
    # Lookup first: it may open its own short transaction, before this session holds one.
    answer = grids.lookup(body.lon, body.lat, coordsys=body.coordsys)
    actor = current_actor(request, session)
    check_filing_rate(request, cases, actor)
    taxonomy = cases.taxonomy.get(session)
    reporter = body.reporter.model_dump() if body.reporter else None
    return file_case(
        session,
        answer,
        taxonomy=taxonomy,
        subcategory=body.subcategory,
        description=body.description,
        actor=actor,
        reporter=reporter,
    )


@router.get("/cases")
def cases_list(
    session: SessionDep,
    actor: ActorDep,
    district: str | None = None,
    status_: Annotated[list[str] | None, Query(alias="status")] = None,
    grid: str | None = None,
    community: str | None = None,
    street: str | None = None,
    category: str | None = None,
    subcategory: Annotated[list[str] | None, Query()] = None,
    assignee: str | None = None,
    overdue: bool | None = None,
    escalated: bool | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Cases this key may read, newest first; ``overdue=true`` lists open cases past due."""
    return list_cases(
        session,
        actor,
        district=district,
        statuses=_split(status_),
        grid=grid,
        community=community,
        street=street,
        category=category,
        subcategories=_split(subcategory),
        assignee=assignee,
        overdue=overdue,
        escalated=escalated,
        start=start,
        end=end,
        as_of=as_of,
        limit=limit,
        offset=offset,
    )


@router.get("/cases/{case_id}")
def case_detail(
    case_id: str, session: SessionDep, actor: ActorDep, district: str | None = None
) -> dict[str, Any]:
    """One case with its history, escalations and the steps this key may take next."""
    return get_case(session, case_id, actor, district=district)


@router.post("/cases/{case_id}/transitions")
def case_transition(
    case_id: str,
    body: TransitionIn,
    session: SessionDep,
    actor: ActorDep,
    taxonomy: TaxonomyDep,
    district: str | None = None,
) -> dict[str, Any]:
    """Take one step; 409 lists the allowed next steps, 403 says whose step it is."""
    return advance_case(
        session,
        case_id,
        actor,
        body.action,
        taxonomy=taxonomy,
        comment=body.comment,
        district=district,
        subcategory=body.subcategory,
        assignee=body.assignee,
        reason=body.reason,
        duplicate_of=body.duplicate_of,
        satisfaction=body.satisfaction,
    )


@router.post("/cases/{case_id}/whistle")
def case_whistle(
    case_id: str,
    body: WhistleIn,
    session: SessionDep,
    actor: ActorDep,
    taxonomy: TaxonomyDep,
    district: str | None = None,
) -> dict[str, Any]:
    """吹哨: the grid team calls departments; each must acknowledge (报到) and report back."""
    return blow_whistle(
        session,
        case_id,
        actor,
        body.departments,
        taxonomy=taxonomy,
        comment=body.comment,
        ack_hours=body.ack_hours,
        report_hours=body.report_hours,
        district=district,
    )


@router.get("/escalations")
def escalations(
    session: SessionDep,
    actor: ActorDep,
    district: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    as_of: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Whistle calls; ``overdue=true``: acknowledgements or answers late or missing."""
    return list_escalations(
        session,
        actor,
        district=district,
        department=department,
        overdue=overdue,
        as_of=as_of,
        limit=limit,
    )


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


@router.get("/stats")
def stats(
    session: SessionDep,
    district: str,
    level: Literal["grid", "community", "street", "district"] = "grid",
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Cases, resolution, on-time and reopened rates, time to close, satisfaction, open and
    overdue cases per unit for a period (aggregates only: no case, no person)."""
    frame = case_stats(session, district, level=level, start=start, end=end)
    rows = [
        {"code": code, **{k: _clean(v) for k, v in row.items()}}
        for code, row in zip(frame.index, frame.to_dict(orient="records"), strict=True)
    ]
    return {
        "district_code": district,
        "level": level,
        "start": start,
        "end": end,
        "as_of": frame.attrs["as_of"],
        "rows": rows,
    }
