"""Districts among districts: a load whose outline overlaps a stored district is refused.

Properties of ``geo.districts.district_overlaps`` on boxes drawn in lon/lat (as districts
are stored) with offsets in metres, then ``gridmap load`` end to end against the test
database, with the hand-drawn district moved far from where other modules load it::

    base 379911     overlapping 379912 (half a unit east)    touching 379913 (at x=5)
    +-------+        +-------+                                 +-------+
    |       |[]      |       |[]                          []   |       |
    +-------+        +-------+                                 +-------+
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from api.cli import app
from geo.districts import district_overlaps
from geo.settings import GridmapSettings
from tests.handmade import UNIT, handmade_layers, write_handmade
from tests.neighbours import shifted

TOLERANCE_M = 0.01
runner = CliRunner()

# --- the geometry ---------------------------------------------------------------------------


def metres_per_degree(lat: float) -> tuple[float, float]:
    """(lon, lat) metres per degree on the WGS 84 ellipsoid at ``lat``."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    rad = math.pi / 180
    w = 1 - e2 * math.sin(lat * rad) ** 2
    return rad * a / math.sqrt(w) * math.cos(lat * rad), rad * a * (1 - e2) / w**1.5


@settings(max_examples=40, deadline=None)
@given(
    lon=st.floats(121.3, 121.8),
    lat=st.floats(38.7, 39.1),
    width_m=st.floats(200, 4000),
    height_m=st.floats(200, 4000),
    shift_m=st.floats(-0.45, 0.45),
    overlap_m=st.one_of(
        st.floats(-50, 0.5 * TOLERANCE_M),  # a gap, a shared edge or noise
        st.floats(2 * TOLERANCE_M, 150),  # real shared ground
    ),
)
def test_overlap_counts_only_where_wider_than_the_tolerance(
    lon: float,
    lat: float,
    width_m: float,
    height_m: float,
    shift_m: float,
    overlap_m: float,
) -> None:
    """B's west edge lies ``overlap_m`` west of A's east edge and ``shift_m`` of A's height
    north: the overlap is a strip ``overlap_m`` wide, measured in metres whatever its
    length; anything thinner than the tolerance is noise."""
    mx, my = metres_per_degree(lat)
    east = lon + width_m / mx
    a = box(lon, lat, east, lat + height_m / my)
    b_south = lat + shift_m * height_m / my
    b = box(east - overlap_m / mx, b_south, east + width_m / mx, b_south + height_m / my)
    found = district_overlaps("A", a, [("B", "乙区", b)], TOLERANCE_M)
    back = district_overlaps("B", b, [("A", "甲区", a)], TOLERANCE_M)
    if overlap_m <= 0.5 * TOLERANCE_M:
        assert found == [] and back == []
        return
    assert len(found) == 1 and len(back) == 1
    overlap = found[0]
    shared_height = height_m * (1 - abs(shift_m))
    assert overlap.area_m2 == pytest.approx(overlap_m * shared_height, rel=0.01, abs=0.01)
    assert overlap.width_m == pytest.approx(min(overlap_m, shared_height), rel=0.01, abs=0.01)
    assert back[0].area_m2 == pytest.approx(overlap.area_m2, rel=1e-6, abs=0.01)
    assert a.intersection(b).buffer(1e-9).contains(Point(overlap.lon, overlap.lat))


def test_the_refusal_names_both_districts_the_area_and_where() -> None:
    a = box(121.50, 38.90, 121.52, 38.92)
    b = box(121.51, 38.91, 121.53, 38.93)
    (overlap,) = district_overlaps("210299", a, [("210204", "沙河口区", b)], TOLERANCE_M)
    problem = overlap.problem("district.gpkg")
    said = str(problem)
    assert problem.layer == "district" and problem.feature == "210299"
    assert "210204 沙河口区" in said and "m²" in said and "wide" in said
    assert f"({overlap.lon:.6f}, {overlap.lat:.6f})" in said
    assert "--replace" in said and problem.fix is not None
    assert 121.51 < overlap.lon < 121.52 and 38.91 < overlap.lat < 38.92
    mx, my = metres_per_degree(38.915)
    assert overlap.area_m2 == pytest.approx(0.01 * mx * 0.01 * my, rel=0.002)


@pytest.mark.parametrize("value", ["0", "-0.01", "1.5", "nan"])
def test_tolerance_setting_refuses_unsafe_values(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_TOLERANCE_M", value)
    with pytest.raises(ValueError, match="GRIDMAP_TOLERANCE_M"):
        GridmapSettings(_env_file=None)  # type: ignore[call-arg]


def test_tolerance_setting_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GridmapSettings(_env_file=None).tolerance_m == 0.01  # type: ignore[call-arg]
    monkeypatch.setenv("GRIDMAP_TOLERANCE_M", "0.05")
    assert GridmapSettings(_env_file=None).tolerance_m == 0.05  # type: ignore[call-arg]


# --- gridmap load ---------------------------------------------------------------------------

BASE, OVERLAPPING, TOUCHING, NOISY, SLIVER = "379911", "379912", "379913", "379914", "379915"
FAR = (1.0, 0.5)  # degrees east and north of tests/handmade.py: no other module loads here


def layers_at(
    code: str, dx_units: float = 0.0, extra_m: float = 0.0
) -> dict[str, gpd.GeoDataFrame]:
    """The hand-drawn district under ``code``, ``dx_units`` east of the base, then moved
    ``extra_m`` metres west (into whatever lies there)."""
    mx, _ = metres_per_degree(36.06 + FAR[1])
    layers = handmade_layers()
    layers["district"]["code"] = code
    layers["streets"]["district_code"] = code
    return shifted(layers, FAR[0] + dx_units * UNIT - extra_m / mx, FAR[1])


def district_codes(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        codes = list(conn.execute(text("SELECT code FROM districts ORDER BY code")).scalars())
    engine.dispose()
    return codes


@pytest.fixture(scope="module")
def base(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    paths = write_handmade(tmp_path_factory.mktemp("base"), "gpkg", **layers_at(BASE))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRIDMAP_DATABASE_URL", database_url)
        result = runner.invoke(app, ["load", *map(str, paths), "--replace", "--json"])
    assert result.exit_code == 0, result.output
    yield database_url
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM districts WHERE code = ANY(:c)"),
            {"c": [BASE, OVERLAPPING, TOUCHING, NOISY, SLIVER]},
        )
    engine.dispose()


def test_an_overlapping_district_is_refused_naming_both(
    base: str, cli_env: str, tmp_path: Path
) -> None:
    before = district_codes(base)
    paths = write_handmade(tmp_path, "gpkg", **layers_at(OVERLAPPING, 0.5))
    for flags in ((), ("--dry-run",)):
        result = runner.invoke(app, ["load", *map(str, paths), *flags], env={"COLUMNS": "500"})
        assert result.exit_code == 1, result.output
        said = " ".join(result.stderr.split())
        assert f"feature {OVERLAPPING}" in said and f"district {BASE}" in said
        assert "市南区(手绘)" in said and "m²" in said and "near (" in said
        assert "Traceback" not in result.output
    refused = runner.invoke(app, ["load", *map(str, paths), "--json"])
    (problem,) = json.loads(refused.stdout)["problems"]
    assert problem["layer"] == "district" and problem["feature"] == OVERLAPPING
    # The main blocks share 3.5 of their 4 units; the islands only touch the other's block.
    mx, my = metres_per_degree(36.065 + FAR[1])
    expected_m2 = 3.5 * 2 * UNIT**2 * mx * my
    area = float(problem["reason"].split(" by ")[1].split(" m²")[0].replace(",", ""))
    assert area == pytest.approx(expected_m2, rel=0.005)
    assert district_codes(base) == before


def test_replacing_the_same_district_may_cover_its_old_outline(
    base: str, cli_env: str, tmp_path: Path
) -> None:
    paths = write_handmade(tmp_path, "gpkg", **layers_at(BASE, 0.25))
    dry = runner.invoke(app, ["load", *map(str, paths), "--replace", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    result = runner.invoke(app, ["load", *map(str, paths), "--replace", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["replaced"] is True
    back = write_handmade(tmp_path / "back", "gpkg", **layers_at(BASE))
    assert runner.invoke(app, ["load", *map(str, back), "--replace"]).exit_code == 0


def test_dry_run_of_a_district_already_loaded_says_so(
    base: str, cli_env: str, tmp_path: Path
) -> None:
    paths = write_handmade(tmp_path, "gpkg", **layers_at(BASE))
    result = runner.invoke(app, ["load", *map(str, paths), "--dry-run"], env={"COLUMNS": "500"})
    assert result.exit_code == 1
    assert f"district {BASE} is already loaded" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("code", "extra_m", "refused"),
    [
        (TOUCHING, 0.0, False),  # shares the island's east edge: no ground in common
        (NOISY, 0.4 * TOLERANCE_M, False),  # 4 mm over it: noise
        (SLIVER, 3 * TOLERANCE_M, True),  # 3 cm over it: real
    ],
    ids=["touching", "noise", "sliver"],
)
def test_a_neighbour_is_judged_by_the_width_of_the_overlap(
    base: str, cli_env: str, tmp_path: Path, code: str, extra_m: float, refused: bool
) -> None:
    paths = write_handmade(tmp_path, "gpkg", **layers_at(code, 5.0, extra_m))
    result = runner.invoke(app, ["load", *map(str, paths), "--json"])
    if refused:
        assert result.exit_code == 1, result.output
        (problem,) = json.loads(result.stdout)["problems"]
        assert "up to 0.03 m wide" in problem["reason"], problem
        assert code not in district_codes(base)
    else:
        assert result.exit_code == 0, result.output
        assert code in district_codes(base)
        engine = create_engine(base)
        with engine.begin() as conn:  # the next neighbour goes to the same place
            conn.execute(text("DELETE FROM districts WHERE code = :c"), {"c": code})
        engine.dispose()
