"""Hypothesis strategies for grids and points, bounded to the Dalian district bbox.

Coordinates that must lie exactly on an edge are built from dyadic fractions (multiples of
2**-10 degrees from 121.5 E, 38.875 N), so vertices and midpoints of axis-aligned edges
are exact doubles; anything else is checked against shapely as the oracle instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from hypothesis import strategies as st
from pyproj import Transformer

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


# --- districts drawn in metres and reprojected -------------------------------------------


@dataclass
class DrawnDistrict:
    """The seven contract layers of a district drawn in ``drawn_crs`` (whole metres, an exact
    tiling there) and reprojected to EPSG:4326 vertex by vertex: ``layers`` as a planner's
    export would deliver them, ``drawn`` as drawn."""

    drawn_crs: str
    layers: dict[str, gpd.GeoDataFrame]
    drawn: dict[str, gpd.GeoDataFrame]


#: Projected CRSs a Dalian planner draws in, each with a (lon, lat) inside its zone.
DRAWING_CRS = (
    ("EPSG:4549", 121.20, 38.82),  # CGCS2000 / 3-degree Gauss-Kruger CM 120E
    ("EPSG:4550", 121.62, 38.90),  # CGCS2000 / 3-degree Gauss-Kruger CM 123E
    ("EPSG:32651", 121.90, 39.05),  # WGS 84 / UTM 51N
)


def _split_boxes(
    draw: st.DrawFn, box: tuple[int, int, int, int], pieces: int, vertical: bool, min_side: int
) -> list[tuple[int, int, int, int]]:
    """``box`` halved recursively along alternating axes at drawn whole-metre positions."""
    if pieces <= 1:
        return [box]
    x0, y0, x1, y1 = box
    lo, hi = (x0, x1) if vertical else (y0, y1)
    if hi - lo < 2 * min_side:
        vertical = not vertical
        lo, hi = (x0, x1) if vertical else (y0, y1)
        if hi - lo < 2 * min_side:
            return [box]
    at = draw(st.integers(lo + min_side, hi - min_side))
    a, b = (
        ((x0, y0, at, y1), (at, y0, x1, y1)) if vertical else ((x0, y0, x1, at), (x0, at, x1, y1))
    )
    left = pieces // 2
    return _split_boxes(draw, a, left, not vertical, min_side) + _split_boxes(
        draw, b, pieces - left, not vertical, min_side
    )


@st.composite
def projected_districts(
    draw: st.DrawFn, max_east_west_m: int = 550, max_north_south_m: int = 2000
) -> DrawnDistrict:
    """A small district drawn in metres (GK CM 120E/123E or UTM 51N) by recursive splits:
    streets split the district, communities their street, grids their community, so each
    level groups the one below and every cut ending on a parent's edge is a T-junction for
    the other side. Straight edges run up to ``max_north_south_m`` north-south; east-west
    ones stay within ``max_east_west_m``, because a straight east-west edge of length L
    bends about L**2 * tan(lat) / (8 R) away from its reprojected chord (5 mm at 550 m),
    which is the noise gridmap must node. Buildings sit inside grids and on shared corners.
    """
    crs, lon, lat = draw(st.sampled_from(DRAWING_CRS))
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    ox, oy = (round(v) for v in to_crs.transform(lon, lat))
    width = draw(st.integers(12, max_east_west_m // 10)) * 10
    height = draw(st.integers(30, max_north_south_m // 10)) * 10
    code = "219199"
    streets = _split_boxes(draw, (0, 0, width, height), draw(st.integers(2, 3)), True, 40)
    rows: dict[str, list[dict[str, object]]] = {"streets": [], "communities": [], "grids": []}
    for s, sb in enumerate(streets, start=1):
        s_code = f"{code}{s:03d}000"
        rows["streets"].append({"code": s_code, "name": f"街道{s}", "district_code": code, "b": sb})
        comms = _split_boxes(draw, sb, draw(st.integers(1, 3)), False, 30)
        for c, cb in enumerate(comms, start=1):
            c_code = f"{code}{s:03d}{c:03d}"
            rows["communities"].append(
                {"code": c_code, "name": f"社区{s}-{c}", "street_code": s_code, "b": cb}
            )
            for g, gb in enumerate(
                _split_boxes(draw, cb, draw(st.integers(1, 4)), True, 20), start=1
            ):
                rows["grids"].append(
                    {
                        "code": f"{c_code}{g:03d}",
                        "community_code": c_code,
                        "name": f"网格{g}",
                        "b": gb,
                    }
                )

    def frame(items: list[dict[str, object]]) -> gpd.GeoDataFrame:
        boxes = [it.pop("b") for it in items]
        geoms = [shapely.box(ox + b[0], oy + b[1], ox + b[2], oy + b[3]) for b in boxes]  # type: ignore[index]
        return gpd.GeoDataFrame(items, geometry=geoms, crs=crs)

    drawn = {
        "district": gpd.GeoDataFrame(
            {"code": [code], "name": ["绘制区"]},
            geometry=[shapely.box(ox, oy, ox + width, oy + height)],
            crs=crs,
        ),
        **{name: frame(items) for name, items in rows.items()},
    }
    points: list[shapely.Point] = []
    for geom in drawn["grids"].geometry:
        x0, y0, x1, y1 = (int(v) for v in geom.bounds)
        for _ in range(draw(st.integers(1, 3))):
            points.append(
                shapely.Point(draw(st.integers(x0 + 1, x1 - 1)), draw(st.integers(y0 + 1, y1 - 1)))
            )
    corners = sorted(
        {tuple(xy) for xy in shapely.get_coordinates(drawn["grids"].geometry.values).tolist()}
    )
    points += [
        shapely.Point(xy)
        for xy in draw(st.lists(st.sampled_from(corners), max_size=4, unique=True))
    ]
    n = len(points)
    drawn["buildings"] = gpd.GeoDataFrame(
        {
            "building_id": [f"D{i:05d}" for i in range(n)],
            "address": [f"绘制路{i + 1}号" for i in range(n)],
            "households": draw(st.lists(st.integers(5, 200), min_size=n, max_size=n)),
        },
        geometry=points,
        crs=crs,
    )
    drawn["reports"] = gpd.GeoDataFrame(
        {
            "report_id": [f"DR{i:04d}" for i in range(min(n, 5))],
            "category": ["sanitation"] * min(n, 5),
            "reported_at": ["2025-05-01T09:00:00+08:00"] * min(n, 5),
        },
        geometry=points[:5],
        crs=crs,
    )
    drawn["roads"] = gpd.GeoDataFrame(
        {"name": ["绘制路"]},
        geometry=[shapely.LineString([(ox, oy), (ox, oy + height)])],
        crs=crs,
    )
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def reproject(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        geoms = shapely.transform(
            g.geometry.values, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))
        )
        return gpd.GeoDataFrame(g.drop(columns="geometry"), geometry=geoms, crs="EPSG:4326")

    return DrawnDistrict(crs, {k: reproject(v) for k, v in drawn.items()}, drawn)


# --- odd coverages: tiny, thin, holed and multi-part grids near the display precision -------

#: Sizes in degrees: ordinary grids (20-200 m) and thin ones from 2 mm to 30 cm, which
#: rounding to the display precision (1e-6 degrees, about 0.1 m) collapses or deforms.
ordinary_sizes = st.floats(2e-4, 2e-3)
thin_sizes = st.floats(2e-8, 3e-6)
odd_sizes = st.one_of(ordinary_sizes, ordinary_sizes, thin_sizes)


@dataclass
class Coverage:
    """Grid polygons forming a valid coverage in EPSG:4326, with each grid's community."""

    codes: list[str]
    geoms: list[shapely.Geometry]
    communities: list[str]


def _nodes(start: float, sizes: list[float], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Node positions along one axis, ``k`` per interval, and how far each may move: a fifth
    of its smaller neighbouring spacing, so that the jittered mesh never folds."""
    edges = start + np.concatenate([[0.0], np.cumsum(np.repeat(np.asarray(sizes) / k, k))])
    spacing = np.diff(edges)
    room = np.minimum(np.concatenate([[spacing[0]], spacing]), np.append(spacing, spacing[-1]))
    return edges, 0.2 * room


def _ngon(cx: float, cy: float, r: float, n: int) -> list[tuple[float, float]]:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]


@st.composite
def odd_coverages(draw: st.DrawFn) -> Coverage:
    """A jittered mesh of odd rows and columns, with holes, enclaves and island parts::

    +--+-+------+   a row or column may be thin (down to 2 mm): a thin row and a thin
    |  | |  ()  |   column meet in a tiny cell. Every edge carries k jittered vertices
    +--+-+------+   shared exactly by both sides. () a hole (a polygon of 4-12
    |  | |      |   vertices, 2 mm or more), left as a gap or filled by an enclave;
    +--+-+------+   some grids take a distant cell or an island as a MultiPolygon part
                     ()  ()  islands east of the mesh, standalone or parts of a grid
    """
    widths = draw(st.lists(odd_sizes, min_size=1, max_size=4))
    heights = draw(st.lists(odd_sizes, min_size=1, max_size=3))
    k = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Anywhere between display lattice points, not on them.
    x0 = LON0 + draw(st.floats(0, 1e-6))
    y0 = LAT0 + draw(st.floats(0, 1e-6))
    xs, rx = _nodes(x0, widths, k)
    ys, ry = _nodes(y0, heights, k)
    px = xs[:, None] + rng.uniform(-1, 1, (len(xs), len(ys))) * rx[:, None]
    py = ys[None, :] + rng.uniform(-1, 1, (len(xs), len(ys))) * ry[None, :]
    cells: dict[tuple[int, int], shapely.Polygon] = {}
    holes: list[shapely.Polygon] = []
    for r in range(len(heights)):
        for c in range(len(widths)):
            a, b, lo, hi = c * k, (c + 1) * k, r * k, (r + 1) * k
            ring = (
                [(px[t, lo], py[t, lo]) for t in range(a, b)]
                + [(px[b, t], py[b, t]) for t in range(lo, hi)]
                + [(px[t, hi], py[t, hi]) for t in range(b, a, -1)]
                + [(px[a, t], py[a, t]) for t in range(hi, lo, -1)]
            )
            inner: list[list[tuple[float, float]]] = []
            w, h = widths[c], heights[r]
            if draw(st.integers(0, 3)) == 0:
                cx = (xs[a] + xs[b]) / 2
                cy = (ys[lo] + ys[hi]) / 2
                radius = min(draw(st.one_of(thin_sizes, ordinary_sizes)) / 2, 0.25 * min(w, h))
                hole = _ngon(cx, cy, radius, draw(st.integers(4, 12)))
                inner.append(hole)
                if draw(st.booleans()):
                    holes.append(shapely.Polygon(hole))  # an enclave grid fills it
            cells[(r, c)] = shapely.Polygon(ring, inner)
    geoms: list[shapely.Geometry] = []
    communities: list[str] = []
    used: set[tuple[int, int]] = set()
    for (r, c), cell in cells.items():
        if (r, c) in used:
            continue
        used.add((r, c))
        far = (r, c + 2)
        if far in cells and far not in used and draw(st.integers(0, 3)) == 0:
            used.add(far)
            cell = shapely.MultiPolygon([cell, cells[far]])
        geoms.append(cell)
        communities.append("C1" if c < (len(widths) + 1) // 2 else "C2")
    for hole in holes:
        geoms.append(hole)
        communities.append("C1")
    # Islands east of the mesh, each separated from the last by a drawn gap.
    east = float(px.max())
    for _ in range(draw(st.integers(0, 2))):
        size = draw(odd_sizes)
        gap = draw(odd_sizes)
        cx, cy = east + gap + size / 2, y0 + size / 2
        island = shapely.Polygon(_ngon(cx, cy, size / 2, draw(st.integers(3, 10))))
        east = cx + size / 2
        target = draw(st.integers(-1, len(geoms) - 1))
        if target < 0:
            geoms.append(island)
            communities.append("C3")
        else:
            parts = list(shapely.get_parts(geoms[target]))
            geoms[target] = shapely.MultiPolygon([*parts, island])
    codes = [f"G{i:03d}" for i in range(len(geoms))]
    arr = np.asarray(geoms, dtype=object)
    assert shapely.is_valid(arr).all(), shapely.is_valid_reason(arr)
    assert shapely.coverage_is_valid(arr), "the strategy drew an invalid coverage"
    return Coverage(codes, geoms, communities)
