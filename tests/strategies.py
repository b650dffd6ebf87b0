"""Hypothesis strategies for grids and points, bounded to the Dalian district bbox.

Coordinates that must lie exactly on an edge are built from dyadic fractions (multiples of
2**-10 degrees from 121.5 E, 38.875 N), so vertices and midpoints of axis-aligned edges
are exact doubles; anything else is checked against shapely as the oracle instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from hypothesis import strategies as st

#: Origin and step of the dyadic lattice (exact in binary floating point).
LON0, LAT0, STEP = 121.5, 38.875, 2.0**-10
#: The district bbox points are drawn from (about 121.5-121.7 E, 38.85-38.95 N).
BBOX = (121.48, 38.85, 121.72, 38.95)


def lattice(i: float, j: float) -> tuple[float, float]:
    """Lon/lat of lattice point (i, j); exact for multiples of 1/2**k with small k."""
    return LON0 + i * STEP, LAT0 + j * STEP


@dataclass
class Tiling:
    """Grid codes and (Multi)Polygons in EPSG:4326, plus named special points.

    ``vertices`` and ``edge_points`` lie exactly on boundaries; ``holes``/``islands`` lie in
    an enclave or on an island part.
    """

    codes: list[str]
    geoms: list[shapely.Geometry]
    vertices: list[tuple[float, float]]
    edge_points: list[tuple[float, float]]
    inside_points: list[tuple[float, float]]


codes_st = st.lists(
    st.text(alphabet="0129AB", min_size=1, max_size=4), min_size=60, max_size=60, unique=True
)


@st.composite
def rectangle_tilings(draw: st.DrawFn) -> Tiling:
    """Columns x rows of rectangles with shared edges (widths in lattice steps)::

    +----+--+------+
    | c0 |c1|  c2  |     every shared vertex and edge is exact;
    +----+--+------+     codes are drawn, so "smallest code" is not "first drawn"
    | c3 |c4|  c5  |
    +----+--+------+
    """
    widths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    heights = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    xs = np.concatenate([[0], np.cumsum(widths)]) * 4  # multiples of 4 -> exact midpoints
    ys = np.concatenate([[0], np.cumsum(heights)]) * 4
    codes = draw(codes_st)[: len(widths) * len(heights)]
    geoms, vertices, edge_points, inside = [], [], [], []
    for r in range(len(heights)):
        for c in range(len(widths)):
            x0, y0 = lattice(xs[c], ys[r])
            x1, y1 = lattice(xs[c + 1], ys[r + 1])
            geoms.append(shapely.box(x0, y0, x1, y1))
            vertices.extend([(x0, y0), (x1, y0), (x0, y1), (x1, y1)])
            xm, ym = lattice((xs[c] + xs[c + 1]) / 2, (ys[r] + ys[r + 1]) / 2)
            edge_points.extend([(xm, y0), (xm, y1), (x0, ym), (x1, ym)])
            inside.append((xm, ym))
    return Tiling(codes, geoms, vertices, edge_points, inside)


@st.composite
def enclave_tilings(draw: st.DrawFn) -> Tiling:
    """A grid with a hole filled by another grid, and a MultiPolygon grid with an island::

    +-----------+   +--+
    |  outer    |   |  |  <- island: second part of the MultiPolygon "outer"
    |  +-----+  |   +--+
    |  |encl.|  |
    |  +-----+  |  the enclave's boundary is shared with the hole's ring
    +-----------+
    """
    size = draw(st.integers(6, 20)) * 4
    inset = draw(st.integers(1, size // 16)) * 4
    codes = draw(codes_st)[:3]
    outer = [lattice(0, 0), lattice(size, 0), lattice(size, size), lattice(0, size)]
    hole = [
        lattice(inset, inset),
        lattice(size - inset, inset),
        lattice(size - inset, size - inset),
        lattice(inset, size - inset),
    ]
    island = shapely.box(*lattice(size + 8, 0), *lattice(size + 16, 8))
    outer_grid = shapely.MultiPolygon([shapely.Polygon(outer, [hole]), island])
    enclave = shapely.Polygon(hole)
    # A third grid sharing the outer's right edge, to have a three-grid vertex.
    east = shapely.box(*lattice(size, -8), *lattice(size + 4, size))
    geoms = [outer_grid, enclave, east]
    vertices = [*outer, *hole, lattice(size + 8, 0), lattice(size, -8)]
    mid = size // 2
    edge_points = [lattice(mid, inset), lattice(inset, mid), lattice(size, mid), lattice(mid, 0)]
    inside = [lattice(mid, mid), lattice(size + 12, 4), lattice(inset // 2, inset // 2)]
    return Tiling(codes, geoms, vertices, edge_points, inside)


@st.composite
def voronoi_tilings(draw: st.DrawFn) -> Tiling:
    """Irregular grids: Voronoi cells of drawn seeds, clipped to a box (vertices inexact)."""
    n = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x0, y0 = lattice(0, 0)
    x1, y1 = lattice(64, 48)
    box = shapely.box(x0, y0, x1, y1)
    pts = shapely.multipoints(np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)]))
    cells = list(shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=box)))
    cells = [shapely.intersection(c, box) for c in cells]
    cells = [c for c in cells if isinstance(c, shapely.Polygon) and not c.is_empty]
    codes = draw(codes_st)[: len(cells)]
    vertices = [tuple(xy) for c in cells for xy in shapely.get_coordinates(c)]
    inside = [tuple(shapely.get_coordinates(c.point_on_surface())[0]) for c in cells]
    return Tiling(codes, cells, vertices, [], inside)


tilings = st.one_of(rectangle_tilings(), enclave_tilings(), voronoi_tilings())


@st.composite
def segment_points(draw: st.DrawFn, tiling: Tiling) -> tuple[float, float]:
    """A point at an arbitrary fraction of some edge: on it or a rounding error off it."""
    geom = draw(st.sampled_from(tiling.geoms))
    coords = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geom)))
    k = draw(st.integers(0, len(coords) - 2))
    t = draw(st.floats(0, 1))
    (ax, ay), (bx, by) = coords[k], coords[k + 1]
    return ax + t * (bx - ax), ay + t * (by - ay)


@st.composite
def points_for(draw: st.DrawFn, tiling: Tiling, max_size: int = 60) -> list[tuple[float, float]]:
    """A mix of vertices, edge points, interior, near-edge, island/hole and outside points."""
    bounds = shapely.total_bounds(tiling.geoms)
    margin = 8 * STEP
    anywhere = st.tuples(
        st.floats(bounds[0] - margin, bounds[2] + margin),
        st.floats(bounds[1] - margin, bounds[3] + margin),
    )
    far = st.tuples(st.floats(BBOX[0], BBOX[2]), st.floats(BBOX[1], BBOX[3]))
    kinds = [anywhere, far, segment_points(tiling)]
    for named in (tiling.vertices, tiling.edge_points, tiling.inside_points):
        if named:
            kinds.append(st.sampled_from(named))
    return draw(st.lists(st.one_of(*kinds), min_size=0, max_size=max_size))
