"""The closed loop's rules (pure), the store walking a case, the responsibility list, and the
statistics of the tiny fixture district recounted independently with geopandas."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fixtures.district import DistrictLayers, generate_district, write_district
from geo.cases import (
    STEPS,
    Actor,
    CaseState,
    Effect,
    Role,
    Status,
    Step,
    StepInput,
    allowed_steps,
    automatic_step,
    check_key_scope,
    check_step,
    read_scope,
    take_step,
)
from geo.crs import Coordsys
from geo.errors import DataRefused, Forbidden, InvalidInput, NotAllowed, NotFound
from geo.lookup import LookupAnswer
from geo.settings import GridmapSettings
from geo.store.cases import (
    actor_for_key,
    advance_case,
    blow_whistle,
    create_api_key,
    file_case,
    get_case,
    list_cases,
    list_escalations,
)
from geo.store.session import transaction
from geo.store.stats import case_stats
from geo.store.taxonomy import load_taxonomy, replace_taxonomy
from geo.taxonomy import parse_taxonomy, shipped_taxonomy
from tests.api.conftest import loaded_database

GRID, OTHER_GRID, DEPT = "G1", "G2", "water"


def actor(role: Role, key_id: int = 1) -> Actor:
    return Actor(
        key_id,
        role,
        grid_code=GRID if role is Role.grid_worker else None,
        department=DEPT if role is Role.department else None,
    )


def state(status: Status, **kw: object) -> CaseState:
    base: dict[str, object] = {"grid_code": GRID, "assignee": GRID, "filed_by": 1}
    base.update(kw)
    return CaseState(status=status, **base)  # type: ignore[arg-type]


# --- pure rules -------------------------------------------------------------------------------


def test_every_status_step_and_role_is_either_taken_refused_409_or_refused_403() -> None:
    """Walk the whole table: valid from the status and the actor's → ok; not valid → 409 with
    the allowed steps; valid but not the actor's → 403."""
    seen = {"ok": 0, "409": 0, "403": 0}
    for status, action, role in itertools.product(Status, STEPS, Role):
        case = state(
            status,
            awaiting_ack=frozenset({DEPT}),
            awaiting_report=frozenset(),
            escalated_to=frozenset({DEPT}),
        )
        who = actor(role)
        step = STEPS[action]
        try:
            check_step(case, who, action)
            seen["ok"] += 1
            assert status in step.sources
            assert role is Role.admin or role in step.roles
        except NotAllowed as exc:
            seen["409"] += 1
            assert status not in step.sources or action in ("report_back",)
            assert exc.allowed == allowed_steps(case, who)
        except Forbidden:
            seen["403"] += 1
            assert status in step.sources
    assert all(seen.values()), seen


@pytest.mark.parametrize(
    ("who", "case", "action", "error"),
    [
        (actor(Role.reporter), state(Status.reported), "register", Forbidden),
        (actor(Role.grid_worker), state(Status.reported), "register", Forbidden),
        (actor(Role.planner), state(Status.verified), "close", Forbidden),
        (actor(Role.department), state(Status.dispatched), "start", Forbidden),  # grid's case
        (
            Actor(2, Role.grid_worker, grid_code=OTHER_GRID),
            state(Status.dispatched),
            "start",
            Forbidden,
        ),
        (actor(Role.grid_worker), state(Status.handled), "close", NotAllowed),
        (actor(Role.dispatcher), state(Status.reported), "close", NotAllowed),
        (Actor(9, Role.reporter), state(Status.closed), "evaluate", Forbidden),  # not the filer
        (actor(Role.reporter), state(Status.closed, satisfaction=4), "evaluate", NotAllowed),
        (actor(Role.department), state(Status.handling), "acknowledge", NotAllowed),  # no whistle
        (actor(Role.dispatcher), state(Status.reported), "fly", InvalidInput),
    ],
)
def test_refusals(who: Actor, case: CaseState, action: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_step(case, who, action)


def test_the_409_lists_what_the_actor_may_do_instead() -> None:
    with pytest.raises(NotAllowed) as refused:
        check_step(state(Status.handled), actor(Role.dispatcher), "close")
    assert refused.value.allowed == ["reopen", "verify"]


def _taking_state(step: Step) -> CaseState:
    """A case from which ``step`` is valid: in its first source, with calls pending."""
    return state(
        step.sources[0],
        subcategory="garbage_pile",
        reopened=2,
        awaiting_ack=frozenset({DEPT}),
        awaiting_report=frozenset({"gas"}),
        escalated_to=frozenset({DEPT, "gas"}),
    )


@pytest.mark.parametrize("action", list(STEPS))
def test_a_step_writes_what_its_row_says(action: str) -> None:
    """The table's columns for every step: the status it leads to, the times it stamps, the
    columns it empties and the counter it raises; nothing else moves the status."""
    step, at = STEPS[action], datetime(2026, 3, 1, 9, tzinfo=UTC)
    case = _taking_state(step)
    given = StepInput(comment=" 说明 ", reason="invalid", satisfaction=3, departments=("fire",),
                      assignee="gas" if step.effect is Effect.report_back else DEPT)  # fmt: skip
    change = take_step(case, actor(Role.admin), action, given, shipped_taxonomy(), at)
    assert change.from_status is case.status and change.comment == "说明"
    assert change.after.status is (step.target or case.status)
    assert change.columns.get("status") == (step.target.value if step.target else None)
    assert all(change.columns[column] == at for column in step.stamps)
    assert all(change.columns[column] is None for column in step.clears)
    if step.counts:
        assert change.columns[step.counts] == 3 and change.after.reopened == 3
    if step.effect is None:
        assert set(change.columns) == {
            "status",
            *step.stamps,
            *step.clears,
            *([step.counts] if step.counts else []),
        }


@pytest.mark.parametrize(
    ("action", "given", "field"),
    [
        ("handle", StepInput(comment="   "), "comment"),
        ("reject", StepInput(), "reason"),
        ("reject", StepInput(reason="duplicate"), "duplicate_of"),
        ("evaluate", StepInput(satisfaction=6), "satisfaction"),
        ("whistle", StepInput(comment="x"), "departments"),
        ("whistle", StepInput(comment="x", departments=("nobody",)), "departments"),
        ("whistle", StepInput(comment="x", departments=("fire",), ack_hours=0), None),
        ("acknowledge", StepInput(), "assignee"),  # an admin names the department
    ],
)
def test_a_step_refuses_missing_or_bad_arguments(
    action: str, given: StepInput, field: str | None
) -> None:
    step = STEPS[action]
    with pytest.raises(InvalidInput) as refused:
        take_step(_taking_state(step), actor(Role.admin), action, given, shipped_taxonomy(),
                  datetime(2026, 3, 1, tzinfo=UTC))  # fmt: skip
    assert refused.value.field == field


def test_a_registered_grid_level_case_is_dispatched_to_its_grid_by_itself() -> None:
    taxonomy = shipped_taxonomy()
    registered = state(Status.registered, assignee=None, subcategory="garbage_pile")
    assert automatic_step(registered, taxonomy) == (
        "dispatch",
        StepInput(assignee=GRID, comment="grid-level: automatic"),
    )
    departments = state(Status.registered, assignee=None, subcategory="overflowing_bins")
    assert automatic_step(departments, taxonomy) is None
    assert automatic_step(state(Status.reported, subcategory="garbage_pile"), taxonomy) is None


@pytest.mark.parametrize(
    ("who", "readable"),
    [
        (actor(Role.admin), {"mine", "other_grid", "water", "called", "filed"}),
        (actor(Role.dispatcher), {"mine", "other_grid", "water", "called", "filed"}),
        (actor(Role.planner), {"mine", "other_grid", "water", "called", "filed"}),
        (actor(Role.grid_worker), {"mine", "water", "filed"}),
        (actor(Role.department), {"water", "called"}),
        (actor(Role.reporter, key_id=7), {"filed"}),
        (Actor(8, Role.reporter), set()),
        (Actor(9, Role.grid_worker), set()),  # a key without its grid reads nothing
    ],
)
def test_read_scope_admits_exactly_the_cases_of_the_key(who: Actor, readable: set[str]) -> None:
    cases = {
        "mine": state(Status.handling, filed_by=1),
        "other_grid": state(Status.handling, grid_code=OTHER_GRID, assignee=OTHER_GRID, filed_by=1),
        "water": state(Status.handling, assignee=DEPT, filed_by=1),
        "called": state(Status.handling, grid_code=OTHER_GRID, escalated_to=frozenset({DEPT})),
        "filed": state(Status.reported, assignee=None, filed_by=7),
    }
    scope = read_scope(who)
    assert {name for name, case in cases.items() if scope.admits(case)} == readable
    assert scope.contact is (who.role in (Role.admin, Role.dispatcher))
    assert read_scope(None).everything and not read_scope(None).contact


@pytest.mark.parametrize(
    ("role", "grid", "department", "field"),
    [
        ("janitor", None, None, "role"),
        ("grid_worker", None, None, "grid"),
        ("dispatcher", "G1", None, "grid"),
        ("department", None, None, "department"),
        ("grid_worker", "G1", "water", "department"),
        ("department", None, "nobody", "department"),
    ],
)
def test_a_key_acts_for_a_grid_a_department_or_neither(
    role: str, grid: str | None, department: str | None, field: str
) -> None:
    with pytest.raises((InvalidInput, NotFound)) as refused:
        check_key_scope(role, grid, department, shipped_taxonomy())
    assert refused.value.field == field


def test_every_role_has_a_valid_key_scope() -> None:
    scopes = {Role.grid_worker: ("G1", None), Role.department: (None, "water")}
    for role in Role:
        assert (
            check_key_scope(role.value, *scopes.get(role, (None, None)), shipped_taxonomy()) is role
        )


# --- the responsibility list -------------------------------------------------------------------


def test_shipped_list_has_12_categories_132_subcategories_with_handlers_and_slas() -> None:
    taxonomy = shipped_taxonomy()
    assert len(taxonomy.categories) == 12
    assert len(taxonomy.subcategories) == 132
    handlers = {s.handler for s in taxonomy.subcategories.values()}
    assert "grid" in handlers and handlers - {"grid"} <= set(taxonomy.departments)
    assert all(s.sla_hours > 0 for s in taxonomy.subcategories.values())


def test_a_broken_list_is_refused_with_every_problem() -> None:
    data = json.loads(json.dumps(shipped_taxonomy().as_dict()))
    data["categories"][0]["subcategories"][0]["handler"] = "nobody"
    data["categories"][1]["subcategories"][0]["sla_hours"] = -1
    with pytest.raises(DataRefused) as refused:
        parse_taxonomy(data, "broken.json")
    assert len(refused.value.problems) == 2


# --- the store --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> DistrictLayers:
    return generate_district("tiny", seed=7)


@pytest.fixture(scope="module")
def tiny_url(
    settings: GridmapSettings, tiny: DistrictLayers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    path = write_district(tiny, tmp_path_factory.mktemp("tiny") / "tiny.gpkg")
    with loaded_database(settings, f"gridmap_cases_{os.getpid()}", [path]) as url:
        yield url


def test_a_case_walks_the_loop_with_the_right_actors(tiny_url: str, tmp_path: Path) -> None:
    from geo.store.lookup import GridLookup
    from geo.store.session import session_factory

    with transaction(tiny_url) as session:
        taxonomy = load_taxonomy(session)
        lookup = GridLookup(session_factory(tiny_url))
        grid = session.execute(
            text(
                "SELECT code, ST_X(ST_PointOnSurface(geom)) x, ST_Y(ST_PointOnSurface(geom)) y"
                " FROM grids ORDER BY code LIMIT 1"
            )
        ).one()
        keys = {
            "reporter": create_api_key(session, "reporter", taxonomy=taxonomy),
            "dispatcher": create_api_key(session, "dispatcher", taxonomy=taxonomy),
            "worker": create_api_key(
                session, "grid_worker", taxonomy=taxonomy, grid_code=grid.code
            ),
            "water": create_api_key(session, "department", taxonomy=taxonomy, department="water"),
        }
        who = {name: actor_for_key(session, k.key) for name, k in keys.items()}
        answer = lookup.lookup(grid.x, grid.y)
        assert answer.grid_code == grid.code
        filed = file_case(
            session,
            answer,
            taxonomy=taxonomy,
            subcategory="garbage_pile",
            description="楼下垃圾堆放",
            actor=who["reporter"],
            reporter={"first_name": "张", "phone": "13800000000"},
            reported_at=datetime(2026, 1, 5, 8, tzinfo=UTC),
        )
        case_id = filed["case_id"]
        assert taxonomy.subcategories["garbage_pile"].grid_level
        t0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
        case = advance_case(
            session, case_id, who["dispatcher"], "register", taxonomy=taxonomy, at=t0
        )
        assert case["status"] == "dispatched" and case["assignee"] == grid.code  # automatic
        assert case["due_at"] == t0 + timedelta(
            hours=taxonomy.subcategories["garbage_pile"].sla_hours
        )
        assert case["reporter"]["phone"] == "13800000000"  # the dispatch centre sees contact
        case = advance_case(session, case_id, who["worker"], "start", taxonomy=taxonomy, at=t0)
        case = blow_whistle(
            session, case_id, who["worker"], ["water"], taxonomy=taxonomy,
            comment="管道问题", ack_hours=1, at=t0,
        )  # fmt: skip
        late = list_escalations(
            session, who["dispatcher"], overdue=True, as_of=t0 + timedelta(hours=2)
        )
        assert [e["case_id"] for e in late] == [case_id]
        assert list_escalations(session, who["dispatcher"], overdue=True, as_of=t0) == []
        case = advance_case(session, case_id, who["water"], "acknowledge", taxonomy=taxonomy,
                            at=t0 + timedelta(minutes=30))  # fmt: skip
        case = advance_case(session, case_id, who["water"], "report_back", taxonomy=taxonomy,
                            comment="已疏通", at=t0 + timedelta(hours=3))  # fmt: skip
        with pytest.raises(Forbidden):
            advance_case(session, case_id, who["water"], "handle", taxonomy=taxonomy, comment="x")
        for actor_name, action, extra in [
            ("worker", "handle", {"comment": "已清运"}),
            ("dispatcher", "reopen", {"comment": "仍有异味"}),
            ("worker", "handle", {"comment": "已消毒"}),
            ("dispatcher", "verify", {}),
            ("dispatcher", "close", {}),
            ("reporter", "evaluate", {"satisfaction": 5}),
        ]:
            case = advance_case(
                session,
                case_id,
                who[actor_name],
                action,
                taxonomy=taxonomy,
                at=t0 + timedelta(hours=4),
                **extra,  # type: ignore[arg-type]
            )
        assert case["status"] == "closed" and case["satisfaction"] == 5 and case["reopened"] == 1
        reporter_view = get_case(session, case_id, who["reporter"])
        assert "reporter" not in reporter_view
        actions = [e["action"] for e in reporter_view["history"]]
        assert actions == [
            "file", "register", "dispatch", "start", "whistle", "acknowledge", "report_back",
            "handle", "reopen", "handle", "verify", "close", "evaluate",
        ]  # fmt: skip
        assert reporter_view["history"][2]["actor"]["role"] == "system"
        # Lists and the public view never carry personal data.
        public = list_cases(session, None, case_ids=[case_id])
        assert not {"reporter", "phone", "first_name"} & set(public[0])
        other = create_api_key(
            session, "grid_worker", taxonomy=taxonomy, grid_code="210299001001002"
        )
        with pytest.raises(Forbidden):
            get_case(session, case_id, actor_for_key(session, other.key))
        session.rollback()


def _answer_in(session: Session, grid_code: str) -> LookupAnswer:
    """What the lookup answers for a point inside ``grid_code`` of the published plan."""
    row = session.execute(
        text(
            """SELECT p.id AS plan_id, d.code AS district, ST_X(ST_PointOnSurface(g.geom)) AS x,
                      ST_Y(ST_PointOnSurface(g.geom)) AS y
               FROM grids g JOIN grid_plans p ON p.id = g.plan_id
               JOIN districts d ON d.id = p.district_id
               WHERE g.code = :c AND p.status = 'published'"""
        ),
        {"c": grid_code},
    ).one()
    return LookupAnswer(row.x, row.y, Coordsys.WGS84, None, grid_code, None, None, None,
                        row.district, row.plan_id, False, False, None, None)  # fmt: skip


def test_lists_and_single_reads_admit_the_same_cases(tiny_url: str) -> None:
    """One scope for both: every key lists exactly the cases it may open, and a department
    lists only its own whistle calls."""
    with transaction(tiny_url) as session:
        taxonomy = load_taxonomy(session)
        grid, other = session.scalars(text("SELECT code FROM grids ORDER BY code LIMIT 2")).all()
        scopes: list[tuple[str, dict[str, str]]] = [
            ("reporter", {}), ("reporter", {}), ("grid_worker", {"grid_code": grid}),
            ("grid_worker", {"grid_code": other}), ("department", {"department": "water"}),
            ("department", {"department": "gas"}), ("dispatcher", {}), ("planner", {}),
            ("admin", {}),
        ]  # fmt: skip
        keys = [create_api_key(session, role, taxonomy=taxonomy, **kw).key for role, kw in scopes]
        who = [actor_for_key(session, key) for key in keys]
        admin = Actor(None, Role.admin)
        mine = [
            file_case(session, _answer_in(session, code), taxonomy=taxonomy, subcategory=sub,
                      description=None, actor=who[0])["case_id"]
            for code, sub in [(grid, "garbage_pile"), (grid, "overflowing_bins"),
                              (other, "graffiti")]
        ]  # fmt: skip
        for case_id in mine:
            advance_case(session, case_id, admin, "register", taxonomy=taxonomy)
        advance_case(session, mine[1], admin, "dispatch", taxonomy=taxonomy, assignee="water")
        advance_case(session, mine[2], admin, "start", taxonomy=taxonomy)
        blow_whistle(session, mine[2], admin, ["gas"], taxonomy=taxonomy, comment="called")
        sample = mine + [c["case_id"] for c in list_cases(session, None, limit=30)]
        for actor_ in who:
            listed = {c["case_id"] for c in list_cases(session, actor_, case_ids=sample)}
            opened = set()
            for case_id in sample:
                try:
                    get_case(session, case_id, actor_)
                    opened.add(case_id)
                except Forbidden:
                    pass
            assert listed == opened, actor_
        assert {c["case_id"] for c in list_cases(session, who[0], case_ids=sample)} == set(mine)
        gas = {c["case_id"] for c in list_cases(session, who[5], case_ids=sample)}
        assert gas & set(mine) == {mine[2]}  # called to it by the whistle
        assert [e["department"] for e in list_escalations(session, who[5])] == ["gas"]
        assert list_escalations(session, who[4]) == []  # water was called to nothing
        assert [e["case_id"] for e in list_escalations(session, who[3])] == [mine[2]]
        with pytest.raises(Forbidden):
            list_escalations(session, who[0])
        session.rollback()


# --- statistics -------------------------------------------------------------------------------


def _independent_grid_codes(tiny: DistrictLayers) -> pd.Series:
    """The README's rule with geopandas alone: covered_by, smallest code on a shared edge."""
    joined = gpd.sjoin(
        tiny.reports[["report_id", "geometry"]],
        tiny.grids[["code", "geometry"]],
        predicate="covered_by",
        how="left",
    )
    return joined.sort_values("code").groupby("report_id")["code"].first()


def test_statistics_of_the_fixture_match_an_independent_count(
    tiny_url: str, tiny: DistrictLayers
) -> None:
    reports = pd.DataFrame(tiny.reports.drop(columns="geometry"))
    reports["grid"] = reports["report_id"].map(_independent_grid_codes(tiny))
    for column in ("reported_at", "closed_at", "due_at"):
        reports[column] = pd.to_datetime(reports[column], utc=True, format="ISO8601")
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    with transaction(tiny_url) as session:
        frame = case_stats(session, "210299", "grid", end=as_of)
        district = case_stats(session, "210299", "district", end=as_of)
    assert len(frame) == 12 and frame["cases"].sum() == reports["grid"].notna().sum()
    assert district.loc["210299", "cases"] == len(reports) == 1000
    for code, rows in reports.dropna(subset=["grid"]).groupby("grid"):
        got = frame.loc[code]
        valid = rows[rows["status"] != "rejected"]
        closed = rows[rows["status"] == "closed"]
        hours = (closed["closed_at"] - closed["reported_at"]).dt.total_seconds() / 3600
        open_ = ~rows["status"].isin(["closed", "rejected"])
        assert got["cases"] == len(rows)
        assert got["rejected"] == (rows["status"] == "rejected").sum()
        assert got["resolution_rate"] == pytest.approx(len(closed) / len(valid))
        assert got["on_time_rate"] == pytest.approx(
            (closed["closed_at"] <= closed["due_at"]).mean()
        )
        assert got["reopened_rate"] == pytest.approx((valid["reopened"] > 0).mean())
        assert got["mean_hours_to_close"] == pytest.approx(hours.mean())
        assert got["p90_hours_to_close"] == pytest.approx(np.percentile(hours, 90))
        assert got["satisfaction"] == pytest.approx(rows["satisfaction"].astype(float).mean())
        assert got["open"] == open_.sum()
        assert got["overdue"] == (open_ & (rows["due_at"] < as_of)).sum()


def test_statistics_for_a_period_and_every_level(tiny_url: str) -> None:
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    with transaction(tiny_url) as session:
        grid = case_stats(session, "210299", "grid", start, end)
        counted = session.scalar(
            text(
                "SELECT count(*) FROM reports WHERE reported_at >= :s AND reported_at < :e"
                " AND grid_id IS NOT NULL"
            ),
            {"s": start, "e": end},
        )
        for level in ("community", "street", "district"):
            assert case_stats(session, "210299", level, start, end)["cases"].sum() == counted
        with pytest.raises(InvalidInput):
            case_stats(session, "210299", "province")
    assert grid["cases"].sum() == counted


def test_a_replaced_list_is_in_force_and_the_old_one_kept(tiny_url: str, tmp_path: Path) -> None:
    data = shipped_taxonomy().as_dict()
    data["categories"][0]["subcategories"][0]["sla_hours"] = 1
    path = tmp_path / "list.json"
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    with transaction(tiny_url) as session:
        stored = replace_taxonomy(session, path)
        current = load_taxonomy(session)
        assert current.version == stored.version
        first = data["categories"][0]["subcategories"][0]["code"]
        assert current.subcategories[first].sla_hours == 1
        session.rollback()
