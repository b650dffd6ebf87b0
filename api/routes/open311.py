"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) over the case workflow.

The district is the ``jurisdiction_id``; services are the responsibility list's
subcategories; a request is a case (``service_request_id`` = ``case_id``) assigned to its
grid on arrival and returned with the ``grid_code`` extension. JSON and XML as the spec asks.

Privacy: the reporter's fields (first_name, last_name, phone, email, device_id, account_id)
are write-only; they go to ``case_reporters`` and no answer here reads them. Writes refuse
fields the spec does not define and fields the workflow owns (status, grid, assignee) with
422, and filing is rate-limited per key and per address (429 with Retry-After).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from api.auth import CasesDep, TaxonomyDep, authenticate, bearer_token, check_filing_rate
from api.deps import AddressBookDep, LookupDep, SessionDep
from api.problems import PROBLEM_RESPONSES
from geo.cases import FINAL, OPEN, Status, open311_status
from geo.errors import InvalidInput, NotFound
from geo.lookup import check_lonlat
from geo.store.cases import PERSONAL_FIELDS, file_case, list_cases
from geo.store.open311 import address_id_location, check_jurisdiction
from geo.taxonomy import GRID_HANDLER, Taxonomy

#: The spec answers in JSON or XML by the path's extension; both are documented so that
#: clients (and schemathesis) know to expect either.
_JSON_OR_XML = {"content": {"application/json": {}, "text/xml": {"schema": {"type": "string"}}}}
BOTH_FORMATS: dict[int | str, dict[str, Any]] = {200: _JSON_OR_XML}

router = APIRouter(
    prefix="/open311/v2", tags=["open311"], responses={**PROBLEM_RESPONSES, **BOTH_FORMATS}
)

Format = Literal["json", "xml"]
#: Fields a POST may carry (spec, "POST Service Request"); ``attribute[...]`` is checked apart.
POST_FIELDS = frozenset(
    {
        "api_key",
        "jurisdiction_id",
        "service_code",
        "lat",
        "long",
        "address_string",
        "address_id",
        "description",
        "media_url",
        *PERSONAL_FIELDS,
    }
)
#: Fields the workflow sets; a client sending them is trying to skip a step.
PRIVILEGED = frozenset(
    {
        "status",
        "status_notes",
        "grid",
        "grid_code",
        "assignee",
        "agency_responsible",
        "service_request_id",
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
        "satisfaction",
    }
)
MAX_REQUESTS = 1000
DEFAULT_WINDOW = timedelta(days=90)


# --- rendering ---------------------------------------------------------------------------


def _xml_value(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, list):
        singular = name[:-1] if name.endswith("s") else name
        for item in value:
            _xml_item(child, singular, item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            _xml_value(child, key, inner)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = str(value)


def _xml_item(parent: ET.Element, name: str, item: dict[str, Any]) -> None:
    element = ET.SubElement(parent, name)
    for key, value in item.items():
        _xml_value(element, key, value)


def _render(
    fmt: Format, payload: Any, root: str, item: str | None, status_code: int = 200
) -> Response:
    """JSON as is; XML as the spec's examples: ``<root><item>…</item></root>``."""
    if fmt == "json":
        body = json.dumps(payload, ensure_ascii=False, default=str)
        return Response(body, status_code, media_type="application/json")
    element = ET.Element(root)
    if item is None:
        for key, value in payload.items():
            _xml_value(element, key, value)
    else:
        for entry in payload:
            _xml_item(element, item, entry)
    body = '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(element, encoding="unicode")
    return Response(body, status_code, media_type="text/xml; charset=utf-8")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


# --- services ----------------------------------------------------------------------------


def _service(taxonomy: Taxonomy, code: str) -> dict[str, Any]:
    sub = taxonomy.subcategory(code, field_name="service_code")
    handler = sub.handler
    agency = (
        "网格" if handler == GRID_HANDLER else taxonomy.departments[handler].get("name_zh", handler)
    )
    return {
        "service_code": sub.code,
        "service_name": sub.name_zh,
        "description": f"{sub.name_en}. 责任单位: {agency}; 时限 {sub.sla_hours:g} 小时",
        "metadata": False,
        "type": "realtime",
        "keywords": ", ".join([sub.category, sub.name_en]),
        "group": sub.category_name_zh,
    }


@router.get("/services.{fmt}")
def services(
    fmt: Format, session: SessionDep, taxonomy: TaxonomyDep, jurisdiction_id: str | None = None
) -> Response:
    """Every subcategory of the responsibility list is a service."""
    check_jurisdiction(session, jurisdiction_id)
    listed = [_service(taxonomy, code) for code in taxonomy.subcategories]
    return _render(fmt, listed, "services", "service")


@router.get("/services/{service_code}.{fmt}")
def service_definition(
    service_code: str,
    fmt: Format,
    session: SessionDep,
    taxonomy: TaxonomyDep,
    jurisdiction_id: str | None = None,
) -> Response:
    """No service asks for extra attributes (``metadata`` false): the list is empty."""
    check_jurisdiction(session, jurisdiction_id)
    taxonomy.subcategory(service_code, field_name="service_code")
    definition = {"service_code": service_code, "attributes": []}
    return _render(fmt, definition, "service_definition", None)


# --- requests ----------------------------------------------------------------------------


async def _fields(request: Request) -> dict[str, str]:
    """Form fields (the spec's encoding) or a JSON object; repeated keys are refused."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            raw = await request.json()
        except ValueError:
            raise InvalidInput("the body is not valid JSON", field="body") from None
        if not isinstance(raw, dict):
            raise InvalidInput("the body must be a JSON object", field="body")
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise InvalidInput(
            f"content type {kind!r} is not accepted",
            field="content-type",
            fix="send application/x-www-form-urlencoded (the spec's) or application/json",
        )
    raw_body = (await request.body()).decode("utf-8", errors="strict")
    out: dict[str, str] = {}
    for key, value in parse_qsl(raw_body, keep_blank_values=True):
        if key in out:
            raise InvalidInput("field given twice", field=key)
        out[key] = value
    return out


def _check_fields(fields: dict[str, str]) -> None:
    errors = []
    for key in fields:
        if key in PRIVILEGED:
            errors.append((key, "set by the workflow, not by the reporter"))
        elif key.startswith("attribute["):
            errors.append((key, "no service defines attributes"))
        elif key not in POST_FIELDS:
            errors.append((key, "not a GeoReport v2 field"))
    if errors:
        key, reason = errors[0]
        raise InvalidInput(
            f"{key}: {reason}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            field=key,
            fix="send only the fields of GeoReport v2 POST Service Request",
        )


def _float(fields: dict[str, str], name: str) -> float:
    try:
        return float(fields[name])
    except ValueError:
        raise InvalidInput(f"{name} is not a number", field=name) from None


def _locate(
    session: Session, fields: dict[str, str], addresses: Any, district: str | None
) -> tuple[float, float]:
    """lat/long, else a building's address_id, else an address_string found unambiguously."""
    if fields.get("lat") or fields.get("long"):
        if not (fields.get("lat") and fields.get("long")):
            raise InvalidInput(
                "lat and long go together", field="long" if fields.get("lat") else "lat"
            )
        lat, lon = _float(fields, "lat"), _float(fields, "long")
        check_lonlat(lon, lat)
        return lon, lat
    if fields.get("address_id"):
        return address_id_location(session, fields["address_id"], district)
    if fields.get("address_string"):
        answer = addresses.search(session, fields["address_string"], district=district)
        best = answer["best"]
        if best is None:
            raise InvalidInput(
                "the address is not found or ambiguous",
                field="address_string",
                fix="send lat and long, or a fuller address",
            )
        return float(best["lon"]), float(best["lat"])
    raise InvalidInput(
        "a location is required", field="lat", fix="send lat and long, address_string or address_id"
    )


@router.post("/requests.{fmt}", status_code=201, responses={201: _JSON_OR_XML})
def create_request(
    fmt: Format,
    request: Request,
    fields: Annotated[dict[str, str], Depends(_fields)],
    session: SessionDep,
    grids: LookupDep,
    addresses: AddressBookDep,
    cases: CasesDep,
) -> Response:
    """File a case; the answer carries its id and its grid (``grid_code``).

    Sync on purpose: the body is read by an async dependency, the database work runs in the
    thread pool and never blocks the event loop."""
    _check_fields(fields)
    token = bearer_token(request) or fields.get("api_key")
    if not token:
        authenticate(session, None)  # raises 401 without touching the database
    if not fields.get("service_code"):
        raise InvalidInput("service_code is required", field="service_code")
    district = fields.get("jurisdiction_id") or None
    # The lookup may open its own short transaction (plan refresh): do it before this
    # request's session holds a pooled connection, so a busy pool cannot deadlock.
    answer = None
    if fields.get("lat") or fields.get("long"):
        lon, lat = _locate(session, fields, addresses, district)  # no database for lat/long
        answer = grids.lookup(lon, lat, district=district)
    actor = authenticate(session, token)
    check_filing_rate(request, cases, actor)
    check_jurisdiction(session, district)
    if answer is None:
        lon, lat = _locate(session, fields, addresses, district)
        answer = grids.lookup(lon, lat, district=district)
    if answer.district_code is None:
        raise InvalidInput("the location is in no jurisdiction this server covers", field="lat")
    taxonomy = cases.taxonomy.get(session)
    reporter: dict[str, str | None] = {k: fields.get(k) or None for k in PERSONAL_FIELDS}
    reporter["address_string"] = fields.get("address_string") or None
    filed = file_case(
        session,
        answer,
        taxonomy=taxonomy,
        subcategory=fields["service_code"],
        description=fields.get("description") or None,
        actor=actor,
        reporter=reporter,
        channel="open311",
    )
    notice = (
        f"已受理，将由网格 {filed['grid_code']} 处理"
        if filed["grid_code"]
        else "已受理，位置不在任何网格内，由调度中心分派"
    )
    body = [
        {
            "service_request_id": filed["case_id"],
            "service_notice": notice,
            "account_id": None,
            "grid_code": filed["grid_code"],
        }
    ]
    return _render(fmt, body, "service_requests", "request", status_code=201)


def _request_dict(case: dict[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    sub = taxonomy.subcategories.get(case["subcategory"] or "")
    assignee = case["assignee"]
    if assignee in taxonomy.departments:
        agency = taxonomy.departments[assignee].get("name_zh", assignee)
    elif assignee:
        agency = f"网格 {assignee}"
    else:
        agency = None
    times = [
        case[k]
        for k in ("reported_at", "registered_at", "handled_at", "verified_at", "closed_at")
        if case[k]
    ]
    return {
        "service_request_id": case["case_id"],
        "status": open311_status(case["status"]),
        "status_notes": "不予受理" if case["status"] == Status.rejected else None,
        "service_name": sub.name_zh if sub else case["subcategory"],
        "service_code": case["subcategory"],
        "description": case["description"],
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _iso(case["reported_at"]),
        "updated_datetime": _iso(max(times)) if times else None,
        "expected_datetime": _iso(case["due_at"]),
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": case["lat"],
        "long": case["lon"],
        "media_url": None,
        # extensions
        "grid_code": case["grid_code"],
        "detailed_status": case["status"],
        "jurisdiction_id": case["district_code"],
    }


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _w3c(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} is not a W3C datetime", field=name) from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} needs a UTC offset", field=name, fix="2010-01-01T00:00:00Z")
    return parsed


@router.get("/requests.{fmt}")
def requests_list(
    fmt: Format,
    session: SessionDep,
    taxonomy: TaxonomyDep,
    jurisdiction_id: str | None = None,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: Annotated[str | None, Query(description="open, closed or both")] = None,
) -> Response:
    """Public view: no reporter field, at most 1000, the last 90 days unless dates are given."""
    check_jurisdiction(session, jurisdiction_id)
    ids = _split(service_request_id)
    start, end = _w3c(start_date, "start_date"), _w3c(end_date, "end_date")
    if not ids and start is None and end is None:
        start = datetime.now(UTC) - DEFAULT_WINDOW
    wanted = set(_split(status))
    if wanted - {"open", "closed"}:
        raise InvalidInput("status is open, closed or both", field="status")
    statuses: list[str] = []
    if wanted == {"open"}:
        statuses = [s.value for s in OPEN]
    elif wanted == {"closed"}:
        statuses = [s.value for s in FINAL]
    found = list_cases(
        session,
        None,
        district=jurisdiction_id,
        case_ids=ids,
        statuses=statuses,
        subcategories=_split(service_code),
        start=None if ids else start,
        end=None if ids else end,
        limit=MAX_REQUESTS,
    )
    body = [_request_dict(case, taxonomy) for case in found]
    return _render(fmt, body, "service_requests", "request")


@router.get("/requests/{service_request_id}.{fmt}")
def request_detail(
    service_request_id: str,
    fmt: Format,
    session: SessionDep,
    taxonomy: TaxonomyDep,
    jurisdiction_id: str | None = None,
) -> Response:
    """One request, as a one-element list (the spec's shape)."""
    check_jurisdiction(session, jurisdiction_id)
    found = list_cases(
        session, None, district=jurisdiction_id, case_ids=[service_request_id], limit=2
    )
    if not found:
        raise NotFound(f"no service request {service_request_id!r}", field="service_request_id")
    body = [_request_dict(found[0], taxonomy)]
    return _render(fmt, body, "service_requests", "request")
