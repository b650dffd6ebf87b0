"""The closed loop of a case as pure rules: one table of steps, and who may read what.

No database here. ``STEPS`` says, for each step, where it starts and leads, who may take it
and whose case it must be, what arguments it needs and what it writes; ``take_step`` reads
the table and answers with the ``Change`` that ``geo/store/cases.py`` writes as it is.
``read_scope`` says which cases a key may read, for single reads and lists alike. Keeping
the rules pure lets tests walk every (status, step, role) combination quickly.

    reported ──register──▶ registered ──dispatch──▶ dispatched ──start──▶ handling
       │                    (grid-level: automatic)                         │ ▲
       └──reject──▶ rejected                                     handle     │ │ reopen
                                                                            ▼ │
               closed ◀──close── verified ◀──verify── handled ─────────────────┘
                 └─evaluate (reporter, once, 1–5)

A whistle (吹哨) keeps the case ``handling`` and calls departments in; each acknowledges
(报到) and reports back, both steps that leave the status unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from geo.errors import Conflict, Forbidden, InvalidInput, NotAllowed, NotFound
from geo.taxonomy import Subcategory, Taxonomy


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


#: Statuses that end the loop; every other status is an open case.
FINAL = frozenset({Status.closed, Status.rejected})
OPEN = frozenset(Status) - FINAL
REJECT_REASONS = ("invalid", "duplicate")
#: Default whistle deadlines: acknowledge (报到) within 2 h, report back within 72 h.
ACK_HOURS = 2.0
REPORT_HOURS = 72.0
#: Bounds of the whistle deadlines, in hours.
MAX_ACK_HOURS = 720.0
MAX_REPORT_HOURS = 2160.0


class Whose(enum.Enum):
    """Beyond the role, whose case a step must be (an admin's is every case)."""

    anyone = "anyone"  # any key of the step's roles: the dispatch centre's steps
    handler = "handler"  # the case's assignee: its grid's worker, or its department
    grid = "grid"  # its grid's worker, while the case is the grid's or no one's yet
    called = "called"  # a department a whistle called that still owes this answer
    filer = "filer"  # the key that filed the case


class Effect(enum.Enum):
    """What a step writes beyond its status, timestamps and counter."""

    classify = "classify"  # register: subcategory, category and the deadline
    reject = "reject"  # the reason, and the case it duplicates
    assign = "assign"  # dispatch: a department, or a grid of the district
    escalate = "escalate"  # whistle: a call to each department named
    acknowledge = "acknowledge"  # 报到: the department's call is acknowledged
    report_back = "report_back"  # the department's answer, on its call
    evaluate = "evaluate"  # the reporter's satisfaction, once


@dataclass(frozen=True)
class Step:
    """One row of the loop's table."""

    action: str
    sources: tuple[Status, ...]
    #: Where it leads; None: the status stays.
    target: Status | None
    roles: tuple[Role, ...]
    whose: Whose
    #: Arguments it needs, each checked by its rule in ``ARGUMENT_RULES``.
    needs: tuple[str, ...] = ()
    #: Case columns set to the step's time, emptied, and counted up by one.
    stamps: tuple[str, ...] = ()
    clears: tuple[str, ...] = ()
    counts: str | None = None
    effect: Effect | None = None
    description: str = ""


S, R, W, E = Status, Role, Whose, Effect
#: Who handles a dispatched case: its grid's team, or a department.
HANDLERS = (R.grid_worker, R.department)
STEPS: dict[str, Step] = {
    step.action: step
    for step in (
        Step("register", (S.reported,), S.registered, (R.dispatcher,), W.anyone,
             stamps=("registered_at",), effect=E.classify, description="accept and classify"),
        Step("reject", (S.reported,), S.rejected, (R.dispatcher,), W.anyone, needs=("reason",),
             stamps=("closed_at",), effect=E.reject, description="invalid or duplicate"),
        Step("dispatch", (S.registered,), S.dispatched, (R.dispatcher,), W.anyone,
             effect=E.assign, description="send to handler"),
        Step("start", (S.dispatched,), S.handling, HANDLERS, W.handler,
             description="handler takes it on"),
        Step("whistle", (S.dispatched, S.handling), S.handling, (R.grid_worker,), W.grid,
             needs=("comment", "departments"), effect=E.escalate,
             description="吹哨: say why the grid cannot solve it"),
        Step("acknowledge", (S.handling,), None, (R.department,), W.called,
             effect=E.acknowledge, description="报到"),
        Step("report_back", (S.handling,), None, (R.department,), W.called, needs=("comment",),
             effect=E.report_back, description="department's answer"),
        Step("handle", (S.handling,), S.handled, HANDLERS, W.handler, needs=("comment",),
             stamps=("handled_at",), description="done, with feedback"),
        Step("reopen", (S.handled, S.verified), S.handling, (R.dispatcher,), W.anyone,
             needs=("comment",), clears=("handled_at", "verified_at"), counts="reopened",
             description="not solved"),
        Step("verify", (S.handled,), S.verified, (R.dispatcher,), W.anyone,
             stamps=("verified_at",), description="checked on site"),
        Step("close", (S.verified,), S.closed, (R.dispatcher,), W.anyone,
             stamps=("closed_at",), description="loop closed"),
        Step("evaluate", (S.closed,), None, (R.reporter,), W.filer, needs=("satisfaction",),
             effect=E.evaluate, description="satisfaction 1–5"),
    )
}  # fmt: skip


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


def check_key_scope(
    role: str, grid_code: str | None, department: str | None, taxonomy: Taxonomy
) -> Role:
    """The role of a new API key, which acts for a grid (``grid_worker``), for a department
    of the responsibility list (``department``), or for neither (every other role)."""
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}", field="role", fix=f"one of: {', '.join(Role)}"
        ) from None
    if parsed is Role.grid_worker and not grid_code:
        raise InvalidInput("a grid_worker key needs --grid CODE", field="grid")
    if parsed is not Role.grid_worker and grid_code:
        raise InvalidInput("only grid_worker keys act for a grid", field="grid")
    if parsed is Role.department and not department:
        raise InvalidInput("a department key needs --department CODE", field="department")
    if parsed is not Role.department and department:
        raise InvalidInput("only department keys act for a department", field="department")
    if department and department not in taxonomy.departments:
        raise NotFound(
            f"no department {department!r} in the responsibility list",
            field="department",
            fix=f"one of: {', '.join(taxonomy.departments)}",
        )
    return parsed


#: The actor of automatic steps (dispatch of grid-level cases on registration).
SYSTEM = Actor(None, Role.admin)
#: Who files a report sent without a key (``POST /reports``): a resident.
ANONYMOUS = Actor(None, Role.reporter)


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
    subcategory: str | None = None
    reopened: int = 0


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadScope:
    """What an actor may read: every case, or those of one grid, of one department (assigned
    to it or called to by a whistle), or filed with one key; nothing when none is set."""

    everything: bool = False
    grid_code: str | None = None
    department: str | None = None
    filed_by: int | None = None
    #: Whistle calls may be listed (``GET /escalations``), within the same cases.
    escalations: bool = True
    #: The reporter's contact is shown: the dispatch centre only (PIPL: least use).
    contact: bool = False

    def admits(self, case: CaseState) -> bool:
        if self.everything:
            return True
        if self.grid_code is not None and self.grid_code == case.grid_code:
            return True
        if self.department is not None and (
            case.assignee == self.department or self.department in case.escalated_to
        ):
            return True
        return self.filed_by is not None and case.filed_by == self.filed_by


def read_scope(actor: Actor | None) -> ReadScope:
    """The one rule of reading; ``None`` is the public view (Open311, statistics), which
    lists every case but never a reporter's contact."""
    if actor is None:
        return ReadScope(everything=True, escalations=False)
    if actor.role in (Role.admin, Role.dispatcher):
        return ReadScope(everything=True, contact=True)
    if actor.role is Role.planner:
        return ReadScope(everything=True)
    if actor.role is Role.grid_worker:
        return ReadScope(grid_code=actor.grid_code)
    if actor.role is Role.department:
        return ReadScope(department=actor.department)
    return ReadScope(filed_by=actor.key_id, escalations=False)


def check_readable(case: CaseState, actor: Actor, case_id: str) -> None:
    """Forbidden unless ``actor`` may read the case."""
    if not read_scope(actor).admits(case):
        raise Forbidden(
            f"a {actor.role}"
            + (f" {actor.scope}" if actor.scope else "")
            + f" key may not read case {case_id}",
            field="case_id",
            fix="grid workers read their own grid's cases, departments their own, "
            "reporters what they filed",
        )


# --- who may take a step ---------------------------------------------------------------------


def _owed(step: Step, case: CaseState) -> frozenset[str] | None:
    """The departments that still owe the answer ``step`` gives; None: it answers no call."""
    if step.effect is Effect.acknowledge:
        return case.awaiting_ack
    if step.effect is Effect.report_back:
        return case.awaiting_report
    return None


def _is_whose(step: Step, case: CaseState, actor: Actor) -> bool:
    """Beyond the role: the case must be this actor's to act on."""
    in_grid = actor.grid_code is not None and actor.grid_code == case.grid_code
    if actor.role is Role.admin:
        return True
    match step.whose:
        case Whose.anyone:
            return True
        case Whose.filer:
            return actor.key_id is not None and case.filed_by == actor.key_id
        case Whose.called:
            return actor.department in (_owed(step, case) or ())
        case Whose.grid:
            return in_grid and case.assignee in (None, actor.grid_code)
        case Whose.handler:
            if actor.role is Role.department:
                return actor.department is not None and case.assignee == actor.department
            return in_grid and case.assignee == actor.grid_code


def _valid_now(step: Step, case: CaseState) -> bool:
    """Steps valid from the status, whoever asks (the 409 test)."""
    if case.status not in step.sources:
        return False
    if step.effect is Effect.evaluate:
        return case.satisfaction is None
    owed = _owed(step, case)
    return owed is None or bool(owed)


def _permitted(step: Step, case: CaseState, actor: Actor) -> bool:
    role_ok = actor.role is Role.admin or actor.role in step.roles
    return role_ok and _is_whose(step, case, actor)


def allowed_steps(case: CaseState, actor: Actor) -> list[str]:
    """The steps this actor may take now, in workflow order."""
    return [s.action for s in STEPS.values() if _valid_now(s, case) and _permitted(s, case, actor)]


def valid_steps(case: CaseState) -> list[str]:
    """The steps valid from the case's status for someone (the role aside)."""
    return [s.action for s in STEPS.values() if _valid_now(s, case)]


def check_step(case: CaseState, actor: Actor, action: str) -> Step:
    """The step if ``actor`` may take it now; else why not.

    Order of refusals: a case the actor may not even read is Forbidden (``check_readable``,
    before this); a step that does not exist is InvalidInput; a step not valid from the
    status is NotAllowed (409, listing the allowed steps); a valid step the actor's role or
    scope may not take is Forbidden (403).
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
            + (
                " and already evaluated"
                if step.effect is Effect.evaluate and case.satisfaction
                else ""
            ),
            allowed=allowed_steps(case, actor),
        )
    owed = _owed(step, case)
    if owed is not None and actor.department in case.escalated_to and actor.department not in owed:
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


# --- what a step needs and writes -----------------------------------------------------------


@dataclass(frozen=True)
class StepInput:
    """The arguments a step may be given; ``Step.needs`` says which it must be."""

    comment: str = ""
    subcategory: str | None = None
    assignee: str | None = None
    reason: str | None = None
    duplicate_of: str | None = None
    satisfaction: int | None = None
    departments: tuple[str, ...] = ()
    ack_hours: float = ACK_HOURS
    report_hours: float = REPORT_HOURS


@dataclass(frozen=True)
class Taking:
    """A step being taken: on which case, by whom, with what, under which list, when."""

    step: Step
    case: CaseState
    actor: Actor
    given: StepInput
    taxonomy: Taxonomy
    at: datetime


def check_satisfaction(value: int | None) -> int:
    if value is None or not 1 <= value <= 5:
        raise InvalidInput(
            "an evaluation needs satisfaction from 1 (very unsatisfied) to 5 (very satisfied)",
            field="satisfaction",
        )
    return value


def _needs_comment(t: Taking) -> None:
    if not t.given.comment:
        raise InvalidInput(
            f"{t.step.action} needs a comment ({t.step.description})", field="comment"
        )


def _needs_reason(t: Taking) -> None:
    if t.given.reason not in REJECT_REASONS:
        raise InvalidInput(
            "a rejection needs reason 'invalid' or 'duplicate'",
            field="reason",
            fix="send reason and, for a duplicate, duplicate_of",
        )
    if t.given.reason == "duplicate" and not t.given.duplicate_of:
        raise InvalidInput("a duplicate needs duplicate_of", field="duplicate_of")


def _needs_satisfaction(t: Taking) -> None:
    check_satisfaction(t.given.satisfaction)


def _needs_departments(t: Taking) -> None:
    if not t.given.departments:
        raise InvalidInput("name at least one department", field="departments")
    for dept in dict.fromkeys(t.given.departments):
        if dept not in t.taxonomy.departments:
            raise InvalidInput(
                f"no department {dept!r} in the responsibility list",
                field="departments",
                fix=f"one of: {', '.join(t.taxonomy.departments)}",
            )
        if dept in t.case.escalated_to:
            raise Conflict(f"{dept} was already called to this case", field="departments")
    if not (
        0 < t.given.ack_hours <= MAX_ACK_HOURS and 0 < t.given.report_hours <= MAX_REPORT_HOURS
    ):
        raise InvalidInput(
            f"ack_hours must be in (0, {MAX_ACK_HOURS:g}] and report_hours in "
            f"(0, {MAX_REPORT_HOURS:g}]"
        )


ARGUMENT_RULES: dict[str, Callable[[Taking], None]] = {
    "comment": _needs_comment,
    "reason": _needs_reason,
    "satisfaction": _needs_satisfaction,
    "departments": _needs_departments,
}


@dataclass(frozen=True)
class Call:
    """A whistle's call to one department: acknowledge (报到) by, report back by."""

    department: str
    ack_due_at: datetime
    report_due_at: datetime


@dataclass(frozen=True)
class Answer:
    """A called department's answer: the call's column stamped, and its result if any."""

    department: str
    column: str
    result: str | None = None


@dataclass(frozen=True)
class Writes:
    """What a step's effect writes beyond the table's columns, and what the store checks."""

    columns: dict[str, Any] = field(default_factory=dict)
    #: The event's payload.
    payload: dict[str, Any] = field(default_factory=dict)
    #: The case as the rules see it after the effect (the status aside).
    after: CaseState | None = None
    #: reject: a case that must exist in the same district.
    duplicate_of: str | None = None
    #: dispatch: a department, or a grid that must be in the district's published plan.
    assignee: str | None = None
    calls: tuple[Call, ...] = ()
    answer: Answer | None = None


@dataclass(frozen=True)
class Change:
    """What taking a step writes; the store writes exactly this, in the caller's transaction."""

    step: Step
    from_status: Status
    #: The case as the rules see it afterwards (for a step that follows by itself).
    after: CaseState
    #: Case columns to set, the status included when it moves.
    columns: dict[str, Any]
    comment: str
    writes: Writes


def _classify(t: Taking) -> Writes:
    sub = t.taxonomy.subcategory(
        t.given.subcategory or t.case.subcategory or "", field_name="subcategory"
    )
    due = due_at(t.at, sub.sla_hours)
    return Writes(
        columns={"due_at": due, "category": sub.category, "subcategory": sub.code},
        payload={"subcategory": sub.code, "handler": sub.handler, "due_at": due},
        after=replace(t.case, subcategory=sub.code),
    )


def _reject(t: Taking) -> Writes:
    return Writes(
        payload={"reason": t.given.reason, "duplicate_of": t.given.duplicate_of},
        duplicate_of=t.given.duplicate_of if t.given.reason == "duplicate" else None,
    )


def _assign(t: Taking) -> Writes:
    listed = t.taxonomy.subcategories.get(t.case.subcategory or "")
    target = t.given.assignee or (
        t.case.grid_code if listed is None or listed.grid_level else listed.handler
    )
    if not target:
        raise InvalidInput("the case has no grid; name an assignee", field="assignee")
    return Writes(
        columns={"assignee": target},
        payload={"assignee": target},
        after=replace(t.case, assignee=target),
        assignee=target,
    )


def _escalate(t: Taking) -> Writes:
    wanted = list(dict.fromkeys(t.given.departments))
    ack_due = t.at + timedelta(hours=t.given.ack_hours)
    report_due = t.at + timedelta(hours=t.given.report_hours)
    return Writes(
        payload={"departments": wanted, "ack_due_at": ack_due, "report_due_at": report_due},
        after=replace(
            t.case,
            awaiting_ack=t.case.awaiting_ack | set(wanted),
            escalated_to=t.case.escalated_to | set(wanted),
        ),
        calls=tuple(Call(dept, ack_due, report_due) for dept in wanted),
    )


def _answer(t: Taking) -> Writes:
    dept = t.actor.department
    if t.actor.role is Role.admin:
        owed = _owed(t.step, t.case) or frozenset()
        dept = t.given.assignee if t.given.assignee in owed else None
    if dept is None:
        raise InvalidInput(
            "an admin acting for a department names it in assignee", field="assignee"
        )
    case = t.case
    if t.step.effect is Effect.acknowledge:
        answer = Answer(dept, "acknowledged_at")
        after = replace(
            case,
            awaiting_ack=case.awaiting_ack - {dept},
            awaiting_report=case.awaiting_report | {dept},
        )
    else:
        answer = Answer(dept, "reported_back_at", result=t.given.comment)
        after = replace(case, awaiting_report=case.awaiting_report - {dept})
    return Writes(payload={"department": dept}, after=after, answer=answer)


def _evaluate(t: Taking) -> Writes:
    score = check_satisfaction(t.given.satisfaction)
    return Writes(
        columns={"satisfaction": score},
        payload={"satisfaction": score},
        after=replace(t.case, satisfaction=score),
    )


#: The pure part of each effect; ``geo/store/cases.py`` writes what it returns.
EFFECT_RULES: dict[Effect, Callable[[Taking], Writes]] = {
    Effect.classify: _classify,
    Effect.reject: _reject,
    Effect.assign: _assign,
    Effect.escalate: _escalate,
    Effect.acknowledge: _answer,
    Effect.report_back: _answer,
    Effect.evaluate: _evaluate,
}


def take_step(
    case: CaseState, actor: Actor, action: str, given: StepInput, taxonomy: Taxonomy, at: datetime
) -> Change:
    """Read the table: check the step and its arguments, and say what it writes."""
    step = check_step(case, actor, action)
    taking = Taking(step, case, actor, replace(given, comment=given.comment.strip()), taxonomy, at)
    for name in step.needs:
        ARGUMENT_RULES[name](taking)
    writes = EFFECT_RULES[step.effect](taking) if step.effect else Writes()
    columns: dict[str, Any] = dict.fromkeys(step.stamps, at) | dict.fromkeys(step.clears)
    after = replace(writes.after or case, status=step.target or case.status)
    if step.counts:
        columns[step.counts] = getattr(case, step.counts) + 1
        after = replace(after, **{step.counts: columns[step.counts]})
    if step.target is not None:
        columns["status"] = step.target.value
    return Change(step, case.status, after, columns | writes.columns, taking.given.comment, writes)


def automatic_step(case: CaseState, taxonomy: Taxonomy) -> tuple[str, StepInput] | None:
    """The step that follows by itself: a registered grid-level case goes to its grid."""
    listed = taxonomy.subcategories.get(case.subcategory or "")
    if case.status is Status.registered and listed and listed.grid_level and case.grid_code:
        return "dispatch", StepInput(assignee=case.grid_code, comment="grid-level: automatic")
    return None


# --- filing ----------------------------------------------------------------------------------


def classify_filing(
    taxonomy: Taxonomy,
    category: str | None,
    subcategory: str | None,
    *,
    subcategory_field: str = "service_code",
) -> tuple[str, Subcategory | None]:
    """A new case's category and subcategory, both from the responsibility list in force.

    A subcategory names its category (a category sent with it must be that one); a case
    filed with a category alone gets its subcategory at registration.
    """
    if subcategory:
        sub = taxonomy.subcategory(subcategory, field_name=subcategory_field)
        if category and category != sub.category:
            raise InvalidInput(
                f"subcategory {sub.code!r} belongs to category {sub.category!r}, not {category!r}",
                field="category",
            )
        return sub.category, sub
    known = [str(c.get("code")) for c in taxonomy.categories]
    if category not in known:
        raise NotFound(
            f"no category {category!r} in the responsibility list",
            field="category",
            fix=f"one of: {', '.join(known)}",
        )
    return category, None


def due_at(registered_at: datetime, sla_hours: float) -> datetime:
    """The SLA deadline: counted from registration, in wall-clock hours."""
    return registered_at + timedelta(hours=sla_hours)


def open311_status(status: str) -> str:
    """Open311 knows only open and closed: rejected cases are closed too."""
    return "closed" if status in FINAL else "open"
