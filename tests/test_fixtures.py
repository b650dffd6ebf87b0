"""The synthetic districts: exact nested tilings, sane figures, byte-identical output."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.district import (
    DistrictLayers,
    generate_district,
    load_responsibility,
    main,
    write_district,
)

METRIC_CRS = "EPSG:32651"
LEVELS = (
    ("district", "streets", "district_code"),
    ("streets", "communities", "street_code"),
    ("communities", "grids", "community_code"),
)
ADDRESS = re.compile(r"^(?P<road>\D+?)(?P<number>\d+)号(?P<building>\d+)栋$")


@pytest.fixture(scope="module")
def tiny() -> DistrictLayers:
    return generate_district("tiny", seed=7)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_exact_nested_tiling(layers: DistrictLayers) -> None:
    """Each level is a valid coverage whose children dissolve exactly to their parent."""
    frames = layers.as_dict()
    for parent_name, child_name, key in LEVELS:
        parent, child = frames[parent_name], frames[child_name]
        assert child.is_valid.all(), child_name
        assert shapely.coverage_is_valid(child.geometry.values), child_name
        assert set(child[key]) == set(parent["code"]), child_name
        for code, parent_geometry in zip(parent["code"], parent.geometry, strict=True):
            children = child.geometry[child[key] == code].values
            union = shapely.coverage_union_all(children)
            difference_area = shapely.symmetric_difference(union, parent_geometry).area
            assert difference_area <= 1e-9 * parent_geometry.area, (child_name, code)


def assert_grids_in_exactly_one_community(layers: DistrictLayers) -> None:
    communities = layers.communities.to_crs(METRIC_CRS)
    grids = layers.grids.to_crs(METRIC_CRS)
    grid_idx, community_idx = shapely.STRtree(communities.geometry.values).query(
        grids.geometry.values, predicate="intersects"
    )
    overlap_m2 = shapely.area(
        shapely.intersection(
            grids.geometry.values[grid_idx], communities.geometry.values[community_idx]
        )
    )
    real = overlap_m2 > 1e-6
    hosts = pd.Series(communities["code"].to_numpy()[community_idx[real]], index=grid_idx[real])
    assert hosts.index.value_counts().max() == 1
    assert len(hosts) == len(grids)
    assert (hosts.sort_index().to_numpy() == grids["community_code"].to_numpy()).all()


def assert_buildings_inside_grids(layers: DistrictLayers, margin_m: float = 2.0) -> None:
    buildings = layers.buildings.to_crs(METRIC_CRS)
    grids = layers.grids.to_crs(METRIC_CRS)
    joined = gpd.sjoin(buildings, grids[["code", "geometry"]], predicate="within")
    assert joined.index.is_unique
    assert len(joined) == len(buildings)
    grid_of_building = grids.set_index("code").geometry.loc[joined["code"]].values
    distance_m = shapely.distance(joined.geometry.values, shapely.boundary(grid_of_building))
    assert distance_m.min() >= margin_m


def test_levels_are_exact_nested_tilings(tiny: DistrictLayers) -> None:
    assert_exact_nested_tiling(tiny)
    assert_grids_in_exactly_one_community(tiny)


def test_tiling_is_exact_after_writing_and_reading(tiny: DistrictLayers, tmp_path: Path) -> None:
    path = write_district(tiny, tmp_path / "tiny.gpkg")
    frames = {name: gpd.read_file(path, layer=name) for name in tiny.as_dict()}
    assert_exact_nested_tiling(DistrictLayers(**frames))
    assert all(str(frame.crs) == "EPSG:4326" for frame in frames.values())


def test_district_has_an_island_and_a_community_in_two_pieces(tiny: DistrictLayers) -> None:
    assert tiny.district.geometry.iloc[0].geom_type == "MultiPolygon"
    pieces = shapely.get_num_geometries(tiny.communities.geometry.values)
    assert pieces.max() >= 2
    assert (shapely.get_num_geometries(tiny.grids.geometry.values) == 1).all()


def test_buildings_lie_inside_grids_away_from_boundaries(tiny: DistrictLayers) -> None:
    assert_buildings_inside_grids(tiny)


def test_codes_follow_the_unit_grid_coding(tiny: DistrictLayers) -> None:
    district_code = tiny.district["code"].iloc[0]
    assert re.fullmatch(r"\d{6}", district_code)
    for name, parent_key, digits in (
        ("streets", "district_code", 9),
        ("communities", "street_code", 12),
        ("grids", "community_code", 15),
    ):
        frame = getattr(tiny, name)
        assert frame["code"].is_unique, name
        for code, parent in zip(frame["code"], frame[parent_key], strict=True):
            assert re.fullmatch(rf"\d{{{digits}}}", code), code
            assert code.startswith(parent) and len(parent) == digits - 3, code
    assert district_code == "210299"  # not Shahekou's 210204: both fit in one database


def test_names_are_chinese_and_grids_are_named_after_their_community(tiny: DistrictLayers) -> None:
    assert tiny.streets["name"].str.endswith("街道").all()
    assert tiny.communities["name"].str.endswith("社区").all()
    community_name = tiny.communities.set_index("code")["name"]
    for name, community_code in zip(tiny.grids["name"], tiny.grids["community_code"], strict=True):
        assert re.fullmatch(re.escape(community_name[community_code]) + r"第\d+网格", name)


def test_counts_and_households_are_in_range(tiny: DistrictLayers) -> None:
    assert (len(tiny.streets), len(tiny.communities)) == (2, 4)
    assert 10 <= len(tiny.grids) <= 14
    assert len(tiny.buildings) == 300
    assert len(tiny.reports) == 1000
    assert int(tiny.buildings["households"].sum()) == 4800
    joined = gpd.sjoin(tiny.buildings, tiny.grids[["code", "geometry"]], predicate="within")
    per_grid = joined.groupby("code")["households"].sum()
    assert len(per_grid) == len(tiny.grids)
    assert per_grid.min() >= 100 and per_grid.max() <= 1000
    assert per_grid.max() / per_grid.min() > 3  # deliberately unbalanced
    ratio = tiny.buildings["residents"].sum() / tiny.buildings["households"].sum()
    assert 2.4 <= ratio <= 3.1
    assert (tiny.buildings["households"] >= 0).all()
    assert (tiny.buildings["rental_units"] <= tiny.buildings["households"]).all()


def test_addresses_are_road_number_building_on_named_roads(tiny: DistrictLayers) -> None:
    road_names = set(tiny.roads["name"])
    assert tiny.buildings["address"].is_unique
    assert tiny.buildings["building_id"].is_unique
    for address in tiny.buildings["address"]:
        match = ADDRESS.match(address)
        assert match, address
        assert match["road"] in road_names, address
    for full, short in zip(tiny.buildings["full_address"], tiny.buildings["address"], strict=True):
        assert full.startswith("大连市") and full.endswith(short)


def test_responsibility_list_has_12_categories_and_132_subcategories() -> None:
    responsibility = load_responsibility()
    categories = responsibility["categories"]
    department_codes = {d["code"] for d in responsibility["departments"]}
    subcategories = [s for c in categories for s in c["subcategories"]]
    assert len(categories) == 12
    assert len(subcategories) == 132
    assert all(8 <= len(c["subcategories"]) <= 14 for c in categories)
    codes = [c["code"] for c in categories] + [s["code"] for s in subcategories]
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", code) for code in codes)
    assert len({s["code"] for s in subcategories}) == len(subcategories)
    assert {s["handler"] for s in subcategories} <= department_codes | {"grid"}
    assert any(s["handler"] == "grid" for s in subcategories)
    assert all(s["sla_hours"] > 0 for s in subcategories)


def test_reports_follow_the_responsibility_list_and_time_window(tiny: DistrictLayers) -> None:
    responsibility = load_responsibility()
    subcategory_of = {
        s["code"]: c["code"] for c in responsibility["categories"] for s in c["subcategories"]
    }
    reports = tiny.reports
    assert reports["report_id"].is_unique
    assert all(
        subcategory_of[s] == c
        for s, c in zip(reports["subcategory"], reports["category"], strict=True)
    )
    reported = [datetime.fromisoformat(text) for text in reports["reported_at"]]
    assert all(text.endswith("+08:00") for text in reports["reported_at"])
    start = datetime.fromisoformat("2024-11-01T00:00:00+08:00")
    end = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
    assert all(start <= moment < end for moment in reported)
    workflow = {"reported", "registered", "dispatched", "handling", "handled", "verified"}
    assert set(reports["status"]) <= workflow | {"closed", "rejected"}
    closed = reports["status"] == "closed"
    assert closed.mean() > 0.9
    assert reports["closed_at"][~reports["status"].isin(["closed", "rejected"])].isna().all()
    for reported_text, closed_text in zip(
        reports["reported_at"][closed], reports["closed_at"][closed], strict=True
    ):
        gap = datetime.fromisoformat(closed_text) - datetime.fromisoformat(reported_text)
        assert timedelta(0) < gap
    inside = tiny.reports.geometry.within(tiny.district.geometry.iloc[0].buffer(1e-5))
    assert inside.mean() > 0.99


def test_same_seed_gives_identical_layers_and_bytes(tiny: DistrictLayers, tmp_path: Path) -> None:
    again = generate_district("tiny", seed=7)
    for name, frame in tiny.as_dict().items():
        pd.testing.assert_frame_equal(pd.DataFrame(frame), pd.DataFrame(again.as_dict()[name]))
    first = write_district(tiny, tmp_path / "a.gpkg")
    time.sleep(1.1)  # a clock-stamped file would now differ
    second = write_district(again, tmp_path / "b.gpkg")
    assert sha256(first) == sha256(second)
    other = write_district(generate_district("tiny", seed=8), tmp_path / "c.gpkg")
    assert sha256(other) != sha256(first)


def test_write_replaces_an_existing_file(tiny: DistrictLayers, tmp_path: Path) -> None:
    path = tmp_path / "district.gpkg"
    path.write_bytes(b"stale")
    write_district(tiny, path)
    assert len(gpd.read_file(path, layer="grids")) == len(tiny.grids)


def test_command_line_writes_and_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.gpkg"
    main(["--size", "tiny", "--seed", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.exists()
    assert "grids 12," in printed
    assert "households 4800" in printed


def test_tiny_district_is_fast() -> None:
    started = time.perf_counter()
    generate_district("tiny", seed=11)
    assert time.perf_counter() - started < 3.0  # target < 1 s; slack for a loaded machine


@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
@settings(max_examples=5, deadline=None)
def test_any_seed_gives_exact_nested_tilings(seed: int) -> None:
    layers = generate_district("tiny", seed=seed)
    assert_exact_nested_tiling(layers)
    assert_buildings_inside_grids(layers)
    assert int(layers.buildings["households"].sum()) == 4800


@pytest.mark.slow
def test_full_district_figures() -> None:
    started = time.perf_counter()
    layers = generate_district("full", seed=7)
    elapsed_s = time.perf_counter() - started
    assert elapsed_s < 40
    assert layers.district["code"].iloc[0] == "210204"
    assert len(layers.streets) == 7
    assert 55 <= len(layers.communities) <= 65
    assert len(layers.grids) == 630
    assert len(layers.buildings) == 20_000
    assert len(layers.reports) == 100_000
    assert int(layers.buildings["households"].sum()) == 400_000
    area_km2 = layers.district.to_crs(METRIC_CRS).area.iloc[0] / 1e6
    assert 33 <= area_km2 <= 37
    joined = gpd.sjoin(layers.buildings, layers.grids[["code", "geometry"]], predicate="within")
    per_grid = joined.groupby("code")["households"].sum()
    assert len(per_grid) == 630
    assert 50 <= per_grid.min() <= 80 and 1900 <= per_grid.max() <= 2100
    assert_exact_nested_tiling(layers)
    assert_buildings_inside_grids(layers)
    assert layers.reports["category"].nunique() == 12
