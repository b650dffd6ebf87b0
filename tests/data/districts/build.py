"""Build the corpus of districts in ``tests/data/districts/`` (see its README).

Run from the repository root::

    .venv/bin/python tests/data/districts/build.py

None of this uses ``fixtures/`` or ``geo/``: every district is drawn here with explicit
coordinates and shapely operations in the CRS a planner would draw it in, checked to tile
exactly in that CRS, and written in its own format by pyogrio/geopandas or GDAL's ogr2ogr.
The same script writes the same files (fixed seeds, fixed GeoPackage and DBF dates).
``manifest.json`` records, per district, the files to load, the expected counts, the regrid
requests the end-to-end test makes and the measured reprojection noise.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import split

HERE = Path(__file__).resolve().parent
#: GDAL stamps the write time into GeoPackages and DBF headers; fixed dates keep files stable.
os.environ["OGR_CURRENT_DATE"] = "2000-01-01T00:00:00Z"
DBF_DATE = {"DBF_DATE_LAST_UPDATE": "2000-01-01"}
GEOD = Geod(ellps="WGS84")

# A few categories and subcategories of the responsibility list (codes as gridmap uses them).
CATEGORIES = [
    ("sanitation", "garbage_pile", "垃圾堆积"),
    ("sanitation", "overflowing_bins", "垃圾桶满溢"),
    ("traffic", "illegal_parking", "机动车违停"),
    ("street_order", "roadside_stalls", "占道经营"),
    ("municipal_facilities", "road_pothole", "道路坑洼"),
    ("municipal_facilities", "manhole_cover", "井盖缺失破损"),
    ("greenery", "fallen_tree", "树木倒伏"),
    ("housing_property", "lift_breakdown", "电梯故障"),
    ("safety_hazards", "blocked_fire_lane", "消防通道堵塞"),
    ("neighbourhood_disputes", "neighbour_dispute", "邻里矛盾"),
    ("urban_appearance", "illegal_flyers", "违规张贴小广告"),
    ("other", "suggestion", "意见建议"),
]
COMMUNITY_NAMES = [
    "海韵",
    "枫林",
    "桃源",
    "翠竹",
    "望海",
    "兴华",
    "长青",
    "锦霞",
    "春晖",
    "福民",
    "明珠",
    "石门",
    "泉涌",
    "金沙",
    "银杏",
    "晨光",
    "和平",
    "静海",
    "松风",
    "荷塘",
]


# --------------------------------------------------------------------------- drawing


@dataclass
class Unit:
    """One street, community or grid as drawn (geometry in the drawing CRS)."""

    code: str
    name: str
    parent: str
    geom: BaseGeometry
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Drawing:
    """A whole district in its drawing CRS, before it is written in its delivery format."""

    key: str
    code: str
    name: str
    crs: str
    outline: BaseGeometry
    streets: list[Unit]
    communities: list[Unit]
    grids: list[Unit]
    buildings: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    roads: list[dict[str, Any]] = field(default_factory=list)
    district_extra: dict[str, Any] = field(default_factory=dict)


def cut(geom: BaseGeometry, axis: str, at: Sequence[float]) -> list[BaseGeometry]:
    """The pieces of ``geom`` between consecutive cut lines (west to east for ``x``, south to
    north for ``y``). ``shapely.ops.split`` nodes the cut lines once, so neighbouring pieces
    share every cut vertex exactly; the cut vertices on ``geom``'s own boundary are new, which
    makes them T-junctions for whatever lies across that boundary."""
    minx, miny, maxx, maxy = geom.bounds
    pad = 10.0 + max(maxx - minx, maxy - miny)
    lines = [
        LineString([(a, miny - pad), (a, maxy + pad)])
        if axis == "x"
        else LineString([(minx - pad, a), (maxx + pad, a)])
        for a in at
    ]
    parts = list(split(geom, MultiLineString(lines)).geoms)
    edges = [-math.inf, *at, math.inf]
    bins: list[list[BaseGeometry]] = [[] for _ in range(len(edges) - 1)]
    for part in parts:
        p = part.representative_point()
        v = p.x if axis == "x" else p.y
        k = int(np.searchsorted(edges, v)) - 1
        bins[k].append(part)
    out = []
    for group in bins:
        if not group:
            raise ValueError(f"cut at {at} left an empty piece of {geom.bounds}")
        out.append(group[0] if len(group) == 1 else shapely.union_all(group))
    return out


def guillotine(
    geom: BaseGeometry, columns: Sequence[float], rows: Sequence[Sequence[float]]
) -> list[BaseGeometry]:
    """Columns first (cuts at ``columns``), then each column into rows at its own cuts."""
    strips = cut(geom, "x", columns) if columns else [geom]
    if len(rows) != len(strips):
        raise ValueError("one list of row cuts per column")
    out: list[BaseGeometry] = []
    for strip, ys in zip(strips, rows, strict=True):
        out.extend(cut(strip, "y", ys) if ys else [strip])
    return out


def recursive_split(
    geom: BaseGeometry,
    pieces: int,
    rng: np.random.Generator,
    *,
    axis: str,
    min_side: float,
    step: float = 1.0,
    max_east_west: float = math.inf,
) -> list[BaseGeometry]:
    """``pieces`` cells by halving recursively along alternating axes at a random position
    (a multiple of ``step``), the way a planner subdivides blocks. An east-west cut (``y``)
    is never longer than ``max_east_west``: the piece is cut north-south instead."""
    if pieces <= 1:
        return [geom]
    minx, miny, maxx, maxy = geom.bounds
    lo, hi = (minx, maxx) if axis == "x" else (miny, maxy)
    if hi - lo < 2 * min_side or (axis == "y" and maxx - minx > max_east_west):
        axis = "y" if axis == "x" else "x"
        lo, hi = (minx, maxx) if axis == "x" else (miny, maxy)
    left = pieces // 2
    share = left / pieces + float(rng.uniform(-0.08, 0.08))
    at = _cut_position(geom, axis, lo, hi, share, min_side, step)
    a, b = cut(geom, axis, [at])
    nxt = "y" if axis == "x" else "x"
    kw: dict[str, Any] = {"min_side": min_side, "step": step, "max_east_west": max_east_west}
    return recursive_split(a, left, rng, axis=nxt, **kw) + recursive_split(
        b, pieces - left, rng, axis=nxt, **kw
    )


def _cut_position(
    geom: BaseGeometry, axis: str, lo: float, hi: float, share: float, min_side: float, step: float
) -> float:
    """Where a cut leaves ``share`` of the area on the low side (bisection), moved by whole
    steps until it passes no vertex of ``geom`` closer than a metre and leaves no sliver part."""
    a, b = lo + min_side, hi - min_side
    for _ in range(60):
        m = (a + b) / 2
        low = shapely.intersection(
            geom,
            shapely.box(lo - 1, -1e12, m, 1e12)
            if axis == "x"
            else shapely.box(-1e12, lo - 1, 1e12, m),
        )
        if low.area < share * geom.area:
            a = m
        else:
            b = m
    base = round((a + b) / 2 / step) * step
    verts = shapely.get_coordinates(geom)[:, 0 if axis == "x" else 1]
    for k in range(200):
        at = base + (k + 1) // 2 * step * (1 if k % 2 else -1)
        near = np.abs(verts - at)
        if ((near > 0) & (near < 1.0)).any():
            continue
        pieces = cut(geom, axis, [at])
        if all(
            p.geom_type == "Polygon" or min(q.area for q in p.geoms) > 0.02 * p.area for p in pieces
        ):
            return float(at)
    raise ValueError("no clean cut position")


def order_west_east_north_south(geoms: Sequence[BaseGeometry]) -> list[int]:
    """Indices in reading order (north to south in bands, then west to east)."""
    pts = [g.representative_point() for g in geoms]
    return sorted(range(len(geoms)), key=lambda i: (-round(pts[i].y, 6), round(pts[i].x, 6)))


def check_tiles(
    children: Sequence[BaseGeometry], parent: BaseGeometry, what: str, eps: float
) -> None:
    """Children tile ``parent`` in the drawing CRS: same union, no overlaps (up to ``eps``)."""
    union = shapely.union_all(list(children))
    gap = parent.difference(union).area
    outside = union.difference(parent).area
    overlap = sum(c.area for c in children) - union.area
    for c in children:
        if not c.is_valid:
            raise ValueError(f"{what}: invalid child {shapely.is_valid_reason(c)}")
    if max(gap, outside, abs(overlap)) > eps:
        raise ValueError(f"{what}: gap {gap:.3g}, outside {outside:.3g}, overlap {overlap:.3g}")


def check_drawing(d: Drawing, eps: float) -> None:
    """Every level tiles its parent exactly in the drawing CRS; every point has its parent."""
    check_tiles([s.geom for s in d.streets], d.outline, f"{d.key} streets", eps)
    for level, parents in ((d.communities, d.streets), (d.grids, d.communities)):
        for p in parents:
            kids = [u.geom for u in level if u.parent == p.code]
            check_tiles(kids, p.geom, f"{d.key} {p.code}", eps)
    for level, parents in (
        (d.streets, [d.code]),
        (d.communities, [s.code for s in d.streets]),
        (d.grids, [c.code for c in d.communities]),
    ):
        codes = [u.code for u in level]
        if len(set(codes)) != len(codes) or any(u.parent not in parents for u in level):
            raise ValueError(f"{d.key}: duplicate codes or unknown parents")


def node_shared(d: Drawing) -> None:
    """Give every polygon of every level the vertices that others have on its edges (GEOS
    snapping to all vertices at 1 nm): no T-junctions are left, every level is noded."""
    units = [*d.streets, *d.communities, *d.grids]
    vertices = shapely.multipoints(
        np.unique(np.vstack([shapely.get_coordinates(u.geom) for u in units]), axis=0)
    )
    for u in units:
        u.geom = shapely.snap(u.geom, vertices, 1e-9)
    d.outline = shapely.snap(d.outline, vertices, 1e-9)


def as_multi(geom: BaseGeometry) -> MultiPolygon:
    return geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])


# --------------------------------------------------------------------------- points


def interior_points(
    geom: BaseGeometry, n: int, rng: np.random.Generator, margin: float, decimals: int
) -> list[Point]:
    """``n`` random points at least ``margin`` inside ``geom`` (rounded, still inside)."""
    inner = geom.buffer(-margin)
    if inner.is_empty:
        inner = geom.buffer(-margin / 4)
    minx, miny, maxx, maxy = inner.bounds
    out: list[Point] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100_000:
            raise ValueError("could not place points")
        x = round(float(rng.uniform(minx, maxx)), decimals)
        y = round(float(rng.uniform(miny, maxy)), decimals)
        p = Point(x, y)
        if inner.contains(p):
            out.append(p)
    return out


def shared_vertices(geoms: Sequence[BaseGeometry], min_count: int = 2) -> list[tuple[float, float]]:
    """Vertices (exact coordinates) that at least ``min_count`` polygons have, sorted."""
    count: dict[tuple[float, float], int] = {}
    for g in geoms:
        for xy in {tuple(c) for c in shapely.get_coordinates(g).tolist()}:
            count[xy] = count.get(xy, 0) + 1
    return sorted(xy for xy, k in count.items() if k >= min_count)


def tjunction_vertices(geoms: Sequence[BaseGeometry]) -> list[tuple[float, float]]:
    """Vertices of one polygon that lie on another's edge where that one has no vertex."""
    tree = shapely.STRtree(list(geoms))
    verts = [{tuple(c) for c in shapely.get_coordinates(g).tolist()} for g in geoms]
    out: set[tuple[float, float]] = set()
    for i, g in enumerate(geoms):
        for j in tree.query(g, predicate="touches"):
            if j == i:
                continue
            boundary = geoms[j].boundary
            for xy in verts[i]:
                if xy not in verts[j] and boundary.distance(Point(xy)) < 1e-9:
                    out.add(xy)
    return sorted(out)


def shared_edge_midpoints(
    geoms: Sequence[BaseGeometry], min_length: float = 1.0
) -> list[tuple[float, float]]:
    """Midpoints of the first segment of every boundary two polygons share (at least
    ``min_length`` long, in drawing-CRS units), sorted."""
    tree = shapely.STRtree(list(geoms))
    out: set[tuple[float, float]] = set()
    for i, g in enumerate(geoms):
        for j in tree.query(g, predicate="touches"):
            if j <= i:
                continue
            common = shapely.intersection(g.boundary, geoms[j].boundary)
            lines = [p for p in shapely.get_parts(common) if p.geom_type == "LineString"]
            if not lines:
                continue
            for part in shapely.get_parts(shapely.line_merge(MultiLineString(lines))):
                if part.length >= min_length:
                    c = shapely.get_coordinates(part)
                    out.add(((c[0][0] + c[1][0]) / 2, (c[0][1] + c[1][1]) / 2))
    return sorted(out)


def make_buildings(
    d: Drawing,
    rng: np.random.Generator,
    per_grid: tuple[int, int],
    households: tuple[int, int],
    roads: Sequence[str],
    *,
    margin: float,
    decimals: int,
    specials: Iterable[tuple[float, float]] = (),
    skip_grids: Iterable[str] = (),
    id_format: str = "B{:05d}",
) -> None:
    """Buildings: random ones inside each grid, then one at each special location."""
    skip = set(skip_grids)
    points: list[Point] = []
    for g in d.grids:
        if g.code in skip:
            continue
        n = int(rng.integers(per_grid[0], per_grid[1] + 1))
        points.extend(interior_points(g.geom, n, rng, margin, decimals))
    points.extend(Point(xy) for xy in specials)
    for k, p in enumerate(points):
        hh = int(rng.integers(households[0], households[1] + 1))
        road = roads[k % len(roads)]
        d.buildings.append(
            {
                "building_id": id_format.format(k + 1),
                "address": f"{road}{k // len(roads) + 1}号",
                "households": hh,
                "residents": int(hh * rng.uniform(2.1, 3.0)),
                "floors": int(rng.integers(2, 34)),
                "geometry": p,
            }
        )


def make_reports(
    d: Drawing,
    rng: np.random.Generator,
    n: int,
    *,
    times: Callable[[int], str],
    specials: Iterable[tuple[float, float]] = (),
    id_format: str = "R{:05d}",
) -> None:
    """Reports at buildings (a random sample), then one at each special location."""
    idx = sorted(
        rng.choice(len(d.buildings), size=min(n, len(d.buildings)), replace=False).tolist()
    )
    points = [d.buildings[i]["geometry"] for i in idx] + [Point(xy) for xy in specials]
    for k, p in enumerate(points):
        category, subcategory, label = CATEGORIES[k % len(CATEGORIES)]
        closed = k % 3 != 0
        d.reports.append(
            {
                "report_id": id_format.format(k + 1),
                "category": category,
                "subcategory": subcategory,
                "reported_at": times(k),
                "status": "closed" if closed else ("handling" if k % 2 else "reported"),
                "closed_at": "2025-06-30T18:00:00+08:00" if closed else None,
                "description": f"{label}（第{k + 1}件）",
                "geometry": p,
            }
        )


# --------------------------------------------------------------------------- frames


def frames(
    d: Drawing, multi: Iterable[str] = ("district", "streets", "communities")
) -> dict[str, gpd.GeoDataFrame]:
    """The contract layers in the drawing CRS (``multi`` layers as MultiPolygon throughout)."""
    multi = set(multi)

    def geom(layer: str, g: BaseGeometry) -> BaseGeometry:
        return as_multi(g) if layer in multi else g

    out = {
        "district": gpd.GeoDataFrame(
            {"code": [d.code], "name": [d.name], **{k: [v] for k, v in d.district_extra.items()}},
            geometry=[geom("district", d.outline)],
            crs=d.crs,
        ),
    }
    for layer, units, parent in (
        ("streets", d.streets, "district_code"),
        ("communities", d.communities, "street_code"),
        ("grids", d.grids, "community_code"),
    ):
        extra_keys = sorted({k for u in units for k in u.extra})
        out[layer] = gpd.GeoDataFrame(
            {
                "code": [u.code for u in units],
                "name": [u.name for u in units],
                parent: [u.parent for u in units],
                **{k: [u.extra.get(k) for u in units] for k in extra_keys},
            },
            geometry=[geom(layer, u.geom) for u in units],
            crs=d.crs,
        )
    for layer, rows in (("buildings", d.buildings), ("reports", d.reports), ("roads", d.roads)):
        out[layer] = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=d.crs)
    return out


def to_lonlat(
    layers: dict[str, gpd.GeoDataFrame], crs: str = "EPSG:4326"
) -> dict[str, gpd.GeoDataFrame]:
    """Every layer reprojected vertex by vertex (pyproj through geopandas)."""
    return {k: v.to_crs(crs) for k, v in layers.items()}


def write_gpkg(
    layers: dict[str, gpd.GeoDataFrame], path: Path, geometry_types: dict[str, str] | None = None
) -> None:
    if path.exists():
        path.unlink()
    for name, frame in layers.items():
        kwargs: dict[str, Any] = {}
        if geometry_types and name in geometry_types:
            kwargs = {"geometry_type": geometry_types[name], "promote_to_multi": False}
        pyogrio.write_dataframe(
            frame, path, layer=name, driver="GPKG", layer_options={"SPATIAL_INDEX": "NO"}, **kwargs
        )


# --------------------------------------------------------------------------- measurements


def tjunction_noise(
    drawn: dict[str, gpd.GeoDataFrame], delivered: dict[str, gpd.GeoDataFrame]
) -> dict[str, Any]:
    """T-junctions (a vertex on a neighbour's or the parent's edge where that one has no
    vertex, found in the drawing CRS) and how far each is off that edge in the delivered
    files read as EPSG:4326, in metres: the reprojection and rounding noise to be noded."""
    polygon_layers = ("district", "streets", "communities", "grids")
    ll = {k: delivered[k].to_crs("EPSG:4326") for k in polygon_layers}
    to_ll = Transformer.from_crs(drawn["grids"].crs, "EPSG:4326", always_xy=True)
    on_edge = 1e-6 if CRS(drawn["grids"].crs).is_projected else 1e-12
    pairs = [
        ("grids", "grids"),
        ("communities", "communities"),
        ("streets", "streets"),
        ("grids", "communities"),
        ("communities", "streets"),
        ("streets", "district"),
    ]
    count = 0
    largest = 0.0
    by_pair: dict[str, float] = {}
    for child, other in pairs:
        a, b = list(drawn[child].geometry), list(drawn[other].geometry)
        tree = shapely.STRtree(b)
        for i, g in enumerate(a):
            g_ll = shapely.get_coordinates(ll[child].geometry.iat[i])
            for j in tree.query(g, predicate="intersects"):
                if child == other and j == i:
                    continue
                hv = {tuple(c) for c in shapely.get_coordinates(b[j]).tolist()}
                boundary = b[j].boundary
                boundary_ll = ll[other].geometry.iat[j].boundary
                for x, y in {tuple(c) for c in shapely.get_coordinates(g).tolist()}:
                    if (x, y) in hv or boundary.distance(Point(x, y)) > on_edge:
                        continue
                    lon, lat = to_ll.transform(x, y)
                    v = g_ll[int(np.argmin(np.hypot(g_ll[:, 0] - lon, g_ll[:, 1] - lat)))]
                    q = boundary_ll.interpolate(boundary_ll.project(Point(v)))
                    dist = GEOD.inv(v[0], v[1], q.x, q.y)[2]
                    count += 1
                    largest = max(largest, dist)
                    key = f"{child}/{other}"
                    by_pair[key] = max(by_pair.get(key, 0.0), round(dist, 4))
    return {
        "tjunction_vertices": count,
        "tjunction_max_offset_m": round(largest, 4),
        "tjunction_max_offset_m_by_layers": by_pair,
    }


def counts(d: Drawing) -> dict[str, int]:
    return {
        "streets": len(d.streets),
        "communities": len(d.communities),
        "grids": len(d.grids),
        "buildings": len(d.buildings),
        "households": sum(int(b["households"]) for b in d.buildings),
        "reports": len(d.reports),
        "roads": len(d.roads),
    }


def regrid_requests(d: Drawing) -> dict[str, Any]:
    """A households band around 0.7x the mean grid load (forces splits, keeps some grids) and a
    target of about 1.3x the grid count."""
    hh = sum(int(b["households"]) for b in d.buildings)
    mean = hh / len(d.grids)
    low = int(round(0.5 * mean, -1))
    high = int(round(0.95 * mean, -1))
    return {"households": f"{low}-{high}", "target": round(1.3 * len(d.grids))}


def manifest_entry(
    d: Drawing,
    folder: str,
    load: list[str],
    fmt: str,
    delivered_crs: str,
    export: str,
    features: list[str],
    delivered: dict[str, gpd.GeoDataFrame],
) -> dict[str, Any]:
    return {
        "key": d.key,
        "folder": folder,
        "load": load,
        "code": d.code,
        "name": d.name,
        "drawn_crs": d.crs,
        "delivered_crs": delivered_crs,
        "format": fmt,
        "export": export,
        "features": features,
        "expected": counts(d),
        "regrid": regrid_requests(d),
        **tjunction_noise(frames(d), delivered),
    }


def name_units(
    geoms: Sequence[BaseGeometry], parent: str, prefix: str, names: Sequence[str], kind: str
) -> list[Unit]:
    """Codes in the given order: ``prefix`` + a 3-digit serial (+ ``000`` for streets)."""
    out = []
    for k, geom in enumerate(geoms):
        code = prefix + f"{k + 1:03d}" + ("000" if kind == "street" else "")
        out.append(Unit(code, names[k % len(names)], parent, geom))
    return out


def grid_units(community: Unit, geoms: Sequence[BaseGeometry]) -> list[Unit]:
    """Grids of a community, coded ``community code + 001...`` in reading order."""
    units = []
    for k, i in enumerate(order_west_east_north_south(geoms)):
        code = f"{community.code}{k + 1:03d}"
        units.append(Unit(code, f"{community.name}第{k + 1}网格", community.code, geoms[i]))
    return units


def shifted(geom: BaseGeometry, x0: float, y0: float) -> BaseGeometry:
    return shapely.transform(geom, lambda xy: xy + np.array([x0, y0]))


# --------------------------------------------------------------------------- 1: GK GeoPackage


def d1_gk_gpkg() -> Drawing:
    """Hand-listed cut positions in CGCS2000 / 3-degree GK CM 120E, integer metres.

    ::

        y=2000 +---------------+-------+-------+-------+
               |  C101 (+hole) |  C201 | C202  | C203  |   S2 (north-east)
        y=1200 +-----+---------+       |       |       |
               |     |         +=======+=======+=======+ y=1000: 2 km E-W street edge
               |C102 |  C103   | C301  | C302  | C303  |   S3 (south-east)
               |     |         |       |      /  (coast, slope 1/2)
          y=0  +-----+---------+-------+----/
              x=0   450      1000    1500  2000     3000
        S1 = x < 1000 (west); x=1000 is a 2 km N-S street edge.
    """
    x0, y0 = 604000.0, 4302000.0  # about 121.20 E, 38.85 N
    rng = np.random.default_rng(101)
    code = "219101"
    # the outline has the street corners as vertices, as a dissolve of the streets would
    outline = Polygon(
        [
            (0, 0),
            (1000, 0),
            (2000, 0),
            (3000, 500),
            (3000, 1000),
            (3000, 2000),
            (1000, 2000),
            (0, 2000),
        ]
    )
    west, east = cut(outline, "x", [1000])
    s3_geom, s2_geom = cut(east, "y", [1000])
    streets = name_units(
        [west, s2_geom, s3_geom], code, code, ["樱桃街道", "湾北街道", "湾南街道"], "street"
    )
    by_name = {s.name: s for s in streets}
    s1, s2, s3 = by_name["樱桃街道"], by_name["湾北街道"], by_name["湾南街道"]
    s1_south, s1_north = cut(s1.geom, "y", [1200])
    c102_geom, c103_geom = cut(s1_south, "x", [450])
    communities = (
        name_units(
            [s1_north, c102_geom, c103_geom],
            s1.code,
            s1.code[:9],
            ["樱花", "枫林", "石门"],
            "community",
        )
        + name_units(
            cut(s2.geom, "x", [1700, 2400]),
            s2.code,
            s2.code[:9],
            ["望海", "春晖", "明珠"],
            "community",
        )
        + name_units(
            cut(s3.geom, "x", [1500, 2200]),
            s3.code,
            s3.code[:9],
            ["金沙", "静海", "松风"],
            "community",
        )
    )
    layout: dict[str, tuple[list[float], list[list[float]]]] = {
        "枫林": ([], [[400, 800]]),
        "石门": ([720], [[300, 700], [550]]),
        "望海": ([1350], [[1500], [1300, 1650]]),
        "春晖": ([2050], [[1450], [1550]]),
        "明珠": ([], [[1250, 1600]]),
        "金沙": ([1250], [[450], [600]]),
        "静海": ([1850], [[500], [350, 700]]),
        "松风": ([2600], [[550], [650]]),
    }
    grids: list[Unit] = []
    for c in communities:
        if c.name == "樱花":
            cells = guillotine(c.geom, [350, 700], [[1600], [1500], [1650]])
            # a courtyard school compound: a grid inside a grid (the outer one has a hole)
            school = shapely.box(100, 1300, 250, 1450)
            host = next(i for i, g in enumerate(cells) if g.contains(school))
            cells[host] = cells[host].difference(school)
            cells.append(school)
        else:
            cols, rows = layout[c.name]
            cells = guillotine(c.geom, cols, rows)
        grids.extend(grid_units(c, cells))
    for k, g in enumerate(grids):
        g.extra["网格类型"] = ["住宅", "商住混合", "老旧小区"][k % 3]
        if k % 4 == 1:
            g.geom = as_multi(g.geom)  # a single-part MultiPolygon among Polygons
    for c in communities:
        c.extra["population"] = int(rng.integers(3000, 12000))
    d = Drawing(
        "d1_gk_gpkg", code, "樱桃湾区（手绘）", "EPSG:4549", outline, streets, communities, grids
    )
    d.district_extra = {"source": "hand-drawn, tests/data/districts/build.py"}
    specials = [
        (1000, 1000),  # four communities of three streets meet
        (1700, 1000),  # T-junction: C201/C202 corner on C302's straight edge
        (1500, 1000),  # T-junction from the south side
        (1000, 1200),  # T-junction on the 2 km N-S street edge
        (1000, 500),  # middle of the N-S street edge
        (2000, 1000),  # middle of the 2 km E-W street edge (no vertex there on either side)
        (350, 1600),  # vertex shared by grids of C101
        (100, 1300),  # corner of the enclave grid
        (175, 1450),  # on the enclave's edge
        (0, 1000),  # on the district outline
        (2400, 200),  # on the coast
    ]
    make_buildings(
        d,
        rng,
        (6, 12),
        (20, 90),
        ["樱桃路", "滨海路", "学苑街", "龙河路"],
        margin=3,
        decimals=2,
        specials=specials,
    )
    at_sea = [(2900, 100), (2500, -300), (1500, -20000)]
    make_reports(
        d,
        rng,
        70,
        times=lambda k: f"2025-{1 + k % 9:02d}-{1 + k % 27:02d}T{8 + k % 10:02d}:15:00+08:00",
        specials=specials[:6] + at_sea,
    )
    d.roads = [
        {"name": "樱桃路", "geometry": LineString([(1000, 0), (1000, 2000)])},
        {"name": "滨海路", "geometry": LineString([(1000, 0), (2000, 0), (3000, 500)])},
        {"name": "学苑街", "geometry": LineString([(200, 200), (900, 1800)])},
        {"name": "龙河路", "geometry": LineString([(0, 1000), (3000, 1000)])},
    ]
    _shift_drawing(d, x0, y0)
    check_drawing(d, 1e-6)
    return d


def write_d1(d: Drawing) -> dict[str, Any]:
    folder = HERE / "d1_gk_gpkg"
    folder.mkdir(exist_ok=True)
    layers = frames(d)
    path = folder / "district.gpkg"
    write_gpkg(layers, path, geometry_types={"grids": "Unknown"})
    return manifest_entry(
        d,
        folder.name,
        [f"{folder.name}/district.gpkg"],
        "GeoPackage (one file, seven layers)",
        d.crs,
        "gpkg",
        [
            "T-junctions on 2 km straight street edges (E-W y=1000 and N-S x=1000)",
            "a grid with a hole filled by another grid (school compound)",
            "grids layer of mixed Polygon and single-part MultiPolygon",
            "a diagonal coast (slope 1/2) cut at exact points",
            "buildings on shared vertices, T-junctions, edge midpoints, the outline and the coast",
            "reports at sea (one 20 km out)",
            "extra columns: 网格类型, population, source",
        ],
        layers,
    )


# --------------------------------------------------------------------------- 2: UTM -> ogr2ogr


def d2_utm_geojson() -> Drawing:
    """Recursive random splits (alternating axes, whole metres) in UTM 51N.

    Three 500 m wide north-south strips (2 km long straight street edges), each split into
    communities and grids by halving at a random position; the north edge slopes 1/4 so cuts
    meet it at exact quarter metres. East-west edges stay within 500 m, so the reprojection
    bend at a T-junction stays a few millimetres.
    """
    x0, y0 = 405000.0, 4322000.0  # about 121.90 E, 39.04 N
    rng = np.random.default_rng(202)
    code = "219102"
    outline = Polygon(
        [(0, 0), (500, 0), (1000, 0), (1500, 0), (1500, 1825), (1000, 1950), (500, 2075), (0, 2200)]
    )
    strips = cut(outline, "x", [500, 1000])
    streets = name_units(strips, code, code, ["金石街道", "滩东街道", "滩西街道"], "street")
    communities: list[Unit] = []
    grids: list[Unit] = []
    names = iter(COMMUNITY_NAMES)
    for s, n_comm in zip(streets, (3, 4, 3), strict=True):
        pieces = recursive_split(s.geom, n_comm, rng, axis="y", min_side=150)
        comms = name_units(pieces, s.code, s.code[:9], [next(names) for _ in pieces], "community")
        communities.extend(comms)
        for c in comms:
            n_grid = int(rng.integers(3, 6))
            grids.extend(grid_units(c, recursive_split(c.geom, n_grid, rng, axis="x", min_side=60)))
    d = Drawing(
        "d2_utm_geojson",
        code,
        "金石滩区（手绘）",
        "EPSG:32651",
        outline,
        streets,
        communities,
        grids,
    )
    specials = list(shared_vertices([g.geom for g in grids], 3)[:6])
    specials += tjunction_vertices([g.geom for g in grids])[:6]
    specials += shared_edge_midpoints([g.geom for g in grids])[:6]
    make_buildings(
        d,
        rng,
        (6, 13),
        (15, 80),
        ["金石路", "滨海东路", "滩北街", "黄金海岸路"],
        margin=2,
        decimals=1,
        specials=specials,
    )
    make_reports(
        d,
        rng,
        90,
        times=lambda k: f"2025-{1 + k % 12:02d}-{1 + k % 28:02d}T{k % 24:02d}:05:00Z",
        specials=[*specials[:8], (1600, 500), (750, -400)],
    )
    d.roads = [
        {"name": "金石路", "geometry": LineString([(500, 0), (500, 2075)])},
        {"name": "滨海东路", "geometry": LineString([(0, 0), (1500, 0)])},
        {
            "name": "滩北街",
            "geometry": MultiLineString([[(0, 1200), (500, 1200)], [(1000, 1300), (1500, 1300)]]),
        },
    ]
    _shift_drawing(d, x0, y0)
    check_drawing(d, 1e-6)
    return d


def _shift_drawing(d: Drawing, x0: float, y0: float) -> None:
    for layer in (d.streets, d.communities, d.grids):
        for u in layer:
            u.geom = shifted(u.geom, x0, y0)
    d.outline = shifted(d.outline, x0, y0)
    for rows in (d.buildings, d.reports, d.roads):
        for r in rows:
            r["geometry"] = shifted(r["geometry"], x0, y0)


def ogr2ogr(src: Path, layer: str, dst: Path, *options: str) -> None:
    """GDAL's own reprojection, as a planner's export would do it."""
    if shutil.which("ogr2ogr") is None:
        raise SystemExit("ogr2ogr not found: apt-get install gdal-bin")
    if dst.exists():
        dst.unlink()
    subprocess.run(["ogr2ogr", *options, str(dst), str(src), layer], check=True)


def write_d2(d: Drawing) -> dict[str, Any]:
    folder = HERE / "d2_utm_geojson"
    folder.mkdir(exist_ok=True)
    layers = frames(d, multi=("district", "streets"))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "utm.gpkg"
        for name, frame in layers.items():  # GeoPackage 1.2, which Debian's GDAL reads silently
            pyogrio.write_dataframe(
                frame, source, layer=name, driver="GPKG", dataset_options={"VERSION": "1.2"}
            )
        for name in layers:
            ogr2ogr(
                source,
                name,
                folder / f"{name}.geojson",
                "-f",
                "GeoJSON",
                "-t_srs",
                "EPSG:4326",
                "-lco",
                "RFC7946=YES",
                "-lco",
                "COORDINATE_PRECISION=8",
            )
    delivered = {name: gpd.read_file(folder / f"{name}.geojson") for name in layers}
    entry = manifest_entry(
        d,
        folder.name,
        [folder.name],
        "GeoJSON, one file per layer (ogr2ogr -t_srs EPSG:4326, RFC 7946, 8 decimals)",
        "EPSG:4326",
        "folder",
        [
            "drawn in UTM 51N, reprojected by GDAL's ogr2ogr: T-junctions already off in the files",
            "2 km straight north-south street edges, east-west cuts of at most 500 m",
            "a north edge sloping 1/4, cut at exact quarter metres",
            "buildings on 3-grid vertices, T-junction vertices and shared-edge midpoints",
            "report times in UTC (Z); two reports at sea",
            "a MultiLineString road",
        ],
        delivered,
    )
    return entry


# --------------------------------------------------------------------------- 3: GeoParquet


def noded_faces(lines: Sequence[BaseGeometry], inside: BaseGeometry) -> list[Polygon]:
    """Faces of all ``lines`` noded once (so every face shares exact vertices with its
    neighbours), keeping those inside ``inside``."""
    noded = shapely.union_all(
        [shapely.boundary(g) if g.geom_type.endswith("Polygon") else g for g in lines]
    )
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    return [f for f in faces if inside.contains(f.representative_point())]


def d3_geoparquet() -> Drawing:
    """Voronoi cells grouped bottom-up, in UTM 51N, delivered as GeoParquet in EPSG:4490.

    Grids are the Voronoi cells of 42 seeds, noded once with the outline, a lake (a hole in
    the district, its street, community and grid) and a walled compound (a grid inside a
    grid); communities are unions of grids, streets unions of communities. Every level is a
    fully noded coverage (no T-junctions), the opposite of district 1. Codes start with 0.
    """
    x0, y0 = 470000.0, 4502000.0  # about 122.65 E, 40.66 N
    rng = np.random.default_rng(303)
    code = "019103"
    outline_shell = [
        (0, 0),
        (1400, -150),
        (2500, 200),
        (2700, 1300),
        (2100, 2100),
        (900, 2200),
        (-100, 1500),
        (-250, 600),
    ]
    lake = [(1100, 900), (1450, 820), (1600, 1100), (1350, 1350), (1050, 1200)]
    outline = Polygon(outline_shell, [lake])
    seeds: list[Point] = []
    while len(seeds) < 42:
        p = Point(
            round(float(rng.uniform(-250, 2700)), 1), round(float(rng.uniform(-150, 2200)), 1)
        )
        if outline.buffer(-60).contains(p) and all(p.distance(q) > 170 for q in seeds):
            seeds.append(p)
    cells = list(
        shapely.get_parts(
            shapely.voronoi_polygons(
                shapely.multipoints(seeds), extend_to=outline.envelope.buffer(500)
            )
        )
    )
    # the compound: a 100 m x 80 m box around the seed of the cell that fits it best
    cell_tree = shapely.STRtree(cells)
    host_seed = max(
        range(len(seeds)),
        key=lambda k: (
            cells[int(cell_tree.query(seeds[k], predicate="within")[0])]
            .intersection(outline)
            .buffer(-60)
            .area
        ),
    )
    hx, hy = seeds[host_seed].x, seeds[host_seed].y
    compound = Polygon(
        [(hx - 50, hy - 40), (hx + 50, hy - 40), (hx + 50, hy + 40), (hx - 50, hy + 40)]
    )
    faces = noded_faces([*cells, outline, compound], outline)
    seed_tree = shapely.STRtree(seeds)
    cell_of: dict[int, list[Polygon]] = {}
    compound_faces = []
    for f in faces:
        rp = f.representative_point()
        if compound.contains(rp):
            compound_faces.append(f)
            continue
        k = int(seed_tree.nearest(rp))
        cell_of.setdefault(k, []).append(f)
    grid_geoms = {k: shapely.union_all(v) if len(v) > 1 else v[0] for k, v in cell_of.items()}
    # communities: seeds grouped by a hand-drawn coarse map (8 zones), streets by zone groups
    zones = {
        0: shapely.box(-300, -200, 700, 800),
        1: shapely.box(700, -200, 1700, 800),
        2: shapely.box(1700, -200, 2800, 800),
        3: shapely.box(-300, 800, 900, 1600),
        4: shapely.box(900, 800, 1750, 1600),
        5: shapely.box(1750, 800, 2800, 1600),
        6: shapely.box(-300, 1600, 1300, 2300),
        7: shapely.box(1300, 1600, 2800, 2300),
    }
    zone_of = {k: next(z for z, box in zones.items() if box.contains(seeds[k])) for k in grid_geoms}
    street_of_zone = {0: 0, 1: 0, 3: 0, 2: 1, 4: 1, 5: 1, 6: 2, 7: 2}
    street_names = ["安居街道", "湖光街道", "北山街道"]
    streets: list[Unit] = []
    communities: list[Unit] = []
    grids: list[Unit] = []
    names = iter(COMMUNITY_NAMES[5:])
    compound_grid = shapely.union_all(compound_faces)
    for s_idx, s_name in enumerate(street_names):
        s_code = f"{code}{s_idx + 1:03d}000"
        s_zones = [z for z in zones if street_of_zone[z] == s_idx]
        s_unit = Unit(s_code, s_name, code, Polygon())
        comm_units = []
        for z in s_zones:
            ks = sorted(k for k in grid_geoms if zone_of[k] == z)
            if not ks:
                continue
            geoms = [grid_geoms[k] for k in ks]
            if host_seed in ks:
                geoms.append(compound_grid)
            c_unit = Unit(
                f"{code}{s_idx + 1:03d}{len(comm_units) + 1:03d}",
                next(names),
                s_code,
                shapely.union_all(geoms),
            )
            if c_unit.geom.geom_type != "Polygon":
                raise ValueError(f"community of zone {z} is not one piece")
            comm_units.append(c_unit)
            grids.extend(grid_units(c_unit, geoms))
        s_unit.geom = shapely.union_all([c.geom for c in comm_units])
        streets.append(s_unit)
        communities.extend(comm_units)
    for g in grids:
        g.extra["gridman_id"] = f"0{rng.integers(1000, 9999)}"  # keeps its leading zero
    # the outline as the dissolve of the streets, so that it has their vertices too
    outline = shapely.union_all([s.geom for s in streets])
    d = Drawing(
        "d3_geoparquet", code, "湖光区（手绘）", "EPSG:32651", outline, streets, communities, grids
    )
    check_drawing(d, 1e-3)
    specials = (
        shared_vertices([g.geom for g in grids], 3)[:8]
        + shared_edge_midpoints([g.geom for g in grids])[:6]
    )
    make_buildings(
        d,
        rng,
        (4, 10),
        (20, 110),
        ["湖光路", "安居街", "北山路", "长堤路"],
        margin=2,
        decimals=1,
        specials=specials,
        id_format="{:07d}",
    )
    make_reports(
        d,
        rng,
        80,
        times=lambda k: f"2025-{1 + k % 12:02d}-{1 + k % 28:02d} {7 + k % 12:02d}:{k % 60:02d}:00",
        specials=[*specials[:6], (1300, 1050), (3100, 900)],
        id_format="0{:05d}",
    )
    d.roads = [
        {"name": "湖光路", "geometry": LineString([(-200, 700), (1000, 800), (2600, 1000)])},
        {"name": "长堤路", "geometry": LineString([(1100, 900), (1450, 820), (1600, 1100)])},
    ]
    _shift_drawing(d, x0, y0)
    check_drawing(d, 1e-3)
    return d


def write_d3(d: Drawing) -> dict[str, Any]:
    folder = HERE / "d3_geoparquet"
    folder.mkdir(exist_ok=True)
    layers = frames(d, multi=("district",))
    delivered = to_lonlat(layers, "EPSG:4490")
    for name, frame in delivered.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return manifest_entry(
        d,
        folder.name,
        [f"{folder.name}/{name}.parquet" for name in delivered],
        "GeoParquet, one file per layer (WKB, PROJJSON CRS)",
        "EPSG:4490",
        "parquet",
        [
            "Voronoi grids grouped bottom-up: every level a fully noded coverage",
            "a lake: a hole in the district, its street, community and grid",
            "a walled compound: a grid inside a grid",
            "codes with leading zeros (district 019103, building ids 0000001, report ids 000001)",
            "naive report times (no offset: China time)",
            "an extra grid column gridman_id with leading zeros",
        ],
        delivered,
    )


# --------------------------------------------------------------------------- 4: Shapefile, GBK


def ngon(r: float, n: int, phase: float = 0.0) -> Polygon:
    """A regular ``n``-gon of radius ``r`` around (0, 0), vertices rounded to the millimetre."""
    a = phase + np.arange(n) * 2 * np.pi / n
    return Polygon(np.round(np.column_stack([r * np.cos(a), r * np.sin(a)]), 3))


def ray(angle_deg: float, r: float = 3000.0) -> LineString:
    a = math.radians(angle_deg)
    return LineString([(0, 0), (round(r * math.cos(a), 3), round(r * math.sin(a), 3))])


def split_by(
    geom: BaseGeometry, line: BaseGeometry, key: Callable[[Point], int]
) -> list[BaseGeometry]:
    """``geom`` split by ``line`` (noded once), pieces grouped by ``key`` of a point on each."""
    parts = list(split(geom, line).geoms)
    groups: dict[int, list[BaseGeometry]] = {}
    for part in parts:
        groups.setdefault(key(part.representative_point()), []).append(part)
    return [g[0] if len(g) == 1 else shapely.union_all(g) for _, g in sorted(groups.items())]


def angle_of(p: Point) -> float:
    return math.degrees(math.atan2(p.y, p.x)) % 360


def radius_of(p: Point) -> float:
    return math.hypot(p.x, p.y)


def d4_shapefile() -> Drawing:
    """A round district of rings and sectors, in UTM 50N, delivered as GBK Shapefiles.

    The district is a 40-gon (1.5 km); a 20-gon (600 m, turned half a step) in the middle is
    a street of its own; three 120-degree sectors of the ring around it are the others.
    Communities and grids are cut from those by rays and by a 1050 m ring, each parent on
    its own, so the ray cuts on the inner 20-gon are T-junctions (vertices the middle street
    does not have) on diagonal edges, computed by GEOS.
    """
    x0, y0 = 713000.0, 4414000.0  # about 119.50 E, 39.85 N
    rng = np.random.default_rng(404)
    code = "139104"
    disc = ngon(1500, 40)
    inner = ngon(600, 20, phase=math.pi / 20)
    ring = disc.difference(inner)
    mid_ring = LineString(ngon(1050, 40, phase=math.pi / 40).exterior.coords)
    sectors = split_by(
        ring,
        MultiLineString([ray(10), ray(130), ray(250)]),
        lambda p: int(((angle_of(p) - 10) % 360) // 120),
    )
    street_geoms = [inner, *sectors]
    streets = name_units(
        street_geoms, code, code, ["西山街道", "东山街道", "海滨街道", "戴河街道"], "street"
    )
    by_ring = lambda p: int(radius_of(p) > 1050)  # noqa: E731
    plan: dict[int, BaseGeometry] = {
        0: LineString([(0, -700), (0, 700)]),
        1: mid_ring,
        2: ray(190),
        3: MultiLineString([ray(310), mid_ring]),
    }
    communities: list[Unit] = []
    grids: list[Unit] = []
    names = iter(COMMUNITY_NAMES[3:])
    for s_idx, s in enumerate(streets):
        line = plan[s_idx]
        if s_idx == 0:
            pieces = split_by(s.geom, line, lambda p: int(p.x > 0))
        elif s_idx == 1:
            pieces = split_by(s.geom, line, by_ring)
        elif s_idx == 2:
            pieces = split_by(s.geom, line, lambda p: int(angle_of(p) > 190))
        else:
            pieces = split_by(
                s.geom, line, lambda p: 2 * int(angle_of(p) > 310 or angle_of(p) < 10) + by_ring(p)
            )
        comms = name_units(pieces, s.code, s.code[:9], [next(names) for _ in pieces], "community")
        communities.extend(comms)
        for c in comms:
            a0 = angle_of(c.geom.representative_point())
            if s_idx == 0:
                cells = split_by(c.geom, LineString([(-700, 0), (700, 0)]), lambda p: int(p.y > 0))
                cells = [
                    piece
                    for cell in cells
                    for piece in split_by(
                        cell,
                        MultiLineString([[(-300, -700), (-300, 700)], [(300, -700), (300, 700)]]),
                        lambda p: int(p.x > -300) + int(p.x > 300),
                    )
                ]
            else:
                lo = a0 - 60
                angles = [lo + k * 120 / 5 for k in range(-5, 11)]
                cells = split_by(
                    c.geom,
                    MultiLineString([ray(a) for a in angles]),
                    lambda p, lo=lo: int(((angle_of(p) - lo) % 360) // 24),
                )
            grids.extend(grid_units(c, cells))
    d = Drawing(
        "d4_shapefile", code, "北戴河西区（手绘）", "EPSG:32650", disc, streets, communities, grids
    )
    check_drawing(d, 1e-4)
    for c in communities:
        c.extra["备注"] = "试点社区" if c.code.endswith("001") else "常规"
    specials = [*shared_vertices([g.geom for g in grids], 3)[:6], (0.0, 0.0), (0.0, 300.0)]
    make_buildings(
        d,
        rng,
        (5, 11),
        (10, 70),
        ["海滨路", "戴河街", "西山路", "联峰路"],
        margin=2,
        decimals=1,
        specials=specials,
    )
    make_reports(
        d,
        rng,
        70,
        times=lambda k: f"2025-{1 + k % 12:02d}-{1 + k % 28:02d}T{8 + k % 12:02d}:30:00+08:00",
        specials=[*specials[:4], (1700, 0), (0, -2500)],
    )
    d.roads = [
        {
            "name": "环岛路",
            "geometry": LineString(ngon(1050, 40, phase=math.pi / 40).exterior.coords),
        },
        {"name": "联峰路", "geometry": LineString([(-1500, 0), (1500, 0)])},
    ]
    _shift_drawing(d, x0, y0)
    check_drawing(d, 1e-4)
    return d


#: which Shapefile layers say their encoding in a .cpg file (and how); the others have none
CPG = {"streets": "936", "communities": "GBK", "reports": "GBK"}


def write_d4(d: Drawing) -> dict[str, Any]:
    folder = HERE / "d4_shapefile"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    layers = frames(d, multi=("district",))
    for name, frame in layers.items():
        path = folder / f"{name}.shp"
        # DBF field names hold 10 bytes: GDAL truncates community_code to community_ etc.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pyogrio.write_dataframe(frame, path, encoding="GBK", layer_options=DBF_DATE)
        cpg = path.with_suffix(".cpg")
        if name in CPG:
            cpg.write_text(CPG[name], encoding="ascii")
        else:
            cpg.unlink()
    dbf = (folder / "streets.dbf").read_bytes()
    if "西山街道".encode("gbk") not in dbf:
        raise ValueError("streets.dbf is not GBK")
    return manifest_entry(
        d,
        folder.name,
        [folder.name],
        "ESRI Shapefile folder, attributes in GBK",
        d.crs,
        "gpkg",
        [
            "attributes encoded in GBK; .cpg says 936 (streets) or GBK (communities, reports); "
            "district, grids, buildings and roads have no .cpg",
            "DBF field names cut to 10 characters by GDAL: district_c, street_cod, community_, "
            "building_i, reported_a, subcategor, descriptio",
            "a round district: a middle street enclosed by three ring sectors",
            "ray cuts meet the middle street's diagonal edges at T-junctions computed by GEOS",
            "a Chinese-named extra column 备注",
        ],
        layers,
    )


# --------------------------------------------------------------------------- 5: lattice, GBK CSV

#: District 5 drawn by hand, one character per lattice cell of 1/1024 degree (north row
#: first); ``.`` is outside the district. Each character is one grid.
D5_MAP = [
    "....AAAABBBBBCCCDDD...",
    "...AAAAABBBBBCCCDDDD..",
    "..EEAAAFFBBBGGCCDDDD..",
    "..EEEFFFFBBGGGCCHHHH..",
    ".IEEEFFFFJJGGGKKHHHH..",
    ".IIIELLLJJJJGKKKHHMM..",
    ".IIILLLLJJJNNKKKMMMM..",
    ".IIOOLLLPPPNNNQQMMMM..",
    "..OOOOPPPPPNNNQQQRRR..",
    "..OOOSSSPPTTTNQQQRRR..",
    "..UUUSSSSTTTTVVVWWRR..",
    "..UUUUSSSTTTVVVVWWWR..",
    "...UUXXXYYYYVVZZWWW...",
    "...UXXXXYYYY11ZZZW....",
    "....XXX2YYY111ZZ33....",
    "....4442222111553.....",
    ".....44422266655......",
    "......444.666.........",
]
#: community (street index, name) -> its grid characters
D5_COMMUNITIES = {
    (0, "河口"): "AEF",
    (0, "新华"): "BGC",
    (0, "东营"): "DHM",
    (1, "孤岛"): "ILO",
    (1, "仙河"): "JNKP",
    (1, "义和"): "QRW",
    (2, "六合"): "STUX",
    (2, "胜利"): "VYZ1",
    (2, "黄河"): "23456",
}
LON0, LAT0, STEP = 118.75, 37.5, 2.0**-10


def d5_csv_gbk() -> Drawing:
    """Drawn in CGCS2000 lon/lat (EPSG:4490) on a dyadic lattice, so every vertex, every
    edge midpoint and every point placed on a boundary is exact in binary floating point.
    Polygons as GeoJSON declaring EPSG:4490; buildings and reports as GBK CSV."""
    rng = np.random.default_rng(505)
    code = "379105"
    rows = len(D5_MAP)

    def cell(r: int, c: int) -> Polygon:
        x = LON0 + c * STEP
        y = LAT0 + (rows - 1 - r) * STEP
        return shapely.box(x, y, x + STEP, y + STEP)

    cells: dict[str, list[Polygon]] = {}
    for r, line in enumerate(D5_MAP):
        for c, ch in enumerate(line):
            if ch != ".":
                cells.setdefault(ch, []).append(cell(r, c))
    grid_geom = {ch: shapely.union_all(v) for ch, v in cells.items()}
    streets: list[Unit] = []
    communities: list[Unit] = []
    grids: list[Unit] = []
    street_names = ["河口街道", "孤岛街道", "六合街道"]
    for s_idx, s_name in enumerate(street_names):
        s_code = f"{code}{s_idx + 1:03d}000"
        comm = [(name, chars) for (si, name), chars in D5_COMMUNITIES.items() if si == s_idx]
        comm_units = []
        for k, (name, chars) in enumerate(comm):
            c_unit = Unit(
                f"{code}{s_idx + 1:03d}{k + 1:03d}",
                name,
                s_code,
                shapely.union_all([grid_geom[ch] for ch in chars]),
            )
            if c_unit.geom.geom_type != "Polygon":
                raise ValueError(f"community {name} is not one piece")
            comm_units.append(c_unit)
            for j, ch in enumerate(chars):
                if grid_geom[ch].geom_type != "Polygon":
                    raise ValueError(f"grid {ch} is not one piece")
                grids.append(
                    Unit(f"{c_unit.code}{j + 1:03d}", f"{name}{ch}网格", c_unit.code, grid_geom[ch])
                )
        communities.extend(comm_units)
        streets.append(Unit(s_code, s_name, code, shapely.union_all([c.geom for c in comm_units])))
    outline = shapely.union_all([s.geom for s in streets])
    d = Drawing(
        "d5_csv_gbk", code, "黄河口区（手绘）", "EPSG:4490", outline, streets, communities, grids
    )
    check_drawing(d, 0.0)
    # buildings at 1/16 of a cell inside cells (never on a boundary), then on boundaries
    points: list[Point] = []
    for ch in sorted(cells):
        for _ in range(int(rng.integers(6, 14))):
            box = cells[ch][int(rng.integers(len(cells[ch])))]
            u, v = (int(rng.integers(1, 16)) for _ in range(2))
            points.append(Point(box.bounds[0] + u * STEP / 16, box.bounds[1] + v * STEP / 16))
    specials = (
        shared_vertices([g.geom for g in grids], 3)[:10]
        + shared_edge_midpoints([g.geom for g in grids], STEP / 2)[:10]
    )
    points.extend(Point(xy) for xy in specials)
    for k, p in enumerate(points):
        hh = int(rng.integers(15, 95))
        d.buildings.append(
            {
                "building_id": f"{k + 1:06d}",
                "address": f"{['黄河路', '济南路', '西四路', '运河路'][k % 4]}{k // 4 + 1}号",
                "households": str(hh),
                "residents": str(int(hh * 2.7)),
                "floors": str(int(rng.integers(2, 19))),
                "建成年份": str(int(rng.integers(1985, 2024))),
                "物业公司": ["胜利物业", "黄河物业", "无物业"][k % 3],
                "geometry": p,
            }
        )
    sea = Point(LON0 + 21.5 * STEP, LAT0 + 0.5 * STEP)
    zones = ["", "+08:00", "Z"]
    make_reports(
        d,
        rng,
        90,
        times=lambda k: (
            f"2025-{1 + k % 12:02d}-{1 + k % 28:02d}{' ' if k % 3 == 0 else 'T'}"
            f"10:{k % 60:02d}:00{zones[k % 3]}"
        ),
        specials=[*specials[:8], (sea.x, sea.y)],
        id_format="HK{:04d}",
    )
    for r in d.reports:
        if r["closed_at"] is None:
            r["closed_at"] = ""
    d.roads = [
        {
            "name": "黄河路",
            "geometry": LineString(
                [(LON0 + 2 * STEP, LAT0 + 9 * STEP), (LON0 + 20 * STEP, LAT0 + 9 * STEP)]
            ),
        },
        {
            "name": "济南路",
            "geometry": LineString(
                [(LON0 + 11 * STEP, LAT0 + 1 * STEP), (LON0 + 11 * STEP, LAT0 + 18 * STEP)]
            ),
        },
    ]
    return d


def write_d5(d: Drawing) -> dict[str, Any]:
    folder = HERE / "d5_csv_gbk"
    folder.mkdir(exist_ok=True)
    layers = frames(d, multi=("district",))
    for name in ("district", "streets", "communities", "grids", "roads"):
        path = folder / f"{name}.geojson"
        if path.exists():
            path.unlink()
        pyogrio.write_dataframe(layers[name], path, driver="GeoJSON")
    for name in ("buildings", "reports"):
        frame = layers[name]
        table = pd.DataFrame(frame.drop(columns="geometry"))
        table.insert(0, "lat", [repr(float(y)) for y in frame.geometry.y])  # exact doubles
        table.insert(1, "lon", [repr(float(x)) for x in frame.geometry.x])
        table.to_csv(folder / f"{name}.csv", index=False, encoding="gbk", lineterminator="\r\n")
    for name in ("district", "streets", "communities", "grids"):
        back = gpd.read_file(folder / f"{name}.geojson")
        if not all(
            shapely.equals_exact(a, b, 0)
            for a, b in zip(back.geometry, layers[name].geometry, strict=True)
        ):
            raise ValueError(f"{name}.geojson does not keep the lattice coordinates exactly")
    return manifest_entry(
        d,
        folder.name,
        [folder.name],
        "GeoJSON polygons declaring EPSG:4490, buildings and reports as GBK CSV (lon/lat)",
        "EPSG:4490 (polygons), EPSG:4326 (CSV)",
        "folder",
        [
            "drawn by hand as a character map on a 1/1024-degree lattice: every coordinate exact",
            "buildings and reports exactly on 3- and 4-grid vertices and on shared-edge midpoints",
            "CSV in GBK (Excel on Chinese Windows), CRLF, lat before lon, "
            "Chinese extra columns 建成年份 and 物业公司",
            "building ids with leading zeros (000001), households as text",
            "report times mixed: naive (space separated), +08:00 and Z; empty closed_at",
            "a report at sea",
        ],
        layers,
    )


# --------------------------------------------------------------------------- 6: odd features


def circle(cx: float, cy: float, r: float, n: int = 24) -> Polygon:
    return shifted(ngon(r, n), cx, cy)


def d6_odd() -> Drawing:
    """Odd on purpose, drawn with shapely operations in UTM 51N, delivered as a GeoPackage
    in EPSG:4326 (reprojected vertex by vertex)::

                               island 1 (two grids; its east half and island 2
                 coast            form one MultiPolygon grid)   o   island 2
        y=1300 +------------+---\\
               | outer [inner]| e3|port\\      <- port: a community without buildings
         y=600 +------------+---+----------+ y=900
               | s_w | s_e |single| e1 | e2 |
           y=0 +-----+-----+------+----+----+
              x=0         1100              2400
    """
    x0, y0 = 465000.0, 4344000.0  # about 122.60 E, 39.24 N
    rng = np.random.default_rng(606)
    code = "219106"
    island1 = circle(2300, 1900, 260)
    island2 = circle(2750, 1600, 120)
    mainland = Polygon(
        [
            (0, 0),
            (1100, 0),
            (2400, 0),
            (2400, 900),
            (2400, 1000),
            (1600, 1300),
            (1500, 1300),
            (1100, 1300),
            (0, 1300),
        ]
    )
    west, east_land = cut(mainland, "x", [1100])
    inner = shapely.box(350, 800, 750, 1100)
    s1_south, s1_north = cut(west, "y", [600])
    outer = s1_north.difference(inner)
    single = shapely.box(600, 0, 760, 150)
    s_w, s_e_full = cut(s1_south, "x", [600])
    s_e = s_e_full.difference(single)
    e_south, e_north = cut(east_land, "y", [900])
    e3, port = cut(e_north, "x", [1500])
    e1, e2 = cut(e_south, "x", [1750])
    islands = MultiPolygon([island1, island2])
    s2_geom = shapely.union_all([east_land, islands])
    streets = [
        Unit(f"{code}001000", "大学城街道", code, west),
        Unit(f"{code}002000", "港湾街道", code, s2_geom),
    ]
    s1, s2 = streets
    comm_specs = [
        (s1, "大学城", outer),
        (s1, "军营", inner),
        (s1, "南关", s_w),
        (s1, "灯塔", single),
        (s1, "东关", s_e),
        (s2, "东港", e1),
        (s2, "渔港", e2),
        (s2, "北岸", e3),
        (s2, "港务", port),
        (s2, "海岛", islands),
    ]
    communities = []
    for s, name, geom in comm_specs:
        serial = sum(1 for c in communities if c.parent == s.code) + 1
        communities.append(Unit(f"{s.code[:9]}{serial:03d}", f"{name}社区", s.code, geom))
    cm = {c.name[:-2]: c for c in communities}
    grid_cells: dict[str, list[BaseGeometry]] = {
        "大学城": [*cut(outer, "x", [300, 850])],
        "军营": cut(inner, "x", [550]),
        "南关": cut(s_w, "y", [200, 400]),
        "灯塔": [single],
        "东关": cut(s_e, "x", [850]),
        "东港": guillotine(e1, [1400], [[450], [450]]),
        "渔港": guillotine(e2, [2050], [[500], [300, 650]]),
        "北岸": cut(e3, "y", [1100]),
        "港务": cut(port, "x", [1950]),
    }
    west_strip, middle, east_strip = grid_cells["大学城"]
    mid_low, mid_high = cut(middle, "y", [700])  # mid_high keeps the hole of the 军营 enclave
    grid_cells["大学城"] = [west_strip, mid_low, mid_high, east_strip]
    isl_west, isl_east = cut(island1, "x", [2300])
    grid_cells["海岛"] = [isl_west, MultiPolygon([isl_east, island2])]
    grids = []
    for name, cells in grid_cells.items():
        grids.extend(grid_units(cm[name], cells))
    d = Drawing(
        "d6_odd",
        code,
        "长山群岛区（手绘）",
        "EPSG:32651",
        shapely.union_all([mainland, islands]),
        streets,
        communities,
        grids,
    )
    node_shared(
        d
    )  # delivered in lon/lat: no T-junctions to bend (its 1.3 km edges would bend 2.7 cm)
    check_drawing(d, 1e-6)
    port_grids = [g.code for g in grids if g.parent == cm["港务"].code]
    single_grid = next(g.code for g in grids if g.parent == cm["灯塔"].code)
    specials = [
        (350.0, 950.0),
        (350.0, 800.0),
        (550.0, 1100.0),
        (2300.0, 1900.0),
        (1100.0, 600.0),
        (1750.0, 900.0),
    ]
    make_buildings(
        d,
        rng,
        (7, 12),
        (15, 80),
        ["港湾路", "大学路", "灯塔街", "海岛路"],
        margin=3,
        decimals=2,
        specials=specials,
        skip_grids=[*port_grids, single_grid],
    )
    d.buildings.append(
        {
            "building_id": "B-LIGHTHOUSE",
            "address": "灯塔街1号",
            "households": 3,
            "residents": 5,
            "floors": 2,
            "geometry": Point(680.0, 75.0),
        }
    )
    d.buildings.append(
        {
            "building_id": "B-TOWER",
            "address": "港湾路888号",
            "households": 2000,
            "residents": 5200,
            "floors": 56,
            "geometry": Point(1300.0, 250.0),
        }
    )
    port_points = [(1700.0, 1100.0), (2200.0, 950.0), (1950.0, 1000.0)]
    make_reports(
        d,
        rng,
        60,
        times=lambda k: f"2025-{1 + k % 12:02d}-{1 + k % 28:02d}T09:00:00+08:00",
        specials=specials[:3]
        + port_points
        + [(2600.0, 1800.0), (3500.0, 3000.0), (50000.0, 90000.0)],
    )
    d.roads = [
        {"name": "港湾路", "geometry": LineString([(1100, 900), (2400, 900)])},
        {"name": "大学路", "geometry": LineString([(550, 0), (550, 1300)])},
        {"name": "环岛路", "geometry": LineString(island1.exterior.coords)},
    ]
    _shift_drawing(d, x0, y0)
    check_drawing(d, 1e-6)
    return d


def write_d6(d: Drawing) -> dict[str, Any]:
    folder = HERE / "d6_odd"
    folder.mkdir(exist_ok=True)
    layers = frames(d, multi=("district", "streets"))
    delivered = to_lonlat(layers)
    write_gpkg(delivered, folder / "district.gpkg")
    return manifest_entry(
        d,
        folder.name,
        [f"{folder.name}/district.gpkg"],
        "GeoPackage in EPSG:4326 (reprojected from UTM 51N vertex by vertex)",
        "EPSG:4326",
        "parquet",
        [
            "港务社区: a port community without buildings (two empty grids; reports only)",
            "海岛社区: a MultiPolygon community entirely off shore (two islands)",
            "a MultiPolygon grid: the east half of island 1 with island 2",
            "军营社区: an enclave inside 大学城社区, whose grid has the hole",
            "灯塔社区: a community of a single building (3 households)",
            "B-TOWER: one building of 2000 households",
            "reports between the islands, 2 km out and 100 km out at sea",
        ],
        delivered,
    )


# --------------------------------------------------------------------------- 7: real outline

_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323


def _gcj_delta(lon: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 offset at a WGS 84 point (the published obfuscation polynomial)."""
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (
        (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (
        (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad = lat / 180.0 * math.pi
    magic = 1 - _GCJ_EE * math.sin(rad) ** 2
    dlat = dlat * 180.0 / ((_GCJ_A * (1 - _GCJ_EE)) / (magic * math.sqrt(magic)) * math.pi)
    dlon = dlon * 180.0 / (_GCJ_A / math.sqrt(magic) * math.cos(rad) * math.pi)
    return dlon, dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Invert GCJ-02 by fixed-point iteration (converges to well under a millimetre)."""
    w_lon, w_lat = lon, lat
    for _ in range(30):
        dlon, dlat = _gcj_delta(w_lon, w_lat)
        w_lon, w_lat = lon - dlon, lat - dlat
    return w_lon, w_lat


D7_STREETS = {  # real names and codes (NBS 2022 via modood/Administrative-divisions-of-China)
    "nw": ("210204011000", "李家街道"),
    "sw": ("210204010000", "黑石礁街道"),
    "ne": ("210204006000", "春柳街道"),
    "se": ("210204008000", "马栏街道"),
}
D7_COMMUNITIES = {  # 锦绣 and 香沙 are real communities of these streets; the rest are invented
    "nw": ["锦绣社区", "锦华社区", "长兴社区"],
    "sw": ["星海社区", "学苑社区"],
    "ne": ["香沙社区", "春柳社区", "春德社区"],
    "se": ["马栏社区", "西南社区"],
}


def d7_shahekou() -> Drawing:
    """The real outline of 沙河口区 (adcode 210204; DataV.GeoAtlas, GCJ-02, converted to WGS 84)
    in CGCS2000 / 3-degree GK CM 123E (EPSG:4550), with streets, communities and grids drawn
    inside it by hand-placed polyline cuts (segments of at most 2 km) and recursive splits."""
    rng = np.random.default_rng(707)
    src = json.loads(
        (HERE / "d7_shahekou" / "source" / "210204_datav_gcj02.geojson").read_text(encoding="utf-8")
    )
    ring = src["features"][0]["geometry"]["coordinates"][0][0]
    to_gk = Transformer.from_crs("EPSG:4326", "EPSG:4550", always_xy=True)
    gk = [to_gk.transform(*gcj02_to_wgs84(lon, lat)) for lon, lat in ring]
    outline = Polygon([(round(x, 3), round(y, 3)) for x, y in gk])
    if not outline.is_valid:
        raise ValueError("the converted outline is not valid")
    minx, miny, maxx, maxy = outline.bounds
    w, h = maxx - minx, maxy - miny

    def at(fx: float, fy: float) -> tuple[float, float]:
        return (round(minx + fx * w), round(miny + fy * h))

    # a north-south street line with jogs every ~1.5 km, beyond the outline at both ends
    ns = LineString(
        [
            at(0.47, -0.05),
            at(0.47, 0.15),
            at(0.455, 0.30),
            at(0.455, 0.46),
            at(0.47, 0.62),
            at(0.47, 0.78),
            at(0.48, 0.94),
            at(0.48, 1.05),
        ]
    )
    west, east = split_by(outline, ns, lambda p: int(_side(ns, p) < 0))
    ew_w = LineString([at(-0.05, 0.50), at(0.22, 0.52), at(0.50, 0.50)])
    ew_e = LineString([at(0.40, 0.58), at(0.70, 0.60), at(1.05, 0.57)])
    sw, nw = split_by(west, ew_w, lambda p: int(_side(ew_w, p) > 0))
    se, ne = split_by(east, ew_e, lambda p: int(_side(ew_e, p) > 0))
    parts = {"nw": nw, "sw": sw, "ne": ne, "se": se}
    streets = [
        Unit(D7_STREETS[k][0], D7_STREETS[k][1], "210204", parts[k])
        for k in ("ne", "se", "sw", "nw")
    ]
    communities: list[Unit] = []
    grids: list[Unit] = []
    for key in ("ne", "se", "sw", "nw"):
        s = next(u for u in streets if u.code == D7_STREETS[key][0])
        names = D7_COMMUNITIES[key]
        pieces = recursive_split(
            s.geom, len(names), rng, axis="x", min_side=500, max_east_west=2000
        )
        pieces = [pieces[i] for i in order_west_east_north_south(pieces)]
        comms = [
            Unit(f"{s.code[:9]}{k + 1:03d}", n, s.code, g)
            for k, (n, g) in enumerate(zip(names, pieces, strict=True))
        ]
        communities.extend(comms)
        for c in comms:
            n_grid = int(rng.integers(4, 6))
            grids.extend(
                grid_units(
                    c,
                    recursive_split(
                        c.geom, n_grid, rng, axis="y", min_side=180, max_east_west=2000
                    ),
                )
            )
    d = Drawing(
        "d7_shahekou", "210204", "沙河口区", "EPSG:4550", outline, streets, communities, grids
    )
    d.district_extra = {
        "adcode": "210204",
        "outline_source": "DataV.GeoAtlas via github.com/anzhou99/GeoJsons (GCJ-02 -> WGS 84)",
    }
    check_drawing(d, 1e-4)
    specials = (
        shared_vertices([g.geom for g in grids], 3)[:6]
        + tjunction_vertices([g.geom for g in grids])[:6]
    )
    make_buildings(
        d,
        rng,
        (6, 12),
        (20, 100),
        ["黄河路", "西安路", "中山路", "五一路", "高尔基路"],
        margin=3,
        decimals=2,
        specials=specials,
        id_format="SHK{:05d}",
    )
    sea = [at(0.6, -0.02), at(0.3, -0.3)]
    make_reports(
        d,
        rng,
        100,
        times=lambda k: (
            f"2025-{1 + k % 12:02d}-{1 + k % 28:02d}"
            + ("T08:00:00+08:00" if k % 2 else " 08:00:00")
        ),
        specials=specials[:6] + sea,
        id_format="SHK-R{:05d}",
    )
    d.roads = [
        {"name": "黄河路", "geometry": LineString([at(0.0, 0.75), at(1.0, 0.80)])},
        {"name": "西安路", "geometry": LineString([at(0.85, 0.1), at(0.85, 0.95)])},
        {"name": "中山路", "geometry": LineString([at(0.1, 0.35), at(1.0, 0.38)])},
    ]
    check_drawing(d, 1e-4)
    return d


def _side(line: LineString, p: Point) -> float:
    """Positive when ``p`` lies left of ``line`` (seen along it), by the nearest segment."""
    c = shapely.get_coordinates(line)
    k = int(np.argmin([LineString(c[i : i + 2]).distance(p) for i in range(len(c) - 1)]))
    (ax, ay), (bx, by) = c[k], c[k + 1]
    return (bx - ax) * (p.y - ay) - (by - ay) * (p.x - ax)


def write_d7(d: Drawing) -> dict[str, Any]:
    folder = HERE / "d7_shahekou"
    folder.mkdir(exist_ok=True)
    layers = frames(d, multi=("district",))
    for name in ("district", "streets", "communities", "grids", "roads"):
        layers[name].to_parquet(folder / f"{name}.parquet", index=False)
    for name in ("buildings", "reports"):
        lonlat = layers[name].to_crs("EPSG:4326")
        table = pd.DataFrame(lonlat.drop(columns="geometry"))
        table["lon"] = [repr(float(x)) for x in lonlat.geometry.x]
        table["lat"] = [repr(float(y)) for y in lonlat.geometry.y]
        table.to_csv(folder / f"{name}.csv", index=False, encoding="utf-8-sig")
    return manifest_entry(
        d,
        folder.name,
        [
            f"{folder.name}/{n}.parquet"
            for n in ("district", "streets", "communities", "grids", "roads")
        ]
        + [f"{folder.name}/{n}.csv" for n in ("buildings", "reports")],
        "GeoParquet polygons and roads in EPSG:4550, buildings and reports as UTF-8 CSV with BOM",
        "EPSG:4550 (GeoParquet), EPSG:4326 (CSV)",
        "parquet",
        [
            "the real outline of 沙河口区 (84 vertices, GCJ-02 to WGS 84, then GK CM 123E)",
            "real street names and codes: 210204006000 春柳, 210204008000 马栏, "
            "210204010000 黑石礁, 210204011000 李家",
            "community serials invented (锦绣 and 香沙 are real community names of those streets)",
            "streets cut by hand-placed polylines (jogs every 1.5-2 km), grids by recursive splits",
            "report times mixed naive and +08:00; two reports at sea",
        ],
        layers,
    )


# --------------------------------------------------------------------------- main

BUILDERS: list[tuple[Callable[[], Drawing], Callable[[Drawing], dict[str, Any]]]] = [
    (d1_gk_gpkg, write_d1),
    (d2_utm_geojson, write_d2),
    (d3_geoparquet, write_d3),
    (d4_shapefile, write_d4),
    (d5_csv_gbk, write_d5),
    (d6_odd, write_d6),
    (d7_shahekou, write_d7),
]


def main() -> None:
    entries = []
    for draw, write in BUILDERS:
        drawing = draw()
        entry = write(drawing)
        entries.append(entry)
        e = entry["expected"]
        print(
            f"{entry['key']:16} {entry['drawn_crs']:>10} -> {entry['format'][:40]:40} "
            f"{e['streets']} streets, {e['communities']} communities, {e['grids']} grids, "
            f"{e['buildings']} buildings, {e['reports']} reports; T-junction noise up to "
            f"{entry['tjunction_max_offset_m'] * 1000:.1f} mm"
        )
    manifest = {
        "about": "written by build.py; the end-to-end test tests/test_corpus.py reads it",
        "districts": entries,
    }
    (HERE / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
