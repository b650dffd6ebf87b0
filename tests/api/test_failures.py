"""Bad edit input and library failures, from the CLI and over HTTP: a line or a 4xx problem
naming the field (or the district, layer and feature), never a traceback or a 500.

The district is the hand-drawn one in a database of its own. A grid edited outside gridmap
into a bow-tie (as a planner's GIS connected to PostGIS could) makes GEOS fail inside a
regrid and an edit: the answer names that grid, and nothing is stored.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from api.cli import app
from geo.settings import GridmapSettings
from tests.api.conftest import LiveServer, loaded_database, running_server
from tests.geo.test_load import fingerprint
from tests.handmade import CODE

BOWTIE = "POLYGON((120.38 36.06, 120.385 36.07, 120.385 36.06, 120.38 36.07, 120.38 36.06))"
LINE = "LINESTRING (120.3825 36.059, 120.3825 36.071)"


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "500", "GRIDMAP_DATABASE_URL": url})


def one_line(text_: str) -> str:
    return " ".join(text_.split())


@pytest.fixture(scope="module")
def server(
    settings: GridmapSettings, handmade_gpkg: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with (
        loaded_database(settings, f"gridmap_failures_{os.getpid()}", [handmade_gpkg]) as url,
        running_server(url, tmp_path_factory.mktemp("failures")) as live,
    ):
        yield live


@pytest.fixture(scope="module")
def draft(server: LiveServer) -> int:
    result = invoke(
        server.database_url, "regrid", "--district", CODE, "--target", "9", "--seed", "1", "--json"
    )
    assert result.exit_code == 0, result.stderr
    return int(json.loads(result.stdout)["plan_id"])


def _codes(url: str, plan_id: int) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        codes = conn.execute(
            text("SELECT code FROM grids WHERE plan_id = :p ORDER BY code"), {"p": plan_id}
        ).scalars()
        out = list(codes)
    engine.dispose()
    return out


@contextmanager
def bowtie(url: str, plan_id: int | None) -> Iterator[str]:
    """The first grid of a plan (the published one when None) drawn as a bow-tie, then back."""
    engine = create_engine(url)
    plan = (
        f"{plan_id}"
        if plan_id is not None
        else "(SELECT id FROM grid_plans WHERE status = 'published')"
    )
    with engine.begin() as conn:
        code, geom = conn.execute(
            text(f"SELECT code, geom FROM grids WHERE plan_id = {plan} ORDER BY code LIMIT 1")
        ).one()
        conn.execute(
            text(
                f"UPDATE grids SET geom = ST_Multi(ST_GeomFromText(:w, 4326)) "
                f"WHERE plan_id = {plan} AND code = :c"
            ),
            {"w": BOWTIE, "c": code},
        )
    try:
        yield str(code)
    finally:
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE grids SET geom = :g WHERE plan_id = {plan} AND code = :c"),
                {"g": geom, "c": code},
            )
        engine.dispose()


# --- edit input ---------------------------------------------------------------------------

CLI_EDITS: dict[str, tuple[list[str], str]] = {
    "split without options": (["split"], "error: --grid: split needs --grid and --line"),
    "split without a line": (["split", "--grid", "G"], "error: --line: split needs --line"),
    "broken WKT": (
        ["split", "--grid", "G", "--line", "LINESTRING (120.38"],
        "error: --line: not valid WKT (ParseException: Expected number but encountered end",
    ),
    "a point for a line": (
        ["split", "--grid", "G", "--line", "POINT (120.38 36.06)"],
        "error: --line: not a LINESTRING in WKT (fix: draw it as LINESTRING (lon lat",
    ),
    "a collection 1000 deep": (
        ["split", "--grid", "G", "--line", "GEOMETRYCOLLECTION (" * 1000 + ")" * 1000],
        "error: --line: not a LINESTRING in WKT",
    ),
    "an infinite coordinate": (
        ["split", "--grid", "G", "--line", "LINESTRING (1e400 36, 120.39 36.07)"],
        "error: --line: a NaN or infinite coordinate",
    ),
    "an option of another edit": (
        ["split", "--grid", "G", "--line", LINE, "--codes", "a,b"],
        "error: --codes: split does not take --codes (fix: split takes --grid and --line)",
    ),
    "merge of one grid": (["merge", "--codes", "a,,a"], "error: --codes: needs at least 2 codes"),
    "move without a target": (["move", "--buildings", "B0001"], "error: --to: move needs --to"),
    "an empty name": (["rename", "--grid", "G", "--name", " "], "error: --name: must be non-empty"),
    "an unknown edit": (["paint"], "error: OP: unknown edit 'paint'"),
}


@pytest.mark.parametrize("case", CLI_EDITS.values(), ids=CLI_EDITS.keys())
def test_cli_edit_input_is_one_line_naming_the_option(
    case: tuple[list[str], str], server: LiveServer, draft: int
) -> None:
    args, says = case
    before = fingerprint(server.database_url)
    result = invoke(server.database_url, "plan", "edit", str(draft), *args)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert one_line(result.stderr).startswith(says), result.stderr
    assert fingerprint(server.database_url) == before


HTTP_EDITS: dict[str, tuple[dict[str, Any], str, str]] = {
    "split without a line (was a KeyError: 500)": (
        {"op": "split", "grid_code": "G"},
        "line",
        "split needs line",
    ),
    "merge without codes": ({"op": "merge"}, "codes", "merge needs codes"),
    "move without buildings": ({"op": "move", "to_code": "G"}, "building_ids", "move needs"),
    "rename without a name": ({"op": "rename", "grid_code": "G"}, "name", "rename needs name"),
    "broken WKT (was a GEOS traceback: 500)": (
        {"op": "split", "grid_code": "G", "line": "LINESTRING (1 2, 3"},
        "line",
        "not valid WKT (ParseException",
    ),
    "a polygon for a line": (
        {"op": "split", "grid_code": "G", "line": {"type": "Polygon", "coordinates": []}},
        "line",
        "not a GeoJSON LineString",
    ),
    "GeoJSON coordinates that are text": (
        {"op": "split", "grid_code": "G", "line": {"type": "LineString", "coordinates": ["a"]}},
        "line",
        "coordinates must be [lon, lat] pairs of numbers",
    ),
    "a line of one point": (
        {"op": "split", "grid_code": "G", "line": {"type": "LineString", "coordinates": [[1, 2]]}},
        "line",
        "needs two distinct points",
    ),
    "metres for degrees": (
        {"op": "split", "grid_code": "G", "line": "LINESTRING (264000 3994000, 265000 3994000)"},
        "line",
        "not in longitude/latitude",
    ),
    "an option of another edit": (
        {"op": "rename", "grid_code": "G", "name": "x", "to_code": "H"},
        "to_code",
        "rename does not take to_code",
    ),
    "an unknown grid": (
        {"op": "rename", "grid_code": "NOPE", "name": "x"},
        "grid_code",
        "no grid NOPE in the plan",
    ),
}


@pytest.mark.parametrize("case", HTTP_EDITS.values(), ids=HTTP_EDITS.keys())
def test_http_edit_input_is_a_422_naming_the_field(
    case: tuple[dict[str, Any], str, str], server: LiveServer, draft: int
) -> None:
    body, field, reason = case
    before = fingerprint(server.database_url)
    answer = server.client.post(f"/plans/{draft}/edits", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    error = answer.json()["errors"][0]
    assert error["field"] == field and reason in error["reason"], error
    assert fingerprint(server.database_url) == before


def test_a_good_edit_still_works(server: LiveServer, draft: int) -> None:
    code = _codes(server.database_url, draft)[0]
    answer = server.client.post(
        f"/plans/{draft}/edits", json={"op": "rename", "grid_code": code, "name": "海边网格"}
    )
    assert answer.status_code == 200, answer.text
    edits = server.client.get(f"/plans/{draft}").json()["params"]["edits"]
    assert edits[-1] == {"op": "rename", "grid_code": code, "name": "海边网格"}


# --- GEOS fails on a grid edited outside gridmap -------------------------------------------


def test_an_edit_that_geos_cannot_do_is_a_422_naming_the_grid(
    server: LiveServer, draft: int
) -> None:
    codes = _codes(server.database_url, draft)
    with bowtie(server.database_url, draft) as broken:
        before = fingerprint(server.database_url)
        answer = server.client.post(
            f"/plans/{draft}/edits", json={"op": "rename", "grid_code": codes[1], "name": "x"}
        )
        assert answer.status_code == 422, answer.text
        problem = answer.json()["errors"][0]
        assert problem["district"] == CODE and problem["layer"] == "grids"
        assert problem["feature"] == broken
        assert "TopologyException: side location conflict" in problem["reason"]
        said = invoke(
            server.database_url,
            "plan",
            "edit",
            str(draft),
            "rename",
            "--grid",
            codes[1],
            "--name",
            "x",
        )
        assert said.exit_code == 1
        assert one_line(said.stderr).startswith(
            f"error: district {CODE}, layer grids, feature {broken}: GEOS could not process"
        )
        assert "nothing was stored" in said.stderr
        assert fingerprint(server.database_url) == before


def test_a_regrid_that_geos_cannot_do_names_the_grid_and_stores_nothing(
    server: LiveServer,
) -> None:
    """A grid corrupted in the store (a bow-tie) is refused before GEOS meets it: the
    regrid names the grid and stores nothing (GEOS's own failures are translated the same
    way, see test_errors)."""
    with bowtie(server.database_url, None) as broken:
        before = fingerprint(server.database_url)
        result = invoke(server.database_url, "regrid", "--district", CODE, "--target", "9")
        assert result.exit_code == 1
        assert result.exception is None or isinstance(result.exception, SystemExit)
        said = one_line(result.stderr)
        assert f"layer grids, feature {broken}: the stored grid is not a valid polygon" in said
        assert "Self-intersection" in said and "nothing was stored" in said, said
        assert fingerprint(server.database_url) == before

        started = server.client.post("/plans", json={"district": CODE, "target": 9})
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        deadline = time.monotonic() + 60
        while (job := server.client.get(f"/jobs/{job_id}").json())["status"] not in (
            "done",
            "failed",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert job["status"] == "failed"
        assert job["error"]["problems"][0]["feature"] == broken
        assert "Self-intersection" in job["error"]["problems"][0]["reason"]
        assert fingerprint(server.database_url) == before
