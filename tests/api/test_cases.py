"""A case filed through Open311 followed through every step over HTTP by the right keys;
the wrong key refused at each step; privacy of reporters; statistics; the CLI."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fixtures.district import generate_district, write_district
from geo.cases import STEPS, Actor, Role, Status
from geo.lookup import LookupAnswer
from geo.settings import GridmapSettings
from geo.store.cases import actor_for_key, advance_case, blow_whistle, create_api_key, file_case
from geo.store.session import transaction
from geo.store.taxonomy import load_taxonomy
from tests.api.conftest import LiveServer, loaded_database, running_server

DISTRICT = "210299"
PERSONAL = ("first_name", "last_name", "phone", "email", "device_id", "13812345678", "王")


@pytest.fixture(scope="module")
def tiny_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_district(
        generate_district("tiny", seed=7), tmp_path_factory.mktemp("tiny") / "tiny.gpkg"
    )


@pytest.fixture(scope="module")
def server(
    settings: GridmapSettings, tiny_gpkg: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with (
        loaded_database(settings, f"gridmap_api_cases_{os.getpid()}", [tiny_gpkg]) as url,
        running_server(url, tmp_path_factory.mktemp("cases_server")) as live,
    ):
        yield live


@pytest.fixture(scope="module")
def keys(server: LiveServer) -> dict[str, str]:
    with transaction(server.database_url) as session:
        taxonomy = load_taxonomy(session)
        grid, other = [
            r[0]
            for r in session.execute(
                __import__("sqlalchemy").text("SELECT code FROM grids ORDER BY code LIMIT 2")
            )
        ]

        def make(role: str, **kw: Any) -> str:
            return create_api_key(session, role, taxonomy=taxonomy, **kw).key

        return {
            "grid": grid,
            "other_grid": other,
            "reporter": make("reporter"),
            "reporter2": make("reporter"),
            "dispatcher": make("dispatcher"),
            "worker": make("grid_worker", grid_code=grid),
            "other_worker": make("grid_worker", grid_code=other),
            "water": make("department", department="water"),
            "gas": make("department", department="gas"),
            "planner": make("planner"),
            "admin": make("admin"),
        }


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def point_in(server: LiveServer, grid: str) -> tuple[float, float]:
    feature = server.client.get(f"/grids/{grid}").json()
    import shapely.geometry

    geom = shapely.geometry.shape(feature.get("geometry") or feature["features"][0]["geometry"])
    p = geom.representative_point()
    return p.x, p.y


def file_open311(server: LiveServer, keys: dict[str, str], service: str) -> str:
    lon, lat = point_in(server, keys["grid"])
    answer = server.client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": keys["reporter"],
            "jurisdiction_id": DISTRICT,
            "service_code": service,
            "lat": str(lat),
            "long": str(lon),
            "description": "楼道堆放杂物",
            "first_name": "王",
            "last_name": "小明",
            "phone": "13812345678",
            "email": "wang@example.cn",
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body[0]["grid_code"] == keys["grid"]
    return str(body[0]["service_request_id"])


def step(server: LiveServer, case_id: str, key: str, action: str, **extra: Any) -> httpx.Response:
    return server.client.post(
        f"/cases/{case_id}/transitions", json={"action": action, **extra}, headers=auth(key)
    )


def test_a_case_from_open311_runs_the_whole_loop_and_every_wrong_key_is_refused(
    server: LiveServer, keys: dict[str, str]
) -> None:
    case_id = file_open311(server, keys, "stairwell_clutter")  # a grid-level subcategory
    k = keys
    plan: list[tuple[str, dict[str, Any], list[str], list[str]]] = [
        # action, body, refused keys (403), wrong-step keys (409 before it is time)
        ("register", {}, ["reporter", "worker", "water", "planner"], []),
        ("start", {}, ["other_worker", "water", "dispatcher", "reporter", "planner"], []),
        ("handle", {"comment": "已清理"}, ["other_worker", "water", "planner"], []),
        ("verify", {}, ["worker", "reporter", "planner", "water"], []),
        ("close", {}, ["worker", "reporter", "planner"], []),
        ("evaluate", {"satisfaction": 4}, ["reporter2", "worker", "dispatcher"], []),
    ]
    # Out-of-order steps are 409 with the allowed next steps.
    early = step(server, case_id, k["dispatcher"], "close")
    assert early.status_code == 409
    assert early.json()["allowed"] == ["register", "reject"]
    for action, body, refused, _ in plan:
        for who in refused:
            answer = step(server, case_id, k[who], action, **body)
            assert answer.status_code in (403, 409), (action, who, answer.text)
            if answer.status_code == 403:
                assert answer.headers["content-type"].startswith("application/problem+json")
        owner = {
            "register": "dispatcher",
            "start": "worker",
            "handle": "worker",
            "verify": "dispatcher",
            "close": "dispatcher",
            "evaluate": "reporter",
        }[action]
        done = step(server, case_id, k[owner], action, **body)
        assert done.status_code == 200, (action, done.text)
        if action == "register":  # grid-level: dispatched to the grid on registration
            assert done.json()["status"] == "dispatched"
            assert done.json()["assignee"] == k["grid"]
    again = step(server, case_id, k["reporter"], "evaluate", satisfaction=1)
    assert again.status_code == 409
    detail = server.client.get(f"/cases/{case_id}", headers=auth(k["worker"])).json()
    assert [e["action"] for e in detail["history"]] == [
        "file", "register", "dispatch", "start", "handle", "verify", "close", "evaluate",
    ]  # fmt: skip
    assert all(e["at"] for e in detail["history"])
    assert detail["satisfaction"] == 4 and detail["status"] == "closed"
    assert not any(p in str(detail) for p in PERSONAL)
    # The dispatch centre alone sees how to reach the reporter.
    dispatch_view = server.client.get(f"/cases/{case_id}", headers=auth(k["dispatcher"])).json()
    assert dispatch_view["reporter"]["phone"] == "13812345678"
    # Open311 shows it closed, without personal data.
    public = server.client.get(f"/open311/v2/requests/{case_id}.json").json()
    assert public[0]["status"] == "closed" and public[0]["grid_code"] == k["grid"]
    assert not any(p in str(public) for p in PERSONAL)


def test_a_whistle_calls_departments_that_acknowledge_and_report_back(
    server: LiveServer, keys: dict[str, str]
) -> None:
    k = keys
    case_id = file_open311(server, keys, "garbage_pile")
    assert step(server, case_id, k["dispatcher"], "register").status_code == 200
    body = {"departments": ["water", "gas"], "comment": "管道破裂，网格无法处置", "ack_hours": 1}
    for who in ("other_worker", "water", "reporter", "planner"):
        refused = server.client.post(f"/cases/{case_id}/whistle", json=body, headers=auth(k[who]))
        assert refused.status_code == 403, (who, refused.text)
    blown = server.client.post(f"/cases/{case_id}/whistle", json=body, headers=auth(k["worker"]))
    assert blown.status_code == 200, blown.text
    assert blown.json()["status"] == "handling"
    assert {e["department"] for e in blown.json()["escalations"]} == {"water", "gas"}
    # A department reads its own escalated cases only, and acknowledges for itself.
    assert server.client.get(f"/cases/{case_id}", headers=auth(k["water"])).status_code == 200
    assert step(server, case_id, k["water"], "report_back", comment="x").status_code == 409
    assert step(server, case_id, k["water"], "acknowledge").status_code == 200
    assert step(server, case_id, k["water"], "acknowledge").status_code == 409  # done already
    assert step(server, case_id, k["water"], "report_back", comment="已修复").status_code == 200
    # Gas has not acknowledged: listed as overdue once the hour has passed.
    later = "2100-01-01T00:00:00Z"
    late = server.client.get(
        "/escalations", params={"overdue": "true", "as_of": later}, headers=auth(k["dispatcher"])
    ).json()
    assert {(e["case_id"], e["department"]) for e in late if e["case_id"] == case_id} == {
        (case_id, "gas")
    } | ({(case_id, "water")} if any(e["department"] == "water" for e in late) else set())
    gas_late = [e for e in late if e["case_id"] == case_id and e["department"] == "gas"]
    assert gas_late[0]["ack_overdue"] is True
    overdue_cases = server.client.get(
        "/cases", params={"overdue": "true", "as_of": later}, headers=auth(k["dispatcher"])
    ).json()
    assert case_id in {c["case_id"] for c in overdue_cases}
    own = server.client.get("/escalations", headers=auth(k["gas"])).json()
    assert {e["department"] for e in own} == {"gas"}


def test_reading_is_scoped_by_role(server: LiveServer, keys: dict[str, str]) -> None:
    k = keys
    case_id = file_open311(server, keys, "graffiti")
    assert server.client.get(f"/cases/{case_id}").status_code == 401
    bad = server.client.get(f"/cases/{case_id}", headers=auth("gm_not_a_key"))
    assert bad.status_code == 401
    assert (
        server.client.get(f"/cases/{case_id}", headers=auth(k["other_worker"])).status_code == 403
    )
    assert server.client.get(f"/cases/{case_id}", headers=auth(k["gas"])).status_code == 403
    assert server.client.get(f"/cases/{case_id}", headers=auth(k["reporter2"])).status_code == 403
    for who in ("worker", "dispatcher", "planner", "admin", "reporter"):
        assert server.client.get(f"/cases/{case_id}", headers=auth(k[who])).status_code == 200
    mine = server.client.get("/cases", params={"limit": 1000}, headers=auth(k["other_worker"]))
    assert all(c["grid_code"] == k["other_grid"] for c in mine.json())
    listed = server.client.get("/cases", params={"grid": k["grid"]}, headers=auth(k["planner"]))
    assert listed.status_code == 200 and listed.json()
    assert not any(p in listed.text for p in PERSONAL)


def test_reject_needs_a_reason_and_dispatch_to_a_department(
    server: LiveServer, keys: dict[str, str]
) -> None:
    k = keys
    first = file_open311(server, keys, "graffiti")
    second = file_open311(server, keys, "graffiti")
    assert step(server, second, k["dispatcher"], "reject").status_code == 422
    done = step(server, second, k["dispatcher"], "reject", reason="duplicate", duplicate_of=first)
    assert done.status_code == 200 and done.json()["status"] == "rejected"
    third = file_open311(server, keys, "overflowing_bins")  # handled by urban_management
    registered = step(server, third, k["dispatcher"], "register").json()
    assert registered["status"] == "registered"
    assert step(server, third, k["dispatcher"], "dispatch").json()["assignee"] == (
        "urban_management"
    )


def test_stats_over_http_and_the_cli(server: LiveServer, keys: dict[str, str]) -> None:
    answer = server.client.get("/stats", params={"district": DISTRICT, "level": "street"})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["rows"]
    assert sum(r["cases"] for r in rows) >= 1000
    assert {"resolution_rate", "on_time_rate", "p90_hours_to_close", "overdue"} <= set(rows[0])
    from api.cli import app

    runner = CliRunner()
    env = {"GRIDMAP_DATABASE_URL": server.database_url}
    made = runner.invoke(app, ["keys", "create", "--role", "planner"], env=env)
    assert made.exit_code == 0 and made.output.strip().startswith("gm_")
    refused = runner.invoke(app, ["keys", "create", "--role", "grid_worker"], env=env)
    assert refused.exit_code == 1
    shown = runner.invoke(
        app, ["cases", "stats", "--district", DISTRICT, "--level", "district"], env=env
    )
    assert shown.exit_code == 0 and DISTRICT in shown.output
    listed = runner.invoke(app, ["cases", "list", "--district", DISTRICT, "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    case_id = file_open311(server, keys, "graffiti")
    moved = runner.invoke(
        app, ["cases", "advance", case_id, "register", "--key", keys["dispatcher"]], env=env
    )
    assert moved.exit_code == 0 and "dispatched" in moved.output
    wrong = runner.invoke(
        app, ["cases", "advance", case_id, "close", "--key", keys["worker"]], env=env
    )
    assert wrong.exit_code == 1
    shown = runner.invoke(app, ["cases", "show", case_id], env=env)
    assert shown.exit_code == 0 and "register" in shown.output


# --- the workflow table over HTTP --------------------------------------------------------------

ADMIN = Actor(None, Role.admin)
#: Statuses before dispatch: a department cannot even read such a case (it is no one's).
UNASSIGNED = (Status.reported, Status.registered, Status.rejected)
#: Walked by an admin to reach each status (dispatch names the assignee; handling adds calls).
PATH = {
    Status.reported: [],
    Status.rejected: ["reject"],
    Status.registered: ["register"],
    Status.dispatched: ["register", "dispatch"],
    Status.handling: ["register", "dispatch", "start", "calls"],
    Status.handled: ["register", "dispatch", "start", "calls", "handle"],
    Status.verified: ["register", "dispatch", "start", "calls", "handle", "verify"],
    Status.closed: ["register", "dispatch", "start", "calls", "handle", "verify", "close"],
}
BODIES: dict[str, dict[str, Any]] = {
    "reject": {"reason": "invalid"},
    "whistle": {"departments": ["gas"], "comment": "管道破裂，网格无法处置"},
    "report_back": {"comment": "已答复"},
    "handle": {"comment": "已处理"},
    "reopen": {"comment": "仍未解决"},
    "evaluate": {"satisfaction": 4},
}


def table_answer(status: Status, action: str, role: Role) -> int:
    """What the table says a key of ``role`` gets for ``action`` on its case in ``status``."""
    step = STEPS[action]
    if role is Role.department and status in UNASSIGNED:
        return 403  # not its case to read, so not its case to act on
    if status not in step.sources:
        return 409
    if role is not Role.admin and role not in step.roles:
        return 403
    return 200


@pytest.fixture(scope="module")
def role_keys(server: LiveServer, keys: dict[str, str]) -> dict[Role, str]:
    """A key of every role: a new role gets its key here or the table test fails."""
    scopes: dict[Role, dict[str, str]] = {
        Role.grid_worker: {"grid_code": keys["grid"]},
        Role.department: {"department": "water"},
    }
    with transaction(server.database_url) as session:
        taxonomy = load_taxonomy(session)
        return {
            role: create_api_key(session, role.value, taxonomy=taxonomy, **scopes.get(role, {})).key
            for role in Role
        }


@dataclass(frozen=True)
class CaseMaker:
    server: LiveServer
    answer: LookupAnswer
    reporter_key: str
    grid: str

    def make(self, status: Status, *, assignee: str, calls: dict[str, bool]) -> str:
        """A case filed by the reporter key and walked to ``status`` by an admin; ``calls``:
        departments called by a whistle in handling, and whether each has acknowledged."""
        with transaction(self.server.database_url) as session:
            taxonomy = load_taxonomy(session)
            filer = actor_for_key(session, self.reporter_key)
            case_id = str(
                file_case(
                    session,
                    self.answer,
                    taxonomy=taxonomy,
                    subcategory="overflowing_bins",  # a department's: no automatic dispatch
                    description="table",
                    actor=filer,
                )["case_id"]
            )
            for action in PATH[status]:
                if action == "calls" and calls:
                    blow_whistle(session, case_id, ADMIN, list(calls), taxonomy=taxonomy,
                                 comment="calls")  # fmt: skip
                    for dept in (d for d, acknowledged in calls.items() if acknowledged):
                        advance_case(session, case_id, ADMIN, "acknowledge", taxonomy=taxonomy,
                                     assignee=dept)  # fmt: skip
                elif action != "calls":
                    extra = {"assignee": assignee} if action == "dispatch" else {}
                    advance_case(session, case_id, ADMIN, action, taxonomy=taxonomy,
                                 **{**BODIES.get(action, {}), **extra})  # fmt: skip
        return case_id


@pytest.fixture(scope="module")
def cases(server: LiveServer, keys: dict[str, str], role_keys: dict[Role, str]) -> CaseMaker:
    lon, lat = point_in(server, keys["grid"])
    got = server.client.get("/lookup", params={"lon": lon, "lat": lat}).json()
    answer = LookupAnswer(**{name: got[name] for name in LookupAnswer.__dataclass_fields__})
    return CaseMaker(server, answer, role_keys[Role.reporter], keys["grid"])


@pytest.fixture(scope="module")
def shared_cases(cases: CaseMaker) -> dict[Status, str]:
    """One case per status for the answers that change nothing (403, 409): assigned to the
    department, with one call acknowledged and one not, so every step is valid for someone."""
    return {
        status: cases.make(status, assignee="water", calls={"water": True, "gas": False})
        for status in Status
    }


def test_every_role_reads_the_shared_cases_as_the_table_assumes(
    server: LiveServer, role_keys: dict[Role, str], shared_cases: dict[Status, str]
) -> None:
    for (status, case_id), role in itertools.product(shared_cases.items(), Role):
        got = server.client.get(f"/cases/{case_id}", headers=auth(role_keys[role]))
        unreadable = role is Role.department and status in UNASSIGNED
        assert got.status_code == (403 if unreadable else 200), (status, role, got.text)


@pytest.mark.parametrize(
    ("status", "action", "role"),
    list(itertools.product(Status, STEPS, Role)),
    ids=lambda value: str(value),
)
def test_each_status_step_and_role_answers_as_the_table_says(
    server: LiveServer,
    role_keys: dict[Role, str],
    cases: CaseMaker,
    shared_cases: dict[Status, str],
    status: Status,
    action: str,
    role: Role,
) -> None:
    """200 where the table lets the role take the step on its own case, 409 where the step
    does not start from the status (with the allowed steps), 403 where it is another's."""
    expected = table_answer(status, action, role)
    case_id = shared_cases[status]
    if expected == 200:  # a fresh case that is this key's to act on
        calls = {"acknowledge": {"water": False}, "report_back": {"water": True}}.get(action, {})
        mine = cases.grid if role is Role.grid_worker else "water"
        case_id = cases.make(status, assignee=mine, calls=calls)
    body = dict(BODIES.get(action, {}))
    if role is Role.admin and action in ("acknowledge", "report_back"):
        body["assignee"] = "water"  # an admin names the department it answers for
    if action == "whistle":
        url = f"/cases/{case_id}/whistle"
    else:
        url, body = f"/cases/{case_id}/transitions", {"action": action, **body}
    answer = server.client.post(url, json=body, headers=auth(role_keys[role]))
    assert answer.status_code == expected, answer.text
    if expected == 200:
        step = STEPS[action]
        assert answer.json()["status"] == (step.target or status)
        assert answer.json()["history"][-1]["action"] == action
    elif expected == 409:
        assert "allowed" in answer.json()


# --- POST /reports is a case -------------------------------------------------------------------


def test_a_report_is_filed_as_a_case_with_its_history_and_the_responsibility_list(
    server: LiveServer, keys: dict[str, str]
) -> None:
    lon, lat = point_in(server, keys["grid"])
    at = {"lon": lon, "lat": lat}
    filed = server.client.post("/reports", json={**at, "category": "sanitation",
                                                 "subcategory": "garbage_pile"})  # fmt: skip
    assert filed.status_code == 201, filed.text
    report = filed.json()
    assert report["report_id"].startswith("API") and report["grid_code"] == keys["grid"]
    case = server.client.get(f"/cases/{report['report_id']}", headers=auth(keys["dispatcher"]))
    assert [e["action"] for e in case.json()["history"]] == ["file"]
    assert case.json()["history"][0]["payload"] == {"channel": "reports", "grid_code": keys["grid"]}
    assert case.json()["allowed"] == ["register", "reject"]
    for body, status, field in [
        ({"category": "weather"}, 404, "category"),
        ({"category": "sanitation", "subcategory": "nope"}, 404, "subcategory"),
        ({"category": "traffic", "subcategory": "garbage_pile"}, 422, "category"),
        ({"category": "sanitation", "reported_at": "2026-01-05T08:00:00"}, 422, "reported_at"),
    ]:
        refused = server.client.post("/reports", json={**at, **body})
        assert refused.status_code == status, (body, refused.text)
        assert refused.json()["errors"][0]["field"] == field
    # A category alone: the dispatch centre names the subcategory when it registers the case.
    loose = server.client.post("/reports", json={**at, "category": "sanitation"}).json()
    assert loose["subcategory"] is None
    case_id = loose["report_id"]
    assert step(server, case_id, keys["dispatcher"], "register").status_code == 404
    registered = step(server, case_id, keys["dispatcher"], "register", subcategory="garbage_pile")
    assert registered.status_code == 200 and registered.json()["assignee"] == keys["grid"]


def test_reports_share_the_filing_limit_per_address(
    server: LiveServer, keys: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_CASES__LIMITS__PER_ADDRESS_BURST", "2")
    monkeypatch.setenv("GRIDMAP_CASES__LIMITS__PER_ADDRESS_PER_MINUTE", "1")
    lon, lat = point_in(server, keys["grid"])
    report = {"lon": lon, "lat": lat, "category": "sanitation"}
    with running_server(server.database_url, tmp_path) as limited:
        answers = [limited.client.post("/reports", json=report) for _ in range(3)]
        filed = limited.client.post(
            "/cases", json={"lon": lon, "lat": lat, "subcategory": "graffiti"},
            headers=auth(keys["reporter"]),
        )  # fmt: skip
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert filed.status_code == 429  # the same bucket as POST /cases
