"""Display geometry: the grid coverage simplified, snapped to display precision and encoded.

Every drawn layer goes through three steps, each keeping what the one before guaranteed
(every grid there, valid, with all its parts and holes; the coverage valid):

1. :func:`simplify_coverage` simplifies the grids as one coverage, in metres
   (``shapely.coverage_simplify``). A grid that simplification would break (a tiny grid
   reduced to a triangle, a hole or an island part losing a quarter of its area) keeps its
   exact geometry, and its neighbours keep their shared edges with it exact.
2. :func:`snap_to_display` rounds the vertices to 1e-6 degrees (about 0.1 m). Where that
   would collapse a ring, make a geometry invalid or break the coverage (judged against
   the exact grid, so that both steps together never break one), the vertices of the
   geometries involved keep more decimals (8, 10, 12, then all). Rounding is decided per
   vertex, never per geometry, so a vertex shared by neighbours stays shared.
3. :func:`encode_polygons` and :func:`encode_lines` send each feature as delta-encoded
   integers at the fewest decimals that hold all its vertices exactly, so the page draws
   exactly the snapped geometry and outlines dissolved from the grids stay on grid edges.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geo.crs import Coordsys, to_metric, to_wgs84

__all__ = [
    "COORD_DECIMALS",
    "MAX_DECIMALS",
    "Layer",
    "as_geoms",
    "display_lines",
    "dissolve_by",
    "encode_lines",
    "encode_polygons",
    "feature_decimals",
    "intact",
    "is_valid_coverage",
    "simplify_coverage",
    "snap_to_display",
    "union_of_tiles",
]

#: Display precision: 1e-6 degrees is about 0.1 m, far below a screen pixel at zoom 18.
COORD_DECIMALS = 6
#: The finest precision a payload carries; integers stay exact in JavaScript (< 2**53).
MAX_DECIMALS = 12
#: Decimals a vertex may be given, coarsest first; one past the end means "exact".
_LADDER = (COORD_DECIMALS, 8, 10, MAX_DECIMALS)
#: A ring whose area changes by more than this factor is broken (collapsed or blown up).
_AREA_FACTOR = 4 / 3
#: Geometries this close to an invalid coverage edge get finer (twice the largest rounding).
_NEAR_DEG = 2 * 10.0**-COORD_DECIMALS
#: Rounds of raising precision before the whole layer is kept exact.
_MAX_ROUNDS = 24

Layer = dict[str, Any]
Geoms = npt.NDArray[np.object_]


# --- what "intact" means -----------------------------------------------------------------


def _present(geoms: Geoms) -> npt.NDArray[np.bool_]:
    return ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))


def _ring_areas(geoms: Geoms) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Rings per geometry and each ring's own area (as a filled polygon), in order."""
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    owner = part_of[ring_of] if len(rings) else np.zeros(0, dtype=np.int64)
    counts = np.bincount(owner, minlength=len(geoms)).astype(np.int64)
    areas = shapely.area(shapely.polygons(rings)) if len(rings) else np.zeros(0)
    return counts, np.asarray(areas, dtype=float)


def intact(candidate: Geoms, original: Geoms) -> npt.NDArray[np.bool_]:
    """Per geometry: ``candidate`` is still ``original`` in all that a map must show.

    Present where the original is, valid (polygons) or simple (lines) where the original
    is, with the same parts and rings, and every polygon ring within a factor of 4/3 of
    its area: a ring reduced to a line or a point, a lost hole or island, a self-crossing
    outline all count as broken.
    """
    ok = _present(candidate) | ~_present(original)
    ok &= shapely.get_num_geometries(candidate) == shapely.get_num_geometries(original)
    polygonal = np.isin(shapely.get_type_id(original), (3, 6))
    valid_before = shapely.is_valid(original)
    ok &= shapely.is_valid(candidate) | ~valid_before
    lineal = ~polygonal & _present(original)
    if lineal.any():
        ok[lineal] &= shapely.is_simple(candidate[lineal]) | ~shapely.is_simple(original[lineal])
    idx = np.flatnonzero(polygonal & ok)
    if idx.size:
        n_before, a_before = _ring_areas(original[idx])
        n_after, a_after = _ring_areas(candidate[idx])
        same = n_before == n_after
        # Rings keep their order, so those of geometries with as many rings as before align.
        owner_before = np.repeat(np.arange(idx.size), n_before)
        owner_after = np.repeat(np.arange(idx.size), n_after)
        kept = same[owner_before]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = a_after[same[owner_after]] / a_before[kept]
        bad_ring = ~((ratio <= _AREA_FACTOR) & (ratio >= 1 / _AREA_FACTOR))
        bad = ~same | (np.bincount(owner_before[kept][bad_ring], minlength=idx.size) > 0)
        ok[idx[bad]] = False
    return np.asarray(ok, dtype=bool)


def _coverage_breaks(candidate: Geoms) -> npt.NDArray[np.bool_]:
    """Geometries with an invalid coverage edge (an overlap, an unmatched shared edge)."""
    present = _present(candidate)
    out = np.zeros(len(candidate), dtype=bool)
    if present.sum() < 2 or shapely.coverage_is_valid(candidate[present]):
        return out
    edges = shapely.coverage_invalid_edges(candidate[present])
    out[np.flatnonzero(present)] = ~shapely.is_empty(edges)
    return out


def _near_invalid_edges(candidate: Geoms) -> npt.NDArray[np.bool_]:
    """Geometries that come near an invalid coverage edge of ``candidate``.

    Every side of a new overlap or mismatch must get finer, and the side at fault may not
    be the one whose edge is reported (a hole in a sliver whose long edges moved, say).
    """
    present = _present(candidate)
    near = np.zeros(len(candidate), dtype=bool)
    if present.sum() < 2 or shapely.coverage_is_valid(candidate[present]):
        return near
    edges = shapely.coverage_invalid_edges(candidate[present])
    tree = shapely.STRtree(candidate)
    hits = tree.query(edges[~shapely.is_empty(edges)], predicate="dwithin", distance=_NEAR_DEG)
    near[hits[1]] = True
    return near


def is_valid_coverage(geoms: Geoms) -> bool:
    """Valid polygons with disjoint interiors whose shared edges match vertex for vertex."""
    present = geoms[_present(geoms)]
    return bool(shapely.is_valid(present).all() and shapely.coverage_is_valid(present))


# --- step 1: simplification ----------------------------------------------------------------


def _simplify_fixing(metric: Geoms, tolerance_m: float, fixed: npt.NDArray[np.bool_]) -> Geoms:
    """``coverage_simplify``, with the ``fixed`` grids and their shared edges left exact.

    The free grids are simplified together with a frame (the envelope minus the coverage)
    and ``simplify_boundary=False``: edges towards fixed grids are then on the boundary and
    kept, while the district's outline, shared with the frame, is still simplified.
    """
    if not fixed.any():
        return np.asarray(shapely.coverage_simplify(metric, tolerance_m), dtype=object)
    free = np.flatnonzero(~fixed)
    out = metric.copy()
    if free.size == 0:
        return out
    xmin, ymin, xmax, ymax = shapely.total_bounds(metric)
    pad = 10 * tolerance_m + 10.0
    frame = shapely.difference(
        shapely.box(xmin - pad, ymin - pad, xmax + pad, ymax + pad),
        shapely.coverage_union_all(metric),
    )
    cover = np.append(metric[free], frame)
    if is_valid_coverage(cover):
        simple = shapely.coverage_simplify(cover, tolerance_m, simplify_boundary=False)[:-1]
    else:  # keep the outline exact rather than guess
        simple = shapely.coverage_simplify(metric[free], tolerance_m, simplify_boundary=False)
    out[free] = simple
    return out


def _back_to_lonlat(simple: Geoms, metric: Geoms, lonlat: Geoms, crs: Any) -> Geoms:
    """Simplified metric geometries in lon/lat, every kept vertex exactly its original.

    Visvalingam-Whyatt only removes vertices, so each one is looked up instead of being
    projected back (which would move exact vertices by float noise).
    """
    m_xy = shapely.get_coordinates(metric)
    ll_xy = shapely.get_coordinates(lonlat)
    keys = m_xy[:, 0] + 1j * m_xy[:, 1]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    s_xy = shapely.get_coordinates(simple)
    wanted = s_xy[:, 0] + 1j * s_xy[:, 1]
    pos = np.clip(np.searchsorted(sorted_keys, wanted), 0, max(len(keys) - 1, 0))
    found = sorted_keys[pos] == wanted if len(keys) else np.zeros(len(wanted), dtype=bool)
    if not found.all():  # a vertex GEOS created: project the layer back instead
        return np.asarray(gpd.GeoSeries(simple, crs=crs).to_crs(4326).to_numpy(), dtype=object)
    return np.asarray(shapely.set_coordinates(simple.copy(), ll_xy[order[pos]]), dtype=object)


def _simplify_lonlat(lonlat: Geoms, tolerance_m: float) -> tuple[Geoms, int]:
    """Coverage-simplified grids in lon/lat and how many kept their exact geometry."""
    projected, crs = to_metric(lonlat)
    metric = as_geoms(projected)
    fixed = np.zeros(len(metric), dtype=bool)
    for _ in range(3):
        simple = _simplify_fixing(metric, tolerance_m, fixed)
        broken = (~intact(simple, metric) | _coverage_breaks(simple)) & ~fixed
        if not broken.any():
            break
        fixed |= broken
    else:
        simple, fixed = metric.copy(), np.ones(len(metric), dtype=bool)
    return _back_to_lonlat(simple, metric, lonlat, crs), int(fixed.sum())


# --- step 2: display precision -------------------------------------------------------------


def _round_per_vertex(xy: npt.NDArray[np.float64], level: npt.NDArray[np.int64]) -> Any:
    out = xy.copy()
    for i, decimals in enumerate(_LADDER):
        rows = level == i
        if rows.any():
            out[rows] = np.round(xy[rows], decimals)
    return out  # rows at len(_LADDER) stay exact


def _without_repeats(geoms: Geoms) -> tuple[Geoms, npt.NDArray[np.bool_]]:
    """Consecutive repeated vertices removed; ``failed`` where a ring or line collapsed."""
    failed = np.zeros(len(geoms), dtype=bool)
    try:
        return np.asarray(shapely.remove_repeated_points(geoms, 0.0), dtype=object), failed
    except shapely.errors.GEOSException:
        out = geoms.copy()
        for i, geom in enumerate(geoms):
            try:
                out[i] = shapely.remove_repeated_points(geom, 0.0)
            except shapely.errors.GEOSException:
                failed[i] = True
        return out, failed


def snap_to_display(
    geoms: Sequence[Any] | Geoms, *, coverage: bool = False, exact: Geoms | None = None
) -> Geoms:
    """Vertices rounded to 1e-6 degrees wherever that keeps every geometry intact.

    A geometry that rounding would break (see :func:`intact`) has its vertices rounded to
    more decimals (8, 10, 12), then left exact; the same vertex in a neighbour follows, so
    shared edges stay shared. With ``coverage`` (the caller knows the input is a valid
    coverage) the geometries of an edge that rounding would make invalid do the same.
    ``exact`` are the geometries these stand for (before simplification), against which
    "intact" is judged, so that simplifying and rounding together never break a grid.
    Geometries already at display precision come back unchanged.
    """
    arr = as_geoms(geoms)
    reference = arr if exact is None else exact
    xy, owner = shapely.get_coordinates(arr, return_index=True)
    if len(xy) == 0:
        return arr.copy()
    _, vertex = np.unique(xy[:, 0] + 1j * xy[:, 1], return_inverse=True)
    vertex = vertex.ravel()
    level = np.zeros(int(vertex.max()) + 1, dtype=np.int64)
    keep_cover = coverage and len(arr) > 1
    for _ in range(_MAX_ROUNDS):
        rounded = _round_per_vertex(xy, level[vertex])
        if np.array_equal(rounded, xy):
            return arr.copy()
        candidate, failed = _without_repeats(shapely.set_coordinates(arr.copy(), rounded))
        broken = failed | ~intact(candidate, reference)
        if broken.any():
            finer = np.unique(vertex[broken[owner]])
        elif keep_cover and (near := _near_invalid_edges(candidate)).any():
            finer = np.unique(vertex[near[owner]])
        else:
            return candidate
        coarsest = level[finer].min()
        if coarsest >= len(_LADDER):
            break
        # Coarsest first: a neighbour left at 1e-6 is more likely at fault than one at 1e-10.
        finer = finer[level[finer] == coarsest]
        level[finer] += 1
    return arr.copy()


def _is_polygonal(geoms: Geoms) -> bool:
    present = geoms[_present(geoms)]
    return bool(np.isin(shapely.get_type_id(present), (3, 6)).all())


def as_geoms(geoms: Sequence[Any] | Geoms) -> Geoms:
    """A 1-d object array of geometries (``np.asarray`` would try to unpack some inputs)."""
    items = list(geoms)
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def drawn_in(geoms: Geoms, coordsys: Coordsys) -> Geoms:
    """Offset to the basemap's system (GCJ-02 for AMap tiles): drawn copies only, never
    stored data."""
    if not coordsys.is_offset or len(geoms) == 0:
        return geoms

    def shift(xy: npt.NDArray[np.float64]) -> Any:
        lon, lat = coordsys.from_wgs84(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return np.asarray(shapely.transform(geoms, shift), dtype=object)


def simplify_coverage(
    grids: gpd.GeoDataFrame, tolerance_m: float = 2.0, *, coordsys: Coordsys = Coordsys.WGS84
) -> gpd.GeoDataFrame:
    """The grid layer as drawn: simplified as one coverage, at display precision, EPSG:4326.

    Simplifying each polygon on its own opens slivers and gaps between neighbours;
    ``shapely.coverage_simplify`` on the whole layer keeps every shared edge shared, and
    runs in the metric (UTM) CRS so ``tolerance_m`` is in metres. Grids that simplifying
    or rounding would break keep their exact geometry (see the module docstring). An input
    that is not a valid coverage is drawn unsimplified, with a warning. Vertices are offset
    to the basemap's ``coordsys`` before rounding (GCJ-02 for AMap tiles).
    """
    out = to_wgs84(grids) if grids.crs is not None else grids.set_crs(4326)
    result = out.copy()
    if len(out) == 0:
        return result
    geoms = as_geoms(out.geometry.to_numpy())
    present = _present(geoms)
    tiling = _is_polygonal(geoms) and is_valid_coverage(geoms)
    display = geoms.copy()
    if not tiling:
        warnings.warn(
            "grids are not a valid coverage (overlaps or unmatched edges): drawn unsimplified",
            stacklevel=2,
        )
    elif present.any():
        display[present], _ = _simplify_lonlat(geoms[present], tolerance_m)
    display, exact = drawn_in(display, coordsys), drawn_in(geoms, coordsys)
    result[result.geometry.name] = snap_to_display(display, coverage=tiling, exact=exact)
    return result


def display_lines(
    lines: gpd.GeoDataFrame, tolerance_m: float = 2.0, *, coordsys: Coordsys = Coordsys.WGS84
) -> Geoms:
    """Lines (roads) as drawn: simplified in metres, at display precision, never collapsed."""
    lonlat = to_wgs84(lines) if lines.crs is not None else lines.set_crs(4326)
    geoms = as_geoms(lonlat.geometry.to_numpy())
    present = _present(geoms)
    if present.any():
        metric, crs = to_metric(geoms[present])
        thin = shapely.simplify(as_geoms(metric), tolerance_m)
        geoms[present] = gpd.GeoSeries(thin, crs=crs).to_crs(4326).to_numpy()
    return snap_to_display(drawn_in(geoms, coordsys), coverage=False)


# --- dissolving ------------------------------------------------------------------------------


def dissolve_by(grids: gpd.GeoDataFrame, key: pd.Series) -> dict[str, Any]:
    """Union grids per key (e.g. community code) with ``coverage_union_all``.

    Boundaries drawn from the simplified grids coincide exactly with the grid edges,
    which independently simplified community polygons would not.
    """
    geoms = grids.geometry.to_numpy()
    out: dict[str, Any] = {}
    for value, idx in pd.Series(range(len(grids)), index=key.astype(str).to_numpy()).groupby(
        level=0, sort=True
    ):
        out[str(value)] = union_of_tiles(geoms[idx.to_numpy()])
    return out


def union_of_tiles(geoms: Any) -> Any:
    """``coverage_union_all`` where the tiles match edge for edge, else a general union.

    A layer that is not a valid coverage (drawn unsimplified) can have neighbours that
    overlap or meet at unshared vertices; the general union is slower but never refuses.
    """
    members = np.asarray(geoms, dtype=object)
    try:
        return shapely.coverage_union_all(members)
    except shapely.errors.GEOSException:
        return shapely.union_all(shapely.make_valid(members))


# --- step 3: payload -----------------------------------------------------------------------


def feature_decimals(geoms: Sequence[Any] | Geoms) -> npt.NDArray[np.int64]:
    """Per geometry, the fewest decimals (6 to 12) that hold all its vertices exactly.

    ``MAX_DECIMALS + 1`` where none does (a geometry that was never snapped).
    """
    arr = as_geoms(geoms)
    xy, owner = shapely.get_coordinates(arr, return_index=True)
    per_vertex = np.full(len(xy), MAX_DECIMALS + 1, dtype=np.int64)
    for decimals in range(MAX_DECIMALS, COORD_DECIMALS - 1, -1):
        per_vertex[(np.round(xy, decimals) == xy).all(axis=1)] = decimals
    out = np.full(len(arr), COORD_DECIMALS, dtype=np.int64)
    np.maximum.at(out, owner, per_vertex)
    return out


def _at_display_precision(arr: Geoms, coverage: bool) -> tuple[Geoms, npt.NDArray[np.int64]]:
    decimals = feature_decimals(arr)
    if (decimals > MAX_DECIMALS).any():  # not snapped by the caller: snap here
        coverage = coverage and _is_polygonal(arr) and is_valid_coverage(arr)
        arr = snap_to_display(arr, coverage=coverage)
        decimals = np.minimum(feature_decimals(arr), MAX_DECIMALS)
    return arr, decimals


def _origin(geoms: Geoms) -> npt.NDArray[np.int64]:
    """South-west corner of the layer in units of 1e-6 degrees."""
    present = geoms[_present(geoms)]
    if not len(present):
        return np.zeros(2, dtype=np.int64)
    minx, miny, _, _ = shapely.total_bounds(present)
    return np.floor(np.array([minx, miny]) * 10**COORD_DECIMALS).astype(np.int64)


def _ring_ints(
    coords: Any, origin: npt.NDArray[np.int64], decimals: int, drop_last: bool
) -> list[int]:
    """First vertex relative to the layer origin, the others relative to the one before."""
    ints = np.rint(np.asarray(coords)[:, :2] * float(10**decimals)).astype(np.int64)
    if drop_last and len(ints) > 1:
        ints = ints[:-1]
    base = origin * 10 ** (decimals - COORD_DECIMALS)
    return np.diff(ints, axis=0, prepend=base[None, :]).ravel().tolist()


def _polygons(geom: Any) -> list[Any]:
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon" and not g.is_empty]


def _lines(geom: Any) -> list[Any]:
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type in ("LineString", "LinearRing"):
        return [geom]
    if geom.geom_type == "Polygon":
        return [geom.exterior, *geom.interiors]
    return [line for g in getattr(geom, "geoms", []) for line in _lines(g)]


def _layer(origin: npt.NDArray[np.int64], features: list[Any], decimals: Any) -> Layer:
    layer: Layer = {"o": origin.tolist(), "g": features}
    if (decimals != COORD_DECIMALS).any():
        layer["dec"] = decimals.tolist()  # only where some feature needs more than 1e-6°
    return layer


def encode_polygons(geoms: Sequence[Any] | Geoms) -> Layer:
    """Polygons as ``{"o": origin, "g": [[[ring ints...]...]...]}`` (feature → polygon → ring).

    Rings drop their closing vertex; Leaflet closes polygons itself. ``dec`` lists each
    feature's decimals when one needs more than 6 (see :func:`feature_decimals`).
    """
    arr, decimals = _at_display_precision(as_geoms(geoms), coverage=True)
    origin = _origin(arr)
    features = [
        [
            [_ring_ints(r.coords, origin, int(d), True) for r in (poly.exterior, *poly.interiors)]
            for poly in _polygons(geom)
        ]
        for geom, d in zip(arr, decimals, strict=True)
    ]
    return _layer(origin, features, decimals)


def encode_lines(geoms: Sequence[Any] | Geoms) -> Layer:
    """Lines (or polygon outlines) as ``{"o": origin, "g": [[line ints...]...]}``."""
    arr, decimals = _at_display_precision(as_geoms(geoms), coverage=False)
    origin = _origin(arr)
    features = [
        [_ring_ints(line.coords, origin, int(d), False) for line in _lines(geom)]
        for geom, d in zip(arr, decimals, strict=True)
    ]
    return _layer(origin, features, decimals)
