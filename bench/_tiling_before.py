"""The tiling check gridmap ran before the precision model (issue #10), kept as a baseline.

It only checked: overlaps, gaps and parts outside by area, overlaid in lon/lat, with no
noding, no densifying and no change to the geometry. ``bench_noding.py`` times today's load
against a load that runs this instead, so the ratio is what noding costs.
"""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from geo.crs import metric_crs_for_bounds
from geo.errors import Problem
from geo.grids import DistrictData, Repair
from geo.topology import polygonal

SLIVER_M2 = 1.0
NOISE_M2 = 1e-4


def node_district_before(
    data: DistrictData,
    *,
    repair: bool,
    tolerance_m: float,
    repair_width_m: float,
    problems: list[Problem],
    repairs: list[Repair],
) -> DistrictData:
    """What validation did to the hierarchy before: check each level against its parent."""
    del tolerance_m, repair_width_m
    metric = metric_crs_for_bounds(tuple(data.district.total_bounds))
    for child, parent, key in (
        ("streets", "district", "district_code"),
        ("communities", "streets", "street_code"),
        ("grids", "communities", "community_code"),
    ):
        check_tiling(
            data.layer(child),
            data.layer(parent),
            key,
            child,
            parent,
            metric,
            repair,
            SLIVER_M2,
            problems,
            repairs,
        )
    return data


def check_tiling(
    children: gpd.GeoDataFrame,
    parents: gpd.GeoDataFrame,
    key: str,
    child_layer: str,
    parent_layer: str,
    metric: CRS,
    repair: bool,
    sliver_m2: float,
    problems: list[Problem],
    repairs: list[Repair],
    source: str | None = None,
) -> gpd.GeoDataFrame:
    """Each parent's children must cover it exactly: no overlap, no gap, nothing outside.

    Overlay runs in EPSG:4326, where shared edges are stored and therefore exact (projecting
    first would bend long edges away from vertices that lie on them); only the pieces found
    are projected to ``metric`` to measure them in m². With ``repair``, slivers below
    ``sliver_m2`` are absorbed (overlaps go to the smaller code, gaps to the neighbour with
    the longest shared edge, parts outside the parent are clipped).
    """
    area_m2 = _area_measure(metric)
    out_geoms = children.geometry.to_numpy().copy()
    child_geoms = children.geometry.to_numpy()
    child_codes = children["code"].to_numpy()
    changed = False
    for p_idx in range(len(parents)):
        p_code = parents["code"].iat[p_idx]
        parent_geom = parents.geometry.iat[p_idx]
        rows = np.flatnonzero((children[key] == p_code).to_numpy())
        where = f"{parent_layer} {p_code}"
        if len(rows) == 0:
            problems.append(
                Problem(
                    f"{where} has no {child_layer}",
                    file=source,
                    layer=child_layer,
                    feature=str(p_code),
                    fix=f"add {child_layer} that cover {where}",
                )
            )
            continue
        findings = _tiling_findings(child_geoms[rows], child_codes[rows], parent_geom, area_m2)
        fixable = all(area < sliver_m2 for _, _, area, _ in findings)
        if findings and repair and fixable:
            fixed = _repair_tiling(child_geoms[rows], child_codes[rows], parent_geom)
            for j, row in enumerate(rows):
                out_geoms[row] = as_multipolygon(fixed[j])
            for kind, code, area, _point in findings:
                repairs.append(
                    Repair(
                        child_layer,
                        str(code) if code is not None else where,
                        f"absorbed a {area:.3f} m² {kind} in {where}",
                    )
                )
            changed = True
            continue
        for kind, code, area, point in findings:
            hint = (
                "run with --repair to absorb slivers"
                if area < sliver_m2
                else f"redraw the {child_layer} so they tile {where} exactly"
            )
            problems.append(
                Problem(
                    f"{kind} of {area:,.2f} m² in {where} near ({point.x:.6f}, {point.y:.6f})",
                    file=source,
                    layer=child_layer,
                    feature=str(code) if code is not None else where,
                    fix=hint,
                )
            )
    if not changed:
        return children
    out = children.copy()
    out[out.geometry.name] = out_geoms
    return out


def _area_measure(metric: CRS) -> Callable[[shapely.Geometry], float]:
    """Area in m² of a lon/lat geometry, by the ellipsoid's local scale at the piece.

    Edges are straight in lon/lat, so a sliver that is degenerate there (three vertices on
    one parallel, off by 1e-14°) must measure ~0. Projecting only its vertices to UTM
    would bend the parallel and report tens of m² of "gap" after any reprojection.
    ``metric`` is kept for the signature; pieces are small, so the local scale is exact
    to well under 1 %.
    """
    del metric
    a, f = 6378137.0, 1 / 298.257223563  # WGS 84
    e2 = f * (2 - f)
    rad = np.pi / 180.0

    def measure(geom: shapely.Geometry) -> float:
        if geom is None or shapely.is_empty(geom):
            return 0.0
        lat = float(shapely.centroid(geom).y) * rad
        w = 1.0 - e2 * np.sin(lat) ** 2
        m_per_deg_lat = rad * a * (1 - e2) / w**1.5
        m_per_deg_lon = rad * a / np.sqrt(w) * np.cos(lat)
        return float(shapely.area(geom)) * m_per_deg_lat * m_per_deg_lon

    return measure


def as_multipolygon(geom: shapely.Geometry) -> shapely.Geometry:
    """Polygon -> MultiPolygon: the store's geometry columns are MULTIPOLYGON."""
    if geom.geom_type == "Polygon":
        return shapely.multipolygons([geom])
    return geom


def _tiling_findings(
    geoms: np.ndarray,
    codes: np.ndarray,
    parent: shapely.Geometry,
    area_m2: Callable[[shapely.Geometry], float],
) -> list[tuple[str, str | None, float, shapely.Point]]:
    """(kind, child code, area m², location) for overlaps, gaps and parts outside the parent."""
    findings: list[tuple[str, str | None, float, shapely.Point]] = []
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for a, b in zip(left, right, strict=True):
        if a >= b:
            continue
        overlap = polygonal(shapely.intersection(geoms[a], geoms[b]))
        area = area_m2(overlap)
        if area > NOISE_M2:
            findings.append(
                (
                    f"overlap between {codes[a]} and {codes[b]}",
                    codes[a],
                    area,
                    shapely.point_on_surface(overlap),
                )
            )
    outside = shapely.difference(geoms, parent)
    for i, piece in enumerate(outside):
        area = area_m2(piece)
        if area > NOISE_M2:
            findings.append(
                (
                    f"part outside its parent ({codes[i]} is not inside it)",
                    codes[i],
                    area,
                    shapely.point_on_surface(piece),
                )
            )
    gaps = shapely.difference(parent, shapely.union_all(geoms))
    for piece in shapely.get_parts(gaps):
        area = area_m2(piece)
        if area > NOISE_M2:
            near = tree.query(piece, predicate="intersects")
            neighbours = ", ".join(sorted(str(codes[j]) for j in near)) or None
            findings.append(("gap", neighbours, area, shapely.point_on_surface(piece)))
    return findings


def _repair_tiling(
    geoms: np.ndarray, codes: np.ndarray, parent: shapely.Geometry
) -> list[shapely.Geometry]:
    """Clip to the parent, give overlaps to the smaller code, gaps to the longest neighbour."""
    order = np.argsort(codes.astype(str))
    fixed: list[shapely.Geometry] = [shapely.Polygon()] * len(geoms)
    taken: shapely.Geometry = shapely.Polygon()
    for i in order:
        g = shapely.difference(shapely.intersection(geoms[i], parent), taken)
        fixed[i] = polygonal(g)
        taken = shapely.union(taken, fixed[i])
    gaps = shapely.difference(parent, taken)
    for piece in shapely.get_parts(gaps):
        if shapely.area(piece) <= 0:
            continue
        shared = [shapely.length(shapely.intersection(piece.boundary, f.boundary)) for f in fixed]
        best = int(np.argmax(shared))
        fixed[best] = polygonal(shapely.union(fixed[best], piece))
    return fixed
