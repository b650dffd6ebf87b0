"""The lookup rule over HTTP, in SQL, in memory and in the CLI, on the hand-drawn district."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.cli import app as cli_app
from geo.crs import Coordsys, wgs84_to_bd09
from geo.store.lookup import GridLookup
from geo.store.session import session_factory, transaction
from tests.api.conftest import LiveServer
from tests.handmade import stored_layers

GRIDS = stored_layers()["grids"]
VERTICES = np.unique(shapely.get_coordinates(GRIDS.geometry.to_numpy()), axis=0)


def _edge_midpoints() -> np.ndarray:
    rings = shapely.get_rings(shapely.get_parts(GRIDS.geometry.to_numpy()))
    out = []
    for ring in rings:
        xy = shapely.get_coordinates(ring)
        out.extend((xy[:-1] + xy[1:]) / 2)
    return np.unique(np.array(out), axis=0)


MIDPOINTS = _edge_midpoints()
XMIN, YMIN, XMAX, YMAX = GRIDS.total_bounds

#: Just outside edges: midpoints moved 3 mm and 3 cm east (on, then off, the boundary).
NUDGED = [(x + d / 86_600, y) for x, y in MIDPOINTS for d in (0.003, 0.03)]

points = st.one_of(
    st.sampled_from([tuple(v) for v in VERTICES]),
    st.sampled_from([tuple(v) for v in MIDPOINTS]),
    st.sampled_from(NUDGED),
    st.tuples(
        st.floats(XMIN - 0.01, XMAX + 0.01, allow_nan=False),
        st.floats(YMIN - 0.01, YMAX + 0.01, allow_nan=False),
    ),
)


#: Within this of a grid it falls outside of, a point is on that grid's boundary (the rule).
ON_EDGE_M = 0.01


def oracle(lon: float, lat: float) -> str | None:
    """Brute force: every grid whose closed polygon covers the point, the smallest code
    winning; else the nearest grid if it is within ON_EDGE_M (measured in local metres)."""
    p = shapely.Point(lon, lat)
    covering = sorted(c for c, g in zip(GRIDS["code"], GRIDS.geometry, strict=True) if g.covers(p))
    if covering:
        return covering[0]
    kx = math.cos(math.radians(lat)) * 111_320.0
    scaled = [
        shapely.transform(g, lambda xy: (xy - [lon, lat]) * [kx, 111_320.0]) for g in GRIDS.geometry
    ]
    near = sorted(
        (float(shapely.distance(g, shapely.Point(0, 0))), c)
        for c, g in zip(GRIDS["code"], scaled, strict=True)
    )
    return near[0][1] if near and near[0][0] <= ON_EDGE_M else None


def sql_lookup(session: Session, lon: float, lat: float, plan_id: int | None) -> str | None:
    """The rule in SQL, the oracle in the database: ST_Covers, smallest code on shared edges,
    else the nearest grid within ON_EDGE_M (geodesic)."""
    return session.scalar(
        text(
            """WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4326) AS pt)
               SELECT code FROM grids, p
               WHERE plan_id = :plan AND ST_DWithin(geom::geography, pt::geography, :edge)
               ORDER BY NOT ST_Covers(geom, pt),
                        CASE WHEN ST_Covers(geom, pt) THEN 0
                             ELSE ST_Distance(geom::geography, pt::geography) END,
                        code COLLATE "C"
               LIMIT 1"""
        ),
        {"plan": plan_id, "x": lon, "y": lat, "edge": ON_EDGE_M},
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(point=points)
def test_every_path_agrees(live_server: LiveServer, point: tuple[float, float]) -> None:
    lon, lat = float(point[0]), float(point[1])
    expected = oracle(lon, lat)
    answer = live_server.client.get("/lookup", params={"lon": repr(lon), "lat": repr(lat)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["grid_code"] == expected
    with transaction(live_server.database_url) as session:
        plan_id = body["plan_id"]
        assert sql_lookup(session, lon, lat, plan_id) == expected
        memory = GridLookup(session_factory(live_server.database_url)).lookup(lon, lat)
    assert memory.grid_code == expected
    assert memory.on_boundary == body["on_boundary"]
    if expected is None:
        assert body["nearest_grid_code"] is not None
        assert body["distance_m"] > 0
    else:
        grid = GRIDS.geometry[GRIDS["code"] == expected].iloc[0]
        # On the boundary: on it, or outside the grid within ON_EDGE_M of it.
        covered = grid.covers(shapely.Point(lon, lat))
        touching = grid.boundary.distance(shapely.Point(lon, lat)) == 0 or not covered
        assert body["on_boundary"] == touching


def test_cli_prints_the_same_answer(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", live_server.database_url)
    lon, lat = float(MIDPOINTS[3][0]), float(MIDPOINTS[3][1])
    result = CliRunner().invoke(
        cli_app, ["lookup", "--lon", repr(lon), "--lat", repr(lat), "--json"]
    )
    assert result.exit_code == 0, result.output
    api = live_server.client.get("/lookup", params={"lon": repr(lon), "lat": repr(lat)}).json()
    assert json.loads(result.stdout) == api


def test_shared_vertex_of_four_grids_goes_to_smallest_code(live_server: LiveServer) -> None:
    # (x=2, y=2) in the drawing: the corner shared by G12 and G31 on the outer edge.
    lon, lat = 120.38 + 2 * 0.005, 36.06 + 2 * 0.005
    body = live_server.client.get("/lookup", params={"lon": lon, "lat": lat}).json()
    assert body["grid_code"] == "370202001001002"
    assert body["on_boundary"] is True


def test_point_at_sea_is_unassigned_with_nearest_grid(live_server: LiveServer) -> None:
    body = live_server.client.get("/lookup", params={"lon": 120.40125, "lat": 36.065}).json()
    assert body["grid_code"] is None
    assert body["nearest_grid_code"] in ("370202002001002", "370202002001003")
    # Halfway across the strait: 0.00125 degrees of longitude at 36° N, about 112 m.
    assert 105 < body["distance_m"] < 120
    snapped = live_server.client.get(
        "/lookup", params={"lon": 120.40125, "lat": 36.065, "snap_m": 300}
    ).json()
    assert snapped["grid_code"] == body["nearest_grid_code"]
    assert snapped["snapped"] is True


@pytest.mark.parametrize(
    ("coordsys", "label"), [(Coordsys.GCJ02, "GCJ-02"), (Coordsys.BD09, "BD-09")]
)
def test_offset_input_is_converted_before_lookup(
    live_server: LiveServer, coordsys: Coordsys, label: str
) -> None:
    """A point copied from AMap or Baidu lands in its grid only once converted."""
    lon, lat = 120.3825, 36.065  # inside G11
    olon, olat = (float(v[0]) for v in coordsys.from_wgs84(np.array([lon]), np.array([lat])))
    body = live_server.client.get(
        "/lookup", params={"lon": olon, "lat": olat, "coordsys": coordsys.value}
    ).json()
    assert body["grid_code"] == "370202001001001"
    assert body["coordsys"] == coordsys.value
    assert label in body["converted"] and "WGS 84" in body["converted"]
    assert math.isclose(body["lon"], lon, abs_tol=1e-9)
    assert math.isclose(body["lat"], lat, abs_tol=1e-9)
    raw = live_server.client.get("/lookup", params={"lon": olon, "lat": olat}).json()
    assert raw["grid_code"] != "370202001001001"  # the offset lands elsewhere
    assert raw["converted"] is None and raw["coordsys"] == "wgs84"


def test_batch_lookup_converts_bd09(live_server: LiveServer) -> None:
    wgs = [(120.3825 + i * 0.005, 36.065) for i in range(4)]
    blon, blat = wgs84_to_bd09(*np.array(wgs).T)
    pts = [
        {"id": i, "lon": float(x), "lat": float(y)}
        for i, (x, y) in enumerate(zip(blon, blat, strict=True))
    ]
    answer = live_server.client.post("/lookup", params={"coordsys": "bd09"}, json=pts)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [a["grid_code"] for a in body] == [oracle(x, y) for x, y in wgs]
    assert all("BD-09" in a["converted"] and a["coordsys"] == "bd09" for a in body)
    wrong = live_server.client.post("/lookup", params={"coordsys": "baidu"}, json=pts)
    assert wrong.status_code == 422
    assert any("coordsys" in e["field"] for e in wrong.json()["errors"]), wrong.json()


def test_cli_converts_bd09_as_the_api_does(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", live_server.database_url)
    blon, blat = (repr(float(v)) for v in wgs84_to_bd09(120.3925, 36.065))
    result = CliRunner().invoke(
        cli_app, ["lookup", "--lon", blon, "--lat", blat, "--coordsys", "bd09", "--json"]
    )
    assert result.exit_code == 0, result.output
    api = live_server.client.get(
        "/lookup", params={"lon": blon, "lat": blat, "coordsys": "bd09"}
    ).json()
    assert json.loads(result.stdout) == api
    assert api["grid_code"] == oracle(120.3925, 36.065)


def test_cgcs2000_is_accepted_as_wgs84(live_server: LiveServer) -> None:
    body = live_server.client.get(
        "/lookup", params={"lon": 120.3825, "lat": 36.065, "crs": "EPSG:4490"}
    ).json()
    assert body["grid_code"] == "370202001001001"


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"lon": 36.065, "lat": 120.3825}, "lat", "swapped"),
        ({"lon": "nan", "lat": 36.0}, "lon", "finite"),
        ({"lon": 120.0, "lat": "inf"}, "lat", "finite"),
        ({"lon": 200.0, "lat": 36.0}, "lon", "between -180 and 180"),
        ({"lat": 36.0}, "lon", "required"),
        ({"lon": "east", "lat": 36.0}, "lon", "number"),
        ({"lon": 120.38, "lat": 36.06, "district": "999999"}, "district", "no district"),
        ({"lon": 120.38, "lat": 36.06, "crs": "EPSG:3857"}, "crs", ""),
        ({"lon": 120.38, "lat": 36.06, "coordsys": "baidu"}, "coordsys", "gcj02, bd09"),
        ({"lon": 120.38, "lat": 36.06, "snap_m": -1}, "snap_m", "between 0 and 10000"),
    ],
)
def test_bad_input_gets_a_problem_naming_the_field(
    live_server: LiveServer, params: dict[str, object], field: str, words: str
) -> None:
    answer = live_server.client.get("/lookup", params=params)
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == answer.status_code
    assert any(e["field"] == field for e in body["errors"]), body
    assert words in body["detail"]


def test_batch_lookup_json_and_geojson(live_server: LiveServer) -> None:
    pts = [{"id": i, "lon": 120.3825 + i * 0.005, "lat": 36.065} for i in range(4)]
    answer = live_server.client.post("/lookup", json=pts)
    assert answer.status_code == 200, answer.text
    codes = [a["grid_code"] for a in answer.json()]
    assert codes == [oracle(p["lon"], p["lat"]) for p in pts]
    assert [a["id"] for a in answer.json()] == [0, 1, 2, 3]
    geojson = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": p["id"],
                "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
            }
            for p in pts
        ],
    }
    again = live_server.client.post("/lookup", json=geojson)
    assert [a["grid_code"] for a in again.json()] == codes
    for feature in geojson["features"]:
        feature["properties"] = {"id": f"p{feature.pop('id')}"}
    named = live_server.client.post("/lookup", json=geojson).json()
    assert [a["id"] for a in named] == ["p0", "p1", "p2", "p3"]  # ids kept in properties too


def test_batch_over_the_limit_is_refused(live_server: LiveServer) -> None:
    pts = [{"lon": 120.3825, "lat": 36.065}] * 10_001
    answer = live_server.client.post("/lookup", json=pts)
    assert answer.status_code == 422
    assert "batch limit" in answer.json()["detail"]


def test_report_is_assigned_on_arrival(live_server: LiveServer) -> None:
    before = live_server.client.get("/districts/370202").json()["reports"]
    answer = live_server.client.post(
        "/reports",
        json={
            "lon": 120.3825,
            "lat": 36.065,
            "category": "sanitation",
            "subcategory": "garbage_pile",
        },
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["grid_code"] == "370202001001001"
    assert live_server.client.get("/districts/370202").json()["reports"] == before + 1
    refused = live_server.client.post(
        "/reports", json={"lon": 120.3825, "lat": 36.065, "category": "x", "status": "closed"}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "status"


def test_grids_as_geojson(live_server: LiveServer) -> None:
    fc = live_server.client.get("/grids", params={"district": "370202"}).json()
    assert fc["type"] == "FeatureCollection"
    assert sorted(f["id"] for f in fc["features"]) == sorted(GRIDS["code"])
    one = live_server.client.get("/grids/370202002001003").json()
    assert one["geometry"]["type"] == "MultiPolygon"
    assert live_server.client.get("/grids/nope").status_code == 404


@pytest.mark.parametrize(
    ("query", "building"),
    [
        ("山东路5号5栋", "B0004"),
        ("青岛市市南区山东路五号五栋", "B0004"),
        ("山东路５号５栋", "B0004"),
    ],
)
def test_address_lookup_finds_the_building(
    live_server: LiveServer, query: str, building: str
) -> None:
    body = live_server.client.get("/lookup", params={"address": query}).json()
    assert body["best"]["building_id"] == building, body
    assert body["best"]["grid_code"] is not None
    assert body["ambiguous"] is False


def test_address_without_building_number_is_ambiguous_or_unique(live_server: LiveServer) -> None:
    body = live_server.client.get("/lookup", params={"address": "山东路"}).json()
    assert body["best"] is None
    assert body["ambiguous"] is True or not body["candidates"]


def test_empty_address_is_refused(live_server: LiveServer) -> None:
    answer = live_server.client.get("/lookup", params={"address": "  "})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "address"


def test_cli_refuses_coordinates_and_an_address_together(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", live_server.database_url)
    result = CliRunner().invoke(
        cli_app, ["lookup", "--lon", "120.39", "--lat", "36.065", "--address", "山东路1号"]
    )
    assert result.exit_code == 1
    assert "not both" in result.stderr and "Traceback" not in result.output
