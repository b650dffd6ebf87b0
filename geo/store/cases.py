"""Cases in the store: filing, reading, stepping through the loop, whistles and API keys.

A case is a row of ``reports``; its public id is ``report_id`` (the Open311
``service_request_id``). Every change writes a ``case_events`` row in the caller's
transaction. Reporters' personal data lives in ``case_reporters`` and is read only by
``reporter_contact``, never by the queries that answer lists, details or Open311.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.cases import (
    ACK_HOURS,
    FINAL,
    OPEN,
    REPORT_HOURS,
    SYSTEM,
    Actor,
    CaseState,
    Change,
    ReadScope,
    Role,
    Status,
    StepInput,
    allowed_steps,
    automatic_step,
    check_key_scope,
    check_readable,
    classify_filing,
    read_scope,
    take_step,
)
from geo.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from geo.lookup import LookupAnswer, require_district
from geo.taxonomy import Taxonomy

#: Personal fields a reporter may send; stored, never returned by lists or public answers.
PERSONAL_FIELDS = ("first_name", "last_name", "phone", "email", "device_id", "account_id")
KEY_PREFIX = "gm_"


def _now() -> datetime:
    return datetime.now(UTC)


# --- API keys ------------------------------------------------------------------------------


def hash_key(token: str) -> str:
    """sha256 of the key: a random 256-bit token needs no slow hash, and lookup stays indexed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: str
    key_id: int
    role: str
    grid_code: str | None
    department: str | None


def create_api_key(
    session: Session,
    role: str,
    *,
    taxonomy: Taxonomy,
    grid_code: str | None = None,
    department: str | None = None,
    label: str = "",
) -> NewKey:
    """A new key; the token is returned once and only its hash is stored."""
    parsed = check_key_scope(role, grid_code, department, taxonomy)
    if grid_code and not session.scalar(
        text("SELECT 1 FROM grids WHERE code = :c LIMIT 1"), {"c": grid_code}
    ):
        raise NotFound(f"no grid with code {grid_code!r}", field="grid")
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = session.scalar(
        text(
            """INSERT INTO api_keys (key_hash, prefix, role, grid_code, department, label)
               VALUES (:h, :p, :r, :g, :d, :l) RETURNING id"""
        ),
        {
            "h": hash_key(token),
            "p": token[:8],
            "r": parsed.value,
            "g": grid_code,
            "d": department,
            "l": label,
        },
    )
    assert key_id is not None
    return NewKey(token, int(key_id), parsed.value, grid_code, department)


def actor_for_key(session: Session, token: str) -> Actor:
    row = session.execute(
        text(
            """SELECT id, role, grid_code, department FROM api_keys
               WHERE key_hash = :h AND NOT revoked"""
        ),
        {"h": hash_key(token)},
    ).first()
    if row is None:
        raise Unauthenticated("unknown or revoked API key", fix="ask an admin for a key")
    return Actor(int(row.id), Role(row.role), row.grid_code, row.department)


def revoke_api_key(session: Session, key_id: int) -> None:
    done = session.execute(text("UPDATE api_keys SET revoked = true WHERE id = :i"), {"i": key_id})
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no API key {key_id}", field="key")


# --- filing --------------------------------------------------------------------------------

_FILE_SQL = text(
    """WITH n AS (SELECT nextval(pg_get_serial_sequence('reports', 'id')) AS id),
       r AS (
         INSERT INTO reports (id, district_id, report_id, category, subcategory, reported_at,
                              status, description, grid_id, geom)
         SELECT n.id, (SELECT id FROM districts WHERE code = :district),
                COALESCE(:rid, :prefix || lpad(n.id::text, :digits, '0')), :cat, :sub, :at,
                'reported', :desc, (SELECT id FROM grids WHERE plan_id = :plan AND code = :grid),
                ST_SetSRID(ST_MakePoint(:x, :y), 4326)
         FROM n RETURNING id, report_id),
       e AS (
         INSERT INTO case_events (case_id, action, from_status, to_status, actor_key_id,
                                  actor_role, actor_scope, at, payload)
         SELECT id, 'file', NULL, 'reported', :key, :role, :scope, :at, CAST(:payload AS jsonb)
         FROM r),
       p AS (
         INSERT INTO case_reporters (case_id, key_id, first_name, last_name, phone, email,
                                     device_id, account_id, address_string)
         SELECT id, :key, :first_name, :last_name, :phone, :email, :device_id, :account_id,
                :address_string
         FROM r)
    SELECT id, report_id FROM r"""
)
#: Generated ids by channel: ``POST /reports`` keeps the form it had before it filed cases.
_ID_FORMS = {"reports": ("API", 10)}
_CASE_ID_FORM = ("C", 9)


def file_case(
    session: Session,
    answer: LookupAnswer,
    *,
    taxonomy: Taxonomy,
    subcategory: str | None,
    description: str | None,
    actor: Actor,
    category: str | None = None,
    reporter: dict[str, str | None] | None = None,
    reported_at: datetime | None = None,
    report_id: str | None = None,
    channel: str = "api",
    subcategory_field: str = "service_code",
) -> dict[str, Any]:
    """File a case at a point already assigned by ``answer``: one statement writes the case,
    its first event and its reporter's contact (kept apart). Every channel files here."""
    require_district(answer)
    category, sub = classify_filing(
        taxonomy, category, subcategory, subcategory_field=subcategory_field
    )
    if reported_at is not None and reported_at.tzinfo is None:
        raise InvalidInput("reported_at needs a UTC offset", field="reported_at")
    at = reported_at or _now()
    if report_id is not None and session.scalar(
        text(
            """SELECT 1 FROM reports r JOIN districts d ON d.id = r.district_id
               WHERE d.code = :d AND r.report_id = :r"""
        ),
        {"d": answer.district_code, "r": report_id},
    ):
        raise Conflict(f"case {report_id} exists already", field="report_id")
    prefix, digits = _ID_FORMS.get(channel, _CASE_ID_FORM)
    contact = {k: (reporter or {}).get(k) for k in (*PERSONAL_FIELDS, "address_string")}
    row = session.execute(
        _FILE_SQL,
        {
            "district": answer.district_code,
            "rid": report_id,
            "prefix": prefix,
            "digits": digits,
            "cat": category,
            "sub": sub.code if sub else None,
            "at": at,
            "desc": description,
            "plan": answer.plan_id,
            "grid": answer.grid_code,
            "x": answer.lon,
            "y": answer.lat,
            "key": actor.key_id,
            "role": actor.role.value,
            "scope": actor.scope,
            "payload": json.dumps({"channel": channel, "grid_code": answer.grid_code}),
            **contact,
        },
    ).one()
    return {
        "case_id": row.report_id,
        "district_code": answer.district_code,
        "category": category,
        "subcategory": sub.code if sub else None,
        "status": Status.reported.value,
        "reported_at": at,
        "grid_code": answer.grid_code,
        "community_code": answer.community_code,
        "street_code": answer.street_code,
        "handler": sub.handler if sub else None,
        "sla_hours": sub.sla_hours if sub else None,
    }


# --- reading -------------------------------------------------------------------------------

_CASE_COLUMNS = """
    r.id AS pk, r.report_id AS case_id, d.code AS district_code, r.category, r.subcategory,
    r.status, r.description, r.reported_at, r.registered_at, r.due_at, r.handled_at,
    r.verified_at, r.closed_at, r.satisfaction, r.reopened, r.assignee,
    g.code AS grid_code, c.code AS community_code, s.code AS street_code,
    ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, r.attrs->>'address' AS address"""
_CASE_FROM = """
    FROM reports r JOIN districts d ON d.id = r.district_id
    LEFT JOIN grids g ON g.id = r.grid_id
    LEFT JOIN communities c ON c.id = g.community_id
    LEFT JOIN streets s ON s.id = c.street_id"""

_PUBLIC_FIELDS = (
    "case_id",
    "district_code",
    "category",
    "subcategory",
    "status",
    "description",
    "reported_at",
    "registered_at",
    "due_at",
    "handled_at",
    "verified_at",
    "closed_at",
    "satisfaction",
    "reopened",
    "assignee",
    "grid_code",
    "community_code",
    "street_code",
    "lon",
    "lat",
)


def _case_dict(row: Any, as_of: datetime) -> dict[str, Any]:
    out = {k: getattr(row, k) for k in _PUBLIC_FIELDS}
    out["open"] = row.status not in FINAL
    #: overdue: still open past its deadline; late: closed after it.
    out["overdue"] = bool(out["open"] and row.due_at is not None and row.due_at < as_of)
    out["late"] = bool(
        row.status == Status.closed and row.due_at and row.closed_at and row.closed_at > row.due_at
    )
    return out


def _find_case(
    session: Session, case_id: str, district: str | None = None, *, lock: bool = False
) -> Any:
    sql = f"SELECT {_CASE_COLUMNS} {_CASE_FROM} WHERE r.report_id = :c"
    if district:
        sql += " AND d.code = :d"
    if lock:
        sql += " FOR UPDATE OF r"
    rows = session.execute(text(sql), {"c": case_id, "d": district}).all()
    if not rows:
        raise NotFound(f"no case {case_id!r}", field="case_id")
    if len(rows) > 1:
        raise InvalidInput(
            f"case id {case_id!r} exists in several districts",
            field="district",
            fix="add ?district=CODE",
        )
    return rows[0]


def _escalations(session: Session, pk: int) -> list[Any]:
    return list(
        session.execute(
            text(
                """SELECT department, requested_at, ack_due_at, report_due_at, acknowledged_at,
                          reported_back_at, comment, result
                   FROM case_escalations WHERE case_id = :c ORDER BY id"""
            ),
            {"c": pk},
        ).all()
    )


def _state(session: Session, row: Any) -> tuple[CaseState, list[Any]]:
    escalations = _escalations(session, row.pk)
    filed_by = session.scalar(
        text("SELECT key_id FROM case_reporters WHERE case_id = :c"), {"c": row.pk}
    )
    state = CaseState(
        status=Status(row.status) if row.status in Status.__members__ else Status.handling,
        grid_code=row.grid_code,
        assignee=row.assignee,
        filed_by=filed_by,
        satisfaction=row.satisfaction,
        awaiting_ack=frozenset(e.department for e in escalations if e.acknowledged_at is None),
        awaiting_report=frozenset(
            e.department
            for e in escalations
            if e.acknowledged_at is not None and e.reported_back_at is None
        ),
        escalated_to=frozenset(e.department for e in escalations),
        subcategory=row.subcategory,
        reopened=row.reopened,
    )
    return state, escalations


def _escalation_dict(e: Any, as_of: datetime) -> dict[str, Any]:
    return {
        "department": e.department,
        "requested_at": e.requested_at,
        "ack_due_at": e.ack_due_at,
        "acknowledged_at": e.acknowledged_at,
        "report_due_at": e.report_due_at,
        "reported_back_at": e.reported_back_at,
        "comment": e.comment,
        "result": e.result,
        # late or still missing past the deadline
        "ack_overdue": (e.acknowledged_at or as_of) > e.ack_due_at,
        "report_overdue": (e.reported_back_at or as_of) > e.report_due_at,
    }


def _readable(session: Session, row: Any, actor: Actor) -> tuple[CaseState, list[Any]]:
    state, escalations = _state(session, row)
    check_readable(state, actor, row.case_id)
    return state, escalations


def history(session: Session, pk: int) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            """SELECT action, from_status, to_status, actor_role, actor_scope, actor_key_id,
                      at, comment, payload
               FROM case_events WHERE case_id = :c ORDER BY at, id"""
        ),
        {"c": pk},
    ).all()
    return [
        {
            "action": r.action,
            "from_status": r.from_status,
            "to_status": r.to_status,
            "actor": {"role": r.actor_role, "scope": r.actor_scope, "key_id": r.actor_key_id},
            "at": r.at,
            "comment": r.comment,
            "payload": r.payload,
        }
        for r in rows
    ]


def get_case(
    session: Session,
    case_id: str,
    actor: Actor,
    *,
    district: str | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """One case with its history and escalations, if ``actor`` may read it."""
    as_of = as_of or _now()
    row = _find_case(session, case_id, district)
    state, escalations = _readable(session, row, actor)
    out = _case_dict(row, as_of)
    out["history"] = history(session, row.pk)
    out["escalations"] = [_escalation_dict(e, as_of) for e in escalations]
    out["allowed"] = allowed_steps(state, actor)
    if read_scope(actor).contact:
        out["reporter"] = reporter_contact(session, row.pk)
    return out


def reporter_contact(session: Session, pk: int) -> dict[str, Any] | None:
    """The reporter's contact, for the dispatch centre only (PIPL: least use)."""
    row = session.execute(
        text(
            """SELECT first_name, last_name, phone, email, account_id
               FROM case_reporters WHERE case_id = :c"""
        ),
        {"c": pk},
    ).first()
    return dict(row._mapping) if row else None


def _scope_sql(scope: ReadScope) -> tuple[str | None, dict[str, Any]]:
    """``scope`` as a condition on ``reports r`` and ``grids g`` (None: every case)."""
    if scope.everything:
        return None, {}
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if scope.grid_code is not None:
        clauses.append("g.code = :me_grid")
        params["me_grid"] = scope.grid_code
    if scope.department is not None:
        clauses.append(
            "(r.assignee = :me_dept OR EXISTS (SELECT 1 FROM case_escalations x"
            " WHERE x.case_id = r.id AND x.department = :me_dept))"
        )
        params["me_dept"] = scope.department
    if scope.filed_by is not None:
        clauses.append("r.id IN (SELECT case_id FROM case_reporters WHERE key_id = :me_key)")
        params["me_key"] = scope.filed_by
    return "(" + (" OR ".join(clauses) or "false") + ")", params


def list_cases(
    session: Session,
    actor: Actor | None,
    *,
    district: str | None = None,
    case_ids: Sequence[str] = (),
    statuses: Sequence[str] = (),
    grid: str | None = None,
    community: str | None = None,
    street: str | None = None,
    category: str | None = None,
    subcategories: Sequence[str] = (),
    assignee: str | None = None,
    overdue: bool | None = None,
    escalated: bool | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Cases matching the filters that ``actor`` may read (``None``: the public view)."""
    as_of = as_of or _now()
    where: list[str] = []
    params: dict[str, Any] = {"as_of": as_of, "limit": limit, "offset": offset}

    def add(clause: str, **values: Any) -> None:
        where.append(clause)
        params.update(values)

    if district:
        add("d.code = :district", district=district)
    if case_ids:
        add("r.report_id = ANY(:ids)", ids=list(case_ids))
    if statuses:
        add("r.status = ANY(:statuses)", statuses=list(statuses))
    if grid:
        add("g.code = :grid", grid=grid)
    if community:
        add("c.code = :community", community=community)
    if street:
        add("s.code = :street", street=street)
    if category:
        add("r.category = :category", category=category)
    if subcategories:
        add("r.subcategory = ANY(:subs)", subs=list(subcategories))
    if assignee:
        add("r.assignee = :assignee", assignee=assignee)
    if start:
        add("r.reported_at >= :start", start=start)
    if end:
        add("r.reported_at < :end", end=end)
    open_list = [s.value for s in OPEN]
    if overdue is not None:
        clause = "r.status = ANY(:open_statuses) AND COALESCE(r.due_at < :as_of, false)"
        add(clause if overdue else f"NOT ({clause})", open_statuses=open_list)
    exists = "EXISTS (SELECT 1 FROM case_escalations x WHERE x.case_id = r.id)"
    if escalated is not None:
        add(exists if escalated else f"NOT {exists}")
    scope, scope_params = _scope_sql(read_scope(actor))
    if scope:
        add(scope, **scope_params)
    sql = f"SELECT {_CASE_COLUMNS} {_CASE_FROM}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY r.reported_at DESC, r.id DESC LIMIT :limit OFFSET :offset"
    return [_case_dict(r, as_of) for r in session.execute(text(sql), params)]


# --- stepping ------------------------------------------------------------------------------


def _event(
    session: Session,
    pk: int,
    action: str,
    from_status: str | None,
    to_status: str,
    actor: Actor,
    at: datetime,
    comment: str = "",
    payload: dict[str, Any] | None = None,
) -> None:
    session.execute(
        text(
            """INSERT INTO case_events (case_id, action, from_status, to_status, actor_key_id,
                                        actor_role, actor_scope, at, comment, payload)
               VALUES (:c, :a, :f, :t, :k, :r, :s, :at, :comment, CAST(:p AS jsonb))"""
        ),
        {
            "c": pk,
            "a": action,
            "f": from_status,
            "t": to_status,
            "k": actor.key_id,
            "r": "system" if actor is SYSTEM else actor.role.value,
            "s": actor.scope,
            "at": at,
            "comment": comment,
            "p": json.dumps(payload or {}, ensure_ascii=False, default=str),
        },
    )


def _set(session: Session, pk: int, **values: Any) -> None:
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    session.execute(text(f"UPDATE reports SET {assignments} WHERE id = :pk"), {"pk": pk, **values})


def _check_assignee(session: Session, row: Any, assignee: str, taxonomy: Taxonomy) -> None:
    if assignee in taxonomy.departments:
        return
    known = session.scalar(
        text(
            """SELECT 1 FROM grids g JOIN grid_plans p ON p.id = g.plan_id
               JOIN districts d ON d.id = p.district_id
               WHERE d.code = :d AND p.status = 'published' AND g.code = :g"""
        ),
        {"d": row.district_code, "g": assignee},
    )
    if not known:
        raise InvalidInput(
            f"assignee {assignee!r} is neither a department nor a grid of the district",
            field="assignee",
        )


def _grid_leader(session: Session, row: Any, grid_code: str) -> str | None:
    """The grid leader, called first when a case goes to the grid's team."""
    leader: str | None = session.scalar(
        text(
            """SELECT t.leader FROM grid_teams t JOIN districts d ON d.id = t.district_id
               WHERE d.code = :d AND t.grid_code = :g"""
        ),
        {"d": row.district_code, "g": grid_code},
    )
    return leader


def _write(
    session: Session, row: Any, change: Change, actor: Actor, taxonomy: Taxonomy, at: datetime
) -> None:
    """Write what the rules said a step changes: checks that need the store first."""
    writes, payload = change.writes, dict(change.writes.payload)
    if writes.duplicate_of:
        _find_case(session, writes.duplicate_of, row.district_code)
    if writes.assignee is not None:
        _check_assignee(session, row, writes.assignee, taxonomy)
        if writes.assignee == row.grid_code:
            payload["grid_worker"] = _grid_leader(session, row, writes.assignee)
    for call in writes.calls:
        session.execute(
            text(
                """INSERT INTO case_escalations (case_id, department, requested_at, requested_by,
                                                 ack_due_at, report_due_at, comment)
                   VALUES (:c, :d, :at, :k, :ack, :rep, :comment)"""
            ),
            {"c": row.pk, "d": call.department, "at": at, "k": actor.key_id,
             "ack": call.ack_due_at, "rep": call.report_due_at, "comment": change.comment},
        )  # fmt: skip
    if writes.answer is not None:
        session.execute(
            text(
                f"""UPDATE case_escalations SET {writes.answer.column} = :at,
                           result = COALESCE(:result, result)
                    WHERE case_id = :c AND department = :d"""
            ),
            {"at": at, "c": row.pk, "d": writes.answer.department, "result": writes.answer.result},
        )
    if change.columns:
        _set(session, row.pk, **change.columns)
    _event(session, row.pk, change.step.action, change.from_status, change.after.status, actor,
           at, change.comment, payload)  # fmt: skip


def advance_case(
    session: Session,
    case_id: str,
    actor: Actor,
    action: str,
    *,
    taxonomy: Taxonomy,
    comment: str = "",
    district: str | None = None,
    subcategory: str | None = None,
    assignee: str | None = None,
    reason: str | None = None,
    duplicate_of: str | None = None,
    satisfaction: int | None = None,
    departments: Sequence[str] = (),
    ack_hours: float = ACK_HOURS,
    report_hours: float = REPORT_HOURS,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Take one step of the loop as ``geo.cases.STEPS`` says, then the step that follows by
    itself, if any (a grid-level case goes to its grid on registration)."""
    at = at or _now()
    row = _find_case(session, case_id, district, lock=True)
    state, _ = _readable(session, row, actor)
    given = StepInput(
        comment=comment or "", subcategory=subcategory, assignee=assignee, reason=reason,
        duplicate_of=duplicate_of, satisfaction=satisfaction, departments=tuple(departments),
        ack_hours=ack_hours, report_hours=report_hours,
    )  # fmt: skip
    change = take_step(state, actor, action, given, taxonomy, at)
    _write(session, row, change, actor, taxonomy, at)
    follow = automatic_step(change.after, taxonomy)
    if follow is not None:
        automatic = take_step(change.after, SYSTEM, *follow, taxonomy, at)
        _write(session, row, automatic, SYSTEM, taxonomy, at)
    return get_case(session, case_id, actor, district=row.district_code, as_of=at)


def blow_whistle(
    session: Session,
    case_id: str,
    actor: Actor,
    departments: Sequence[str],
    *,
    taxonomy: Taxonomy,
    comment: str,
    ack_hours: float = ACK_HOURS,
    report_hours: float = REPORT_HOURS,
    district: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """吹哨: the ``whistle`` step; each department called must acknowledge (报到) within
    ``ack_hours`` and report back within ``report_hours``."""
    return advance_case(
        session, case_id, actor, "whistle", taxonomy=taxonomy, comment=comment,
        departments=departments, ack_hours=ack_hours, report_hours=report_hours,
        district=district, at=at,
    )  # fmt: skip


def list_escalations(
    session: Session,
    actor: Actor,
    *,
    district: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    as_of: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Whistle calls; ``overdue=True`` lists late or missing acknowledgements and answers."""
    as_of = as_of or _now()
    scope = read_scope(actor)
    if not scope.escalations:
        raise Forbidden("reporters do not see escalations", field="role")
    where = ["true"]
    params: dict[str, Any] = {"as_of": as_of, "limit": limit}
    if district:
        where.append("d.code = :district")
        params["district"] = district
    if scope.department is not None:
        department = scope.department  # a department sees its own calls only
    if department:
        where.append("x.department = :dept")
        params["dept"] = department
    if not scope.everything and scope.department is None:
        where.append("g.code = :grid")  # a grid's calls (none for a scope without a grid)
        params["grid"] = scope.grid_code
    late = (
        "(COALESCE(x.acknowledged_at, :as_of) > x.ack_due_at"
        " OR COALESCE(x.reported_back_at, :as_of) > x.report_due_at)"
    )
    if overdue is not None:
        where.append(late if overdue else f"NOT {late}")
    rows = session.execute(
        text(
            f"""SELECT r.report_id AS case_id, d.code AS district_code, g.code AS grid_code,
                       r.status, x.department, x.requested_at, x.ack_due_at,
                       x.report_due_at, x.acknowledged_at, x.reported_back_at, x.comment,
                       x.result
                FROM case_escalations x JOIN reports r ON r.id = x.case_id
                JOIN districts d ON d.id = r.district_id LEFT JOIN grids g ON g.id = r.grid_id
                WHERE {" AND ".join(where)}
                ORDER BY x.ack_due_at LIMIT :limit"""
        ),
        params,
    ).all()
    return [
        {
            "case_id": r.case_id,
            "district_code": r.district_code,
            "grid_code": r.grid_code,
            "status": r.status,
            **_escalation_dict(r, as_of),
        }
        for r in rows
    ]
