"""The planner's flow over HTTP on the tiny fixture district: regrid, inspect, edit, publish."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from typer.testing import CliRunner

from api.cli import app as cli_app
from fixtures.district import generate_district, write_district
from geo.errors import InvalidInput
from geo.regrid import RegridRequest, regrid
from geo.settings import GridmapSettings
from geo.store.plans import plan_inputs
from geo.store.session import transaction
from tests.api.conftest import LiveServer, loaded_database, running_server

TINY = "210299"


@pytest.fixture(scope="module")
def planner(
    settings: GridmapSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server over a database of its own holding the tiny fixture district (tests write)."""
    folder = tmp_path_factory.mktemp("tiny")
    path = write_district(generate_district("tiny", seed=7), folder / "tiny.gpkg")
    with (
        loaded_database(settings, f"gridmap_plans_{os.getpid()}", [Path(path)]) as url,
        running_server(url, folder) as server,
    ):
        yield server


def _wait(server: LiveServer, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = server.client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError("regrid job did not finish")


def _regrid(server: LiveServer, **body: Any) -> dict[str, Any]:
    started = server.client.post("/plans", json={"district": TINY, **body})
    assert started.status_code == 202, started.text
    return _wait(server, started.json()["job_id"])


def test_regrid_inspect_edit_publish(planner: LiveServer) -> None:
    client = planner.client
    plans = client.get("/plans", params={"district": TINY}).json()
    published = next(p for p in plans if p["status"] == "published")
    job = _regrid(planner, target=16, seed=3)
    assert job["status"] == "done", job
    plan_id = job["plan_id"]

    plan = client.get(f"/plans/{plan_id}").json()
    assert plan["status"] == "draft" and plan["grids"] == 16
    assert plan["parent_id"] == published["plan_id"]

    metrics = client.get(f"/plans/{plan_id}/metrics").json()
    assert metrics["guarantee_problems"] == []
    assert metrics["summary"]["coverage_valid"] is True
    assert len(metrics["grids"]) == 16

    crosswalk = client.get(f"/plans/{plan_id}/crosswalk").json()
    old_codes = {
        f["id"] for f in client.get("/grids", params={"district": TINY}).json()["features"]
    }
    assert {row["old_code"] for row in crosswalk} == old_codes  # every old grid is accounted for
    assert sum(row["households"] for row in crosswalk) == 4800

    grids = client.get(f"/plans/{plan_id}/grids").json()["features"]
    first = grids[0]
    renamed = client.post(
        f"/plans/{plan_id}/edits", json={"op": "rename", "grid_code": first["id"], "name": "新名字"}
    )
    assert renamed.status_code == 200, renamed.text
    names = {
        f["id"]: f["properties"]["name"]
        for f in client.get(f"/plans/{plan_id}/grids").json()["features"]
    }
    assert names[first["id"]] == "新名字"

    # Merging grids of different communities breaks nesting: refused, nothing changed.
    by_community: dict[str, list[str]] = {}
    for f in grids:
        by_community.setdefault(f["properties"]["community_code"], []).append(f["id"])
    a, b = (codes[0] for codes in list(by_community.values())[:2])
    refused = client.post(f"/plans/{plan_id}/edits", json={"op": "merge", "codes": [a, b]})
    assert refused.status_code in (409, 422), refused.text
    assert client.get(f"/plans/{plan_id}").json()["grids"] == 16

    # A split line that misses the grid is refused with the reason.
    far = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}
    missed = client.post(
        f"/plans/{plan_id}/edits", json={"op": "split", "grid_code": a, "line": far}
    )
    assert missed.status_code == 422
    assert missed.json()["errors"][0]["field"] == "line"

    compared = client.get("/plans/compare", params={"a": published["plan_id"], "b": plan_id}).json()
    assert compared["b"]["summary"]["grids"] == 16

    # A point inside a new grid: before publishing it answers with the old plan.
    centre = shapely.geometry.shape(grids[5]["geometry"]).representative_point()
    before = client.get("/lookup", params={"lon": centre.x, "lat": centre.y}).json()
    assert before["plan_id"] == published["plan_id"]

    # The maps draw the draft and the comparison (regridded plans are dense: a real test).
    for path in (
        f"/maps/workload?district={TINY}&plan={plan_id}",
        f"/maps/compare?district={TINY}&a={published['plan_id']}&b={plan_id}",
    ):
        page = client.get(path)
        assert page.status_code == 200, page.text[:500]
        assert "gm-legend" in page.text

    done = client.post(f"/plans/{plan_id}/publish")
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["retired_plan_id"] == published["plan_id"]
    assert result["buildings_unassigned"] == 0
    assert (
        len(result["teams_carried"]) + result["teams_kept"] + len(result["grids_needing_team"])
        == 16
    )

    time.sleep(2.1)  # the lookup cache re-reads published plans every 2 s
    after = client.get("/lookup", params={"lon": centre.x, "lat": centre.y}).json()
    assert after["plan_id"] == plan_id
    assert after["grid_code"] == grids[5]["id"]
    counts = client.get(f"/districts/{TINY}").json()
    assert counts["grids"] == 16 and counts["plan_id"] == plan_id

    # History: lookups as of a date before the publish use the retired plan.
    old = client.get(
        "/lookup", params={"lon": centre.x, "lat": centre.y, "as_of": "2020-01-01"}
    ).json()
    assert old["grid_code"] is None  # no plan was in force in 2020

    for path in (f"/maps/hotspots?district={TINY}", f"/maps/workload?district={TINY}"):
        assert client.get(path).status_code == 200, path

    again = client.post(f"/plans/{plan_id}/publish")
    assert again.status_code == 409


def test_stale_draft_cannot_be_published(planner: LiveServer) -> None:
    first = _regrid(planner, households=[250, 450], seed=1)
    second = _regrid(planner, target=14, seed=2)
    assert first["status"] == second["status"] == "done"
    pub = planner.client.post(f"/plans/{second['plan_id']}/publish")
    assert pub.status_code == 200, pub.text
    stale = planner.client.post(f"/plans/{first['plan_id']}/publish")
    assert stale.status_code == 409
    assert "published now" in stale.json()["detail"]


#: Regrid goals, each as (target, households band, weights) and the field a refusal names
#: (None: a good goal). With target and band together the target fixes the count.
GOALS = [
    pytest.param(12, None, None, None, id="target"),
    pytest.param(None, (250, 450), None, None, id="band"),
    pytest.param(12, (300, 500), None, None, id="target-and-band"),
    pytest.param(10, None, {"households": 1.0, "residents": 0.5}, None, id="weighted"),
    pytest.param(None, None, None, "target", id="neither"),
    pytest.param(0, None, None, "target", id="no-grids"),
    pytest.param(2, None, None, "target", id="below-the-4-communities"),
    pytest.param(100_000, None, None, "target", id="above-the-buildings"),
    pytest.param(None, (500, 300), None, "households", id="band-upside-down"),
    pytest.param(12, (0, 300), None, "households", id="band-from-zero"),
    pytest.param(None, (90_000, 95_000), None, "households", id="band-no-community-meets"),
    pytest.param(12, None, {"cars": 1.0}, "weights.cars", id="unknown-load"),
    pytest.param(12, None, {"households": -1.0}, "weights.households", id="negative-weight"),
    pytest.param(12, None, {"households": 0.0}, "weights", id="nothing-weighed"),
]

Band = tuple[int, int] | None
Weights = dict[str, float] | None
#: What a path answered: the draft's number of grids, or the field its refusal named.
Outcome = tuple[str, int | str | None]


def _by_function(server: LiveServer, target: int | None, band: Band, weights: Weights) -> Outcome:
    with transaction(server.database_url) as session:
        inputs = plan_inputs(session, TINY, open_reports=False)
    try:
        request = RegridRequest(
            target=target, households_band=band, seed=1, **({"weights": weights} if weights else {})
        )
        result = regrid(
            inputs.communities,
            inputs.grids,
            inputs.buildings,
            request,
            roads=inputs.roads,
            used_codes=inputs.used_codes,
        )
    except InvalidInput as refusal:
        return "refused", refusal.field
    return "grids", len(result.grids)


def _by_cli(server: LiveServer, target: int | None, band: Band, weights: Weights) -> Outcome:
    args = ["regrid", "--district", TINY, "--seed", "1", "--json"]
    if target is not None:
        args += ["--target", str(target)]
    if band is not None:
        args += ["--households", f"{band[0]}-{band[1]}"]
    if weights:
        args += ["--weights", ",".join(f"{name}={value}" for name, value in weights.items())]
    said = CliRunner().invoke(cli_app, args, env={"GRIDMAP_DATABASE_URL": server.database_url})
    answer = json.loads(said.stdout)
    if said.exit_code:
        assert said.exit_code == 1 and answer["error"] is True, said.output
        return "refused", answer["field"]
    return "grids", answer["metrics"]["grids"]


def _by_http(server: LiveServer, target: int | None, band: Band, weights: Weights) -> Outcome:
    body: dict[str, Any] = {"district": TINY, "seed": 1}
    if target is not None:
        body["target"] = target
    if band is not None:
        body["households"] = list(band)
    if weights:
        body["weights"] = weights
    started = server.client.post("/plans", json=body)
    if started.status_code == 422:
        (error,) = started.json()["errors"]
        return "refused", error["field"]
    assert started.status_code == 202, started.text
    job = _wait(server, started.json()["job_id"])
    if job["status"] == "failed":  # what only the partition finds refuses the job instead
        return "refused", job["error"]["field"]
    return "grids", server.client.get(f"/plans/{job['plan_id']}").json()["grids"]


@pytest.mark.parametrize(("target", "band", "weights", "field"), GOALS)
def test_the_function_the_cli_and_http_agree_on_the_regrid_goal(
    planner: LiveServer, target: int | None, band: Band, weights: Weights, field: str | None
) -> None:
    """One rule (``RegridRequest``): every path accepts the same goals, refuses the same ones
    naming the same field, and a good goal gives the same number of grids on each."""
    before = len(planner.client.get("/plans", params={"district": TINY}).json())
    answers = {
        path.__name__: path(planner, target, band, weights)
        for path in (_by_function, _by_cli, _by_http)
    }
    assert len(set(answers.values())) == 1, answers
    kind, value = answers["_by_function"]
    after = len(planner.client.get("/plans", params={"district": TINY}).json())
    if field is None:
        assert kind == "grids" and (target is None or value == target)
        assert after == before + 2  # one draft by the CLI, one by HTTP
    else:
        assert (kind, value) == ("refused", field)
        assert after == before


def test_unknown_district_and_plan(planner: LiveServer) -> None:
    assert (
        planner.client.post("/plans", json={"district": "000000", "target": 5}).status_code == 404
    )
    assert planner.client.get("/plans/99999").status_code == 404
    assert planner.client.get("/jobs/nope").status_code == 404
