"""The regridding engine: guarantees, codes, crosswalk, determinism and refusals.

Synthetic district used by most tests (``synthetic``): communities are boxes, each tiled by
old grids of uneven size, with random buildings::

    +--------+--------+--------+
    | c(0,1) | c(1,1) | c(2,1) |     each community: gx × gy old grids
    +--------+--------+--------+
    | c(0,0) | c(1,0) | c(2,0) |
    +--------+--------+--------+
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geo.errors import InvalidInput
from geo.plans import check_plan, precise_inputs
from geo.regrid import (
    RegridRequest,
    _bisect,
    _cell_adjacency,
    _cell_faces,
    _largest_remainder,
    _line_blocks,
    _shared_segments,
    regrid,
)
from geo.topology import voronoi_sites

X0, Y0 = 121.55, 38.90


def synthetic(
    seed: int = 0, ncx: int = 3, ncy: int = 2, gx: int = 3, gy: int = 2, per_comm: int = 60
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Communities, old grids and buildings; coordinates on the 1e-7 degree grid."""
    rng = np.random.default_rng(seed)
    cw, ch = 0.01, 0.008
    comms, grids, blds = [], [], []
    for i in range(ncx):
        for j in range(ncy):
            cc = f"210204{1 + i:03d}{1 + j:03d}"
            x1, y1 = X0 + i * cw, Y0 + j * ch
            comms.append(
                {
                    "code": cc,
                    "name": f"社区{i}{j}",
                    "street_code": cc[:9],
                    "geometry": box(
                        round(x1, 7), round(y1, 7), round(x1 + cw, 7), round(y1 + ch, 7)
                    ),
                }
            )
            xs = np.r_[0, np.sort(rng.uniform(0.2, 0.8, gx - 1)), 1]
            ys = np.r_[0, np.sort(rng.uniform(0.2, 0.8, gy - 1)), 1]
            seq = 1
            for a in range(gx):
                for b in range(gy):
                    g = box(
                        *(
                            round(v, 7)
                            for v in (
                                x1 + xs[a] * cw,
                                y1 + ys[b] * ch,
                                x1 + xs[a + 1] * cw,
                                y1 + ys[b + 1] * ch,
                            )
                        )
                    )
                    grids.append(
                        {
                            "code": f"{cc}{seq:03d}",
                            "community_code": cc,
                            "name": f"旧{seq}",
                            "geometry": g,
                        }
                    )
                    seq += 1
            px = rng.uniform(x1 + 1e-5, x1 + cw - 1e-5, per_comm)
            py = rng.uniform(y1 + 1e-5, y1 + ch - 1e-5, per_comm)
            for k in range(per_comm):
                blds.append(
                    {
                        "building_id": f"B{i}{j}{k:04d}",
                        "address": "x",
                        "households": int(rng.integers(5, 60)),
                        "residents": int(rng.integers(10, 150)),
                        "geometry": shapely.Point(round(px[k], 7), round(py[k], 7)),
                    }
                )

    def frame(rows: list[dict[str, object]]) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")

    # As a load stores them: noded, densified and exactly nested (geo.topology).
    communities, grids_frame, _ = precise_inputs(frame(comms), frame(grids))
    return communities, grids_frame, frame(blds)


@pytest.fixture(scope="module")
def district() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    return synthetic(0)


@pytest.fixture(scope="module")
def result(district):  # type: ignore[no-untyped-def]
    c, g, b = district
    return regrid(c, g, b, RegridRequest(target=48), used_codes=["210204001001050"])


def test_guarantees_hold(district, result) -> None:  # type: ignore[no-untyped-def]
    c, _, b = district
    assert len(result.grids) == 48
    assert check_plan(c, result.grids, b) == []
    s = result.summary
    assert s["coverage_valid"] and s["contiguity_share"] == 1.0
    assert shapely.coverage_is_valid(result.grids.geometry.values)
    for code, geom in zip(c["code"], c.geometry, strict=True):
        mine = result.grids[result.grids["community_code"] == code]
        assert len(mine) >= 1
        assert (
            abs(
                mine.to_crs(32651).area.sum()
                - gpd.GeoSeries([geom], crs=4326).to_crs(32651).area[0]
            )
            < 5
        )
    assert s["max_over_mean"] <= 1.35 and s["min_over_mean"] >= 0.65


def test_allocation_is_proportional(district, result) -> None:  # type: ignore[no-untyped-def]
    c, _, b = district
    counts = result.grids.groupby("community_code").size()
    owner = gpd.sjoin(b, c[["code", "geometry"]], predicate="within")
    hh = owner.groupby("code")["households"].sum().reindex(c["code"])
    expect = _largest_remainder(48, hh.to_numpy(float), np.full(len(c), 10**6))
    assert counts.reindex(c["code"]).tolist() == expect


def test_largest_remainder() -> None:
    assert _largest_remainder(10, np.array([5.0, 3.0, 2.0]), np.array([99, 99, 99])) == [5, 3, 2]
    assert _largest_remainder(4, np.array([100.0, 1.0, 1.0]), np.array([99, 99, 99])) == [2, 1, 1]
    assert _largest_remainder(7, np.array([1.0, 1.0, 1.0]), np.array([99, 99, 99])) == [3, 2, 2]


def test_codes(district, result) -> None:  # type: ignore[no-untyped-def]
    _, g, _ = district
    old = dict(zip(g["code"], g.geometry, strict=True))
    codes = result.grids["code"].tolist()
    assert len(set(codes)) == len(codes)
    kept = result.grid_metrics[result.grid_metrics["kept"]]["code"]
    for code in kept:
        assert code in old
    for code, cc, geom in zip(
        codes, result.grids["community_code"], result.grids.geometry, strict=True
    ):
        assert len(code) == 15 and code.isdigit() and code.startswith(cc)
        if code not in old:
            assert code != "210204001001050"
            if cc == "210204001001":
                assert int(code[-3:]) > 50  # continues after the highest used sequence
        else:
            assert shapely.hausdorff_distance(geom, old[code]) < 1e-6
    # New codes of a community run west to east.
    for cc, sub in result.grids[~result.grids["code"].isin(list(old))].groupby("community_code"):
        xs = [p.x for p in sub.sort_values("code").geometry.representative_point()]
        assert xs == sorted(xs), cc


def test_crosswalk_preserves_households(district, result) -> None:  # type: ignore[no-untyped-def]
    _, g, b = district
    walk = result.crosswalk
    assert list(walk.columns) == [
        "old_code",
        "new_code",
        "shared_area_m2",
        "buildings",
        "households",
    ]
    per_old = walk.groupby("old_code")["households"].sum()
    owner = gpd.sjoin(b, g[["code", "geometry"]], predicate="within")
    truth = owner.groupby("code")["households"].sum()
    assert per_old.reindex(truth.index).tolist() == truth.tolist()
    assert walk["buildings"].sum() == len(b)


def test_deterministic(district) -> None:  # type: ignore[no-untyped-def]
    c, g, b = district
    r1 = regrid(c, g, b, RegridRequest(target=40, seed=3))
    r2 = regrid(c, g, b, RegridRequest(target=40, seed=3))
    assert (
        shapely.to_wkb(r1.grids.geometry.values).tolist()
        == shapely.to_wkb(r2.grids.geometry.values).tolist()
    )
    assert r1.grids.drop(columns="geometry").equals(r2.grids.drop(columns="geometry"))
    assert r1.crosswalk.equals(r2.crosswalk)


def test_band_mode_and_weights(district) -> None:  # type: ignore[no-untyped-def]
    c, g, b = district
    r = regrid(c, g, b, RegridRequest(households_band=(150, 250)))
    assert check_plan(c, r.grids, b) == []
    assert r.summary["band_share"] >= 0.6
    w = regrid(c, g, b, RegridRequest(target=40, weights={"households": 1.0, "residents": 0.5}))
    assert check_plan(c, w.grids, b) == []
    assert abs(w.grid_metrics["load"].sum() - b["households"].sum()) < 0.1


def test_target_and_band_together(district) -> None:  # type: ignore[no-untyped-def]
    """The target fixes the count; the band is the one grids are kept in and reported against."""
    c, g, b = district
    both = regrid(c, g, b, RegridRequest(target=40, households_band=(150, 250)))
    assert len(both.grids) == 40 and check_plan(c, both.grids, b) == []
    assert both.summary["band"] == [150, 250]
    loads = both.grid_metrics.set_index("code")["load"]
    outside = {code for code, load in loads.items() if not 150 <= load <= 250}
    assert outside and {w["grid_code"] for w in both.summary["warnings"]} == outside


def test_without_old_grids(district) -> None:  # type: ignore[no-untyped-def]
    c, _, b = district
    r = regrid(c, None, b, RegridRequest(target=24))
    assert len(r.grids) == 24 and check_plan(c, r.grids, b) == []


def test_tower_is_reported(district) -> None:  # type: ignore[no-untyped-def]
    c, g, b = district
    b = b.copy()
    b.loc[0, "households"] = 900
    r = regrid(c, g, b, RegridRequest(target=48))
    reasons = " ".join(w["reason"] for w in r.summary["warnings"])
    assert f"building {b.loc[0, 'building_id']} alone" in reasons


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), extra=st.integers(0, 12))
def test_guarantees_any_seed(seed: int, extra: int) -> None:
    c, g, b = synthetic(seed, ncx=2, ncy=2, gx=2, gy=2, per_comm=40)
    r = regrid(c, g, b, RegridRequest(target=len(c) + extra, seed=seed))
    assert check_plan(c, r.grids, b) == []
    assert r.summary["contiguity_share"] == 1.0
    assert len(r.grids) == len(c) + extra


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (RegridRequest(target=5), "target"),
        (RegridRequest(target=10_000), "target"),
        (RegridRequest(households_band=(5000, 6000)), "households"),
    ],
)
def test_refusals(district, request_: RegridRequest, field: str) -> None:  # type: ignore[no-untyped-def]
    """What this district cannot meet (the request itself is well formed)."""
    c, g, b = district
    with pytest.raises(InvalidInput) as err:
        regrid(c, g, b, request_)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("asked", "field"),
    [
        ({"households_band": (500, 300)}, "households"),
        ({"households_band": (0, 300)}, "households"),
        ({}, "target"),
        ({"target": 0}, "target"),
        ({"target": 40, "weights": {"income": 1.0}}, "weights.income"),
        ({"target": 40, "weights": {"households": float("inf")}}, "weights.households"),
        ({"target": 40, "weights": {"households": 0.0}}, "weights"),
        ({"target": 40, "seed": -1}, "seed"),
    ],
)
def test_a_request_that_no_district_could_meet_is_refused_when_made(
    asked: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        RegridRequest(**asked)
    assert err.value.field == field


def test_community_without_households_keeps_its_grids(district) -> None:  # type: ignore[no-untyped-def]
    """A park, a port, an industrial zone: nothing to balance, so its grids stay exactly as
    they are (code and geometry), the summary lists it, and the rest is regridded."""
    c, g, b = district
    b = b.copy()
    idle = c["code"].iat[0]
    inside = b.within(c.geometry.iat[0])
    b.loc[inside, "households"] = 0
    r = regrid(c, g, b, RegridRequest(target=40))
    assert len(r.grids) == 40 and check_plan(c, r.grids, b) == []
    old = g[g["community_code"] == idle].sort_values("code")
    new = r.grids[r.grids["community_code"] == idle].sort_values("code")
    assert new["code"].tolist() == old["code"].tolist()
    assert shapely.equals(new.geometry.to_numpy(), old.geometry.to_numpy()).all()
    assert r.summary["kept_as_they_are"] == [
        {"community_code": idle, "grids": len(old), "reason": "no households"}
    ]
    assert not any(w["grid_code"] in set(old["code"]) for w in r.summary["warnings"])
    assert r.summary["grids_without_load"] == len(old)
    assert r.summary["min_over_mean"] > 0.5  # balance is over grids with load


def test_target_too_small_once_idle_grids_are_kept(district) -> None:  # type: ignore[no-untyped-def]
    c, g, b = district
    b = b.copy()
    b.loc[b.within(c.geometry.iat[0]), "households"] = 0
    kept = int((g["community_code"] == c["code"].iat[0]).sum())
    with pytest.raises(InvalidInput, match="without households are kept"):
        regrid(c, g, b, RegridRequest(target=len(c) - 1 + kept - 1))


def test_district_without_households_is_refused(district) -> None:  # type: ignore[no-untyped-def]
    c, g, b = district
    with pytest.raises(InvalidInput, match="no community has any load"):
        regrid(c, g, b.assign(households=0), RegridRequest(target=40))


def test_tiny_fixture() -> None:
    district = pytest.importorskip("fixtures.district")
    d = district.generate_district("tiny")
    r = regrid(d.communities, d.grids, d.buildings, RegridRequest(target=16), roads=d.roads)
    assert r.summary["inputs_noded"]  # the generator's frames are not as a load stores them
    assert check_plan(r.communities, r.grids, d.buildings) == []
    communities, grids, _ = precise_inputs(d.communities, d.grids)
    stored = regrid(communities, grids, d.buildings, RegridRequest(target=16), roads=d.roads)
    assert not stored.summary["inputs_noded"]
    assert check_plan(communities, stored.grids, d.buildings) == []
    assert len(r.grids) == 16


def test_cuts_follow_a_road_across_a_community() -> None:
    """A road crossing every community: with the road layer, more new boundary lies on it::

    +--------+--------+--------+
    |   ============road=====  |   (y = mid-height of the top row)
    +--------+--------+--------+
    """
    c, g, b = synthetic(3, gx=1, gy=1, per_comm=80)
    y = round(Y0 + 0.008 * 1.5, 7)
    road = gpd.GeoDataFrame(
        {"name": ["路"]},
        geometry=[shapely.LineString([(X0 - 0.001, y), (X0 + 0.031, y)])],
        crs="EPSG:4326",
    )
    on_road = []
    for roads in (None, road):
        res = regrid(c, g, b, RegridRequest(target=12), roads=roads)
        assert check_plan(c, res.grids, b) == []
        assert shapely.coverage_is_valid(res.grids.geometry.values)
        inner = shapely.difference(
            shapely.union_all(res.grids.boundary.values),
            shapely.union_all(c.boundary.values).buffer(1e-6),
        )
        near = shapely.intersection(inner, road.geometry.iat[0].buffer(2e-6))
        on_road.append(near.length / max(inner.length, 1e-12))
    assert on_road[1] > on_road[0] + 0.1


def test_drawn_grids_are_compact(district, result) -> None:  # type: ignore[no-untyped-def]
    m = result.grid_metrics
    drawn = m[~m["kept"]]
    assert drawn["polsby_popper"].min() >= 0.2
    assert drawn["polsby_popper"].mean() >= 0.45


def test_drawn_grids_are_balanced(district, result) -> None:  # type: ignore[no-untyped-def]
    """Old grids whose parts cannot come within BALANCE_TOLERANCE of their community's mean
    merge with a neighbour, so every drawn grid lies near that mean (was up to 14% off)."""
    g, m = result.grids, result.grid_metrics
    rel = g["load"] / g.groupby("community_code")["load"].transform("mean")
    drawn = ~m["kept"].to_numpy()
    assert (rel[drawn] - 1).abs().max() <= 0.08
    assert rel[drawn].std() <= 0.04


def test_faces_and_blocks_follow_cut_lines() -> None:
    """Cells cut by an L-shaped line: faces tile the region, adjacency matches the faces,
    and the blocks are the two pieces the line cuts the region into."""
    gs = 1e-7
    rng = np.random.default_rng(2)
    region = shapely.set_precision(box(X0, Y0, X0 + 0.004, Y0 + 0.003), gs)
    xy = np.round(
        np.column_stack([rng.uniform(X0, X0 + 0.004, 150), rng.uniform(Y0, Y0 + 0.003, 150)]),
        7,
    )
    _, _, cells = voronoi_sites(region, xy, gs)
    line = shapely.set_precision(
        shapely.LineString(
            [(X0 + 0.0012, Y0 - 0.001), (X0 + 0.0012, Y0 + 0.0015), (X0 + 0.005, Y0 + 0.0015)]
        ),
        gs,
    )
    lines = shapely.intersection(line, region, grid_size=gs)
    faces, cell_of = _cell_faces(cells, lines, gs)
    assert len(faces) > len(cells)
    assert np.all(np.diff(cell_of) >= 0)
    assert shapely.area(faces).sum() == pytest.approx(region.area, rel=1e-9)
    i, j, length, mid = _shared_segments(faces, gs, 1.0)
    _, _, alen = _cell_adjacency(faces, gs, 1.0)
    assert alen.sum() == pytest.approx(length.sum())
    block = _line_blocks(len(faces), i, j, length, mid, lines, gs)
    assert len(np.unique(block)) == 2
    corner = shapely.box(X0 + 0.0012, Y0, X0 + 0.004, Y0 + 0.0015)
    in_corner = shapely.within(shapely.point_on_surface(faces), corner)
    assert len(np.unique(block[in_corner])) == 1
    assert len(np.unique(block[~in_corner])) == 1
    assert block[in_corner][0] != block[~in_corner][0]
    assert (_line_blocks(len(faces), i, j, length, mid, None, gs) == 0).all()


def test_bisect_is_balanced_and_sorted_input_safe() -> None:
    """Recursive bisection (all directions at once) gives n non-empty parts of near-equal
    load, the same with and without block ordering when there is one block."""
    rng = np.random.default_rng(4)
    pos = rng.uniform(0, 1, (400, 2))
    w = rng.integers(1, 4, 400).astype(float)
    angles = np.arange(12) * np.pi / 12
    for block in (None, np.zeros(400, dtype=np.int64)):
        labels = np.zeros(400, dtype=np.int64)
        _bisect(np.arange(400), 7, 0, labels, pos, w, angles, block)
        load = np.bincount(labels, w, minlength=7)
        assert (load > 0).all()
        assert load.max() / load.mean() < 1.03
