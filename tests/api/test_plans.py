"""The planner's flow over HTTP on the tiny fixture district: regrid, inspect, edit, publish."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely

from fixtures.district import generate_district, write_district
from geo.settings import GridmapSettings
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


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target": 2}, "target"),  # below the 4 communities
        ({"target": 100_000}, "target"),  # above the buildings
        ({"target": 12, "households": [300, 500]}, ""),
        ({"households": [500, 300]}, ""),
        ({"target": 12, "weights": {"cars": 1}}, "weights.cars"),
    ],
)
def test_bad_regrid_requests_are_refused(
    planner: LiveServer, body: dict[str, Any], field: str
) -> None:
    before = len(planner.client.get("/plans", params={"district": TINY}).json())
    answer = planner.client.post("/plans", json={"district": TINY, **body})
    assert answer.status_code == 422, answer.text
    assert any(e["field"] == field for e in answer.json()["errors"]), answer.json()
    assert len(planner.client.get("/plans", params={"district": TINY}).json()) == before


def test_unknown_district_and_plan(planner: LiveServer) -> None:
    assert (
        planner.client.post("/plans", json={"district": "000000", "target": 5}).status_code == 404
    )
    assert planner.client.get("/plans/99999").status_code == 404
    assert planner.client.get("/jobs/nope").status_code == 404
