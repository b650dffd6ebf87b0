"""Plan metrics, checks, comparison, crosswalk and manual edits.

Most tests use one community of four old grids (synthetic, see test_regrid)::

    +-----+-----+
    | 002 | 004 |
    +-----+-----+
    | 001 | 003 |
    +-----+-----+
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import LineString

from geo.errors import Conflict, InvalidInput
from geo.plans import (
    assign_buildings,
    check_plan,
    compare_plans,
    crosswalk,
    merge_grids,
    move_buildings,
    new_codes,
    plan_metrics,
    rename_grid,
    split_grid,
)
from geo.topology import node_coverage, round_to_grid, voronoi_sites
from tests.geo.test_assign import oracle as assignment_oracle
from tests.geo.test_regrid import synthetic
from tests.strategies import Tiling, points_for, tilings

Layers = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]


@pytest.fixture(scope="module")
def layers() -> Layers:
    return synthetic(1, ncx=2, ncy=1, gx=2, gy=2, per_comm=80)


def _grid(g: gpd.GeoDataFrame, code: str) -> shapely.Geometry:
    return g.loc[g["code"] == code].geometry.iat[0]


def test_old_plan_is_fine(layers: Layers) -> None:
    c, g, b = layers
    assert check_plan(c, g, b) == []


def test_check_names_the_failure(layers: Layers) -> None:
    c, g, b = layers
    broken = g.copy()
    broken.loc[0, "geometry"] = shapely.affinity.translate(broken.geometry.iat[0], 0.0005, 0)
    reasons = " ".join(p.reason for p in check_plan(c, broken, b))
    assert "overlap" in reasons or "outside" in reasons


def test_metrics(layers: Layers) -> None:
    c, g, b = layers
    m, s = plan_metrics(c, g, b, (200, 600), parent_grids=g)
    assert m["households"].sum() == b["households"].sum()
    assert m["buildings"].sum() == len(b)
    assert m["kept"].all() and s["kept_grids"] == len(g)
    assert s["boundary_kept_share"] == 1.0 and s["coverage_valid"]
    assert 0 < s["polsby_popper_min"] <= s["polsby_popper_mean"] <= 1
    assert s["max_over_mean"] >= 1 >= s["min_over_mean"]


def test_new_codes_order_and_skip_used() -> None:
    codes = new_codes("210204001001", [(2.0, 0.0), (1.0, 5.0), (1.0, 9.0)], ["210204001001007"])
    assert codes == ["210204001001010", "210204001001009", "210204001001008"]


def _cross_line(geom: shapely.Geometry) -> LineString:
    x1, y1, x2, y2 = geom.bounds
    xm = (x1 + x2) / 2 + 1.234e-6
    return LineString([(xm, y1 - 0.001), (xm, y2 + 0.001)])


def test_split(layers: Layers) -> None:
    c, g, b = layers
    code = g["code"].iat[0]
    out = split_grid(g, code, _cross_line(g.geometry.iat[0]), c, b, used_codes=g["code"])
    assert len(out) == len(g) + 1 and code not in set(out["code"])
    assert check_plan(c, out, b) == []
    walk = crosswalk(g, out, b)
    assert walk.loc[walk["old_code"] == code, "households"].sum() == (
        b[b.within(g.geometry.iat[0])]["households"].sum()
    )


def test_split_refusals(layers: Layers) -> None:
    c, g, b = layers
    geom = g.geometry.iat[0]
    x1, y1, x2, y2 = geom.bounds
    far = LineString([(x2 + 0.01, y1), (x2 + 0.01, y2)])
    with pytest.raises(InvalidInput, match="does not cross"):
        split_grid(g, g["code"].iat[0], far, c, b)
    inside = b[b.within(geom)].geometry.iat[0]
    through = LineString([(inside.x, y1 - 0.001), (inside.x, y2 + 0.001)])
    with pytest.raises(InvalidInput, match="through building"):
        split_grid(g, g["code"].iat[0], through, c, b)
    zigzag = LineString(
        [
            (x1 + 0.2 * (x2 - x1), y1 - 1e-3),
            (x1 + 0.5 * (x2 - x1), y2 + 1e-3),
            (x1 + 0.8 * (x2 - x1), y1 - 1e-3),
        ]
    )
    with pytest.raises(InvalidInput, match="pieces"):
        split_grid(g, g["code"].iat[0], zigzag, c, b)


def test_merge(layers: Layers) -> None:
    c, g, b = layers
    first = g[g["community_code"] == c["code"].iat[0]].sort_values("code")
    pair = first["code"].iloc[:2].tolist()  # 001 and 002 share an edge
    out = merge_grids(g, pair, c, b, used_codes=g["code"])
    assert len(out) == len(g) - 1 and check_plan(c, out, b) == []
    with pytest.raises(InvalidInput, match="not adjacent"):
        merge_grids(g, [first["code"].iat[0], first["code"].iat[3]], c, b)
    other = g[g["community_code"] == c["code"].iat[1]]["code"].iat[0]
    with pytest.raises(InvalidInput, match="different communities"):
        merge_grids(g, [first["code"].iat[0], other], c, b)


def test_move_buildings(layers: Layers) -> None:
    c, g, b = layers
    first = g[g["community_code"] == c["code"].iat[0]].sort_values("code")
    src, dst = first["code"].iat[0], first["code"].iat[2]  # 001 → 003, side by side
    src_geom, dst_geom = _grid(g, src), _grid(g, dst)
    mine = b[b.within(src_geom)]
    nearest = mine.iloc[[int(np.argmin(mine.distance(dst_geom)))]]
    out = move_buildings(g, nearest["building_id"].tolist(), dst, c, b)
    assert check_plan(c, out, b) == []
    assert _grid(out, dst).contains(nearest.geometry.iat[0])
    assert set(out["code"]) == set(g["code"])
    corner = first["code"].iat[3]  # 004 touches 001 only at a corner
    with pytest.raises(InvalidInput, match="not a neighbour"):
        move_buildings(g, nearest["building_id"].tolist(), corner, c, b)


def test_rename(layers: Layers) -> None:
    _, g, _ = layers
    out = rename_grid(g, g["code"].iat[0], " 新名字 ")
    assert out.loc[out["code"] == g["code"].iat[0], "name"].iat[0] == "新名字"
    with pytest.raises(InvalidInput):
        rename_grid(g, g["code"].iat[0], "  ")


def test_compare(layers: Layers) -> None:
    c, g, b = layers
    code = g["code"].iat[0]
    split = split_grid(g, code, _cross_line(g.geometry.iat[0]), c, b, used_codes=g["code"])
    cmp = compare_plans(g, split, c, b, (100, 800))
    assert cmp["a"]["summary"]["grids"] == len(g)
    assert cmp["b"]["summary"]["grids"] == len(g) + 1
    assert cmp["delta"]["grids"] == 1
    assert cmp["b"]["summary"]["kept_grids"] == len(g) - 1
    assert set(cmp["crosswalk"]["old_code"]) == set(g["code"])


def test_edit_conflict_is_reported(layers: Layers) -> None:
    c, g, b = layers
    first = g[g["community_code"] == c["code"].iat[0]].sort_values("code")
    src, dst = first["code"].iat[0], first["code"].iat[2]
    every = b[b.within(_grid(g, src))]["building_id"].tolist()
    with pytest.raises(Conflict):
        move_buildings(g, every, dst, c, b)


def test_round_to_grid_matches_set_precision_and_keeps_shared_vertices() -> None:
    """Vertex rounding gives what ``set_precision`` gives on ordinary cells, keeps a vertex
    two cells share identical in both, and falls back where rounding would break a polygon."""
    gs = 1e-7
    rng = np.random.default_rng(5)
    region = shapely.box(121.55, 38.9, 121.56, 38.908)
    xy = np.column_stack([rng.uniform(121.55, 121.56, 200), rng.uniform(38.9, 38.908, 200)])
    _, _, cells = voronoi_sites(region, xy, gs)
    raw = shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=region)
    inside = np.asarray(
        [c for c in shapely.get_parts(raw) if shapely.contains_properly(region, c)],
        dtype=object,
    )
    fast = round_to_grid(inside, gs)
    slow = shapely.set_precision(inside, gs)
    assert shapely.is_valid(fast).all()
    assert shapely.equals(fast, slow).all()
    coords = shapely.get_coordinates(fast)
    assert np.allclose(np.round(coords / gs) * gs, coords, rtol=0, atol=gs * 1e-3)
    assert shapely.coverage_is_valid(np.asarray(cells, dtype=object))
    # A sliver thinner than the grid collapses when rounded: set_precision handles it.
    sliver = shapely.Polygon([(0, 0), (1, 0.2e-7), (2, 0), (1, 0.1e-7)])
    out = round_to_grid(np.asarray([sliver, shapely.box(0, 0, 1, 1)], dtype=object), gs)
    assert shapely.is_valid(out).all()
    assert len(round_to_grid(np.zeros(0, dtype=object), gs)) == 0


def test_node_coverage_keeps_a_neck_with_its_polygon() -> None:
    """An overlap sliver that is the neck of one polygon stays with it (it used to go to
    the lower index, which cut the dumbbell in two)::

        +---+       +---+
        | 1 |=======| 1 |   (neck of 1, 0.02 high, also covered by 0)
        +---+-------+---+
            |   0   |
            +-------+
    """
    dumbbell = shapely.union_all(
        [shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1), shapely.box(1, 0, 2, 0.02)]
    )
    below = shapely.box(1, -1, 2, 0.02)
    out = node_coverage([below, dumbbell], 0.001)
    assert [shapely.get_num_geometries(g) for g in out] == [1, 1]
    assert out[1].area == pytest.approx(dumbbell.area)
    assert out[0].area == pytest.approx(1.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tiling=tilings)
def test_building_counts_follow_the_assignment_rule(data: st.DataObject, tiling: Tiling) -> None:
    """``assign_buildings`` (a plan's counts, grids sorted by code) gives each point the rule's
    grid, and a point outside every grid its nearest one: the oracle of ``test_assign``."""
    pts = data.draw(points_for(tiling))
    order = np.argsort(np.asarray(tiling.codes, dtype=str), kind="stable")
    codes = [tiling.codes[k] for k in order]
    xy = np.array(pts, dtype=float).reshape(-1, 2)
    owner = assign_buildings([tiling.geoms[k] for k in order], shapely.points(xy))
    for i, (code, _boundary, near, _dist) in enumerate(assignment_oracle(tiling, pts)):
        assert codes[owner[i]] == (code if code is not None else near), (i, pts[i])
