"""The precision model: one tolerance, one precision grid, one way to node a hierarchy.

What is stored is EPSG:4326 with every coordinate on a grid of :data:`PRECISION_DEG`
(1e-8 degrees, about 1 mm), and every level (district, streets, communities, grids) is an
exact, noded tiling of its parent: neighbours share identical vertices (``shapely.
coverage_is_valid``) and each parent is the union of its children's faces, so nesting
holds exactly, not within a tolerance.

Layers arrive drawn in their own CRS, where they tile exactly; reprojecting bends straight
edges, so a vertex that lay on a neighbour's edge (a T-junction) ends up millimetres off it.
:func:`node_hierarchy` therefore nodes all levels together *in the CRS they were drawn in*
(snap-rounding on a 1 mm grid), densifies long edges there so that the lon/lat boundary
follows the line the surveyor drew, and only then reprojects. Pieces left between polygons
are judged by width (twice the radius of their largest inscribed circle), not by area: a
piece thinner than the tolerance everywhere is noise, whatever its area. Wider pieces are
real gaps, overlaps or parts outside a parent, reported with location, area and width, and
absorbed by ``repair`` up to a given width.

Every later step (regrid, edits, simplification, export) works on this grid too, so kept
grids stay geometrically identical and new grids nest exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geo.crs import WGS84, metric_crs_for_bounds
from geo.precision import (
    DEFAULT_REPAIR_WIDTH_M,
    DEFAULT_TOLERANCE_M,
    MAX_EDGE_M,
    NODING_GRID_M,
    PRECISION_DEG,
)

__all__ = [
    "DEFAULT_REPAIR_WIDTH_M",
    "DEFAULT_TOLERANCE_M",
    "MAX_EDGE_M",
    "PRECISION_DEG",
    "Finding",
    "Level",
    "NodedHierarchy",
    "NodingReport",
    "absorb_width_m",
    "as_multipolygon",
    "drawn_in_candidates",
    "fit_to_frozen",
    "frozen_reach",
    "in_precision_model",
    "node_coverage",
    "node_hierarchy",
    "on_precision_grid",
    "piece_widths_m",
    "polygonal",
    "round_to_grid",
    "snap",
    "thinner_than",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]

_M_PER_DEG_LAT = 111_320.0


# --------------------------------------------------------------------------- small helpers


def polygonal(geom: Any) -> Any:
    """Keep only the polygons of an overlay result (drop stray lines and points)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def as_multipolygon(geom: shapely.Geometry) -> shapely.Geometry:
    """Polygon -> MultiPolygon: the store's geometry columns are MULTIPOLYGON."""
    if geom.geom_type == "Polygon":
        return shapely.multipolygons([geom])
    return geom


def round_to_grid(geoms: Any, grid_size: float = PRECISION_DEG) -> Any:
    """Round vertex by vertex, as GEOS does (``round(x / g) * g``); shared vertices stay
    shared. Much faster than ``set_precision``; a polygon that rounding made invalid goes
    through ``set_precision`` instead."""
    arr = np.asarray(geoms, dtype=object)
    if len(arr) == 0:
        return np.zeros(0, dtype=object)
    scale = 1.0 / grid_size
    out = shapely.remove_repeated_points(
        shapely.transform(arr, lambda c: np.floor(c * scale + 0.5) / scale)
    )
    bad = ~shapely.is_valid(out)
    if bad.any():
        out[bad] = shapely.set_precision(arr[bad], grid_size)
    return out


def snap(geoms: Any, grid_size: float = PRECISION_DEG) -> ObjArray:
    """Snap to the precision grid, keeping valid polygons (no collapse to lines)."""
    out = shapely.set_precision(np.asarray(geoms, dtype=object), grid_size, mode="valid_output")
    return np.asarray(shapely.make_valid(out), dtype=object)


def on_precision_grid(geoms: Any, grid_size: float = PRECISION_DEG) -> bool:
    """True when every coordinate already lies on the precision grid (rounding is a no-op)."""
    coords = shapely.get_coordinates(np.asarray(geoms, dtype=object))
    if len(coords) == 0:
        return True
    scale = 1.0 / grid_size
    return bool(np.array_equal(np.floor(coords * scale + 0.5) / scale, coords))


#: A face without an owner whose mean width (2·area/perimeter) is under this many precision
#: pixels is a rounding sliver between neighbours, never a real hole.
SLIVER_PIXELS = 10.0


def node_coverage(geoms: Sequence[Any], grid_size: float = PRECISION_DEG) -> list[Any]:
    """Make every shared edge carry the same vertices on both sides, on the precision grid.

    Cuts ending on a neighbour's boundary add a vertex on one side only, which
    ``coverage_is_valid`` rejects. Noding all boundaries, polygonizing the faces and giving
    each face back to the polygon that holds it restores a valid coverage; tiny faces left by
    snap rounding go to the polygon overlapping them most.
    """
    arr = np.asarray(list(geoms), dtype=object)
    if len(arr) <= 1:
        return list(arr)
    lines = shapely.union_all(shapely.boundary(arr), grid_size=grid_size)
    faces = np.asarray(
        shapely.get_parts(shapely.polygonize(shapely.get_parts(lines))), dtype=object
    )
    if len(faces) == 0:
        return list(arr)
    tree = shapely.STRtree(arr)
    probes = shapely.point_on_surface(faces)
    f_idx, g_idx = tree.query(probes, predicate="within")
    owner = np.full(len(faces), -1, dtype=np.int64)
    order = np.lexsort((g_idx, f_idx))
    f_idx, g_idx = f_idx[order], g_idx[order]
    first = np.r_[True, f_idx[1:] != f_idx[:-1]] if len(f_idx) else np.zeros(0, dtype=bool)
    owner[f_idx[first]] = g_idx[first]
    for f in np.flatnonzero(owner < 0):
        cand = tree.query(faces[f], predicate="intersects")
        if len(cand) == 0:
            continue
        cand = np.sort(cand)
        shared = shapely.area(shapely.intersection(arr[cand], faces[f]))
        if shared.max() > 0.5 * faces[f].area:
            owner[f] = cand[int(np.argmax(shared))]
        elif 2.0 * faces[f].area < SLIVER_PIXELS * grid_size * faces[f].length:
            # A sliver between two outlines a few pixels apart (rounding, not a hole): it
            # goes to the polygon it shares the longest edge with, so nothing is left open.
            edge = shapely.length(shapely.intersection(shapely.boundary(arr[cand]), faces[f]))
            if edge.max() > 0:
                owner[f] = cand[int(np.argmax(edge))]

    def union_of(i: int) -> Any:
        mine = faces[owner == i]
        if len(mine) == 0:
            return arr[i]
        return mine[0] if len(mine) == 1 else shapely.coverage_union_all(mine)

    out: list[Any] = [union_of(i) for i in range(len(arr))]
    # A sliver where two polygons overlap goes to the lower index; when it is the neck of
    # the other polygon, that one would fall apart: give it the sliver if the first stays
    # in one piece without it.
    f_all, g_all = f_idx, g_idx
    multi = {i for i in range(len(arr)) if shapely.get_num_geometries(out[i]) > 1}
    if multi:
        dup = np.flatnonzero(np.bincount(f_all, minlength=len(faces)) > 1)
        for face in dup.tolist():
            cur = int(owner[face])
            for c in g_all[f_all == face].tolist():
                if c == cur or c not in multi:
                    continue
                owner[face] = c
                grown, shrunk = union_of(c), union_of(cur)
                if shapely.get_num_geometries(grown) < shapely.get_num_geometries(
                    out[c]
                ) and shapely.get_num_geometries(shrunk) <= shapely.get_num_geometries(out[cur]):
                    out[c], out[cur] = grown, shrunk
                    if shapely.get_num_geometries(grown) == 1:
                        multi.discard(c)
                    break
                owner[face] = cur
    return out


def in_precision_model(
    communities: Any, grids: Any, grid_community: Sequence[int], grid_size: float = PRECISION_DEG
) -> bool:
    """True when communities and their grids are as a load stores them: on the precision
    grid, edges no longer than ``MAX_EDGE_M``, grids a valid coverage whose union per
    community is that community exactly. Regridding and editing rely on it."""
    comm = np.asarray(communities, dtype=object)
    grid = np.asarray(grids, dtype=object)
    if not (on_precision_grid(comm, grid_size) and on_precision_grid(grid, grid_size)):
        return False
    # Loads densify to MAX_EDGE_M with 5% slack, fitted cuts with 10%: anything much longer
    # was not stored by this model (new cuts would swing far to end on a vertex).
    if _longest_edge_m(grid) > MAX_EDGE_M * 1.5 or not shapely.coverage_is_valid(grid):
        return False
    owner = np.asarray(grid_community, dtype=np.int64)
    for c, geom in enumerate(comm):
        mine = grid[owner == c]
        if len(mine) == 0 or not shapely.equals(shapely.coverage_union_all(mine), geom):
            return False
    return True


def _longest_edge_m(geoms: ObjArray) -> float:
    coords, idx = shapely.get_coordinates(
        shapely.get_rings(shapely.get_parts(geoms)), return_index=True
    )
    if len(coords) < 2:
        return 0.0
    same = idx[1:] == idx[:-1]
    d = np.diff(coords, axis=0)[same]
    kx = np.cos(np.radians(float(coords[:, 1].mean())))
    return float(np.hypot(d[:, 0] * kx, d[:, 1]).max(initial=0.0) * _M_PER_DEG_LAT)


def fit_to_frozen(
    parts: Sequence[Any],
    frozen: Any,
    grid_size: float = PRECISION_DEG,
    *,
    keep_sides_of: FloatArray | None = None,
) -> list[Any]:
    """New polygons that meet ``frozen`` boundaries (a community's, kept grids') only at
    their vertices, matched to each other edge for edge, each the same land as before.

    A new cut ending on a boundary that must not change ends at a rounded point beside
    that boundary's segment, never on it, and clipping leaves extra vertices along it. So
    the parts are rebuilt: their cuts (the runs of boundary off the frozen lines) are ended
    on a frozen vertex of the segment they meet (loads densify frozen lines to
    ``MAX_EDGE_M``, so one is near; cuts are densified first, so a moved end bends only
    the cut's last short segment; of the segment's two ends, the nearer one that carries no
    point of ``keep_sides_of`` across the cut), noded with the frozen lines and polygonized;
    each face goes back to the part that held it. Frozen boundaries come out exactly as
    they were, and neighbours share every vertex. A part too small to keep a face (narrower
    where it meets the boundary than one frozen segment) comes back empty.
    """
    arr = np.asarray(list(parts), dtype=object)
    if len(arr) == 0 or frozen is None or frozen.is_empty:
        return list(arr)
    geographic = grid_size < 1e-3
    max_edge = 1.1 * MAX_EDGE_M / (_M_PER_DEG_LAT if geographic else 1.0)
    dense = round_to_grid(_densified(arr, max_edge, geographic), grid_size)
    shapely.prepare(frozen)
    rings = shapely.get_rings(shapely.get_parts(dense))
    cuts = _ended_cuts(rings, frozen, frozen_reach(grid_size), keep_sides_of)
    linework = shapely.union_all(
        np.concatenate([shapely.get_parts(frozen), cuts]), grid_size=grid_size
    )
    faces = np.asarray(
        shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))), dtype=object
    )
    faces = faces[shapely.area(faces) > 0]
    probes = shapely.point_on_surface(faces)
    region = shapely.union_all(arr, grid_size=grid_size)  # the parts need not match yet
    shapely.prepare(region)
    inside = shapely.intersects(region, probes)
    p_idx, a_idx = shapely.STRtree(arr).query(probes, predicate="intersects")
    label = np.full(len(faces), -1, dtype=np.int64)
    order = np.lexsort((a_idx, p_idx))
    p_idx, a_idx = p_idx[order], a_idx[order]
    first = np.r_[True, p_idx[1:] != p_idx[:-1]] if len(p_idx) else np.zeros(0, dtype=bool)
    label[p_idx[first]] = a_idx[first]
    # A face outside every old part is a sliver where a cut end swung (it joins its
    # neighbour) or land that is not being redrawn (a kept grid, outside): it stays out.
    thin = 2.0 * shapely.area(faces) < SLIVER_PIXELS * grid_size * shapely.length(faces)
    label[(label < 0) & ~(inside | thin)] = -2
    todo = np.flatnonzero(label == -1).tolist()
    if todo:
        _FaceAdjacency(faces).fill(label, todo, np.zeros(len(faces)))
    # A small part whose cut ends swung apart can lose its face to a neighbour (its interior
    # point falls there): faces are then matched to parts by overlap, one face each at least.
    counts = np.bincount(label[label >= 0], minlength=len(arr))
    if (counts == 0).any():
        f_idx, a_idx = shapely.STRtree(faces).query(arr, predicate="intersects")[::-1]
        overlap = shapely.area(shapely.intersection(faces[f_idx], arr[a_idx], grid_size=grid_size))
        weights = np.zeros((len(faces), len(arr)))
        np.add.at(weights, (f_idx, a_idx), overlap)
        rows, cols = linear_sum_assignment(-weights)
        for f, i in zip(rows.tolist(), cols.tolist(), strict=True):
            if weights[f, i] > 0:
                label[f] = i
    out: list[Any] = []
    for i in range(len(arr)):
        mine = faces[label == i]
        # None left: a part narrower at the boundary than a frozen segment, whose cut ends
        # both had to move to one vertex, collapsed; it comes back empty (the caller decides).
        out.append(
            shapely.Polygon()
            if len(mine) == 0
            else mine[0]
            if len(mine) == 1
            else shapely.coverage_union_all(mine)
        )
    return out


def _ended_cuts(
    rings: ObjArray, frozen: Any, reach: float, keep_sides_of: FloatArray | None
) -> ObjArray:
    """Every run of the rings off the frozen lines, both its ends moved onto frozen
    vertices (the same end for every ring sharing it); rings off them entirely as they are."""
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    on = shapely.dwithin(frozen, shapely.points(coords), reach)
    segments = _segments(frozen)
    seg_tree = shapely.STRtree(segments)
    frozen_xy = np.unique(shapely.get_coordinates(frozen), axis=0)
    buildings = (
        shapely.STRtree(shapely.points(keep_sides_of))
        if keep_sides_of is not None and len(keep_sides_of)
        else None
    )
    edges = _segments(shapely.multilinestrings(shapely.get_parts(rings)))
    edge_tree = shapely.STRtree(edges)
    ends: dict[tuple[float, float], FloatArray] = {}

    def clear(p: FloatArray, w: FloatArray, inward: FloatArray) -> bool:
        """Swinging the end from ``p`` to ``w`` carries no building across the cut and
        makes the cut's last segment cross no other line."""
        swept = shapely.Polygon([p, w, inward])
        if buildings is not None and swept.area > 0:
            if len(buildings.query(swept, predicate="contains")):
                return False
        last = shapely.LineString([w, inward])
        near = edges[edge_tree.query(last, predicate="intersects")]
        # Crossing, not touching or running along: the neighbour's copy of the same cut
        # runs along it, and the edges at its two ends touch it.
        return not bool(shapely.crosses(near, last).any())

    def end_of(p: FloatArray, inward: FloatArray) -> FloatArray:
        key = (float(p[0]), float(p[1]))
        if key in ends:
            return ends[key]
        if _rows_in(p[None, :], frozen_xy)[0]:
            ends[key] = p
            return p
        seg = segments[int(seg_tree.query_nearest(shapely.Point(p))[0])]
        choices = sorted(shapely.get_coordinates(seg), key=lambda w: float(np.hypot(*(w - p))))
        ends[key] = next((w for w in choices if clear(p, w, inward)), choices[0])
        return ends[key]

    def _key(p: FloatArray) -> tuple[float, float]:
        return (float(p[0]), float(p[1]))

    def other_end(p: FloatArray, taken: FloatArray) -> FloatArray | None:
        seg = segments[int(seg_tree.query_nearest(shapely.Point(p))[0])]
        others = [w for w in shapely.get_coordinates(seg) if not np.array_equal(w, taken)]
        return others[0] if others else None

    closed: list[Any] = []
    cut_runs: list[tuple[FloatArray, FloatArray, FloatArray]] = []  # (exit, body, entry)
    pinned: set[tuple[float, float]] = set()
    for r in np.unique(ring_of).tolist():
        xy = coords[ring_of == r][:-1]
        flags = on[ring_of == r][:-1]
        if not flags.any():
            closed.append(shapely.linestrings(np.vstack([xy, xy[:1]])))
            continue
        if flags.all():
            continue
        start = int(np.flatnonzero(flags)[0])
        xy, flags = np.roll(xy, -start, axis=0), np.roll(flags, -start)
        n = len(xy)
        mine: list[tuple[FloatArray, FloatArray, FloatArray]] = []
        k = 0
        while k < n:
            if flags[k] and not flags[(k + 1) % n]:
                j = k + 1
                while not flags[j % n]:
                    j += 1
                body = xy[[m % n for m in range(k + 1, j)]]
                end_of(xy[k], body[0])
                end_of(xy[j % n], body[-1])
                mine.append((xy[k], body, xy[j % n]))
                k = j
            else:
                k += 1
        # A part touching the frozen line along one stretch only, shorter than a frozen
        # segment, would be pinched off at a vertex when both its cut ends move there: one
        # end moves to the other end of its segment instead (and stays there).
        if len(mine) == 1:
            leave, _, entry = mine[0]
            if np.array_equal(ends[_key(entry)], ends[_key(leave)]):
                for loose in (leave, entry):
                    if _key(loose) in pinned or _rows_in(loose[None, :], frozen_xy)[0]:
                        continue
                    w = other_end(loose, ends[_key(loose)])
                    if w is not None:
                        ends[_key(loose)] = w
                        pinned.add(_key(loose))
                        break
        cut_runs.extend(mine)
    lines = [
        shapely.linestrings(
            np.vstack([ends[(float(e[0]), float(e[1]))], body, ends[(float(x[0]), float(x[1]))]])
        )
        for e, body, x in cut_runs
    ]
    return np.asarray(closed + lines, dtype=object)


def _row_index(table: FloatArray, rows: FloatArray) -> IntArray:
    """Index in ``table`` (unique rows, sorted as np.unique sorts them) of each row."""
    view = np.dtype((np.void, table.dtype.itemsize * 2))
    t = np.ascontiguousarray(table).view(view).reshape(-1)
    r = np.ascontiguousarray(rows).view(view).reshape(-1)
    order = np.argsort(t)
    return order[np.searchsorted(t[order], r)].astype(np.int64)


def frozen_reach(grid_size: float, tolerance_m: float = DEFAULT_TOLERANCE_M) -> float:
    """How close (in CRS units) a new vertex must be to a frozen boundary to count as ending
    on it: the noise width. Clipping leaves cut ends a few pixels beside the frozen line, and
    a vertex left there would fold the cut back on the boundary (a spike)."""
    width = absorb_width_m(tolerance_m)
    return width / _M_PER_DEG_LAT if grid_size < 1e-3 else width


def _rows_in(rows: FloatArray, table: FloatArray) -> npt.NDArray[np.bool_]:
    """Which rows of ``rows`` (n × 2) appear exactly in ``table``."""
    if len(table) == 0:
        return np.zeros(len(rows), dtype=bool)
    view = np.dtype((np.void, rows.dtype.itemsize * 2))
    a = np.ascontiguousarray(rows).view(view).reshape(-1)
    b = np.ascontiguousarray(table).view(view).reshape(-1)
    return np.isin(a, b)


def _segments(lines: Any) -> ObjArray:
    """Every segment of some lines as its own two-point LineString."""
    coords, idx = shapely.get_coordinates(shapely.get_parts(lines), return_index=True)
    same = idx[1:] == idx[:-1]
    starts, ends = coords[:-1][same], coords[1:][same]
    return np.asarray(shapely.linestrings(np.stack([starts, ends], axis=1)), dtype=object)


# --------------------------------------------------------------------------- measuring


def _metric_for(geoms: ObjArray) -> pyproj.CRS:
    return metric_crs_for_bounds(shapely.total_bounds(geoms))


def _transformer(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer | None:
    if src == dst:
        return None
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def _apply(transformer: pyproj.Transformer | None, geoms: Any) -> ObjArray:
    arr = np.asarray(geoms, dtype=object)
    if transformer is None or len(arr) == 0:
        return arr
    return np.asarray(
        shapely.transform(arr, lambda xy: np.column_stack(transformer.transform(*xy.T))),
        dtype=object,
    )


def thinner_than(pieces_m: Any, width_m: float) -> npt.NDArray[np.bool_]:
    """True for each metric polygon with no inscribed circle as wide as ``width_m``.

    Exact and cheap: the inward buffer by half the width is empty exactly then. This is what
    decides noise, so a kilometre-long sliver 3 mm wide is judged in milliseconds.
    """
    arr = np.asarray(pieces_m, dtype=object)
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(shapely.is_empty(shapely.buffer(arr, -width_m / 2.0, quad_segs=2)))


def piece_widths_m(pieces_m: Any, precision_m: float = 0.005) -> FloatArray:
    """Width of each metric polygon: the diameter of its largest inscribed circle, to
    ``precision_m`` (reported to planners beside the area, which alone says little)."""
    arr = np.asarray(pieces_m, dtype=object)
    out = np.zeros(len(arr))
    for i, piece in enumerate(arr):
        if piece is None or piece.is_empty or piece.area <= 0:
            continue
        radius = 0.0
        for part in shapely.get_parts(piece):
            if part.area > 0:
                tol = max(precision_m, 0.05 * 2.0 * part.area / max(part.length, 1e-12))
                radius = max(radius, shapely.maximum_inscribed_circle(part, tol).length)
        out[i] = 2.0 * radius
    return out


def grid_size_for(crs: Any) -> float:
    """Fixed precision of the topology: the storage grid in lon/lat, 1 mm when projected."""
    if crs is None or pyproj.CRS.from_user_input(crs).is_geographic:
        return PRECISION_DEG
    return 0.001


def metric_crs(frame: gpd.GeoDataFrame) -> pyproj.CRS:
    """UTM zone of the data (EPSG:32651 for Dalian), for measuring only."""
    if frame.crs is not None and not pyproj.CRS.from_user_input(frame.crs).is_geographic:
        return pyproj.CRS.from_user_input(frame.crs)
    b = frame.total_bounds if len(frame) else np.array([121.5, 38.9, 121.6, 38.95])
    return metric_crs_for_bounds((float(b[0]), float(b[1]), float(b[2]), float(b[3])))


def reproject(geoms: Any, crs: Any, target: pyproj.CRS) -> ObjArray:
    """A geometry array from ``crs`` to ``target`` (a no-op when they are the same)."""
    return _apply(_transformer(pyproj.CRS.from_user_input(crs), target), geoms)


def area_m2(geom: Any, crs: Any = "EPSG:4326") -> float:
    """Area in m² of a geometry, measured in its UTM zone (0 for an empty one)."""
    if geom is None or shapely.is_empty(geom):
        return 0.0
    mcrs = metric_crs_for_bounds(shapely.bounds(geom))
    return float(shapely.area(reproject([geom], crs, mcrs)[0]))


# --------------------------------------------------------------------------- the hierarchy


@dataclass(frozen=True)
class Level:
    """One polygon layer of a hierarchy: codes, the index of each polygon's parent in the
    level above (None for the root), and the polygons in EPSG:4326."""

    name: str
    codes: Sequence[str]
    parents: Sequence[int] | None
    geoms: ObjArray


@dataclass(frozen=True)
class Finding:
    """A piece that is not part of an exact tiling: a gap in a parent, an overlap of
    children, a part of a child outside its parent, or a parent no child covers at all."""

    level: str
    kind: str
    codes: tuple[str, ...]
    parent: str | None
    area_m2: float
    width_m: float
    lon: float
    lat: float
    noise: bool
    #: The piece in a metric CRS, for measuring its width when it comes to be reported.
    piece_m: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class NodingReport:
    """What noding did to a delivered district, for the load summary."""

    drawn_in: str
    #: Vertices more than a millimetre from the delivered boundary (or delivered vertices
    #: that far from the stored one).
    vertices_moved: int
    vertices_added: int
    max_move_m: float
    noise_pieces: int

    def __str__(self) -> str:
        return (
            f"noded in {self.drawn_in}: {self.vertices_moved:,} vertices moved (largest move "
            f"{self.max_move_m * 1000:.1f} mm), {self.vertices_added:,} added, "
            f"{self.noise_pieces:,} noise pieces absorbed"
        )


@dataclass
class NodedHierarchy:
    """The noded levels (EPSG:4326, on the precision grid) and what noding did."""

    geoms: list[ObjArray]
    crs_used: str
    findings: list[Finding] = field(default_factory=list)
    vertices_moved: int = 0
    vertices_added: int = 0
    max_move_m: float = 0.0
    #: Near vertex pairs (T-junctions, near nodes) that noding had to heal.
    healed: int = 0

    @property
    def real_findings(self) -> list[Finding]:
        return [f for f in self.findings if not f.noise]

    @property
    def noise_pieces(self) -> int:
        return sum(f.noise for f in self.findings)

    def report(self) -> NodingReport:
        return NodingReport(
            self.crs_used,
            self.vertices_moved,
            self.vertices_added,
            round(self.max_move_m, 4),
            self.noise_pieces,
        )


def node_hierarchy(
    levels: Sequence[Level],
    drawn_in: Sequence[pyproj.CRS],
    *,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
) -> NodedHierarchy:
    """Node every level against its neighbours and its parent, in the CRS it was drawn in.

    ``drawn_in`` lists candidate CRSs in order of likelihood (the declared projected CRS; for
    lon/lat files EPSG:4326 and then the local UTM zone, since lon/lat data is often
    reprojected from a survey's projected CRS). The first where nothing needs healing and
    nothing is wrong wins at once; otherwise the one leaving the least area in real
    findings, then the one moving vertices least. Findings (noise and real) are returned;
    deciding what to refuse or repair is the caller's.
    """
    best: NodedHierarchy | None = None
    best_key = (float("inf"), float("inf"))
    for crs in drawn_in:
        result = _node_in(levels, crs, tolerance_m)
        if not result.real_findings and not result.healed:
            return result  # where it was drawn: nothing to heal, nothing wrong
        # Else the CRS that leaves the least wrong, then the one that moves the least.
        key = (sum(f.area_m2 for f in result.real_findings), result.max_move_m)
        if key < best_key:
            best, best_key = result, key
    assert best is not None
    if not best.real_findings:
        return best
    # Widths only for what is reported: the inscribed circle of a long sliver is not free.
    real = [i for i, f in enumerate(best.findings) if not f.noise]
    widths = piece_widths_m([best.findings[i].piece_m for i in real])
    for i, width in zip(real, widths, strict=True):
        best.findings[i] = replace(best.findings[i], width_m=float(width))
    return best


def drawn_in_candidates(
    declared: pyproj.CRS | None, bounds: tuple[float, float, float, float]
) -> list[pyproj.CRS]:
    """CRSs a district may have been drawn in, most likely first.

    The CRS the files declare comes first: that is usually where they were drawn. But files
    are often reprojected before delivery (a Gauss–Krüger survey handed over in lon/lat, a
    lon/lat drawing exported to UTM), so lon/lat, the local UTM zone and the CGCS2000
    3-degree Gauss–Krüger zone (how Chinese surveying delivers) are tried next.
    """
    lon = (bounds[0] + bounds[2]) / 2.0
    out: list[pyproj.CRS] = []
    if declared is not None and not declared.is_geographic:
        out.append(declared)
    out += [WGS84, metric_crs_for_bounds(bounds)]
    gk_cm = 3 * round(lon / 3)
    if 75 <= gk_cm <= 135:
        out.append(pyproj.CRS.from_epsg(4534 + (gk_cm - 75) // 3))
    unique: list[pyproj.CRS] = []
    for crs in out:
        if not any(crs == seen for seen in unique):
            unique.append(crs)
    return unique


def absorb_width_m(tolerance_m: float) -> float:
    """Width below which a piece is noise: the tolerance less what snapping itself may move
    a vertex, so that no stored vertex is further than the tolerance from the delivered one."""
    snap_bound = (NODING_GRID_M + PRECISION_DEG * _M_PER_DEG_LAT) / np.sqrt(2.0)
    return max(tolerance_m - snap_bound, tolerance_m / 2.0)


def _node_in(levels: Sequence[Level], crs: pyproj.CRS, tolerance_m: float) -> NodedHierarchy:
    to_t = _transformer(WGS84, crs)
    from_t = _transformer(crs, WGS84)
    geographic = crs.is_geographic
    pixel = PRECISION_DEG if geographic else NODING_GRID_M
    # 5% slack in lon/lat: a degree's length there is approximate, and an edge densified to
    # 20 m in a projection must not be split again when its export is reloaded.
    max_edge = 1.05 * MAX_EDGE_M / _M_PER_DEG_LAT if geographic else MAX_EDGE_M
    drawn = [_apply(to_t, level.geoms) for level in levels]

    # 1. One arrangement of every level's boundaries, snap-rounded, densified once per edge.
    everything = np.concatenate([shapely.boundary(g) for g in drawn])
    linework, healed = _noded_linework(
        everything,
        pixel,
        absorb_width_m(tolerance_m) * (1.0 / _M_PER_DEG_LAT if geographic else 1.0),
    )
    linework = _densified(linework, max_edge, geographic)
    faces = np.asarray(
        shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))), dtype=object
    )
    faces = faces[shapely.area(faces) > 0]
    probes = shapely.point_on_surface(faces)

    # 2. Each face's polygon at each level, top-down, consistent with its parent's.
    labels: list[IntArray] = []
    raw: list[tuple[int, str, tuple[int, ...], int, int]] = []  # (level, kind, js, parent, face)
    adjacency = _FaceAdjacency(faces)
    for depth, (level, geoms) in enumerate(zip(levels, drawn, strict=True)):
        cands = _candidates(geoms, probes)
        label = np.full(len(faces), -1, dtype=np.int64)
        parent_label = labels[depth - 1] if depth else None
        unresolved: list[int] = []
        codes = list(map(str, level.codes))
        for f in range(len(faces)):
            mine = cands.get(f, ())
            if parent_label is None:
                valid = list(mine)
                pl = -1
            else:
                pl = int(parent_label[f])
                assert level.parents is not None
                valid = [j for j in mine if pl >= 0 and level.parents[j] == pl]
                for j in mine:
                    if j not in valid:
                        raw.append((depth, "outside", (j,), int(level.parents[j]), f))
                if pl < 0:
                    continue
            if len(valid) == 1:
                label[f] = valid[0]
            elif len(valid) > 1:
                valid.sort(key=lambda j: codes[j])
                raw.append((depth, "overlap", tuple(valid), pl, f))
                label[f] = valid[0]
            elif parent_label is not None:
                raw.append((depth, "gap", (), pl, f))
                unresolved.append(f)
        if unresolved:
            same_parent = parent_label if parent_label is not None else np.zeros(len(faces))
            adjacency.fill(label, unresolved, same_parent)
        for f in unresolved:
            if label[f] < 0:
                raw.append((depth, "uncovered", (), int(same_parent[f]), f))
        labels.append(label)

    # 3. Findings: pieces of faces with the same story, measured in metres.
    findings = _findings(levels, drawn, faces, raw, crs, tolerance_m)

    # 3b. Faces that no polygon of the right parent holds (gaps, parts outside a parent,
    #     at any level) are shared out among the faces around them, each piece to the
    #     nearest: a long thin gap goes to the grids along it, not to one of them as a
    #     tentacle reaching along the others.
    loose = sorted({f for _, kind, _, _, f in raw if kind in ("gap", "outside")})
    finest_t = labels[-1]
    if loose:
        faces, finest_t, extra = _shared_out(faces, labels[-1], loose, pixel)
        if len(extra):
            linework = shapely.union_all(
                np.concatenate([shapely.get_parts(linework), extra]), grid_size=pixel
            )

    # 4. The same arrangement in lon/lat on the precision grid, noded again there so that
    #    rounding cannot leave two edges crossing. Each lon/lat face takes the finest label
    #    of the face it came from; every polygon is the union of its faces, so each parent
    #    equals its children exactly.
    lines_ll = round_to_grid(_apply(from_t, shapely.get_parts(linework)))
    arrangement = shapely.multilinestrings(lines_ll[~shapely.is_empty(lines_ll)])
    if not shapely.is_simple(arrangement):
        arrangement = shapely.union_all(lines_ll, grid_size=PRECISION_DEG)
    faces_ll = np.asarray(
        shapely.get_parts(shapely.polygonize(shapely.get_parts(arrangement))), dtype=object
    )
    faces_ll = faces_ll[shapely.area(faces_ll) > 0]
    finest = _transfer(finest_t, faces, faces_ll, to_t)
    out = [
        _union_by(finest_to(levels, depth, finest), faces_ll, len(level.codes))
        for depth, level in enumerate(levels)
    ]
    moved, added, max_move = _moves(levels, out, crs)
    return NodedHierarchy(
        geoms=[np.asarray([as_multipolygon(g) for g in level], dtype=object) for level in out],
        crs_used=_crs_name(crs),
        findings=findings,
        vertices_moved=moved,
        vertices_added=added,
        max_move_m=max_move,
        healed=healed,
    )


def _shared_out(
    faces: ObjArray, label: IntArray, loose: list[int], pixel: float
) -> tuple[ObjArray, IntArray, ObjArray]:
    """Faces, their finest labels and the new lines after sharing out the ``loose`` faces.

    Adjacent loose faces are taken together; each group is cut by the Voronoi cells of points
    sampled along its border with settled faces, each point carrying its face's label, so
    every part of the group goes to the settled face nearest to it.
    """
    is_loose = np.zeros(len(faces), dtype=bool)
    is_loose[loose] = True
    settled = np.flatnonzero(~is_loose & (label >= 0))
    if len(settled) == 0:
        return faces, label, np.zeros(0, dtype=object)
    groups = shapely.get_parts(shapely.union_all(faces[loose], grid_size=pixel))
    tree = shapely.STRtree(faces[settled])
    boundaries = shapely.boundary(faces[settled])
    kept_faces = list(faces[settled])
    kept_labels = list(label[settled])
    lines: list[Any] = []
    for group in groups:
        if group.area <= 0:
            continue
        near = tree.query(group, predicate="intersects")
        shared = shapely.intersection(boundaries[near], shapely.boundary(group))
        length = shapely.length(shared)
        near, shared = near[length > 0], shared[length > 0]
        if len(near) == 0:
            continue  # nothing settled around it: an uncovered parent, reported as such
        owners = label[settled][near]
        if len(set(owners.tolist())) == 1:
            kept_faces.append(group)
            kept_labels.append(int(owners[0]))
            continue
        xy, who_all = _border_samples(group, shared, owners, pixel)
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=group, ordered=True)
        )
        for owner in sorted(set(who_all.tolist())):
            mine = shapely.union_all(cells[who_all == owner], grid_size=pixel)
            piece = polygonal(shapely.intersection(mine, group, grid_size=pixel))
            for part in shapely.get_parts(piece):
                if part.area > 0:
                    kept_faces.append(part)
                    kept_labels.append(owner)
                    lines.append(shapely.boundary(part))
    return (
        np.asarray(kept_faces, dtype=object),
        np.asarray(kept_labels, dtype=np.int64),
        np.asarray(lines, dtype=object),
    )


def _border_samples(
    group: Any, shared: ObjArray, owners: IntArray, pixel: float
) -> tuple[FloatArray, IntArray]:
    """Points along a loose group's border, each with the label of the face across it:
    sparse along stretches with one neighbour, dense (about the group's width apart) near
    the points where the neighbour changes, so the Voronoi split switches owner there."""
    length = float(shapely.length(group))
    width = max(2.0 * float(group.area) / max(length, 1e-300), 4 * pixel)
    coarse = max(length / 400.0, 4 * pixel)
    fine = max(width, coarse / 2000.0)
    ends = []
    for line in shapely.get_parts(shapely.line_merge(shared)):
        c = shapely.get_coordinates(line)
        ends.extend([c[0], c[-1]])
    junctions = shapely.multipoints(np.asarray(ends))
    xy_parts, who = [], []
    for piece, owner in zip(shared, owners, strict=True):
        sparse = shapely.get_coordinates(shapely.segmentize(piece, coarse))
        dense = shapely.get_coordinates(shapely.segmentize(piece, fine))
        near = shapely.dwithin(junctions, shapely.points(dense), coarse)
        xy = np.concatenate([sparse, dense[near]])
        xy_parts.append(xy)
        who.append(np.full(len(xy), int(owner)))
    xy = np.concatenate(xy_parts)
    labels = np.concatenate(who)
    xy, first = np.unique(xy, axis=0, return_index=True)
    return xy, labels[first]


def _transfer(
    label: IntArray, faces: ObjArray, faces_ll: ObjArray, to_t: pyproj.Transformer | None
) -> IntArray:
    """Labels of the noded faces carried over to their lon/lat counterparts.

    A lon/lat face's interior point, taken back to the drawing CRS, lies in the face it came
    from; the few slivers rounding created (under a millimetre) take their neighbour's.
    """
    out = np.full(len(faces_ll), -1, dtype=np.int64)
    if len(faces_ll) == 0 or len(faces) == 0:
        return out
    probes = _apply(to_t, shapely.point_on_surface(faces_ll))
    tree = shapely.STRtree(faces)
    p_idx, f_idx = tree.query(probes, predicate="intersects")
    order = np.lexsort((f_idx, p_idx))
    p_idx, f_idx = p_idx[order], f_idx[order]
    first = np.r_[True, p_idx[1:] != p_idx[:-1]] if len(p_idx) else np.zeros(0, dtype=bool)
    out[p_idx[first]] = label[f_idx[first]]
    found = np.zeros(len(faces_ll), dtype=bool)
    found[p_idx] = True
    missing = np.flatnonzero(~found).tolist()
    if missing:
        _FaceAdjacency(faces_ll).fill(out, missing, np.zeros(len(faces_ll)))
    return out


def finest_to(levels: Sequence[Level], depth: int, finest: IntArray) -> IntArray:
    """Each face's polygon at ``depth``, from its polygon at the finest level."""
    label = finest.copy()
    for level in reversed(levels[depth + 1 :]):
        assert level.parents is not None
        parents = np.asarray(level.parents, dtype=np.int64)
        label = np.where(label >= 0, parents[np.maximum(label, 0)], -1)
    return label


def _union_by(label: IntArray, faces: ObjArray, n: int) -> ObjArray:
    """Polygon ``j`` is the coverage union of the faces labelled ``j`` (empty if none)."""
    out = np.empty(n, dtype=object)
    order = np.argsort(label, kind="stable")
    sorted_labels = label[order]
    starts = np.searchsorted(sorted_labels, np.arange(n))
    ends = np.searchsorted(sorted_labels, np.arange(n), side="right")
    for j in range(n):
        mine = faces[order[starts[j] : ends[j]]]
        out[j] = (
            shapely.Polygon()
            if len(mine) == 0
            else mine[0]
            if len(mine) == 1
            else shapely.coverage_union_all(mine)
        )
    return out


def _densified(lines: Any, max_edge: float, geographic: bool) -> Any:
    """Edges split so that none is longer than ``max_edge`` on the ground: in lon/lat a
    degree of longitude is shorter than one of latitude, so lengths are measured with
    longitudes scaled by cos(latitude) (a reloaded export is then not densified again)."""
    if not geographic:
        return shapely.segmentize(lines, max_edge)
    bounds = shapely.total_bounds(lines)
    kx = float(np.cos(np.radians((bounds[1] + bounds[3]) / 2.0)))
    scaled = shapely.transform(lines, lambda xy: xy * [kx, 1.0])
    return shapely.transform(shapely.segmentize(scaled, max_edge), lambda xy: xy / [kx, 1.0])


def _noded_linework(lines: ObjArray, pixel: float, snap_distance: float) -> tuple[Any, int]:
    """Node boundaries on the pixel grid, then heal what is closer than the noise width:
    vertices that near each other become one (consistently for every edge that has them),
    and an edge passing that near a vertex it lacks (a T-junction millimetres off its
    neighbour's edge) is bent through it, so that no sliver is left to assign; then node
    again, since healing may make edges cross. Clean data skips all of it (finding near
    pairs is cheap)."""
    linework = shapely.union_all(lines, grid_size=pixel)
    edges = np.asarray(shapely.get_parts(linework), dtype=object)
    if len(edges) == 0:
        return linework, 0
    coords = shapely.get_coordinates(edges)
    xy, inverse = np.unique(coords, axis=0, return_inverse=True)
    vertices = shapely.points(xy)
    tree = shapely.STRtree(vertices)
    a, b = tree.query(vertices, predicate="dwithin", distance=snap_distance)
    close = a < b
    healed = int(close.sum())
    changed = False
    if close.any():
        rep = _clusters(len(xy), a[close], b[close], xy, snap_distance)
        if (rep != np.arange(len(xy))).any():
            edges = shapely.set_coordinates(edges.copy(), xy[rep][inverse.reshape(-1)])
            edges = edges[~shapely.is_empty(shapely.remove_repeated_points(edges))]
            xy = np.unique(shapely.get_coordinates(edges), axis=0)
            vertices = shapely.points(xy)
            changed = True
    v_idx, e_idx = shapely.STRtree(edges).query(
        vertices, predicate="dwithin", distance=snap_distance
    )
    near = shapely.distance(vertices[v_idx], edges[e_idx]) > 0
    healed += int(near.sum())
    if near.any():
        v_idx, e_idx = v_idx[near], e_idx[near]
        order = np.lexsort((v_idx, e_idx))
        v_idx, e_idx = v_idx[order], e_idx[order]
        touched, starts = np.unique(e_idx, return_index=True)
        for edge, group in zip(touched.tolist(), np.split(v_idx, starts[1:]), strict=True):
            edges[edge] = _through(edges[edge], xy[group], snap_distance)
        changed = True
    if not changed:
        return linework, healed
    return shapely.union_all(edges, grid_size=pixel), healed


def _clusters(n: int, a: IntArray, b: IntArray, xy: FloatArray, diameter: float) -> IntArray:
    """Each vertex's representative: the first (lowest) vertex of its group of near ones.
    A group wider than ``diameter`` (a chain of close vertices along a fine curve) is
    left alone: merging it would move vertices further than the tolerance."""
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    rep = np.arange(n)
    order = np.lexsort((np.arange(n), group))
    firsts = np.r_[True, group[order][1:] != group[order][:-1]]
    leader = np.maximum.accumulate(np.where(firsts, np.arange(n), 0))
    rep[order] = order[leader]
    spread = np.hypot(*(xy - xy[rep]).T)
    wide = np.unique(group[spread > diameter])
    if len(wide):
        reset = np.isin(group, wide)
        rep[reset] = np.flatnonzero(reset)
    return rep


def _through(edge: Any, points: FloatArray, distance: float) -> Any:
    """``edge`` with ``points`` inserted where they project onto it, in order along it;
    points that project within ``distance`` of a vertex it has are left out (moving a
    vertex would tear it from the other edges that share it)."""
    coords = shapely.get_coordinates(edge)
    steps = np.hypot(*np.diff(coords, axis=0).T)
    at_vertex = np.r_[0.0, np.cumsum(steps)]
    at_point = shapely.line_locate_point(edge, shapely.points(points))
    gap = np.abs(at_point[:, None] - at_vertex[None, :]).min(axis=1)
    keep = gap > distance
    if not keep.any():
        return edge
    where = np.r_[at_vertex, at_point[keep]]
    merged = np.concatenate([coords, points[keep]])
    order = np.argsort(where, kind="stable")
    return shapely.linestrings(merged[order])


def _crs_name(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _candidates(geoms: ObjArray, probes: ObjArray) -> dict[int, tuple[int, ...]]:
    """Polygons holding each face's interior point (closed: a point on an edge is in both)."""
    tree = shapely.STRtree(geoms)
    f_idx, j_idx = tree.query(probes, predicate="intersects")
    order = np.lexsort((j_idx, f_idx))
    out: dict[int, list[int]] = {}
    for f, j in zip(f_idx[order].tolist(), j_idx[order].tolist(), strict=True):
        out.setdefault(f, []).append(j)
    return {f: tuple(js) for f, js in out.items()}


class _FaceAdjacency:
    """Shared edge lengths between faces, computed only for the faces that need them."""

    def __init__(self, faces: ObjArray) -> None:
        self.faces = faces
        self.tree = shapely.STRtree(faces)
        self.boundaries = shapely.boundary(faces)
        self._cache: dict[int, list[tuple[int, float]]] = {}

    def neighbours(self, f: int) -> list[tuple[int, float]]:
        if f not in self._cache:
            near = np.sort(self.tree.query(self.faces[f], predicate="intersects"))
            near = near[near != f]
            shared = shapely.length(shapely.intersection(self.boundaries[f], self.boundaries[near]))
            self._cache[f] = [
                (int(g), float(s)) for g, s in zip(near, shared, strict=True) if s > 0
            ]
        return self._cache[f]

    def fill(self, label: IntArray, todo: list[int], parent: Any) -> None:
        """Give unlabelled faces the label of the same-parent neighbour sharing the longest
        edge, in rounds, so a gap of several faces fills from its rim inwards."""
        pending = set(todo)
        while pending:
            decided: dict[int, int] = {}
            for f in sorted(pending):
                best: tuple[float, int] | None = None
                for g, shared in self.neighbours(f):
                    if label[g] >= 0 and parent[g] == parent[f]:
                        key = (-shared, int(label[g]))
                        if best is None or key < (best[0], best[1]):
                            best = (key[0], key[1])
                if best is not None:
                    decided[f] = best[1]
            if not decided:
                return
            for f, j in decided.items():
                label[f] = j
                pending.discard(f)


def _findings(
    levels: Sequence[Level],
    drawn: Sequence[ObjArray],
    faces: ObjArray,
    raw: list[tuple[int, str, tuple[int, ...], int, int]],
    crs: pyproj.CRS,
    tolerance_m: float,
) -> list[Finding]:
    if not raw:
        return []
    groups: dict[tuple[int, str, tuple[int, ...], int], list[int]] = {}
    for depth, kind, js, parent, f in raw:
        groups.setdefault((depth, kind, js, parent), []).append(f)
    keys = sorted(groups)
    pieces: list[Any] = []
    owners: list[tuple[int, str, tuple[int, ...], int]] = []
    for key in keys:
        members = faces[sorted(set(groups[key]))]
        merged = members[0] if len(members) == 1 else shapely.union_all(members)
        for part in shapely.get_parts(merged):
            if part.area > 0:
                pieces.append(part)
                owners.append(key)
    if not pieces:
        return []
    arr = np.asarray(pieces, dtype=object)
    metric = _metric_for(_apply(_transformer(crs, WGS84), arr)) if crs.is_geographic else crs
    arr_m = _apply(_transformer(crs, metric), arr)
    areas = shapely.area(arr_m)
    where = _apply(_transformer(crs, WGS84), shapely.point_on_surface(arr))
    limit = absorb_width_m(tolerance_m)
    noise = thinner_than(arr_m, limit)
    out: list[Finding] = []
    trees = [shapely.STRtree(g) for g in drawn]
    for (depth, kind, js, parent), area, point, thin, piece, raw_piece in zip(
        owners, areas, where, noise, arr_m, arr, strict=True
    ):
        level = levels[depth]
        if kind == "gap" and level.parents is not None:
            # Name the children around a gap: that is where a planner looks.
            near = trees[depth].query(raw_piece, predicate="intersects")
            js = tuple(
                sorted(
                    (int(j) for j in near if level.parents[j] == parent),
                    key=lambda j: str(level.codes[j]),
                )
            )
        parent_codes = levels[depth - 1].codes if depth else ()
        out.append(
            Finding(
                level=level.name,
                kind=kind,
                codes=tuple(str(level.codes[j]) for j in js),
                parent=str(parent_codes[parent]) if depth and parent >= 0 else None,
                area_m2=float(area),
                width_m=limit if thin else float("nan"),
                lon=float(point.x),
                lat=float(point.y),
                noise=bool(thin) and kind != "uncovered",
                piece_m=piece,
            )
        )
    return out


def _moves(levels: Sequence[Level], out: list[ObjArray], crs: pyproj.CRS) -> tuple[int, int, float]:
    """How far noding moved the finest level, in metres (in the drawing CRS), both ways: delivered
    vertices to the stored boundary, and stored vertices to the delivered boundary (a gap
    absorbed into a grid moves its edge although every delivered vertex is still on it).

    Returns the vertices further than a millimetre (the storage precision), the vertices
    added (T-junctions noded into neighbours, long edges densified) and the largest move.
    """
    delivered, stored = levels[-1].geoms, out[-1]
    if len(delivered) == 0:
        return 0, 0, 0.0
    # Measured where the lines were drawn: reprojecting both would compare straight edges
    # of one CRS with straight edges of another, centimetres apart on long edges.
    if crs.is_geographic:
        kx = float(np.cos(np.radians(shapely.total_bounds(delivered)[1::2].mean())))
        scale = np.array([kx * _M_PER_DEG_LAT, _M_PER_DEG_LAT])
        a = shapely.transform(delivered, lambda xy: xy * scale)
        b = shapely.transform(stored, lambda xy: xy * scale)
    else:
        to_t = _transformer(WGS84, crs)
        a, b = _apply(to_t, delivered), _apply(to_t, stored)
    a_xy, a_i = shapely.get_coordinates(a, return_index=True)
    b_xy, b_i = shapely.get_coordinates(b, return_index=True)
    to_b = np.nan_to_num(shapely.distance(shapely.points(a_xy), shapely.boundary(b)[a_i]))
    to_a = np.nan_to_num(shapely.distance(shapely.points(b_xy), shapely.boundary(a)[b_i]))
    moved = int(np.count_nonzero(to_b > 0.001) + np.count_nonzero(to_a > 0.001))
    added = max(int(len(b_xy) - len(a_xy)), 0)
    largest = float(max(to_b.max(initial=0.0), to_a.max(initial=0.0)))
    return moved, added, largest


# --------------------------------------------------------------------------- shared edges, cells


def shared_lengths(geoms: Any) -> tuple[IntArray, IntArray, FloatArray]:
    """Pairs (i < j) of polygons sharing an edge of positive length, with that length."""
    arr = np.asarray(geoms, dtype=object)
    if len(arr) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    tree = shapely.STRtree(arr)
    i, j = tree.query(arr, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    inter = shapely.intersection(shapely.boundary(arr[i]), shapely.boundary(arr[j]))
    length = shapely.length(inter)
    keep = length > 0
    return i[keep].astype(np.int64), j[keep].astype(np.int64), length[keep]


def voronoi_sites(
    region: Any, xy: FloatArray, grid_size: float
) -> tuple[FloatArray, IntArray, list[Any]]:
    """Distinct sites of ``xy`` (on the precision grid), index of each point's site, and each
    site's Voronoi cell clipped to ``region``.

    Longitudes are scaled by cos(latitude) when the data is geographic, so cells are close to
    metric ones; cells are snapped to the precision grid, so neighbours share exact edges.
    """
    keys, inverse = np.unique(
        np.round(xy / grid_size).astype(np.int64), axis=0, return_inverse=True
    )
    inverse = inverse.reshape(-1).astype(np.int64)
    uxy = keys.astype(float) * grid_size
    if len(uxy) == 1:
        return uxy, inverse, [region]
    kx = float(np.cos(np.radians(uxy[:, 1].mean()))) if grid_size < 1e-3 else 1.0
    scale = np.array([kx, 1.0])
    mp = shapely.multipoints(uxy * scale)
    env = shapely.transform(shapely.envelope(region), lambda c: c * scale)
    vor = shapely.voronoi_polygons(mp, extend_to=env, ordered=True)
    cells = np.asarray(shapely.get_parts(vor), dtype=object)
    cells = shapely.transform(cells, lambda c: c / scale)
    # Cells well inside the region only need snapping; overlay just the ones crossing it.
    shapely.prepare(region)
    inside = shapely.contains_properly(region, cells)
    clipped = np.empty(len(cells), dtype=object)
    clipped[inside] = round_to_grid(cells[inside], grid_size)
    cross = np.flatnonzero(~inside)
    clipped[cross] = shapely.intersection(cells[cross], region, grid_size=grid_size)
    return uxy, inverse, [polygonal(c) for c in clipped]


def voronoi_cells(region: Any, points: Any, grid_size: float) -> list[Any]:
    """Voronoi cell of each point clipped to ``region`` (points at one place share a cell)."""
    pts = np.asarray(points, dtype=object)
    if len(pts) == 0:
        return []
    if len(pts) == 1:
        return [region]
    _, inverse, cells = voronoi_sites(region, shapely.get_coordinates(pts), grid_size)
    return [cells[inverse[k]] for k in range(len(pts))]
