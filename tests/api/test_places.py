"""Two districts loaded side by side, over HTTP and the CLI: points between and beyond them,
reports at sea, and addresses that name (or do not name) their district, street or community.

The districts are the hand-drawn 市南区 (370202) and 旅顺口区 (210212) of
``tests/neighbours.py``, six units east with a 500 m strait between them::

    370202                 strait            210212
    +---+---+---+---+  []    .  *        +---+---+---+---+  []
    |   |   |   |   |        a  b        |   |   |   |   |
    +---+---+---+---+                    +---+---+---+---+
    x=0            4  4.5-5  5.4 5.7     6              10  10.5-11
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from pyproj import Geod
from typer.testing import CliRunner

from api.cli import app as cli_app
from geo.grids import read_district, validate_district
from geo.settings import GridmapSettings
from geo.store.queries import store_district
from geo.store.session import transaction
from tests.api.conftest import LiveServer, loaded_database, running_server
from tests.handmade import UNIT, X0, Y0, write_handmade
from tests.neighbours import CODE as LUSHUN
from tests.neighbours import neighbour_layers

SHINAN = "370202"
GEOD = Geod(ellps="WGS84")


def at(x: float, y: float) -> dict[str, float]:
    return {"lon": X0 + x * UNIT, "lat": Y0 + y * UNIT}


@pytest.fixture(scope="module")
def server(
    settings: GridmapSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("places")
    shinan = write_handmade(folder / "shinan")
    lushun = write_handmade(folder / "lushun", "gpkg", **neighbour_layers())
    with loaded_database(settings, f"gridmap_places_{os.getpid()}", shinan) as url:
        data, _ = validate_district(read_district(lushun))
        with transaction(url) as session:
            store_district(session, data, source=str(lushun[0]))
        with running_server(url, folder) as live:
            yield live


# --- points outside every district ----------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "nearest", "grid", "edge"),
    [
        (5.4, 0.75, SHINAN, "370202002001003", (5.0, 0.75)),  # nearer the island
        (5.7, 1.5, LUSHUN, "210212001001001", (6.0, 1.5)),  # nearer 旅顺口区
    ],
)
def test_a_point_between_districts_has_no_district_and_names_the_nearest(
    server: LiveServer,
    x: float,
    y: float,
    nearest: str,
    grid: str,
    edge: tuple[float, float],
) -> None:
    body = server.client.get("/lookup", params=at(x, y)).json()
    assert body["grid_code"] is None and body["district_code"] is None
    assert body["plan_id"] is None and body["community_code"] is None
    assert body["nearest_district_code"] == nearest
    assert body["nearest_grid_code"] == grid
    end = at(*edge)
    _, _, metres = GEOD.inv(at(x, y)["lon"], at(x, y)["lat"], end["lon"], end["lat"])
    assert body["distance_m"] == pytest.approx(metres, rel=0.005)
    batch = server.client.post("/lookup", json=[{**at(x, y), "id": "p"}]).json()
    assert batch == [{"id": "p", **body}]


def test_snapping_assigns_the_point_and_gives_it_a_district(server: LiveServer) -> None:
    body = server.client.get("/lookup", params={**at(5.7, 1.5), "snap_m": 500}).json()
    assert body["snapped"] is True and body["grid_code"] == "210212001001001"
    assert body["district_code"] == LUSHUN and body["plan_id"] is not None
    assert body["nearest_district_code"] == LUSHUN


def test_a_point_of_another_district_is_outside_the_one_asked_for(server: LiveServer) -> None:
    inside_lushun = at(7.5, 1.0)
    assert server.client.get("/lookup", params=inside_lushun).json()["district_code"] == LUSHUN
    body = server.client.get("/lookup", params={**inside_lushun, "district": SHINAN}).json()
    assert body["grid_code"] is None and body["district_code"] is None
    assert body["nearest_district_code"] == SHINAN and body["distance_m"] > 1000


def test_cli_lookup_outside_every_district(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", server.database_url)
    point = at(5.7, 1.5)
    args = ["lookup", "--lon", repr(point["lon"]), "--lat", repr(point["lat"])]
    result = CliRunner().invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == server.client.get("/lookup", params=point).json()
    said = CliRunner().invoke(cli_app, args, env={"COLUMNS": "300"}).stdout
    assert f"outside every district: the nearest is district {LUSHUN}" in said


# --- reports --------------------------------------------------------------------------------


def _reports(server: LiveServer) -> dict[str, int]:
    return {c: server.client.get(f"/districts/{c}").json()["reports"] for c in (SHINAN, LUSHUN)}


def test_a_report_at_sea_is_refused_naming_the_nearest_district(server: LiveServer) -> None:
    """100 km east of 旅顺口区: no grid team can take it, so it is not stored."""
    before = _reports(server)
    sea = {"lon": 121.6, "lat": 36.065}
    answer = server.client.post("/reports", json={**sea, "category": "sanitation"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    (error,) = problem["errors"]
    assert error["field"] == "lon" and "fix" in error
    assert "lon 121.600000, lat 36.065000 is outside every district" in problem["detail"]
    assert f"nearest is district {LUSHUN}" in problem["detail"]
    metres = float(problem["detail"].split(", ")[2].split(" m away")[0].replace(",", ""))
    assert 95_000 < metres < 110_000
    assert _reports(server) == before


def test_a_report_inside_the_second_district_is_filed_there(server: LiveServer) -> None:
    before = _reports(server)
    answer = server.client.post("/reports", json={**at(9.5, 1.0), "category": "sanitation"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["district_code"] == LUSHUN
    assert answer.json()["grid_code"] == "210212002001002"
    assert _reports(server) == {**before, LUSHUN: before[LUSHUN] + 1}


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "building", "district"),
    [
        ("大连市旅顺口区山东路5号5栋", "L0004", LUSHUN),
        ("旅顺口区山东路五号五号楼", "L0004", LUSHUN),
        ("得胜街道 山东路5号5栋", "L0004", LUSHUN),
        ("市南区山东路5号5栋", "B0004", SHINAN),
        ("青岛市市南区八大关街道山东路5号5栋", "B0004", SHINAN),
        ("山东路50号5栋", "B0049", SHINAN),  # only 市南区 has it: no place needed
        ("黄河路3号3栋", "L0038", LUSHUN),
    ],
)
def test_an_address_naming_its_place_is_matched_only_there(
    server: LiveServer, query: str, building: str, district: str
) -> None:
    body = server.client.get("/lookup", params={"address": query}).json()
    assert body["best"] is not None, body
    assert (body["best"]["building_id"], body["best"]["district_code"]) == (building, district)
    assert body["ambiguous"] is False
    assert {c["district_code"] for c in body["candidates"]} == {district}


def test_an_address_naming_no_place_is_ambiguous_across_districts(server: LiveServer) -> None:
    body = server.client.get("/lookup", params={"address": "山东路5号5栋"}).json()
    assert body["ambiguous"] is True and body["best"] is None
    assert {(c["building_id"], c["district_code"]) for c in body["candidates"]} == {
        ("B0004", SHINAN),
        ("L0004", LUSHUN),
    }
    assert "name the district" in body["reason"]
    same_community = server.client.get("/lookup", params={"address": "汇泉社区山东路5号5栋"})
    assert same_community.json()["ambiguous"] is True  # both districts have a 汇泉社区
    narrowed = server.client.get(
        "/lookup", params={"address": "山东路5号5栋", "district": LUSHUN}
    ).json()
    assert narrowed["best"]["building_id"] == "L0004"


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("大连市旅顺口区山东路50号5栋", "市南区"),
        ("市南区黄河路3号3栋", "旅顺口区"),
    ],
)
def test_a_place_without_the_building_picks_nothing(
    server: LiveServer, query: str, where: str
) -> None:
    body = server.client.get("/lookup", params={"address": query}).json()
    assert body["best"] is None and body["ambiguous"] is False and body["candidates"] == []
    assert f"there is one in {where}" in body["reason"]


def test_a_district_that_is_not_loaded_matches_nothing(server: LiveServer) -> None:
    body = server.client.get("/lookup", params={"address": "大连市甘井子区山东路5号5栋"}).json()
    assert body["best"] is None and body["candidates"] == []
    assert "no district named 甘井子区 is loaded" in body["reason"]


def test_a_community_is_found_by_name_with_its_grids(server: LiveServer) -> None:
    body = server.client.get("/lookup", params={"address": "旅顺口区汇泉社区"}).json()
    assert body["best"] is None and body["candidates"] == [] and body["ambiguous"] is False
    assert body["units"] == [
        {
            "level": "community",
            "code": "210212001001",
            "name": "汇泉社区",
            "district_code": LUSHUN,
            "street_code": "210212001",
            "community_code": None,
            "grids": ["210212001001001", "210212001001002"],
        }
    ]
    both = server.client.get("/lookup", params={"address": "汇泉社区"}).json()
    assert both["ambiguous"] is True
    assert [u["district_code"] for u in both["units"]] == [LUSHUN, SHINAN]


@pytest.mark.parametrize(
    ("query", "code", "community"),
    [
        ("得胜网格", "210212001002001", "210212001002"),
        ("龙河社区龙河二网格", "210212002001002", "210212002001"),
        ("太平角网格", "370202001002001", "370202001002"),
    ],
)
def test_a_grid_is_found_by_name(server: LiveServer, query: str, code: str, community: str) -> None:
    body = server.client.get("/lookup", params={"address": query}).json()
    (unit,) = body["units"]
    assert (unit["level"], unit["code"], unit["community_code"]) == ("grid", code, community)
    assert unit["grids"] is None


def test_cli_address_lookup_gives_the_same_answer(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", server.database_url)
    for query in ("旅顺口区汇泉社区", "大连市旅顺口区山东路5号5栋"):
        result = CliRunner().invoke(cli_app, ["lookup", "--address", query, "--json"])
        assert result.exit_code == 0, result.output
        api = server.client.get("/lookup", params={"address": query}).json()
        assert json.loads(result.stdout) == api
    said = CliRunner().invoke(cli_app, ["lookup", "--address", "旅顺口区汇泉社区"]).stdout
    assert "community 210212001001 汇泉社区" in said and "210212001001002" in said
