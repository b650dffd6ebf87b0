"""Display geometry: simplification, display precision and the payload, on odd coverages.

The property: whatever the coverage (tiny and sliver-thin grids, rings near the display
precision, holes with and without enclaves, multipolygons and islands), every grid is drawn,
valid and whole, the drawn layer is still a valid coverage, and decoding the payload the way
``gridmap.js`` does gives exactly those rings.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.crs import Coordsys, wgs84_to_gcj02
from maps.common import boundary_layers
from maps.geometry import (
    COORD_DECIMALS,
    MAX_DECIMALS,
    display_lines,
    encode_lines,
    encode_polygons,
    feature_decimals,
    intact,
    is_valid_coverage,
    simplify_coverage,
    snap_to_display,
)
from tests.handmade import ODD_CODE, TINY_DEG, odd_layers
from tests.strategies import Coverage, odd_coverages

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
tolerances = st.sampled_from([0.5, 2.0, 8.0, 40.0])


def decode(layer: dict, polygons: bool = True) -> list[shapely.Geometry]:
    """The payload decoded as ``gridmap.js`` does it (``ring()``), into shapely geometries.

    Each ring is checked on the way: at least three distinct points (four once closed), no
    repeated consecutive point.
    """
    origin = np.asarray(layer["o"], dtype=np.int64)
    decimals = layer.get("dec") or [COORD_DECIMALS] * len(layer["g"])
    out: list[shapely.Geometry] = []
    for feature, dec in zip(layer["g"], decimals, strict=True):
        assert COORD_DECIMALS <= dec <= MAX_DECIMALS
        scale, k = 10.0**dec, 10 ** (dec - COORD_DECIMALS)
        parts = []
        for part in feature:
            rings = []
            for flat in part if polygons else [part]:
                ints = origin * k + np.cumsum(np.asarray(flat, dtype=np.int64).reshape(-1, 2), 0)
                xy = ints / scale
                closed = np.vstack([xy, xy[:1]]) if polygons else xy
                assert not (np.diff(closed, axis=0) == 0).all(axis=1).any(), "repeated point"
                if polygons:
                    assert len(np.unique(xy, axis=0)) >= 3, "a ring of fewer than 4 points"
                rings.append(xy)
            if polygons:
                parts.append(shapely.Polygon(rings[0], rings[1:]))
            else:
                parts.append(shapely.LineString(rings[0]))
        if polygons:
            out.append(shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0])
        else:
            out.append(shapely.MultiLineString(parts) if len(parts) > 1 else parts[0])
    return out


def gcj(geom: shapely.Geometry) -> shapely.Geometry:
    """The geometry offset to GCJ-02, vertex by vertex (as drawn on AMap tiles)."""
    return shapely.transform(geom, lambda xy: np.column_stack(wgs84_to_gcj02(*xy.T)))


def frame(cov: Coverage) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": cov.codes, "community_code": cov.communities}, geometry=cov.geoms, crs=4326
    )


def structure(geom: shapely.Geometry) -> list[int]:
    """Rings per part: what a grid must keep (islands, holes)."""
    return [1 + len(p.interiors) for p in shapely.get_parts(geom)]


def assert_drawn_whole(drawn: np.ndarray, original: list[shapely.Geometry]) -> None:
    """Every grid there, valid, with all its parts and holes, none collapsed; a coverage."""
    assert len(drawn) == len(original)
    assert shapely.is_valid(drawn).all(), shapely.is_valid_reason(drawn)
    assert [structure(g) for g in drawn] == [structure(g) for g in original]
    assert intact(drawn, np.asarray(original, dtype=object)).all()
    assert is_valid_coverage(drawn)


# --- properties ------------------------------------------------------------------------------


@PROPERTY
@given(odd_coverages(), tolerances, st.booleans())
def test_simplified_coverage_keeps_every_grid_whole_and_valid(
    cov: Coverage, tolerance_m: float, gcj02: bool
) -> None:
    grids = frame(cov)
    before = grids.geometry.copy()
    coordsys = Coordsys.GCJ02 if gcj02 else Coordsys.WGS84
    drawn = simplify_coverage(grids, tolerance_m, coordsys=coordsys)
    assert drawn["code"].tolist() == cov.codes
    exact = [gcj(g) for g in cov.geoms] if gcj02 else cov.geoms
    assert_drawn_whole(drawn.geometry.to_numpy(), exact)
    assert (feature_decimals(drawn.geometry) <= MAX_DECIMALS).all()
    assert grids.geometry.geom_equals_exact(before, tolerance=0).all()  # input untouched


@PROPERTY
@given(odd_coverages(), tolerances)
def test_payload_decodes_to_exactly_the_drawn_grids(cov: Coverage, tolerance_m: float) -> None:
    drawn = simplify_coverage(frame(cov), tolerance_m).geometry.to_numpy()
    decoded = np.asarray(decode(encode_polygons(drawn)), dtype=object)
    assert shapely.equals_exact(decoded, drawn, tolerance=0).all()
    assert_drawn_whole(decoded, cov.geoms)


@PROPERTY
@given(odd_coverages())
def test_encoding_unsnapped_grids_still_gives_valid_rings(cov: Coverage) -> None:
    """The encoder protects itself: raw floats are snapped before they become integers."""
    decoded = np.asarray(decode(encode_polygons(cov.geoms)), dtype=object)
    assert_drawn_whole(decoded, cov.geoms)


@PROPERTY
@given(odd_coverages(), st.data())
def test_a_layer_that_is_no_coverage_is_drawn_unsimplified_and_whole(
    cov: Coverage, data: st.DataObject
) -> None:
    """Grids that overlap or no longer share vertices: drawn as they are, each one whole."""
    i = data.draw(st.integers(0, len(cov.geoms) - 1))
    dx = data.draw(st.floats(1e-9, 2e-6))
    geoms = list(cov.geoms)
    geoms[i] = shapely.affinity.translate(geoms[i], dx, dx / 2)
    moved = Coverage(cov.codes, geoms, cov.communities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn = simplify_coverage(frame(moved)).geometry.to_numpy()
    assert shapely.is_valid(drawn).all()
    assert intact(drawn, np.asarray(geoms, dtype=object)).all()
    decoded = np.asarray(decode(encode_polygons(drawn)), dtype=object)
    assert shapely.equals_exact(decoded, drawn, tolerance=0).all()


@PROPERTY
@given(odd_coverages(), tolerances)
def test_outlines_dissolved_from_the_grids_run_along_grid_edges(
    cov: Coverage, tolerance_m: float
) -> None:
    drawn = simplify_coverage(frame(cov), tolerance_m)
    communities = gpd.GeoDataFrame(
        {"code": ["C1", "C2", "C3"], "name": ["一", "二", "三"], "street_code": ["S1", "S1", "S2"]},
        geometry=[shapely.Point(0, 0)] * 3,
        crs=4326,
    )
    layers = boundary_layers(drawn, communities, None, None, coordsys=Coordsys.WGS84)
    grid_rings = decode(encode_polygons(drawn.geometry.to_numpy()))
    edges = shapely.union_all(shapely.boundary(np.asarray(grid_rings, dtype=object)))
    for key in ("communities", "streets"):
        outlines = decode(layers[key], polygons=False)
        assert len(outlines) == len(set(drawn["community_code"])) or key == "streets"
        for line in outlines:
            # Every outline vertex is a grid vertex, every outline segment a grid edge.
            assert shapely.covers(edges, line), key
            vertices = {tuple(xy) for xy in shapely.get_coordinates(edges)}
            assert {tuple(xy) for xy in shapely.get_coordinates(line)} <= vertices


@PROPERTY
@given(
    st.lists(st.tuples(st.floats(0, 3e-6), st.floats(0, 3e-6)), min_size=2, max_size=6),
    st.floats(0, 1e-6),
)
def test_short_roads_never_collapse(steps: list[tuple[float, float]], shift: float) -> None:
    xy = np.cumsum(np.asarray(steps), axis=0) + np.array([121.6 + shift, 38.9])
    line = shapely.LineString(xy)
    if line.length == 0 or len(np.unique(xy, axis=0)) < 2:
        return
    roads = gpd.GeoDataFrame({"name": ["短巷"]}, geometry=[line], crs=4326)
    (drawn,) = display_lines(roads, tolerance_m=2.0)
    assert drawn.geom_type == "LineString" and shapely.get_num_coordinates(drawn) >= 2
    (decoded,) = decode(encode_lines([drawn]), polygons=False)
    assert decoded.length > 0


# --- named cases ---------------------------------------------------------------------------


def test_a_tiny_grid_that_rounds_to_a_point_keeps_its_shape() -> None:
    """The crash of issue 10: a 4 cm grid in a hole of its neighbour, both rounded away."""
    grids = odd_layers()["grids"]
    tiny = grids["code"] == ODD_CODE + "001001002"
    exact = grids.geometry[tiny].iloc[0]
    assert np.ptp(shapely.get_coordinates(exact), axis=0).max() == pytest.approx(TINY_DEG)
    with pytest.raises(shapely.errors.GEOSException, match="LinearRing"):  # what maps did
        shapely.remove_repeated_points(
            shapely.transform(exact, lambda xy: np.round(xy, COORD_DECIMALS)), 0.0
        )
    drawn = simplify_coverage(grids)
    assert_drawn_whole(drawn.geometry.to_numpy(), list(grids.geometry))
    shape = drawn.geometry[tiny].iloc[0]
    # Not simplified into a triangle, and drawn at finer decimals: within 1e-8 degrees.
    assert shapely.get_num_coordinates(shape) == shapely.get_num_coordinates(exact) == 5
    assert shapely.hausdorff_distance(shape, exact) <= 1e-8
    assert shape.area == pytest.approx(exact.area, rel=0.05)
    layer = encode_polygons(drawn.geometry.to_numpy())
    assert layer["dec"][int(np.flatnonzero(tiny)[0])] > COORD_DECIMALS
    assert layer["dec"].count(COORD_DECIMALS) >= 2  # the others stay light


def test_ordinary_grids_stay_at_display_precision() -> None:
    from tests.maps.test_maps import wiggly_grids

    drawn = simplify_coverage(wiggly_grids(), tolerance_m=8.0)
    assert (feature_decimals(drawn.geometry) == COORD_DECIMALS).all()
    assert "dec" not in encode_polygons(drawn.geometry.to_numpy())


def test_snapping_is_idempotent_and_leaves_display_precision_alone() -> None:
    grids = odd_layers()["grids"]
    once = snap_to_display(grids.geometry.to_numpy(), coverage=True)
    twice = snap_to_display(once, coverage=True)
    assert shapely.equals_exact(once, twice, tolerance=0).all()
    assert_drawn_whole(once, list(grids.geometry))
