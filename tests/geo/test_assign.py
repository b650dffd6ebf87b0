"""GridIndex must give exactly the answer of the rule, checked against a brute-force oracle.

The rule: covered by the closed polygon (shapely ``covers``); ties -> smallest code; else
unassigned with the nearest grid and the geodesic distance in metres.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geo.assign as assign_module
from geo.assign import NO_TABLE, GridIndex, assign_files, assign_frame
from geo.crs import metric_crs_for
from geo.errors import InvalidGeometry, InvalidInput
from tests.strategies import Tiling, lattice, points_for, tilings

GEOD = pyproj.Geod(ellps="WGS84")


def oracle(tiling: Tiling, points: list[tuple[float, float]]) -> list[tuple]:
    """One point at a time, the rule as written: (code, on_boundary, nearest, distance_m)."""
    geoms = np.array(tiling.geoms, dtype=object)
    codes = np.array(tiling.codes, dtype=object)
    crs = metric_crs_for(121.6, 38.9)
    fwd = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    inv = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    geoms_m = shapely.transform(geoms, lambda xy: np.column_stack(fwd.transform(*xy.T)))
    out = []
    for x, y in points:
        pt = shapely.Point(x, y)
        hits = [c for c, g in zip(codes, geoms, strict=True) if shapely.covers(g, pt)]
        if hits:
            code = min(hits)
            geom = geoms[list(codes).index(code)]
            out.append((code, bool(shapely.touches(geom, pt)), None, None))
            continue
        pt_m = shapely.Point(*fwd.transform(x, y))
        dists = shapely.distance(geoms_m, pt_m)
        near = min(c for c, d in zip(codes, dists, strict=True) if d == dists.min())
        g_m = geoms_m[list(codes).index(near)]
        nearest_xy = shapely.get_coordinates(shapely.shortest_line(g_m, pt_m))[0]
        lon_n, lat_n = inv.transform(*nearest_xy)
        out.append((None, False, near, GEOD.inv(x, y, lon_n, lat_n)[2]))
    return out


def check_against_oracle(tiling: Tiling, points: list[tuple[float, float]], cells: int) -> None:
    index = GridIndex.from_arrays(tiling.codes, tiling.geoms, cells_per_grid=cells)
    xy = np.array(points, dtype=float).reshape(-1, 2)
    got = index.assign(xy[:, 0], xy[:, 1])
    for i, (code, boundary, near, dist) in enumerate(oracle(tiling, points)):
        where = f"point {i} {points[i]!r}"
        assert got.grid_code[i] == code, where
        assert bool(got.on_boundary[i]) == boundary, where
        assert got.nearest_grid_code[i] == near, where
        if dist is None:
            assert np.isnan(got.distance_m[i]), where
        else:
            assert got.distance_m[i] == pytest.approx(dist, rel=1e-6, abs=1e-6), where
    assert not got.snapped.any()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tiling=tilings, cells=st.sampled_from([NO_TABLE, 1, 8, 64, 512]))
def test_agrees_with_oracle(data: st.DataObject, tiling: Tiling, cells: int) -> None:
    """Every strategy, several raster resolutions (coarse ones walk more edges), and none."""
    check_against_oracle(tiling, data.draw(points_for(tiling)), cells)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tiling=tilings, cells=st.sampled_from([NO_TABLE, 64]))
def test_snap_all_gives_every_outside_point_its_nearest_grid(
    data: st.DataObject, tiling: Tiling, cells: int
) -> None:
    """``snap_all`` (a plan's counts): covered points as the rule says, the others snapped to
    the oracle's nearest grid, keeping how far it was; ``position`` names the same grid."""
    pts = data.draw(points_for(tiling))
    index = GridIndex.from_arrays(tiling.codes, tiling.geoms, cells_per_grid=cells)
    xy = np.array(pts, dtype=float).reshape(-1, 2)
    got = index.assign(xy[:, 0], xy[:, 1], snap_all=True)
    for i, (code, _boundary, near, dist) in enumerate(oracle(tiling, pts)):
        where = f"point {i} {pts[i]!r}"
        assert got.grid_code[i] == (code if code is not None else near), where
        assert bool(got.snapped[i]) == (code is None), where
        assert index.codes[got.position[i]] == got.grid_code[i], where
        if dist is not None:
            assert got.distance_m[i] == pytest.approx(dist, rel=1e-6, abs=1e-6), where


def test_ranked_grids_give_a_shared_edge_to_the_first() -> None:
    """Grids without codes rank in the given order, as codes would (a regrid's pieces)."""
    left, right = shapely.box(X0, Y0, X1, Y1), shapely.box(X1, Y0, X2, Y1)
    on_edge = ([X1], [(Y0 + Y1) / 2])
    assert GridIndex.ranked([left, right]).assign(*on_edge).position.tolist() == [0]
    assert GridIndex.ranked([right, left]).assign(*on_edge).position.tolist() == [0]
    many = GridIndex.ranked([left] + [shapely.box(X2 + i, Y0, X2 + i + 1, Y1) for i in range(11)])
    assert list(many.codes[:3]) == ["00", "01", "02"]  # fixed width: code order is given order


@settings(max_examples=25, deadline=None)
@given(data=st.data(), tiling=tilings)
def test_random_interior_points_agree(data: st.DataObject, tiling: Tiling) -> None:
    """Many points near but not on edges: the raster walk must match GEOS."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = shapely.total_bounds(tiling.geoms)
    pts = list(zip(rng.uniform(minx, maxx, 300), rng.uniform(miny, maxy, 300), strict=True))
    index = GridIndex.from_arrays(tiling.codes, tiling.geoms, cells_per_grid=16)
    xy = np.array(pts)
    got = index.assign(xy[:, 0], xy[:, 1]).grid_code
    want = [row[0] for row in oracle(tiling, pts)]
    assert list(got) == want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tiling=tilings, cells=st.sampled_from([NO_TABLE, 1, 8, 64, 512]))
def test_one_point_at_a_time_agrees_with_the_oracle(
    data: st.DataObject, tiling: Tiling, cells: int
) -> None:
    """The single-point shortcut (GET /lookup) answers exactly as the oracle, point by point."""
    pts = data.draw(points_for(tiling))
    index = GridIndex.from_arrays(tiling.codes, tiling.geoms, cells_per_grid=cells)
    for (x, y), (want_code, want_boundary, *_rest) in zip(pts, oracle(tiling, pts), strict=True):
        got = index.assign([x], [y])
        assert got.grid_code[0] == want_code, (x, y)
        assert got.on_boundary[0] == want_boundary, (x, y)


# --- named cases --------------------------------------------------------------------------

X0, Y0 = lattice(0, 0)
X1, Y1 = lattice(4, 4)
X2, _ = lattice(8, 4)
_, Y2 = lattice(4, 8)


def four_squares(codes: tuple[str, str, str, str] = ("B", "A", "D", "C")) -> GridIndex:
    """Four squares meeting at (X1, Y1)::

    +---+---+
    | D | C |
    +---*---+     * the corner shared by all four: goes to "A"
    | B | A |
    +---+---+
    """
    geoms = [
        shapely.box(X0, Y0, X1, Y1),
        shapely.box(X1, Y0, X2, Y1),
        shapely.box(X0, Y1, X1, Y2),
        shapely.box(X1, Y1, X2, Y2),
    ]
    return GridIndex.from_arrays(list(codes), geoms)


@pytest.mark.parametrize(
    ("x", "y", "code", "boundary"),
    [
        pytest.param(X1, Y1, "A", True, id="corner of four -> smallest"),
        pytest.param(X1, (Y0 + Y1) / 2, "A", True, id="edge B|A -> A"),
        pytest.param((X0 + X1) / 2, Y1, "B", True, id="edge B|D -> B"),
        pytest.param(X0, Y0, "B", True, id="outer vertex"),
        pytest.param((X0 + X1) / 2, (Y0 + Y1) / 2, "B", False, id="interior"),
    ],
)
def test_ties_go_to_smallest_code(x: float, y: float, code: str, boundary: bool) -> None:
    got = four_squares().assign(np.array([x]), np.array([y]))
    assert got.grid_code[0] == code
    assert bool(got.on_boundary[0]) is boundary


def test_code_order_is_string_order() -> None:
    """'010' < '10' < '9': codes compare as strings, leading zeros kept."""
    got = four_squares(("9", "10", "010", "011")).assign(np.array([X1]), np.array([Y1]))
    assert got.grid_code[0] == "010"


def test_outside_gives_nearest_and_geodesic_distance() -> None:
    index = four_squares()
    x, y = X2 + 0.001, (Y0 + Y1) / 2  # east of "A", about 87 m
    got = index.assign(np.array([x]), np.array([y]))
    assert got.grid_code[0] is None
    assert got.nearest_grid_code[0] == "A"
    expected = GEOD.inv(x, y, X2, y)[2]
    assert got.distance_m[0] == pytest.approx(expected, rel=1e-4)
    assert 80 < got.distance_m[0] < 95


def test_snap_tolerance() -> None:
    index = four_squares()
    x = np.array([X2 + 0.0001, X2 + 0.001, (X0 + X1) / 2])
    y = np.array([Y1 / 2 + Y0 / 2] * 3)
    got = index.assign(x, y, snap_m=20.0)
    assert list(got.grid_code) == ["A", None, "B"]
    assert list(got.snapped) == [True, False, False]
    assert got.nearest_grid_code[0] == "A" and 5 < got.distance_m[0] < 20
    assert not got.on_boundary[0]


def test_far_away_point_still_gets_a_distance() -> None:
    got = four_squares().assign(np.array([-70.0]), np.array([-30.0]))
    assert got.grid_code[0] is None
    assert got.nearest_grid_code[0] in {"A", "B", "C", "D"}
    assert 1.5e7 < got.distance_m[0] < 2.0e7


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_refused_naming_the_row(bad: float) -> None:
    with pytest.raises(InvalidInput, match="row 2"):
        four_squares().assign(np.array([X1, X1, bad]), np.array([Y1, Y1, Y1]))


def test_negative_snap_refused() -> None:
    with pytest.raises(InvalidInput, match="snap"):
        four_squares().assign(np.array([X1]), np.array([Y1]), snap_m=-1)


def test_empty_input() -> None:
    got = four_squares().assign(np.array([]), np.array([]))
    assert len(got) == 0 and got.grid_code.dtype == object


def test_grids_refused() -> None:
    bowtie = shapely.Polygon([(X0, Y0), (X1, Y1), (X1, Y0), (X0, Y1)])
    with pytest.raises(InvalidGeometry, match="invalid"):
        GridIndex.from_arrays(["a"], [bowtie])
    with pytest.raises(InvalidInput, match="appears 2 times"):
        GridIndex.from_arrays(["a", "a"], [shapely.box(X0, Y0, X1, Y1)] * 2)
    with pytest.raises(InvalidGeometry, match="Polygon"):
        GridIndex.from_arrays(["a"], [shapely.Point(X0, Y0)])


def test_overlapping_grids_still_follow_the_rule() -> None:
    """An invalid plan (overlap) is not refused here; the overlap goes to the smaller code."""
    index = GridIndex.from_arrays(
        ["b", "a"], [shapely.box(X0, Y0, X2, Y2), shapely.box(X1, Y1, X2, Y2)], cells_per_grid=64
    )
    got = index.assign(np.array([(X1 + X2) / 2, (X0 + X1) / 2]), np.array([(Y1 + Y2) / 2] * 2))
    assert list(got.grid_code) == ["a", "b"]


# --- frames and files ---------------------------------------------------------------------


def grids_frame() -> gpd.GeoDataFrame:
    geoms = [shapely.box(X0, Y0, X1, Y1), shapely.box(X1, Y0, X2, Y1)]
    return gpd.GeoDataFrame(
        {"code": ["0102", "0101"], "community_code": ["01", "01"]}, geometry=geoms, crs="EPSG:4326"
    )


def points_frame() -> gpd.GeoDataFrame:
    xs = [(X0 + X1) / 2, X1, X2 + 0.001]
    ys = [(Y0 + Y1) / 2] * 3
    return gpd.GeoDataFrame(
        {
            "building_id": ["007", "008", "009"],
            "households": [12, 30, 4],
            "address": ["甲", "乙", "丙"],
        },
        geometry=shapely.points(xs, ys),
        crs="EPSG:4326",
    )


def test_assign_frame_keeps_columns_and_accepts_other_crs() -> None:
    index = GridIndex.from_frame(grids_frame().to_crs(32651))
    out = assign_frame(points_frame().to_crs(32651), index, snap_m=0.0)
    assert list(out["building_id"]) == ["007", "008", "009"]
    assert list(out["grid_code"]) == ["0102", "0101", None]
    assert list(out["on_boundary"]) == [False, True, False]
    assert out["nearest_grid_code"].iloc[2] == "0101"
    assert "snapped" not in out.columns
    assert out.crs.to_epsg() == 32651


def test_assign_frame_snapped_column() -> None:
    out = assign_frame(points_frame(), GridIndex.from_frame(grids_frame()), snap_m=500)
    assert list(out["snapped"]) == [False, False, True]
    assert out["grid_code"].iloc[2] == "0101"


@pytest.mark.parametrize("points_ext", [".gpkg", ".geojson", ".parquet", ".csv"])
@pytest.mark.parametrize("out_ext", [".gpkg", ".geojson", ".parquet", ".csv"])
def test_file_round_trip(tmp_path: Path, points_ext: str, out_ext: str) -> None:
    grids_path = tmp_path / "grids.gpkg"
    grids_frame().to_crs(32651).to_file(grids_path, layer="grids")
    points = points_frame()
    points_path = tmp_path / f"buildings{points_ext}"
    if points_ext == ".csv":
        frame = pd.DataFrame(points.drop(columns="geometry"))
        frame["lon"], frame["lat"] = points.geometry.x, points.geometry.y
        frame.to_csv(points_path, index=False)
    elif points_ext == ".parquet":
        points.to_parquet(points_path)
    else:
        points.to_file(points_path)
    out_path = tmp_path / f"out{out_ext}"
    seen: list[tuple[int, int]] = []
    summary = assign_files(
        grids_path, points_path, out_path, progress=lambda d, t: seen.append((d, t))
    )
    assert (summary.points, summary.assigned, summary.on_boundary, summary.unassigned) == (
        3,
        2,
        1,
        1,
    )
    assert seen[-1] == (3, 3)
    json.dumps(summary.as_dict())
    if out_ext == ".csv":
        out = pd.read_csv(out_path, dtype=str)
        out["on_boundary"] = out["on_boundary"].str.lower() == "true"
    elif out_ext == ".parquet":
        out = gpd.read_parquet(out_path)
    else:
        out = gpd.read_file(out_path)
    assert list(out["building_id"]) == ["007", "008", "009"]
    assert [int(h) for h in out["households"]] == [12, 30, 4]
    assert list(out["address"]) == ["甲", "乙", "丙"]
    codes = [None if pd.isna(c) else c for c in out["grid_code"]]
    assert codes == ["0102", "0101", None]
    assert [bool(b) for b in out["on_boundary"]] == [False, True, False]
    assert out["nearest_grid_code"].iloc[2] == "0101"
    assert float(out["distance_m"].iloc[2]) > 0
    if out_ext != ".csv":
        assert out.crs.to_epsg() == 4326
        assert np.allclose(out.geometry.x, points.geometry.x)


def test_csv_without_coordinates_names_the_row(tmp_path: Path) -> None:
    grids_path = tmp_path / "grids.geojson"
    grids_frame().to_file(grids_path)
    points_path = tmp_path / "p.csv"
    points_path.write_text("building_id,lon,lat\n001,121.5,38.9\n002,,38.9\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="row 1"):
        assign_files(grids_path, points_path, tmp_path / "out.csv")


def test_unknown_extension_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="extension"):
        assign_files(tmp_path / "g.kml", tmp_path / "p.csv", tmp_path / "o.csv")


# --- raster strategies --------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tiling=tilings, cap=st.sampled_from([16, 64, 256]))
def test_capped_raster_agrees_with_oracle(data: st.DataObject, tiling: Tiling, cap: int) -> None:
    """The table capped by ``_MAX_CELLS`` (as for plans of 100,000 grids): cells hold many
    edges, long edges are cut into pieces, and the walk must still match the oracle."""
    with mock.patch.object(assign_module, "_MAX_CELLS", cap):
        index = GridIndex.from_arrays(tiling.codes, tiling.geoms)
        assert index.raster.nx * index.raster.ny <= 2 * cap + 8 * (
            index.raster.nx + index.raster.ny
        )
        check_against_oracle(tiling, data.draw(points_for(tiling)), 2048)


def test_shared_edges_are_stored_once() -> None:
    """Two grids sharing an edge: the edge is kept once, bounding both grids."""
    index = four_squares()
    raster = index.raster
    assert len(raster.edge_ax) == 12  # 16 ring edges, 4 of them shared
    assert (raster.edge_grid2 >= 0).sum() == 4
    assert set(raster.edge_grid2[raster.edge_grid2 >= 0]) | set(
        raster.edge_grid[raster.edge_grid2 >= 0]
    ) == {0, 1, 2, 3}


def test_hash_collisions_never_merge_different_edges() -> None:
    """Equal hashes but different end points (or three alike) keep every copy."""
    ax = np.array([0.0, 1.0, 0.0, 5.0, 5.0, 5.0])
    ay = np.zeros(6)
    bx = np.array([1.0, 0.0, 2.0, 6.0, 6.0, 6.0])
    by = np.ones(6)
    vertex = np.zeros(12, dtype=np.complex128)
    vertex[0::2], vertex[1::2] = ax + 1j * ay, bx + 1j * by
    grid = np.arange(6, dtype=np.int32)
    weight = np.ones(6)
    same_hash = np.zeros(6, dtype=np.uint64)
    edges = assign_module._merge_shared(
        ax, ay, bx, by, grid, weight, same_hash, vertex, np.arange(0, 12, 2)
    )
    assert len(edges.ax) == 6  # one group of six: nothing merged
    pair_hash = np.array([7, 7, 9, 11, 13, 15], dtype=np.uint64)
    edges = assign_module._merge_shared(
        ax, ay, bx, by, grid, weight, pair_hash << np.uint64(3), vertex, np.arange(0, 12, 2)
    )
    # edges 0 and 1 are not the same segment ((0,0)-(1,1) vs (1,0)-(0,1)): kept apart
    assert len(edges.ax) == 6 and (edges.grid2 == -1).all()


# --- build options ------------------------------------------------------------------------


def test_validated_skips_only_the_validity_test() -> None:
    """Stored plans were validated on the way in: ``validated=True`` trusts their geometry."""
    bowtie = shapely.Polygon([(X0, Y0), (X1, Y1), (X1, Y0), (X0, Y1)])
    with pytest.raises(InvalidGeometry, match="invalid"):
        GridIndex.from_arrays(["a"], [bowtie])
    assert len(GridIndex.from_arrays(["a"], [bowtie], validated=True)) == 1
    with pytest.raises(InvalidGeometry, match="Polygon"):
        GridIndex.from_arrays(["a"], [shapely.Point(X0, Y0)], validated=True)
    with pytest.raises(InvalidGeometry, match="empty"):
        GridIndex.from_arrays(["a"], [shapely.Polygon()], validated=True)
    with pytest.raises(InvalidInput, match="appears 2 times"):
        GridIndex.from_arrays(["a", "a"], [shapely.box(X0, Y0, X1, Y1)] * 2, validated=True)
    index = GridIndex.from_arrays(
        ["b", "a"], [shapely.box(X0, Y0, X1, Y1), shapely.box(X1, Y0, X2, Y1)], validated=True
    )
    got = index.assign(np.array([(X0 + X1) / 2, X1]), np.array([(Y0 + Y1) / 2] * 2))
    assert list(got.grid_code) == ["b", "a"]


def test_codes_are_strings_sorted_by_code_point() -> None:
    """Non-string codes become strings; order and ties follow string order, not numbers."""
    geoms = [shapely.box(X0, Y0, X1, Y1), shapely.box(X1, Y0, X2, Y1)]
    index = GridIndex.from_arrays([10, 9], geoms)
    assert list(index.codes) == ["10", "9"]
    got = index.assign(np.array([X1, (X0 + X1) / 2]), np.array([(Y0 + Y1) / 2] * 2))
    assert list(got.grid_code) == ["10", "10"]  # the shared edge goes to "10" < "9"
    with pytest.raises(InvalidInput, match="'1' appears 2 times"):
        GridIndex.from_arrays([1, "1"], geoms)
    with pytest.raises(InvalidInput, match="grid row 1 has no code"):
        GridIndex.from_arrays(["a", None], geoms)
    with pytest.raises(InvalidInput, match="grid row 0 has no code"):
        GridIndex.from_arrays([float("nan"), "a"], geoms)


def test_strtree_is_built_only_when_geos_is_needed() -> None:
    """Interior points are answered by the table; a point on an edge needs the tree."""
    index = four_squares()
    got = index.assign(np.array([(X0 + X1) / 2]), np.array([(Y0 + Y1) / 2]))
    assert got.grid_code[0] == "B" and index._tree is None
    got = index.assign(np.array([X1]), np.array([Y1]))
    assert got.grid_code[0] == "A" and index._tree is not None


def test_result_arrays_have_stable_types() -> None:
    """Codes and nearest codes are object arrays of str/None; the rest bool and float."""
    got = four_squares().assign(np.array([(X0 + X1) / 2, X2 + 0.001]), np.array([Y0 + 1e-4] * 2))
    assert got.grid_code.dtype == object and got.nearest_grid_code.dtype == object
    assert list(got.grid_code) == ["B", None]
    assert list(got.nearest_grid_code) == [None, "A"]
    assert got.on_boundary.dtype == bool and got.snapped.dtype == bool
    assert got.distance_m.dtype == np.float64 and np.isnan(got.distance_m[0])
    assert got.distance_m[1] > 0
