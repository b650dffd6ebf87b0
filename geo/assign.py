"""Points -> grid_code, exactly, for a million points in well under a second.

The rule (the same in SQL, here, the API and the CLI):

* a point belongs to the grid whose CLOSED polygon covers it (PostGIS ``ST_Covers``);
* on a boundary shared by several grids it goes to the smallest grid code (code-point
  string order, i.e. ``ORDER BY code COLLATE "C"`` in PostgreSQL);
* outside every grid it is unassigned and the answer gives the nearest grid and the
  geodesic distance in metres; with ``snap_m > 0`` points within that distance are
  assigned to the nearest grid and marked ``snapped``;
* ``on_boundary`` is true when the point touches the boundary of its assigned grid.

Why a raster: a point-in-polygon test per point is slow even with an STRtree. The index
keeps a lookup table of cells; a cell whose (slightly padded) box meets no polygon edge is
wholly inside one grid or wholly outside all, so its answer is one numpy gather. Every point
in a cell that meets an edge goes to the exact path (STRtree + GEOS ``intersects``), so
vertices and edges follow GEOS ``covers`` semantics bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely

from geo.crs import WGS84, metric_crs_for_bounds, to_wgs84
from geo.errors import InvalidGeometry, InvalidInput
from geo.io import (
    check_points_output,
    lonlat_bounds,
    point_xy,
    read_grids_file,
    read_points_file,
    write_points_file,
)
from geo.precision import DEFAULT_TOLERANCE_M
from geo.settings import InputLimits

__all__ = [
    "AssignSummary",
    "Assignment",
    "GridIndex",
    "assign_files",
    "assign_frame",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

#: ``cells_per_grid`` for no lookup table: every point goes to GEOS. For indexes built for a
#: few thousand points (a plan's buildings, a regrid's candidates), where building the table
#: would cost more than it saves.
NO_TABLE = 0
#: ``cells_per_grid`` for tens of thousands of points (a plan's buildings, a map's): a
#: coarse table builds in milliseconds and still answers most points with one gather.
COARSE_TABLE = 16

#: Raster cell labels besides a grid position (>= 0).
_OUTSIDE = -1  # the cell is wholly outside every grid (-1: the None at the end of codes)
_EXACT = -2  # the cell meets an edge (or grids overlap there): ask GEOS
#: Cells per grid the raster aims for, and the cap on cells (int32 -> 4 bytes each). The
#: cap keeps the build linear in the edges for plans with very many grids: their cells then
#: hold a few edges each, which the walk handles (cheaper than a finer table to build).
_CELLS_PER_GRID = 1024
#: A point this close to a grid it falls outside of is on its boundary: the topology tolerance
#: (``geo.precision``) within which the stored boundaries are where the data put them.
ON_EDGE_M = DEFAULT_TOLERANCE_M
_MAX_CELLS = 1 << 22
_MIN_CELLS = 16
#: Padding in cell units around every edge: far above float rounding (~1e-12 cells).
_EDGE_PAD_CELLS = 1e-4
#: Relative error bound for float orientation signs (Shewchuk's is 3.3e-16; wide margin).
_ORIENT_EPS = 1e-14
#: A boundary cell's centre label is trusted only this far (in cells) from every edge.
_CENTRE_MARGIN_CELLS = 1e-6
#: Points per chunk in file mode (bounds memory, paces the progress callback).
_CHUNK_POINTS = 1 << 18

#: Columns assign adds; ``snapped`` only when a snap tolerance is given.
RESULT_COLUMNS = ("grid_code", "on_boundary", "nearest_grid_code", "distance_m")


@dataclass(frozen=True)
class Assignment:
    """Per-point answers, aligned with the input arrays.

    ``nearest_grid_code``/``distance_m`` are filled for every point not covered by a grid
    (snapped ones included, so a report can say how far they were) and None/NaN otherwise.
    ``position`` is the assigned grid's index in ``GridIndex.codes`` (code order), -1 for
    none.
    """

    grid_code: ObjArray
    on_boundary: BoolArray
    nearest_grid_code: ObjArray
    distance_m: FloatArray
    snapped: BoolArray
    position: IntArray

    def __len__(self) -> int:
        return len(self.grid_code)

    @property
    def assigned(self) -> BoolArray:
        """Points that got a grid (covered or snapped)."""
        # numpy's stubs omit None as an operand, valid for object arrays
        return np.not_equal(self.grid_code, None)  # type: ignore[call-overload]


@dataclass(frozen=True)
class _Raster:
    """Lookup table over the grids' extent, plus the edges of every cell that meets one.

    ``labels`` (flat, row-major ``(ny, nx)``) holds a grid position (>= 0) for a cell wholly
    inside one grid, ``_OUTSIDE``, ``_EXACT``, or ``-(3 + slot)`` for a boundary cell whose
    edges are ``entry_start[slot]:entry_start[slot + 1]`` of the ``e_*`` arrays.
    """

    x0: float
    y0: float
    inv_dx: float
    inv_dy: float
    nx: int
    ny: int
    labels: npt.NDArray[np.int32]
    # per boundary cell (slot)
    entry_start: npt.NDArray[np.int64]
    centre_pos: npt.NDArray[np.int32]  # grid covering the cell centre, _OUTSIDE or _EXACT
    centre_x: FloatArray
    centre_y: FloatArray
    # per edge: start and end point, and the grid position it bounds
    edge_ax: FloatArray
    edge_ay: FloatArray
    edge_bx: FloatArray
    edge_by: FloatArray
    edge_grid: npt.NDArray[np.int32]
    edge_grid2: npt.NDArray[np.int32]  # the other grid of a shared edge, or -1
    n_grids: int
    # per (boundary cell, edge) entry, grouped by cell
    e_edge: npt.NDArray[np.int32]
    #: a centre closer than this (degrees) to an edge of its cell is not trusted
    centre_margin: float

    def lookup(self, x: FloatArray, y: FloatArray) -> npt.NDArray[np.int32]:
        """Label of the cell of each point (points off the table land in the outside margin)."""
        fx = x - self.x0
        fx *= self.inv_dx
        np.clip(fx, 0.0, self.nx - 1, out=fx)
        fy = y - self.y0
        fy *= self.inv_dy
        np.clip(fy, 0.0, self.ny - 1, out=fy)
        np.floor(fy, out=fy)
        fy *= self.nx
        fy += fx  # < 2**31 cells: the integer part is exact
        return self.labels.take(fy.astype(np.intp))

    def label_at(self, x: float, y: float) -> int:
        """``lookup`` for one point in plain Python floats (the same arithmetic, no arrays)."""
        fx = min(max((x - self.x0) * self.inv_dx, 0.0), self.nx - 1)
        fy = min(max((y - self.y0) * self.inv_dy, 0.0), self.ny - 1)
        return int(self.labels[math.floor(fy) * self.nx + int(fx)])

    def resolve(
        self, x: FloatArray, y: FloatArray, slot: npt.NDArray[np.int32]
    ) -> tuple[IntArray, BoolArray]:
        """Grid position of points in boundary cells, and which ones need GEOS.

        Walks from the cell centre (whose grid is known) to the point: each proper crossing
        of a grid's edge toggles membership of that grid. Orientation signs are used only
        when a floating-point error bound proves them (Shewchuk's filter); a point on or
        near an edge or vertex, or a centre near one, is handed to GEOS.
        """
        m = len(x)
        centre = self.centre_pos[slot].astype(np.intp)
        need_geos = centre == _EXACT
        start = self.entry_start[slot]
        count = self.entry_start[slot + 1] - start
        count[need_geos] = 0
        pair_pt = np.repeat(np.arange(m), count)
        e = np.arange(len(pair_pt)) - np.repeat(np.cumsum(count) - count, count)
        e += np.repeat(start, count)
        edge = self.e_edge[e]
        del e
        ax, ay = self.edge_ax[edge], self.edge_ay[edge]
        abx, aby = self.edge_bx[edge] - ax, self.edge_by[edge] - ay
        cx, cy = self.centre_x[slot][pair_pt], self.centre_y[slot][pair_pt]
        # orient(a, b, c): which side of the edge the cell centre is on.
        acx, acy = ax - cx, ay - cy  # a - c
        t1 = abx * acy
        t2 = aby * acx
        side_c = t2 - t1
        unsure = np.abs(side_c) <= _ORIENT_EPS * (np.abs(t1) + np.abs(t2))
        # The centre's grid came from cell-unit arithmetic: trust it only away from edges
        # (|orient| / |ab| is the distance to the edge's line, below that to the edge).
        unsure |= side_c * side_c <= self.centre_margin**2 * (abx * abx + aby * aby)
        # orient(a, b, p): which side of the edge the point is on.
        px, py = x[pair_pt], y[pair_pt]
        t1 = abx * (py - ay)
        t2 = aby * (px - ax)
        side_p = t1 - t2
        unsure |= np.abs(side_p) <= _ORIENT_EPS * (np.abs(t1) + np.abs(t2))
        # orient(c, p, a) and orient(c, p, b): which side of the walk each end of the edge is.
        dpx, dpy = px - cx, py - cy
        del px, py
        t1 = dpx * acy
        t2 = dpy * acx
        side_a = t1 - t2
        unsure |= np.abs(side_a) <= _ORIENT_EPS * (np.abs(t1) + np.abs(t2))
        bcx, bcy = self.edge_bx[edge] - cx, self.edge_by[edge] - cy
        t1 = dpx * bcy
        t2 = dpy * bcx
        side_b = t1 - t2
        unsure |= np.abs(side_b) <= _ORIENT_EPS * (np.abs(t1) + np.abs(t2))
        cross = (side_c * side_p < 0) & (side_a * side_b < 0)
        need_geos[pair_pt[unsure]] = True

        n_grids = np.int64(max(self.n_grids, 1))
        # Crossing an edge toggles each grid it bounds (a shared edge: both).
        cross_pt, cross_edge = pair_pt[cross].astype(np.int64), edge[cross]
        other = self.edge_grid2[cross_edge]
        two = other >= 0
        key = np.concatenate(
            [cross_pt * n_grids + self.edge_grid[cross_edge], cross_pt[two] * n_grids + other[two]]
        )
        key = np.sort(key)
        # Keep keys seen an odd number of times: a grid crossed twice is entered and left.
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key
        times = np.diff(np.r_[first, len(key)])
        key = key[first[times % 2 == 1]]
        flip_pt, flip_grid = key // n_grids, key % n_grids
        big = np.iinfo(np.intp).max
        best = np.where(centre >= 0, centre, big)
        left = flip_grid == centre[flip_pt]
        best[flip_pt[left]] = big
        entered = ~left
        np.minimum.at(best, flip_pt[entered], flip_grid[entered].astype(np.intp))
        best[best == big] = _OUTSIDE
        return best, need_geos


@dataclass
class _Metric:
    """The grids in a metric CRS, built on first need (only unassigned points use it)."""

    crs: pyproj.CRS
    forward: pyproj.Transformer
    inverse: pyproj.Transformer
    geoms_m: ObjArray
    tree_m: shapely.STRtree
    geod: pyproj.Geod


class GridIndex:
    """One plan's grids, ready to answer "which grid covers this point" for many points.

    Build it once per plan (``from_frame``); ``assign`` is then a numpy gather for points in
    grid interiors and an exact GEOS test for points near boundaries.
    """

    def __init__(self, codes: ObjArray, geoms: ObjArray, *, cells_per_grid: int = _CELLS_PER_GRID):
        """Use ``from_frame``, ``from_arrays`` or ``ranked``; this expects validated, code-sorted
        input. ``cells_per_grid=NO_TABLE`` builds no lookup table (see ``NO_TABLE``)."""
        self.codes = codes
        self.geoms = geoms
        #: the codes and a None at index -1 (``_OUTSIDE``): one ``take`` gives the answers
        # numpy's stubs omit None as a value, valid for object arrays
        self._codes_or_none = np.append(codes, None)  # type: ignore[call-overload]
        self._tree: shapely.STRtree | None = None
        self.raster = _build_raster(self.geoms, cells_per_grid) if cells_per_grid else None
        self._metric: _Metric | None = None

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def tree(self) -> shapely.STRtree:
        """STRtree of the grids (prepared), built when a point first needs GEOS."""
        if self._tree is None:
            shapely.prepare(self.geoms)
            self._tree = shapely.STRtree(self.geoms)
        return self._tree

    @classmethod
    def from_arrays(
        cls,
        codes: npt.ArrayLike,
        geoms: npt.ArrayLike,
        *,
        cells_per_grid: int = _CELLS_PER_GRID,
        validated: bool = False,
    ) -> GridIndex:
        """Index grid ``codes`` and (Multi)Polygon ``geoms`` given in EPSG:4326.

        ``validated=True`` skips the GEOS validity test (the costly part of the checks) for
        callers whose grids were validated when stored (a published plan read back from the
        database); codes, types and emptiness are still checked. Invalid polygons given as
        validated still get answers, but "covers" is then not well defined.
        """
        codes_a = np.asarray(codes, dtype=object)
        geoms_a = np.asarray(geoms, dtype=object)
        if codes_a.shape != geoms_a.shape or codes_a.ndim != 1:
            raise InvalidInput("codes and geometries must be two 1-d arrays of equal length")
        if len(codes_a) == 0:
            raise InvalidInput("no grids to assign points to", field="grids")
        codes_s, order = _check_codes(codes_a)
        _check_polygons(codes_s, geoms_a, check_valid=not validated)
        return cls(codes_s[order], geoms_a[order], cells_per_grid=cells_per_grid)

    @classmethod
    def ranked(cls, geoms: npt.ArrayLike, **kwargs: Any) -> GridIndex:
        """Index grids that have no codes (yet), ranked by their order: on an edge they share,
        a point goes to the first. Positions in ``Assignment.position`` are theirs.

        A regrid's pieces and candidate grids have no codes; a plan's grids sorted by code
        rank as their codes do.
        """
        geoms_a = np.asarray(geoms, dtype=object)
        width = len(str(max(len(geoms_a) - 1, 0)))
        codes = np.array([f"{i:0{width}d}" for i in range(len(geoms_a))], dtype=object)
        return cls.from_arrays(codes, geoms_a, **kwargs)

    @classmethod
    def from_frame(
        cls, grids: gpd.GeoDataFrame, code_column: str = "code", **kwargs: Any
    ) -> GridIndex:
        """Index a grids layer; any declared CRS is reprojected to EPSG:4326."""
        if code_column not in grids.columns:
            raise InvalidInput(
                f"grids have no {code_column!r} column",
                field=code_column,
                fix="name the grid code column 'code' (see the data contract)",
            )
        grids = _as_wgs84(grids, "grids")
        return cls.from_arrays(
            grids[code_column].to_numpy(dtype=object), grids.geometry.to_numpy(), **kwargs
        )

    # --- assignment ---------------------------------------------------------------------

    def assign(
        self,
        lon: npt.ArrayLike,
        lat: npt.ArrayLike,
        snap_m: float = 0.0,
        *,
        snap_all: bool = False,
        row_offset: int = 0,
    ) -> Assignment:
        """Assign lon/lat points (EPSG:4326) to grids by the covers/smallest-code rule;
        a point within ``ON_EDGE_M`` of a grid it is not in lies on that grid's boundary.

        ``snap_all`` snaps every point outside every grid to its nearest grid, however far
        (a plan's building counts: every building belongs to some grid). ``row_offset``
        only shifts the row numbers named in errors (for chunked callers).
        """
        x = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        y = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise InvalidInput("lon and lat have different lengths", field="lon")
        snap_m = _check_snap(snap_m)
        n = len(x)
        if self.raster is not None and n == 1 and math.isfinite(x[0]) and math.isfinite(y[0]):
            # One point inside a cell wholly within one grid (GET /lookup's usual case):
            # answered without building any array but the result's.
            label = self.raster.label_at(float(x[0]), float(y[0]))
            if label >= 0:
                return Assignment(
                    np.array([self.codes[label]], dtype=object),
                    np.zeros(1, dtype=bool),
                    np.empty(1, dtype=object),
                    np.full(1, np.nan),
                    np.zeros(1, dtype=bool),
                    np.array([label], dtype=np.intp),
                )
        _refuse_non_finite(x, y, row_offset)

        # Grid positions (int) all the way; codes are looked up once, at the end.
        # One pass over all points finds those not answered by the table's gather.
        if self.raster is None:
            pos = np.full(n, _EXACT, dtype=np.int32)
        else:
            pos = self.raster.lookup(x, y)
        on_boundary = np.zeros(n, dtype=bool)
        special = np.flatnonzero(pos < 0)
        sub = pos[special]
        walk = np.flatnonzero(sub <= -3)
        if len(walk):
            assert self.raster is not None  # only table cells hold walk labels
            at = special[walk]
            walked, unsure = self.raster.resolve(x[at], y[at], -3 - sub[walk])
            walked[unsure] = _EXACT
            sub[walk] = walked
        exact = np.flatnonzero(sub == _EXACT)
        if len(exact):
            at = special[exact]
            sub[exact], on_boundary[at] = self._assign_exact(x[at], y[at])
        pos[special] = sub
        # pos is now a grid position or _OUTSIDE (-1), which takes the None at the end.
        outside = special[sub < 0]
        nearest_code = np.empty(n, dtype=object)  # all None
        snapped = np.zeros(n, dtype=bool)
        if len(outside):
            distance_m = np.full(n, np.nan)
            near_pos, near_m = self._nearest(x[outside], y[outside])
            nearest_code[outside] = self.codes[near_pos]
            distance_m[outside] = near_m
            # Within the tolerance a point is on the boundary (the precision model: a vertex
            # reprojected separately from its outline lands a millimetre off it).
            edge = near_m <= ON_EDGE_M
            pos[outside[edge]] = near_pos[edge]
            on_boundary[outside[edge]] = True
            if snap_all or snap_m > 0:
                snap = near_m <= snap_m if not snap_all else np.ones(len(near_m), dtype=bool)
                pos[outside[snap]] = near_pos[snap]
                snapped[outside[snap]] = True
        else:
            distance_m = np.empty(n)
            distance_m.fill(np.nan)
        grid_code = self._codes_or_none.take(pos)
        return Assignment(
            grid_code, on_boundary, nearest_code, distance_m, snapped, pos.astype(np.intp)
        )

    def _assign_exact(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, BoolArray]:
        """GEOS path: smallest covering grid position (or _OUTSIDE) and touches-boundary."""
        pts = shapely.points(x, y)
        pt_idx, grid_pos = self.tree.query(pts, predicate="intersects")
        best = np.full(len(pts), np.iinfo(np.intp).max, dtype=np.intp)
        np.minimum.at(best, pt_idx, grid_pos)
        hit = best != np.iinfo(np.intp).max
        best[~hit] = _OUTSIDE
        boundary = np.zeros(len(pts), dtype=bool)
        hit_idx = np.flatnonzero(hit)
        if len(hit_idx):
            # A point covered by a polygon is on its boundary iff not in its interior.
            interior = shapely.contains_properly(self.geoms[best[hit_idx]], pts[hit_idx])
            boundary[hit_idx] = ~interior
        return best, boundary

    def _metric_view(self) -> _Metric:
        if self._metric is None:
            bounds = shapely.total_bounds(self.geoms)
            crs = metric_crs_for_bounds((bounds[0], bounds[1], bounds[2], bounds[3]))
            forward = pyproj.Transformer.from_crs(WGS84, crs, always_xy=True)
            inverse = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)
            geoms_m = shapely.transform(
                self.geoms, lambda xy: np.column_stack(forward.transform(xy[:, 0], xy[:, 1]))
            )
            self._metric = _Metric(
                crs, forward, inverse, geoms_m, shapely.STRtree(geoms_m), pyproj.Geod(ellps="WGS84")
            )
        return self._metric

    def _nearest(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, FloatArray]:
        """Nearest grid (ties -> smallest code) and geodesic distance in metres.

        The nearest grid and the nearest point on it are found in the plan's UTM zone; the
        distance is then the WGS 84 geodesic between the point and that nearest point, which
        is what PostGIS ``ST_Distance(geography)`` measures. Points so far away that UTM
        breaks down fall back to a search in degrees.
        """
        m = self._metric_view()
        px, py = m.forward.transform(x, y)
        px, py = np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64)
        ok = np.isfinite(px) & np.isfinite(py)
        near_pos = np.zeros(len(x), dtype=np.intp)
        near_lon = np.empty(len(x))
        near_lat = np.empty(len(x))
        for use_metric in (True, False):
            sel = np.flatnonzero(ok if use_metric else ~ok)
            if not len(sel):
                continue
            if use_metric:
                pts, tree, geoms = shapely.points(px[sel], py[sel]), m.tree_m, m.geoms_m
            else:
                pts, tree, geoms = shapely.points(x[sel], y[sel]), self.tree, self.geoms
            pt_idx, grid_pos = tree.query_nearest(pts, all_matches=True)
            best = np.full(len(sel), np.iinfo(np.intp).max, dtype=np.intp)
            np.minimum.at(best, pt_idx, grid_pos)
            lines = shapely.shortest_line(geoms[best], pts)
            start = shapely.get_coordinates(shapely.get_point(lines, 0))
            if use_metric:
                lon_n, lat_n = m.inverse.transform(start[:, 0], start[:, 1])
            else:
                lon_n, lat_n = start[:, 0], start[:, 1]
            near_pos[sel] = best
            near_lon[sel] = lon_n
            near_lat[sel] = lat_n
        _, _, dist = m.geod.inv(x, y, near_lon, near_lat)
        return near_pos, np.asarray(dist, dtype=np.float64)


# --- raster -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Edges:
    """Every distinct edge of every ring (exterior and holes), with the grids it bounds.

    An edge shared by two grids (the common case in a tiling) is kept once, with both grid
    positions (``grid2`` is -1 for an edge of one grid only). ``weight`` is what crossing
    the edge eastwards adds to the winding sum ``2**32 * (grids covering) + sum(position+1)``
    when the edge, as stored, points down (the negative when it points up); rings are taken
    in any orientation and normalised with their signed area.
    """

    ax: FloatArray
    ay: FloatArray
    bx: FloatArray
    by: FloatArray
    grid: npt.NDArray[np.int32]
    grid2: npt.NDArray[np.int32]
    weight: FloatArray


def _ring_edges(geoms: ObjArray) -> _Edges:
    """Edges of all rings; plain Polygons (the common case) skip the part/ring objects."""
    simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    simple_pos = np.flatnonzero(simple)
    coords, ring = shapely.get_coordinates(geoms[simple_pos], return_index=True)
    ring_grid, ring_hole = simple_pos, np.zeros(len(simple_pos), dtype=bool)
    other_pos = np.flatnonzero(~simple)
    if len(other_pos):
        parts, part_owner = shapely.get_parts(geoms[other_pos], return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        # get_rings lists each part's exterior first, then its holes.
        hole = np.r_[False, ring_part[1:] == ring_part[:-1]]
        more, more_ring = shapely.get_coordinates(rings, return_index=True)
        coords = np.concatenate([coords, more])
        ring = np.concatenate([ring, more_ring + len(simple_pos)])
        ring_grid = np.concatenate([ring_grid, other_pos[part_owner[ring_part]]])
        ring_hole = np.concatenate([ring_hole, hole])
    same = ring[:-1] == ring[1:]
    edge_ring = ring[:-1][same]
    ax, ay = coords[:-1, 0][same], coords[:-1, 1][same]
    bx, by = coords[1:, 0][same], coords[1:, 1][same]
    # A hash per vertex; an edge's is the sum of its ends' (the same in either direction).
    word = coords.view(np.uint64)
    vertex_hash = word[:, 0] * np.uint64(0x9E3779B97F4A7C15)
    vertex_hash ^= word[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)
    vertex_hash ^= vertex_hash >> np.uint64(31)
    vertex_hash *= np.uint64(0xFF51AFD7ED558CCD)
    vertex_hash ^= vertex_hash >> np.uint64(29)
    edge_hash = vertex_hash[:-1][same]
    edge_hash += vertex_hash[1:][same]
    del ring, word, vertex_hash
    # Vertices as complex numbers (a no-copy view): edge k runs from vertex[edge_pos[k]]
    # to the next one, and a 16-byte gather fetches both coordinates of an end at once.
    vertex = np.ascontiguousarray(coords).view(np.complex128).ravel()
    edge_pos = np.flatnonzero(same)
    del coords, same
    # Signed area per ring (shoelace about the ring's first vertex, for precision).
    first = np.flatnonzero(np.r_[True, edge_ring[1:] != edge_ring[:-1]])
    ox = np.repeat(ax[first], np.diff(np.r_[first, len(ax)]))
    oy = np.repeat(ay[first], np.diff(np.r_[first, len(ay)]))
    area2 = np.bincount(
        edge_ring, weights=(ax - ox) * (by - oy) - (bx - ox) * (ay - oy), minlength=len(ring_grid)
    )
    del ox, oy
    ring_sign = np.where(area2 > 0, 1.0, -1.0) * np.where(ring_hole, -1.0, 1.0)
    grid = ring_grid[edge_ring]
    # Walking east across a downward edge of a counter-clockwise exterior enters the grid.
    weight = ring_sign[edge_ring] * (grid + 1.0 + float(1 << 32))
    return _merge_shared(ax, ay, bx, by, grid.astype(np.int32), weight, edge_hash, vertex, edge_pos)


def _merge_shared(
    ax: FloatArray,
    ay: FloatArray,
    bx: FloatArray,
    by: FloatArray,
    grid: npt.NDArray[np.int32],
    weight: FloatArray,
    edge_hash: npt.NDArray[np.uint64],
    vertex: npt.NDArray[np.complex128],
    edge_pos: IntArray,
) -> _Edges:
    """Keep an edge shared by exactly two grids once (same end points, either direction).

    Candidates are edges with equal hashes of their unordered end points (one sort of
    packed ``hash | index`` keys); a pair is merged only if its coordinates are equal, so a
    hash collision merely leaves both copies, which is still correct.
    """
    n = len(ax)
    keep_all = _Edges(ax, ay, bx, by, grid, np.full(n, -1, dtype=np.int32), weight)
    if n < 2:
        return keep_all
    idx_bits = np.uint64(max(int(n - 1).bit_length(), 1))
    key = edge_hash >> idx_bits
    key <<= idx_bits
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    idx = (key & ((np.uint64(1) << idx_bits) - np.uint64(1))).astype(np.intp)
    key >>= idx_bits
    equal = key[1:] == key[:-1]
    del key
    # Groups of exactly two: equal to the next key, and neither the key before nor after.
    pair = equal & np.r_[True, ~equal[:-1]] & np.r_[~equal[1:], True]
    i, j = idx[:-1][pair], idx[1:][pair]
    del idx, equal, pair
    pi, pj = edge_pos[i], edge_pos[j]
    a_i, b_i, a_j, b_j = vertex[pi], vertex[pi + 1], vertex[pj], vertex[pj + 1]
    forward = (a_i == a_j) & (b_i == b_j)
    backward = (a_i == b_j) & (b_i == a_j)
    del pi, pj, a_i, b_i, a_j, b_j
    ok = (forward | backward) & (grid[i] != grid[j])
    i, j, forward = i[ok], j[ok], forward[ok]
    if not len(i):
        return keep_all
    grid2 = keep_all.grid2
    grid2[i] = grid[j]
    # Crossing copy j when copy i points down: j points down too, or up (reversed).
    weight = weight.copy()
    weight[i] += weight[j] * (forward * 2.0 - 1.0)
    keep = np.ones(n, dtype=bool)
    keep[j] = False
    return _Edges(ax[keep], ay[keep], bx[keep], by[keep], grid[keep], grid2[keep], weight[keep])


def _raster_shape(
    bounds: tuple[float, float, float, float], n_grids: int, cells_per_grid: int
) -> tuple[float, float, float, float, int, int]:
    """Origin, cell size and shape of the table: square cells on the ground, 2 spare cells.

    The table aims at ``cells_per_grid`` cells per grid, capped at ``_MAX_CELLS`` so plans
    with very many grids keep a build that is linear in their edges (their cells then hold a
    few edges each, which the walk in ``_Raster.resolve`` handles).
    """
    minx, miny, maxx, maxy = bounds
    mid_lat = np.radians((miny + maxy) / 2.0)
    aspect = max(float(np.cos(mid_lat)), 1e-6)
    width = max(maxx - minx, 1e-9) * aspect
    height = max(maxy - miny, 1e-9)
    target = int(np.clip(cells_per_grid * n_grids, _MIN_CELLS, _MAX_CELLS))
    cell = float(np.sqrt(width * height / target))
    dy = cell
    dx = cell / aspect
    # Two spare cells on every side: points off the table are clipped into outside cells.
    nx = int(np.ceil((maxx - minx) / dx)) + 4
    ny = int(np.ceil((maxy - miny) / dy)) + 4
    return minx - 2 * dx, miny - 2 * dy, dx, dy, nx, ny


def _build_raster(geoms: ObjArray, cells_per_grid: int) -> _Raster:
    """Label each cell with its grid when it is provably inside exactly one grid.

    Cells met by any edge (padded by ``_EDGE_PAD_CELLS``) keep their edges for the walk in
    ``_Raster.resolve``; the rest are labelled by winding numbers along scanlines through
    cell centres, which are far from every edge so float rounding cannot flip them. Where
    grids overlap (an invalid plan) the cell goes to GEOS.
    """
    bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
    x0, y0, dx, dy, nx, ny = _raster_shape(bounds, len(geoms), cells_per_grid)  # type: ignore[arg-type]
    inv_dx, inv_dy = 1.0 / dx, 1.0 / dy

    edges = _ring_edges(geoms)
    ax, ay, bx, by = edges.ax, edges.ay, edges.bx, edges.by
    fax, fay = (ax - x0) * inv_dx, (ay - y0) * inv_dy
    fbx, fby = (bx - x0) * inv_dx, (by - y0) * inv_dy

    labels = _scanline_labels(fax, fay, fbx, fby, edges.weight, nx, ny, len(geoms))
    cell_id, edge_id = _edge_cells(fax, fay, fbx, fby, nx, ny)
    del fax, fay, fbx, fby
    slot_first = (
        np.flatnonzero(np.r_[True, cell_id[1:] != cell_id[:-1]]) if len(cell_id) else cell_id
    )
    cells = cell_id[slot_first]
    entry_start = np.r_[slot_first, len(cell_id)].astype(np.int64)
    centre_pos = labels[cells].copy()
    labels[cells] = -(3 + np.arange(len(cells), dtype=np.int32))

    iy, ix = np.divmod(cells, nx)
    centre_x = x0 + (ix + 0.5) * dx
    centre_y = y0 + (iy + 0.5) * dy
    return _Raster(
        x0=x0,
        y0=y0,
        inv_dx=inv_dx,
        inv_dy=inv_dy,
        nx=nx,
        ny=ny,
        labels=labels,
        entry_start=entry_start,
        centre_pos=centre_pos,
        centre_x=centre_x,
        centre_y=centre_y,
        edge_ax=ax,
        edge_ay=ay,
        edge_bx=bx,
        edge_by=by,
        edge_grid=edges.grid,
        edge_grid2=edges.grid2,
        n_grids=len(geoms),
        e_edge=edge_id.astype(np.int32),
        centre_margin=_CENTRE_MARGIN_CELLS * min(dx, dy),
    )


def _edge_cells(
    fax: FloatArray, fay: FloatArray, fbx: FloatArray, fby: FloatArray, nx: int, ny: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """Every (cell, edge) pair where the cell's padded box meets the edge, sorted by cell.

    An edge marks the cells of its padded bounding box (a superset of the cells it passes
    through); an edge longer than one cell is first cut into pieces at most one cell long,
    so a piece marks at most 3 x 3 cells. Pairs are packed into one int64
    ``cell << bits | edge`` so that a single (SIMD) sort groups them by cell.
    """
    n_edges = len(fax)
    bits = max(int(n_edges - 1).bit_length(), 1)
    span = np.maximum(np.abs(fbx - fax), np.abs(fby - fay))
    long_edges = np.flatnonzero(span > 1.0)
    if len(long_edges):
        short = np.flatnonzero(span <= 1.0)
        n_long = np.ceil(span[long_edges]).astype(np.int64)
        le = np.repeat(long_edges, n_long)
        k = np.arange(len(le)) - np.repeat(np.cumsum(n_long) - n_long, n_long)
        n_le = np.repeat(n_long, n_long)
        t0 = k / n_le
        t1 = (k + 1) / n_le
        ex, ey = fbx[le] - fax[le], fby[le] - fay[le]
        edge = np.concatenate([short, le])
        x_a = np.concatenate([fax[short], fax[le] + ex * t0])
        x_b = np.concatenate([fbx[short], fax[le] + ex * t1])
        y_a = np.concatenate([fay[short], fay[le] + ey * t0])
        y_b = np.concatenate([fby[short], fay[le] + ey * t1])
    else:
        edge, x_a, x_b, y_a, y_b = np.arange(n_edges), fax, fbx, fay, fby
    del span
    # Edges lie inside the table (two spare cells on every side), so coordinates in cell
    # units are positive and truncation is floor.
    pad = _EDGE_PAD_CELLS
    ix0 = (np.minimum(x_a, x_b) - pad).astype(np.int64)
    ix1 = (np.maximum(x_a, x_b) + pad).astype(np.int64)
    iy0 = (np.minimum(y_a, y_b) - pad).astype(np.int64)
    iy1 = (np.maximum(y_a, y_b) + pad).astype(np.int64)
    wide_x = ix1 - ix0  # 0, 1 or 2 more columns
    wide_y = iy1 - iy0
    base = iy0 * nx
    base += ix0
    base <<= bits
    base |= edge
    keys = [base]
    for oy in range(3):
        for ox in range(3):
            if ox == oy == 0:
                continue
            sel = np.flatnonzero((wide_x >= ox) & (wide_y >= oy))
            if len(sel):
                keys.append(base[sel] + ((oy * nx + ox) << bits))
    key = np.concatenate(keys) if len(keys) > 1 else base
    key.sort()
    if len(long_edges) and len(key):
        # Pieces of one edge share cells: keep each (cell, edge) pair once.
        key = key[np.r_[True, key[1:] != key[:-1]]]
    edge_id = (key & ((1 << bits) - 1)).astype(np.int32)
    key >>= bits
    return key, edge_id


def _scanline_labels(
    fax: FloatArray,
    fay: FloatArray,
    fbx: FloatArray,
    fby: FloatArray,
    edge_weight: FloatArray,
    nx: int,
    ny: int,
    n_grids: int,
) -> npt.NDArray[np.int32]:
    """Winding-number fill at cell centres: grid position, _OUTSIDE, or _EXACT on overlaps.

    No sorting: each crossing of a row adds ``±(2**32 + grid + 1)`` to a difference array
    at the first cell east of it, and a cumulative sum along each row gives, per cell
    centre, 2**32 times the number of grids covering it plus the sum of their (position+1).
    """
    lo_y, hi_y = np.minimum(fay, fby), np.maximum(fay, fby)
    # Rows j whose centre j + 0.5 lies in [lo_y, hi_y): the half-open rule counts a vertex once.
    # (Edges lie inside the table, two spare cells from its sides: no clipping needed.)
    row_lo = np.ceil(lo_y - 0.5).astype(np.int64)
    row_hi = np.ceil(hi_y - 0.5).astype(np.int64)  # exclusive
    del lo_y, hi_y
    count = row_hi - row_lo
    edge = np.repeat(np.arange(len(fax)), count)
    row = np.arange(len(edge)) - np.repeat(np.cumsum(count) - count - row_lo, count)
    del row_lo, row_hi, count
    ax, ay = fax[edge], fay[edge]
    bx, by = fbx[edge], fby[edge]
    x_cross = (row + 0.5 - ay) * (bx - ax) / (by - ay) + ax
    col = np.ceil(x_cross - 0.5).astype(np.int64)
    weight = edge_weight[edge]
    weight[by > ay] *= -1.0
    # Edges lie two spare cells inside the table, so 2 <= col <= nx - 2: the crossings of a
    # row stay in the row and sum to zero there, and one flat cumulative sum over the whole
    # table is the sum along each row. (float64 sums of integers below 2**53 are exact.)
    row *= nx
    row += col
    acc = np.asarray(np.bincount(row, weights=weight, minlength=ny * nx), dtype=np.float64)
    np.cumsum(acc, out=acc)
    # acc = 2**32 * (grids covering the centre) + sum of their (position + 1): 0 outside,
    # 2**32 + 1 + position inside one grid, anything else where grids overlap.
    outside = acc == 0.0
    acc -= float((1 << 32) + 1)
    np.clip(acc, float(_EXACT), float(n_grids), out=acc)
    labels = acc.astype(np.int32)
    # Overlaps (n_grids) and what a valid plan cannot give (-1, -2 before the outside cells
    # are set) go to GEOS.
    labels[labels == n_grids] = _EXACT
    labels[labels == -1] = _EXACT
    labels[outside] = _OUTSIDE
    return labels


# --- validation ---------------------------------------------------------------------------


def _check_codes(codes: ObjArray) -> tuple[ObjArray, IntArray]:
    """Codes as strings (none missing, none repeated) and their order (code-point order)."""
    missing = pd.isna(codes)
    if missing.any():
        raise InvalidInput(
            f"grid row {int(np.argmax(missing))} has no code ({int(missing.sum())} rows in all)",
            field="code",
        )
    if not all(type(c) is str for c in codes):
        codes = np.array([c if isinstance(c, str) else str(c) for c in codes], dtype=object)
    # numpy's unicode strings compare by code point, as Python's str and COLLATE "C" do.
    text = codes.astype(str)
    order = np.argsort(text, kind="stable")
    ordered = text[order]
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(dup):
        code = ordered[dup[0]]
        raise InvalidInput(
            f"grid code {str(code)!r} appears {int((ordered == code).sum())} times",
            field="code",
            fix="a grid's code must be unique within the plan",
        )
    return codes, order


def _check_polygons(codes: ObjArray, geoms: ObjArray, *, check_valid: bool = True) -> None:
    """Refuse what would make "covers" ill-defined: missing, empty, non-areal or invalid."""
    type_ids = shapely.get_type_id(geoms)
    for i in np.flatnonzero(~np.isin(type_ids, (3, 6))):
        what = "no geometry" if geoms[i] is None else f"a {shapely.get_type_id(geoms[i])}"
        kind = "missing" if geoms[i] is None else shapely.to_wkt(geoms[i], trim=True)[:40]
        raise InvalidGeometry(
            f"grid has {what if geoms[i] is None else kind}, not a Polygon or MultiPolygon",
            field=f"grid {codes[i]}",
        )
    empty = shapely.is_empty(geoms)
    if empty.any():
        raise InvalidGeometry("grid geometry is empty", field=f"grid {codes[np.argmax(empty)]}")
    if not check_valid:
        return
    valid = shapely.is_valid(geoms)
    if not valid.all():
        bad = int(np.argmin(valid))
        raise InvalidGeometry(
            f"grid geometry is invalid: {shapely.is_valid_reason(geoms[bad])}",
            field=f"grid {codes[bad]}",
            fix="repair it (shapely.make_valid / ST_MakeValid) and check the tiling",
        )


def _check_snap(snap_m: float) -> float:
    snap = float(snap_m)
    if not np.isfinite(snap) or snap < 0:
        raise InvalidInput(
            f"snap tolerance must be a finite distance >= 0, got {snap_m}", field="snap_m"
        )
    return snap


def _refuse_non_finite(x: FloatArray, y: FloatArray, row_offset: int) -> None:
    # Sums of finite numbers are finite unless they overflow; NaN and inf propagate.
    if np.isfinite(x.sum() + y.sum()):
        return
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(
            f"row {i + row_offset} has no usable coordinates ({x[i]}, {y[i]});"
            f" {int(bad.sum())} such rows",
            field=f"row {i + row_offset}",
            fix="drop or geocode points without coordinates before assigning",
        )


def _as_wgs84(gdf: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326; CRS-less data is accepted only if it looks like lon/lat."""
    if gdf.crs is None:
        if len(gdf) and not lonlat_bounds(gdf.total_bounds):
            raise InvalidInput(
                f"{what} declare no CRS and their coordinates are not longitude/latitude",
                field=what,
                fix="declare the CRS in the file (e.g. EPSG:32651)",
            )
        return gdf.set_crs(WGS84)
    return to_wgs84(gdf)


# --- frames -------------------------------------------------------------------------------


def _iter_chunks(n: int, chunk: int = _CHUNK_POINTS) -> Iterator[slice]:
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def _assign_chunked(
    index: GridIndex,
    x: FloatArray,
    y: FloatArray,
    snap_m: float,
    progress: Callable[[int, int], None] | None,
) -> Assignment:
    """``index.assign`` in chunks, reporting (done, total) after each."""
    n = len(x)
    _check_snap(snap_m)
    _refuse_non_finite(x, y, 0)
    if progress is None or n <= _CHUNK_POINTS:
        result = index.assign(x, y, snap_m)
        if progress is not None:
            progress(n, n)
        return result
    parts = []
    for sl in _iter_chunks(n):
        parts.append(index.assign(x[sl], y[sl], snap_m, row_offset=sl.start))
        progress(sl.stop, n)
    return Assignment(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Assignment.__dataclass_fields__)
    )


def _result_columns(result: Assignment, snap_m: float) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {
        "grid_code": result.grid_code,
        "on_boundary": result.on_boundary,
        "nearest_grid_code": result.nearest_grid_code,
        "distance_m": result.distance_m,
    }
    if snap_m > 0:
        cols["snapped"] = result.snapped
    return cols


def assign_frame(
    points: gpd.GeoDataFrame, index: GridIndex, snap_m: float = 0.0
) -> gpd.GeoDataFrame:
    """Return ``points`` (all columns, same index) plus the assignment columns.

    Adds ``grid_code``, ``on_boundary``, ``nearest_grid_code``, ``distance_m`` and, when
    ``snap_m > 0``, ``snapped``; existing columns of those names are replaced. Geometry is
    reprojected to EPSG:4326 only for the computation; the returned frame keeps its own.
    """
    lonlat = _as_wgs84(points, "points")
    x, y = point_xy(lonlat, "points")
    result = index.assign(x, y, snap_m)
    out = points.copy()
    for name, values in _result_columns(result, snap_m).items():
        # dtype=object keeps None for "no grid" (pandas 3 would infer str and use NaN).
        out[name] = pd.Series(values, index=out.index, dtype=values.dtype)
    return out


# --- files (read and written by geo.io) ---------------------------------------------------


@dataclass
class AssignSummary:
    """What a file-to-file assignment did, for the CLI summary and ``--json``."""

    points: int
    assigned: int
    on_boundary: int
    unassigned: int
    snapped: int
    grids: int
    out_path: str
    seconds: float
    timings_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assign_files(
    grids_path: Path | str,
    points_path: Path | str,
    out_path: Path | str,
    snap_m: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    *,
    grids_layer: str | None = None,
    points_layer: str | None = None,
    out_layer: str | None = None,
    limits: InputLimits | None = None,
) -> AssignSummary:
    """Assign every point of a file to the grids of another, without a database.

    Formats follow extensions: .gpkg, .geojson/.json, .parquet (GeoParquet), .shp, .csv
    (points only, ``lon``/``lat`` columns in EPSG:4326, UTF-8 or GBK/GB18030; written as
    UTF-8 with a BOM). Declared CRSs are reprojected to EPSG:4326; ``limits`` are the
    hostile-input caps every geometry read is checked against.
    The output holds every input row with all its columns plus the assignment columns; its
    geometry is EPSG:4326 (a GeoParquet in lon/lat is passed through byte for byte).
    ``progress(done, total)`` is called as chunks of points finish.
    """
    grids_path, points_path, out_path = Path(grids_path), Path(points_path), Path(out_path)
    check_points_output(out_path, out_layer)
    snap_m = _check_snap(snap_m)
    t0 = time.perf_counter()
    limits = limits or InputLimits()
    grids = read_grids_file(grids_path, grids_layer, limits)
    points = read_points_file(points_path, points_layer, limits)
    t1 = time.perf_counter()
    index = GridIndex.from_frame(grids)
    t2 = time.perf_counter()
    result = _assign_chunked(index, points.x, points.y, snap_m, progress)
    t3 = time.perf_counter()
    write_points_file(points, _result_columns(result, snap_m), out_path, out_layer)
    t4 = time.perf_counter()
    covered = result.assigned
    return AssignSummary(
        points=len(result),
        assigned=int(covered.sum()),
        on_boundary=int(result.on_boundary.sum()),
        unassigned=int((~covered).sum()),
        snapped=int(result.snapped.sum()),
        grids=len(index),
        out_path=str(out_path),
        seconds=round(t4 - t0, 3),
        timings_s={
            "read": round(t1 - t0, 3),
            "index": round(t2 - t1, 3),
            "assign": round(t3 - t2, 3),
            "write": round(t4 - t3, 3),
        },
    )
