"""The closed loop of a case as pure rules: statuses, steps, who may take them, deadlines.

No database here: ``geo/store/cases.py`` reads a case into a ``CaseState``, asks
``check_step`` whether the actor may take the step, then writes the change and the event.
Keeping the rules pure lets tests walk every (status, step, role) combination quickly.

    reported ──register──▶ registered ──dispatch──▶ dispatched ──start──▶ handling
       │                    (grid-level: automatic)                         │ ▲
       └──reject──▶ rejected                                     handle     │ │ reopen
                                                                            ▼ │
               closed ◀──close── verified ◀──verify── handled ─────────────────┘
                 └─evaluate (reporter, once, 1–5)

A whistle (吹哨) keeps the case ``handling`` and calls departments in; each acknowledges
(报到) and reports back, both logged as steps that leave the status unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from geo.errors import Forbidden, InvalidInput, NotAllowed


class Status(enum.StrEnum):
    reported = "reported"
    registered = "registered"
    rejected = "rejected"
    dispatched = "dispatched"
    handling = "handling"
    handled = "handled"
    verified = "verified"
    closed = "closed"


class Role(enum.StrEnum):
    reporter = "reporter"
    grid_worker = "grid_worker"
    dispatcher = "dispatcher"
    department = "department"
    planner = "planner"
    admin = "admin"


#: Statuses that end the loop (the same as ``maps.workload.CLOSED_STATUSES``).
FINAL = frozenset({Status.closed, Status.rejected})
OPEN = frozenset(Status) - FINAL
REJECT_REASONS = ("invalid", "duplicate")
#: Default whistle deadlines: acknowledge (报到) within 2 h, report back within 72 h.
ACK_HOURS = 2.0
REPORT_HOURS = 72.0

#: Role that files cases only; every role may file, only these act on the loop.
_ASSIGNEES = frozenset({Role.grid_worker, Role.department})


@dataclass(frozen=True)
class Step:
    """One step: the statuses it starts from, where it leads (None = stays), who takes it."""

    action: str
    sources: frozenset[Status]
    target: Status | None
    roles: frozenset[Role]
    needs_comment: bool = False
    description: str = ""


def _step(
    action: str,
    sources: Iterable[Status],
    target: Status | None,
    roles: Iterable[Role],
    needs_comment: bool = False,
    description: str = "",
) -> Step:
    return Step(action, frozenset(sources), target, frozenset(roles), needs_comment, description)


S, R = Status, Role
STEPS: dict[str, Step] = {
    s.action: s
    for s in (
        _step("register", [S.reported], S.registered, [R.dispatcher], False, "accept and classify"),
        _step("reject", [S.reported], S.rejected, [R.dispatcher], True, "invalid or duplicate"),
        _step("dispatch", [S.registered], S.dispatched, [R.dispatcher], False, "send to handler"),
        _step("start", [S.dispatched], S.handling, _ASSIGNEES, False, "handler takes it on"),
        _step("whistle", [S.dispatched, S.handling], S.handling, [R.grid_worker], True, "吹哨"),
        _step("acknowledge", [S.handling], None, [R.department], False, "报到"),
        _step("report_back", [S.handling], None, [R.department], True, "department's answer"),
        _step("handle", [S.handling], S.handled, _ASSIGNEES, True, "done, with feedback"),
        _step("reopen", [S.handled, S.verified], S.handling, [R.dispatcher], True, "not solved"),
        _step("verify", [S.handled], S.verified, [R.dispatcher], False, "checked on site"),
        _step("close", [S.verified], S.closed, [R.dispatcher], False, "loop closed"),
        _step("evaluate", [S.closed], None, [R.reporter], False, "satisfaction 1–5"),
    )
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: an API key's id, role and the grid or department it acts for."""

    key_id: int | None
    role: Role
    grid_code: str | None = None
    department: str | None = None

    @property
    def scope(self) -> str | None:
        return self.grid_code or self.department


#: The actor of automatic steps (dispatch of grid-level cases on registration).
SYSTEM = Actor(None, Role.admin)


@dataclass(frozen=True)
class CaseState:
    """What the rules need to know about a case."""

    status: Status
    grid_code: str | None
    assignee: str | None
    filed_by: int | None
    satisfaction: int | None = None
    #: Departments called by a whistle: still to acknowledge, and still to report back.
    awaiting_ack: frozenset[str] = field(default_factory=frozenset)
    awaiting_report: frozenset[str] = field(default_factory=frozenset)
    escalated_to: frozenset[str] = field(default_factory=frozenset)


def can_read(case: CaseState, actor: Actor) -> bool:
    """Grid workers see their grid's cases, departments theirs, reporters what they filed."""
    if actor.role in (Role.admin, Role.dispatcher, Role.planner):
        return True
    if actor.role is Role.grid_worker:
        return actor.grid_code is not None and actor.grid_code == case.grid_code
    if actor.role is Role.department:
        return actor.department is not None and (
            case.assignee == actor.department or actor.department in case.escalated_to
        )
    return actor.key_id is not None and case.filed_by == actor.key_id


def _in_scope(step: Step, case: CaseState, actor: Actor) -> bool:
    """Beyond the role: the case must be this actor's to act on."""
    if actor.role is Role.admin:
        return True
    if step.action == "evaluate":
        return actor.key_id is not None and case.filed_by == actor.key_id
    if actor.role is Role.grid_worker:
        mine = actor.grid_code is not None and actor.grid_code == case.grid_code
        if step.action == "whistle":
            return mine and case.assignee in (None, actor.grid_code)
        return mine and case.assignee == actor.grid_code
    if actor.role is Role.department:
        if step.action == "acknowledge":
            return actor.department in case.awaiting_ack
        if step.action == "report_back":
            return actor.department in case.awaiting_report
        return actor.department is not None and case.assignee == actor.department
    return True


def _valid_now(step: Step, case: CaseState) -> bool:
    """Steps valid from the status, whoever asks (the 409 test)."""
    if case.status not in step.sources:
        return False
    if step.action == "evaluate":
        return case.satisfaction is None
    if step.action == "acknowledge":
        return bool(case.awaiting_ack)
    if step.action == "report_back":
        return bool(case.awaiting_report)
    return True


def _permitted(step: Step, case: CaseState, actor: Actor) -> bool:
    role_ok = actor.role is Role.admin or actor.role in step.roles
    return role_ok and _in_scope(step, case, actor)


def allowed_steps(case: CaseState, actor: Actor) -> list[str]:
    """The steps this actor may take now, in workflow order."""
    return [s.action for s in STEPS.values() if _valid_now(s, case) and _permitted(s, case, actor)]


def valid_steps(case: CaseState) -> list[str]:
    """The steps valid from the case's status for someone (the role aside)."""
    return [s.action for s in STEPS.values() if _valid_now(s, case)]


def check_step(case: CaseState, actor: Actor, action: str) -> Step:
    """The step if ``actor`` may take it now; else why not.

    Order of refusals: a case the actor may not even read is Forbidden (the store answers
    NotFound-like 403 before this); a step that does not exist is InvalidInput; a step not
    valid from the status is NotAllowed (409, listing the allowed steps); a valid step the
    actor's role or scope may not take is Forbidden (403).
    """
    step = STEPS.get(action)
    if step is None:
        raise InvalidInput(
            f"unknown step {action!r}",
            field="action",
            fix=f"one of: {', '.join(STEPS)}",
        )
    if not _valid_now(step, case):
        raise NotAllowed(
            f"cannot {action} a case that is {case.status}"
            + (" and already evaluated" if action == "evaluate" and case.satisfaction else ""),
            allowed=allowed_steps(case, actor),
        )
    pending = {"acknowledge": case.awaiting_ack, "report_back": case.awaiting_report}.get(action)
    if (
        pending is not None
        and actor.department in case.escalated_to
        and actor.department not in pending
    ):
        raise NotAllowed(
            f"{actor.department} cannot {action} now (done already, or acknowledge first)",
            allowed=allowed_steps(case, actor),
        )
    if not _permitted(step, case, actor):
        who = f"{actor.role}" + (f" {actor.scope}" if actor.scope else "")
        raise Forbidden(
            f"a {who} key may not {action} this case",
            field="action",
            fix=f"{action} is for: {', '.join(sorted(step.roles))}"
            + (" (of this case)" if actor.role in step.roles else ""),
        )
    return step


def due_at(registered_at: datetime, sla_hours: float) -> datetime:
    """The SLA deadline: counted from registration, in wall-clock hours."""
    return registered_at + timedelta(hours=sla_hours)


def check_satisfaction(value: int | None) -> int:
    if value is None or not 1 <= value <= 5:
        raise InvalidInput(
            "an evaluation needs satisfaction from 1 (very unsatisfied) to 5 (very satisfied)",
            field="satisfaction",
        )
    return value


def open311_status(status: str) -> str:
    """Open311 knows only open and closed: rejected cases are closed too."""
    return "closed" if status in FINAL else "open"
