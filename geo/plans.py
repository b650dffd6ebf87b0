"""Grid plans as GeoDataFrames: metrics, guarantee checks, comparison, crosswalk and edits.

Pure functions: no database. A plan is a GeoDataFrame of grids (``code``, ``community_code``,
``name``, geometry) in the CRS of the communities (EPSG:4326 by the data contract).

Why topology is done in the output CRS: grids must pass ``shapely.coverage_is_valid`` where
they are stored. Reprojecting a coverage keeps shared vertices shared, but any operation done
in a metric CRS and projected back would move kept grids. So geometry is snapped to a fixed
precision grid of the output CRS (1e-7 degrees, about 1 cm) and every shared edge is re-noded
(``node_coverage``); only measurements (areas, lengths) use the UTM zone of the data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely
import shapely.ops
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely import LineString

from geo.assign import COARSE_TABLE, NO_TABLE, GridIndex
from geo.errors import Conflict, DataRefused, InvalidInput, Problem
from geo.precision import DEFAULT_TOLERANCE_M
from geo.topology import (
    Level,
    absorb_width_m,
    area_m2,
    as_multipolygon,
    drawn_in_candidates,
    fit_to_frozen,
    grid_size_for,
    in_precision_model,
    metric_crs,
    node_hierarchy,
    polygonal,
    reproject,
    shared_lengths,
    snap,
    thinner_than,
    voronoi_cells,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "EDIT_OPTIONS",
    "LOAD_COLUMNS",
    "Edit",
    "MergeEdit",
    "MoveEdit",
    "RenameEdit",
    "SplitEdit",
    "assign_buildings",
    "building_loads",
    "check_plan",
    "check_weights",
    "compare_plans",
    "crosswalk",
    "edit_request",
    "merge_grids",
    "move_buildings",
    "new_codes",
    "plan_metrics",
    "precise_inputs",
    "rename_grid",
    "split_grid",
]

DEFAULT_WEIGHTS: Mapping[str, float] = {"households": 1.0}
#: Load columns a planner may weight; others are refused so typos do not silently count 0.
LOAD_COLUMNS = ("households", "residents", "open_reports", "elderly_care")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# --------------------------------------------------------------------------- precision, CRS


def precise_inputs(
    comm: gpd.GeoDataFrame, old: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, bool]:
    """Communities and old grids in the precision model (``geo.topology``), as a load
    stores them: stored ones are used as they are, which is what makes the plan nest exactly
    and kept grids stay identical; anything else (an older store, frames built by hand) is
    noded first, and the plan nests in the noded communities."""
    crs = comm.crs if comm.crs is not None else "EPSG:4326"
    if len(old) == 0 or not pyproj.CRS.from_user_input(crs).is_geographic:
        return comm, old, False
    index = {c: k for k, c in enumerate(comm["code"].astype(str))}
    unknown = sorted(set(old["community_code"].astype(str)) - set(index))
    if unknown:
        raise InvalidInput(
            f"grids name unknown communities: {', '.join(unknown)}", field="community_code"
        )
    owner = [index[str(c)] for c in old["community_code"]]
    invalid = np.flatnonzero(~shapely.is_valid(np.asarray(old.geometry.values, dtype=object)))
    if len(invalid):
        raise DataRefused(
            problems=[
                Problem(
                    f"the stored grid is not a valid polygon: "
                    f"{shapely.is_valid_reason(old.geometry.iat[i])}",
                    layer="grids",
                    feature=str(old["code"].iat[i]),
                    fix="reload the district with gridmap load --repair, or redraw the grid",
                )
                for i in invalid.tolist()
            ],
            outcome="nothing was stored",
        )
    if in_precision_model(comm.geometry.values, old.geometry.values, owner):
        return comm, old, False
    levels = [
        Level("communities", comm["code"].astype(str).tolist(), None, comm.geometry.to_numpy()),
        Level("grids", old["code"].astype(str).tolist(), owner, old.geometry.to_numpy()),
    ]
    noded = node_hierarchy(levels, drawn_in_candidates(None, tuple(comm.total_bounds)))
    if noded.real_findings:
        first = noded.real_findings[0]
        raise InvalidInput(
            f"the old grids do not tile their communities: {first.kind} of "
            f"{first.area_m2:.1f} m² near ({first.lon:.6f}, {first.lat:.6f})",
            field="grids",
            fix="load the district with gridmap load (it checks and nodes the tiling)",
        )
    comm = comm.set_geometry(gpd.GeoSeries(noded.geoms[0], crs=crs, index=comm.index))
    old = old.set_geometry(gpd.GeoSeries(noded.geoms[1], crs=crs, index=old.index))
    return comm, old, True


# --------------------------------------------------------------------------- loads, assignment


def check_weights(weights: Mapping[str, float]) -> None:
    """Refuse a load mix that cannot weigh buildings: an unknown load, a weight below zero or
    not finite, or nothing weighed at all (the regrid goal and every load computation)."""
    for name in sorted(weights):
        if name not in LOAD_COLUMNS:
            raise InvalidInput(
                f"unknown load {name!r}",
                field=f"weights.{name}",
                fix=f"use some of {', '.join(LOAD_COLUMNS)}",
            )
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise InvalidInput(
                f"weight {weights[name]} is not a finite number of at least 0",
                field=f"weights.{name}",
            )
    if sum(weights.values()) <= 0:
        raise InvalidInput(
            "weights must be non-negative and not all zero",
            field="weights",
            fix='for example {"households": 1.0, "residents": 0.5}',
        )


def building_loads(
    buildings: pd.DataFrame, weights: Mapping[str, float] | None = None
) -> FloatArray:
    """Weighted workload per building, scaled so the district total equals its households.

    The scaling keeps a households band meaningful for any mix of loads.
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    check_weights(weights)
    for name in sorted(weights):
        if weights[name] > 0 and name not in buildings.columns:
            raise InvalidInput(
                f"buildings have no {name!r} column to weight",
                field="weights",
                fix=f"add {name!r} per building or drop it from the weights",
            )
    households = _column(buildings, "households")
    mix = np.zeros(len(buildings))
    for name in sorted(weights):
        if weights[name] > 0:
            mix += weights[name] * _column(buildings, name)
    total_mix = float(mix.sum())
    if total_mix <= 0:
        return households
    return mix * (float(households.sum()) / total_mix)


def _column(frame: pd.DataFrame, name: str) -> FloatArray:
    if name not in frame.columns:
        return np.zeros(len(frame))
    values = pd.to_numeric(frame[name], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    return np.clip(values, 0.0, None)


#: Points from which ``assign_buildings`` builds a lookup table (measured on the fixture).
_TABLE_POINTS = 1000


def assign_buildings(grid_geoms: Any, points: Any) -> IntArray:
    """Index of the grid holding each point (-1 when there are no grids): the assignment rule
    (``geo.assign.GridIndex``), the grids ranked in the given order (callers sort by code).

    A point outside every grid goes to the nearest one (``snap_all``): in a plan's counts
    every building belongs to some grid.
    """
    grid_geoms = np.asarray(grid_geoms, dtype=object)
    points = np.asarray(points, dtype=object)
    if len(grid_geoms) == 0 or len(points) == 0:
        return np.full(len(points), -1, dtype=np.int64)
    # Stored or drafted grids, checked where they were made. A table pays for itself over a
    # plan's buildings, not over a regrid candidate's few dozen.
    cells = COARSE_TABLE if len(points) >= _TABLE_POINTS else NO_TABLE
    index = GridIndex.ranked(grid_geoms, validated=True, cells_per_grid=cells)
    result = index.assign(shapely.get_x(points), shapely.get_y(points), snap_all=True)
    return result.position.astype(np.int64)


# --------------------------------------------------------------------------- codes


def new_codes(
    community_code: str, representative_xy: Sequence[tuple[float, float]], used: Iterable[str]
) -> list[str]:
    """Codes for new grids of one community, numbered west to east, then north to south.

    Sequences continue after the highest one ever used in the community, so a retired code is
    never handed out again (the caller passes every code the district ever used).
    """
    used_seq = sorted(
        int(c[len(community_code) :])
        for c in used
        if c.startswith(community_code) and c[len(community_code) :].isdigit()
    )
    order = sorted(
        range(len(representative_xy)),
        key=lambda k: (representative_xy[k][0], -representative_xy[k][1], k),
    )
    start = (used_seq[-1] + 1) if used_seq else 1
    seqs = list(range(start, start + len(order)))
    if seqs and seqs[-1] > 999:
        taken = set(used_seq)
        seqs = [s for s in range(1, 1000) if s not in taken][: len(order)]
        if len(seqs) < len(order):
            raise Conflict(
                f"community {community_code} has no free 3-digit grid sequence left",
                field="code",
                fix="retire the community's unused codes or split the community",
            )
    codes = [""] * len(order)
    for rank, k in enumerate(order):
        codes[k] = f"{community_code}{seqs[rank]:03d}"
    return codes


# --------------------------------------------------------------------------- metrics


def _prepare(
    grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, weights: Mapping[str, float] | None
) -> tuple[gpd.GeoDataFrame, IntArray, FloatArray]:
    g = grids.sort_values("code", kind="stable").reset_index(drop=True)
    b = buildings.to_crs(g.crs) if buildings.crs != g.crs else buildings
    owner = assign_buildings(g.geometry.values, b.geometry.values)
    return g, owner, building_loads(b, weights)


def plan_metrics(
    communities: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    band: tuple[float, float] | None,
    parent_grids: gpd.GeoDataFrame | None = None,
    weights: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-grid metrics and a plan summary (balance, band, compactness, contiguity, disruption).

    ``kept`` means the parent plan holds the same code and the same geometry (exactly).
    """
    g, owner, load = _prepare(grids, buildings, weights)
    n = len(g)
    households = _column(buildings, "households")
    ok = owner >= 0
    grid_load = np.bincount(owner[ok], load[ok], minlength=n)[:n]
    grid_hh = np.bincount(owner[ok], households[ok], minlength=n)[:n]
    grid_bld = np.bincount(owner[ok], minlength=n)[:n]
    mcrs = metric_crs(communities)
    geoms_m = reproject(g.geometry.values, g.crs, mcrs)
    area = shapely.area(geoms_m)
    perim = shapely.length(shapely.boundary(geoms_m))
    pp = np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-12) ** 2, 0.0)
    parts = shapely.get_num_geometries(g.geometry.values)
    in_band = (grid_load >= band[0]) & (grid_load <= band[1]) if band else np.zeros(n, dtype=bool)
    kept = np.zeros(n, dtype=bool)
    kept_in_band_share: float | None = None
    boundary_kept: dict[str, float | None] = {"internal": None, "all": None}
    if parent_grids is not None and len(parent_grids):
        p, p_owner, _ = _prepare(parent_grids, buildings, weights)
        kept = _kept_mask(g, p, mcrs)
        if band:
            pn = len(p)
            pok = p_owner >= 0
            p_load = np.bincount(p_owner[pok], load[pok], minlength=pn)[:pn]
            p_in = (p_load >= band[0]) & (p_load <= band[1])
            kept_codes = set(g["code"][kept])
            if p_in.any():
                kept_in_band_share = float(np.mean([c in kept_codes for c in p["code"][p_in]]))
        boundary_kept = _boundary_kept(p, g, communities, mcrs)
    comm = communities.set_index("code")
    comm_parts = {
        str(c): int(shapely.get_num_geometries(geom)) for c, geom in comm.geometry.items()
    }
    one_piece = np.array(
        [parts[i] == 1 or comm_parts.get(str(g["community_code"].iat[i]), 1) > 1 for i in range(n)]
    )
    metrics = pd.DataFrame(
        {
            "code": g["code"].astype(str).to_numpy(),
            "community_code": g["community_code"].astype(str).to_numpy(),
            "load": np.round(grid_load, 3),
            "households": grid_hh.astype(np.int64),
            "buildings": grid_bld.astype(np.int64),
            "area_m2": np.round(area, 2),
            "polsby_popper": np.round(pp, 4),
            "parts": parts.astype(np.int64),
            "in_band": in_band,
            "kept": kept,
            "note": [""] * n,
        }
    )
    # Balance is over grids with load: a park's or a port's grid has none to balance.
    loaded = grid_load > 0
    lw = grid_load[loaded]
    mean = float(lw.mean()) if len(lw) else 0.0
    problems = check_plan(communities, g, buildings)
    summary: dict[str, Any] = {
        "grids": n,
        "communities": int(g["community_code"].nunique()),
        "grids_without_load": int(n - loaded.sum()),
        "load_total": round(float(grid_load.sum()), 3),
        "load_mean": round(mean, 3),
        "max_over_mean": round(float(lw.max() / mean), 4) if mean else None,
        "min_over_mean": round(float(lw.min() / mean), 4) if mean else None,
        "cv": round(float(lw.std() / mean), 4) if mean else None,
        "band": list(band) if band else None,
        "band_share": round(float(in_band[loaded].mean()), 4) if band and len(lw) else None,
        "polsby_popper_mean": round(float(pp.mean()), 4) if n else None,
        "polsby_popper_min": round(float(pp.min()), 4) if n else None,
        "contiguity_share": round(float(one_piece.mean()), 4) if n else None,
        "kept_grids": int(kept.sum()),
        "kept_in_band_share": None if kept_in_band_share is None else round(kept_in_band_share, 4),
        "boundary_kept_share": boundary_kept["internal"],
        "boundary_kept_share_all": boundary_kept["all"],
        "coverage_valid": bool(shapely.coverage_is_valid(g.geometry.values)) if n else True,
        "problems": [str(p) for p in problems],
    }
    return metrics, summary


def _kept_mask(child: gpd.GeoDataFrame, parent: gpd.GeoDataFrame, mcrs: pyproj.CRS) -> Any:
    """A grid is kept when the parent plan has the same code with the same geometry
    (``ST_Equals``: the same point set, whatever the vertex order)."""
    del mcrs
    p_geom = dict(zip(parent["code"].astype(str), parent.geometry.values, strict=True))
    kept = np.zeros(len(child), dtype=bool)
    idx = [i for i, c in enumerate(child["code"].astype(str)) if c in p_geom]
    if idx:
        a = np.asarray(child.geometry.values[idx], dtype=object)
        b = np.asarray([p_geom[str(child["code"].iat[i])] for i in idx], dtype=object)
        kept[idx] = shapely.equals(a, b)
    return kept


def _boundary_kept(
    parent: gpd.GeoDataFrame,
    child: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    mcrs: pyproj.CRS,
) -> dict[str, float | None]:
    """Share of the parent's grid boundary length that is still a grid boundary.

    ``internal`` counts only boundaries between grids of one community (community
    boundaries never move, so they would flatter the figure); ``all`` counts every edge.
    """
    pm = reproject(parent.geometry.values, parent.crs, mcrs)
    cm = reproject(child.geometry.values, child.crs, mcrs)
    comm_m = reproject(communities.geometry.values, communities.crs, mcrs)
    # Sample the old boundaries every <= 5 m; a sample is kept if a new boundary passes
    # within 5 cm (snapping moves edges by < 1 cm). Buffers of the whole linework are slow.
    lines = shapely.segmentize(shapely.boundary(pm), 5.0)
    coords, ring = shapely.get_coordinates(shapely.get_parts(lines), return_index=True)
    same = ring[1:] == ring[:-1]
    start, end = coords[:-1][same], coords[1:][same]
    mid = shapely.points((start + end) / 2.0)
    seg_len = np.hypot(*(end - start).T)
    new_tree = shapely.STRtree(shapely.boundary(cm))
    comm_tree = shapely.STRtree(shapely.boundary(comm_m))
    kept = np.zeros(len(mid), dtype=bool)
    on_comm = np.zeros(len(mid), dtype=bool)
    kept[np.unique(new_tree.query(mid, predicate="dwithin", distance=0.05)[0])] = True
    on_comm[np.unique(comm_tree.query(mid, predicate="dwithin", distance=0.05)[0])] = True
    total_all = float(seg_len.sum())
    total_int = float(seg_len[~on_comm].sum())
    kept_all = float(seg_len[kept].sum())
    kept_int = float(seg_len[kept & ~on_comm].sum())
    return {
        "internal": round(kept_int / total_int, 4) if total_int > 0 else 1.0,
        "all": round(kept_all / total_all, 4) if total_all > 0 else 1.0,
    }


# --------------------------------------------------------------------------- checks


def check_plan(
    communities: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame
) -> list[Problem]:
    """Every guarantee of a plan, one Problem per failure (an empty list means fine).

    Exactly, in the stored CRS (never in a projection: reprojecting a coverage is what
    makes overlays fail with "side location conflict"): each community's grids are a valid
    coverage whose union is the community, nothing more and nothing less; each grid is one
    piece unless its community is in pieces; codes are unique. ``buildings`` is kept for the
    signature (a building can never lie in no grid of an exact plan).
    """
    del buildings
    problems: list[Problem] = []
    g = grids.sort_values("code", kind="stable").reset_index(drop=True)
    dup = sorted(set(g["code"][g["code"].duplicated()].astype(str)))
    problems += [Problem("code used twice", layer="grids", feature=c, field="code") for c in dup]
    geoms = np.asarray(g.geometry.values, dtype=object)
    for i in np.flatnonzero(~shapely.is_valid(geoms)):
        problems.append(Problem("invalid polygon", layer="grids", feature=str(g["code"].iat[i])))
    comm = dict(zip(communities["code"].astype(str), communities.geometry.values, strict=True))
    gs = grid_size_for(g.crs)
    for c, sub in g.groupby(g["community_code"].astype(str), sort=True):
        rows = sub.index.to_numpy()
        if c not in comm:
            problems += [
                Problem(f"community {c} does not exist", layer="grids", feature=str(code))
                for code in sub["code"]
            ]
            continue
        mine = geoms[rows]
        if not shapely.coverage_is_valid(mine):
            problems.append(
                Problem(
                    "the community's grids overlap or do not match edge for edge",
                    layer="communities",
                    feature=c,
                    fix="re-node the plan on the precision grid",
                )
            )
            union = shapely.union_all(mine, grid_size=gs)
        else:
            union = shapely.coverage_union_all(mine)
        if not shapely.equals(union, comm[c]):
            outside = shapely.difference(union, comm[c], grid_size=gs)
            gap = shapely.difference(comm[c], union, grid_size=gs)
            for what, piece in (
                ("outside community", outside),
                ("of the community uncovered", gap),
            ):
                area = area_m2(piece)
                if area > 0:
                    problems.append(
                        Problem(
                            f"{area:.4f} m² {what} (the plan must nest exactly)",
                            layer="communities",
                            feature=c,
                        )
                    )
        if shapely.get_num_geometries(comm[c]) == 1:
            for k in np.flatnonzero(shapely.get_num_geometries(mine) > 1):
                problems.append(
                    Problem(
                        "grid is in several pieces", layer="grids", feature=str(sub["code"].iat[k])
                    )
                )
    for c in sorted(set(comm) - set(g["community_code"].astype(str))):
        problems.append(Problem("community has no grid", layer="communities", feature=c))
    if len(g) and not shapely.coverage_is_valid(geoms):
        problems.append(
            Problem(
                "grids are not a valid coverage (shared edges do not match)",
                layer="grids",
                fix="re-node the plan on the precision grid",
            )
        )
    return problems


# --------------------------------------------------------------------------- crosswalk, compare


def crosswalk(
    parent_grids: gpd.GeoDataFrame,
    child_grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
) -> pd.DataFrame:
    """Old code → new code with shared area, buildings and households.

    Households of an old grid are preserved: each building lies in one old and one new grid.
    A pair shares a row when it shares a building or a piece wider than the tolerance: a
    thinner piece is noise, not land that changed grid.
    """
    p = parent_grids.sort_values("code", kind="stable").reset_index(drop=True)
    c = child_grids.sort_values("code", kind="stable").reset_index(drop=True)
    cols = ["old_code", "new_code", "shared_area_m2", "buildings", "households"]
    if len(p) == 0 or len(c) == 0:
        return pd.DataFrame({k: pd.Series(dtype=object if "code" in k else float) for k in cols})
    mcrs = metric_crs(p)
    pg = np.asarray(p.geometry.values, dtype=object)
    cg = np.asarray(c.geometry.values, dtype=object)
    tree = shapely.STRtree(cg)
    pi, ci = tree.query(pg, predicate="intersects")
    # Shared pieces exactly, where the plans are stored; only measured in metres. Exact
    # plans share edges, so grids that merely touch share nothing, not a numerical sliver.
    shared = shapely.intersection(pg[pi], cg[ci], grid_size=grid_size_for(p.crs))
    shared_m = reproject(shared, p.crs, mcrs)
    area = shapely.area(shared_m)
    noise = thinner_than(shared_m, absorb_width_m(tolerance_m))
    b = buildings.to_crs(p.crs) if buildings.crs != p.crs else buildings
    po = assign_buildings(p.geometry.values, b.geometry.values)
    co = assign_buildings(c.geometry.values, b.geometry.values)
    hh = _column(b, "households")
    counts: dict[tuple[int, int], list[float]] = {}
    for k in range(len(pi)):
        if area[k] > 0 and not noise[k]:
            counts[(int(pi[k]), int(ci[k]))] = [float(area[k]), 0.0, 0.0]
    for k in range(len(b)):
        if po[k] < 0 or co[k] < 0:
            continue
        row = counts.setdefault((int(po[k]), int(co[k])), [0.0, 0.0, 0.0])
        row[1] += 1
        row[2] += hh[k]
    rows = [
        (str(p["code"].iat[a]), str(c["code"].iat[bb]), round(v[0], 2), int(v[1]), round(v[2]))
        for (a, bb), v in sorted(counts.items())
    ]
    return pd.DataFrame(rows, columns=cols)


def compare_plans(
    plan_a_grids: gpd.GeoDataFrame,
    plan_b_grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    band: tuple[float, float] | None,
    weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Per-grid metrics and summaries of two plans; B's disruption is measured against A."""
    ma, sa = plan_metrics(communities, plan_a_grids, buildings, band, weights=weights)
    mb, sb = plan_metrics(
        communities, plan_b_grids, buildings, band, parent_grids=plan_a_grids, weights=weights
    )
    keys = (
        "grids",
        "max_over_mean",
        "min_over_mean",
        "cv",
        "band_share",
        "polsby_popper_mean",
        "polsby_popper_min",
        "contiguity_share",
    )
    delta = {
        k: (None if sa[k] is None or sb[k] is None else round(float(sb[k]) - float(sa[k]), 4))
        for k in keys
    }
    return {
        "a": {"grids": ma, "summary": sa},
        "b": {"grids": mb, "summary": sb},
        "delta": delta,
        "crosswalk": crosswalk(plan_a_grids, plan_b_grids, buildings),
    }


# --------------------------------------------------------------------------- edits


@dataclass(frozen=True)
class _EditRecord:
    op: ClassVar[str]

    def record(self) -> dict[str, Any]:
        """The edit as the plan's edit log keeps it (the line as WKT)."""
        out: dict[str, Any] = {"op": self.op}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                shapely.to_wkt(value)
                if isinstance(value, LineString)
                else list(value)
                if isinstance(value, tuple)
                else value
            )
        return out


@dataclass(frozen=True)
class SplitEdit(_EditRecord):
    """Split one grid in two along a drawn line."""

    op: ClassVar[str] = "split"

    grid_code: str
    line: LineString


@dataclass(frozen=True)
class MergeEdit(_EditRecord):
    """Merge adjacent grids of one community."""

    op: ClassVar[str] = "merge"

    codes: tuple[str, ...]


@dataclass(frozen=True)
class MoveEdit(_EditRecord):
    """Move buildings into a neighbouring grid."""

    op: ClassVar[str] = "move"

    building_ids: tuple[str, ...]
    to_code: str


@dataclass(frozen=True)
class RenameEdit(_EditRecord):
    """Give a grid a new display name."""

    op: ClassVar[str] = "rename"

    grid_code: str
    name: str


#: One manual edit of a draft, checked (``edit_request``) before any data is read.
Edit = SplitEdit | MergeEdit | MoveEdit | RenameEdit
EDIT_KINDS: dict[str, type[Edit]] = {k.op: k for k in (SplitEdit, MergeEdit, MoveEdit, RenameEdit)}
#: What each edit takes, by the HTTP field names (the CLI spells them as its options).
EDIT_OPTIONS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in fields(kind)) for name, kind in EDIT_KINDS.items()
}
#: A split line is drawn by hand: more vertices than this is not a line but an attack.
MAX_LINE_VERTICES = 10_000
#: Codes and grid names given to an edit are short text.
MAX_NAME_CHARS = 200


def edit_request(
    op: str, options: Mapping[str, Any], spelled: Mapping[str, str] | None = None
) -> Edit:
    """Check an edit's options: a known op, every option it needs and no other, codes that are
    text, and a split line that is a LineString (WKT or GeoJSON) of finite lon/lat.

    ``spelled`` names the options as the caller's user knows them (``--grid`` for
    ``grid_code`` on the command line); the refusal names the option that is wrong.
    """

    def name(option: str) -> str:
        return (spelled or {}).get(option, option)

    if op not in EDIT_OPTIONS:
        raise InvalidInput(
            f"unknown edit {op!r}", field=name("op"), fix="use split, merge, move or rename"
        )
    wanted = EDIT_OPTIONS[op]
    given = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - set(wanted))
    if extra:
        raise InvalidInput(
            f"{op} does not take {', '.join(name(k) for k in extra)}",
            field=name(extra[0]),
            fix=f"{op} takes {' and '.join(name(k) for k in wanted)}",
        )
    missing = [k for k in wanted if k not in given]
    if missing:
        raise InvalidInput(
            f"{op} needs {' and '.join(name(k) for k in missing)}",
            field=name(missing[0]),
            fix=f"give {' and '.join(name(k) for k in wanted)}",
        )
    values: dict[str, Any] = {}
    for option in wanted:
        value = given[option]
        if option == "line":
            values[option] = _split_line(value, name(option))
        elif option in ("codes", "building_ids"):
            values[option] = _codes(value, name(option), at_least=2 if option == "codes" else 1)
        else:
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput("must be non-empty text", field=name(option))
            if len(value.strip()) > MAX_NAME_CHARS:
                raise InvalidInput(
                    f"longer than {MAX_NAME_CHARS} characters",
                    field=name(option),
                )
            values[option] = value.strip()
    return EDIT_KINDS[op](**values)


def _codes(value: Any, option: str, at_least: int) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
        raise InvalidInput("must be a list of codes", field=option)
    codes = tuple(dict.fromkeys(v.strip() for v in items if v.strip()))
    if len(codes) < at_least:
        raise InvalidInput(
            f"needs at least {at_least} code{'s' if at_least > 1 else ''}",
            field=option,
            fix="separate codes with commas" if isinstance(value, str) else None,
        )
    return codes


def _split_line(value: Any, option: str) -> LineString:
    """A LineString from WKT or GeoJSON, checked before GEOS parses it (no nesting to blow)."""
    fix = "draw it as LINESTRING (lon lat, lon lat, ...) in EPSG:4326"
    if isinstance(value, str):
        text = value.strip()
        if not text.upper().startswith("LINESTRING") or text.count("(") != 1:
            raise InvalidInput("not a LINESTRING in WKT", field=option, fix=fix)
        if text.count(",") >= MAX_LINE_VERTICES:
            raise InvalidInput(f"over {MAX_LINE_VERTICES:,} vertices", field=option, fix=fix)
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # 1e400 is refused below
                geom = shapely.from_wkt(text)
        except shapely.errors.GEOSException as exc:
            raise InvalidInput(f"not valid WKT ({exc})", field=option, fix=fix) from None
    elif isinstance(value, Mapping):
        coords = value.get("coordinates")
        if value.get("type") != "LineString" or not isinstance(coords, list):
            raise InvalidInput(
                "not a GeoJSON LineString",
                field=option,
                fix='give {"type": "LineString", "coordinates": [[lon, lat], ...]}',
            )
        if len(coords) > MAX_LINE_VERTICES:
            raise InvalidInput(f"over {MAX_LINE_VERTICES:,} vertices", field=option, fix=fix)
        if not all(
            isinstance(c, list | tuple)
            and len(c) in (2, 3)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in c)
            for c in coords
        ):
            raise InvalidInput(
                "coordinates must be [lon, lat] pairs of numbers", field=option, fix=fix
            )
        geom = LineString([c[:2] for c in coords]) if len(coords) >= 2 else LineString()
    else:
        raise InvalidInput("must be WKT or a GeoJSON LineString", field=option, fix=fix)
    xy = shapely.get_coordinates(geom)
    if not all(math.isfinite(v) for v in xy.ravel()):
        raise InvalidInput("a NaN or infinite coordinate", field=option, fix=fix)
    if len(xy) < 2 or shapely.length(geom) == 0:
        raise InvalidInput("needs two distinct points", field=option, fix=fix)
    if (abs(xy[:, 0]) > 180).any() or (abs(xy[:, 1]) > 90).any():
        raise InvalidInput("not in longitude/latitude", field=option, fix=fix)
    return shapely.force_2d(geom)


def _sorted_plan(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return grids.sort_values("code", kind="stable").reset_index(drop=True)


def _row(grids: gpd.GeoDataFrame, code: str, field: str = "grid_code") -> int:
    hits = np.flatnonzero(grids["code"].astype(str).to_numpy() == code)
    if len(hits) == 0:
        raise InvalidInput(f"no grid {code} in the plan", field=field)
    return int(hits[0])


def _community_name(communities: gpd.GeoDataFrame, code: str) -> str:
    if "name" in communities.columns:
        hit = communities.loc[communities["code"].astype(str) == code, "name"]
        if len(hit) and isinstance(hit.iat[0], str):
            return hit.iat[0]
    return code


def grid_name(community_name: str, code: str) -> str:
    """Default name of a new grid: the community's name and the grid's sequence number."""
    return f"{community_name}第{int(code[-3:])}网格"


def _finish_edit(
    grids: gpd.GeoDataFrame,
    touched: list[int],
    new_rows: list[dict[str, Any]],
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
) -> gpd.GeoDataFrame:
    """Replace rows and refuse the edit if a guarantee breaks.

    The edited region's outline (the touched grids together) is frozen: new boundaries meet
    it only at its vertices, so neighbours, the community and every other grid stay exactly
    as they were, and only the new grids are noded among themselves.
    """
    gs = grid_size_for(grids.crs)
    region = shapely.coverage_union_all(np.asarray(grids.geometry.values[touched], dtype=object))
    add = gpd.GeoDataFrame(new_rows, geometry="geometry", crs=grids.crs)
    new = list(add.geometry.values)
    b = buildings.to_crs(grids.crs) if buildings.crs != grids.crs else buildings
    fitted = fit_to_frozen(
        new, shapely.boundary(region), gs, keep_sides_of=shapely.get_coordinates(b.geometry.values)
    )
    if any(g.is_empty for g in fitted):
        raise Conflict(
            "the edit would leave a grid too small to meet its neighbours at their vertices",
            field="geometry",
            fix="draw the edit so that every new grid touches the others along a longer edge",
        )
    add = add.set_geometry(
        gpd.GeoSeries([as_multipolygon(g) for g in fitted], crs=grids.crs, index=add.index)
    )
    keep = grids.drop(index=touched)
    out = gpd.GeoDataFrame(pd.concat([keep, add], ignore_index=True), geometry="geometry")
    out = _sorted_plan(out.set_crs(grids.crs, allow_override=True))
    comms = sorted({str(r["community_code"]) for r in new_rows})
    sub_c = communities[communities["code"].astype(str).isin(comms)]
    sub_g = out[out["community_code"].astype(str).isin(comms)]
    problems = check_plan(sub_c, sub_g, buildings)
    if problems:
        raise Conflict(
            "the edit would break the plan: " + "; ".join(str(p) for p in problems),
            field="geometry",
            fix="draw the edit differently",
        )
    return out


def split_grid(
    grids: gpd.GeoDataFrame,
    code: str,
    line: LineString,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    used_codes: Iterable[str] = (),
) -> gpd.GeoDataFrame:
    """Split one grid in two along a drawn line; both halves get new codes.

    Refused when the line does not cross the grid, cuts it into more than two pieces or
    passes through a building.
    """
    g = _sorted_plan(grids)
    i = _row(g, code)
    geom = g.geometry.iat[i]
    gs = grid_size_for(g.crs)
    if line is None or line.is_empty or not line.intersects(geom):
        raise InvalidInput("the line does not cross the grid", field="line", fix="draw it across")
    pieces = [p for p in shapely.get_parts(shapely.ops.split(geom, line)) if p.area > 0]
    if len(pieces) < 2:
        raise InvalidInput(
            "the line does not cut the grid in two",
            field="line",
            fix="draw the line from one edge of the grid to another",
        )
    if len(pieces) > 2:
        raise InvalidInput(
            f"the line cuts the grid into {len(pieces)} pieces",
            field="line",
            fix="draw a line that crosses the grid once",
        )
    b = buildings.to_crs(g.crs) if buildings.crs != g.crs else buildings
    mcrs = metric_crs(g)
    line_m = reproject([line], g.crs, mcrs)[0]
    inside = b[b.geometry.intersects(geom)]
    if len(inside):
        dist = shapely.distance(reproject(inside.geometry.values, g.crs, mcrs), line_m)
        if (dist < 0.05).any():
            bid = str(inside["building_id"].iat[int(np.argmin(dist))])
            raise InvalidInput(
                f"the line passes through building {bid}",
                field="line",
                fix="draw the line between buildings",
            )
    pieces_s = snap(pieces, gs)
    community = str(g["community_code"].iat[i])
    used = {*map(str, used_codes), *g["code"].astype(str)}
    xy = [(p.x, p.y) for p in shapely.point_on_surface(pieces_s)]
    codes = new_codes(community, xy, used)
    cname = _community_name(communities, community)
    rows = [
        {"code": c, "community_code": community, "name": grid_name(cname, c), "geometry": p}
        for c, p in zip(codes, pieces_s, strict=True)
    ]
    return _finish_edit(g, [i], rows, communities, buildings)


def merge_grids(
    grids: gpd.GeoDataFrame,
    codes: list[str],
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    used_codes: Iterable[str] = (),
) -> gpd.GeoDataFrame:
    """Merge adjacent grids of one community into one grid with a new code."""
    g = _sorted_plan(grids)
    codes = sorted(set(map(str, codes)))
    if len(codes) < 2:
        raise InvalidInput("merge needs at least two grids", field="codes")
    rows = [_row(g, c, "codes") for c in codes]
    comms = sorted({str(g["community_code"].iat[r]) for r in rows})
    if len(comms) > 1:
        raise InvalidInput(
            f"grids belong to different communities ({', '.join(comms)})",
            field="codes",
            fix="merge only grids of one community",
        )
    members = np.asarray(g.geometry.values[rows], dtype=object)
    if not _edge_connected(members):
        raise InvalidInput(
            "grids are not adjacent (they share no edge)",
            field="codes",
            fix="merge grids that share a boundary",
        )
    # Stored plans match edge for edge, so the union is exact (island grids stay in parts).
    merged = shapely.coverage_union_all(members)
    used = {*map(str, used_codes), *g["code"].astype(str)}
    p = shapely.point_on_surface(merged)
    new = new_codes(comms[0], [(p.x, p.y)], used)[0]
    cname = _community_name(communities, comms[0])
    row = {
        "code": new,
        "community_code": comms[0],
        "name": grid_name(cname, new),
        "geometry": merged,
    }
    return _finish_edit(g, rows, [row], communities, buildings)


def _edge_connected(geoms: Any) -> bool:
    """Do these polygons form one group through shared edges (not only corners)? Grids of an
    island community are in several pieces each, so their union's piece count says nothing."""
    i, j, _ = shared_lengths(geoms)
    if len(geoms) <= 1:
        return True
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(geoms), len(geoms)))
    return int(connected_components(graph, directed=False)[0]) == 1


def move_buildings(
    grids: gpd.GeoDataFrame,
    building_ids: Sequence[str],
    to_code: str,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
) -> gpd.GeoDataFrame:
    """Move buildings into a neighbouring grid, moving the boundary with them; codes stay.

    The moved area is each building's Voronoi cell among the buildings of the grids involved,
    so the new boundary runs between buildings. Refused when a building's grid does not share
    an edge with the target, is in another community, or would be left in pieces or empty.
    """
    g = _sorted_plan(grids)
    t = _row(g, to_code, "to_code")
    gs = grid_size_for(g.crs)
    b = buildings.to_crs(g.crs) if buildings.crs != g.crs else buildings
    b = b.sort_values("building_id", kind="stable").reset_index(drop=True)
    ids = sorted(set(map(str, building_ids)))
    bid = b["building_id"].astype(str).to_numpy()
    missing = sorted(set(ids) - set(bid))
    if missing:
        raise InvalidInput(f"unknown buildings: {', '.join(missing)}", field="building_ids")
    owner = assign_buildings(g.geometry.values, b.geometry.values)
    moved = np.flatnonzero(np.isin(bid, ids))
    sources = sorted({int(owner[k]) for k in moved} - {t})
    if not sources:
        raise InvalidInput(f"the buildings are already in {to_code}", field="building_ids")
    target_comm = str(g["community_code"].iat[t])
    for s in sources:
        if str(g["community_code"].iat[s]) != target_comm:
            raise InvalidInput(
                f"grid {g['code'].iat[s]} is in another community",
                field="to_code",
                fix="move buildings only between grids of one community",
            )
        shared = shapely.length(
            shapely.intersection(g.geometry.iat[s].boundary, g.geometry.iat[t].boundary)
        )
        if shared <= 0:
            raise InvalidInput(
                f"grid {g['code'].iat[s]} is not a neighbour of {to_code}",
                field="to_code",
                fix="move buildings to a grid that shares a boundary with theirs",
            )
    involved = [t, *sources]
    region = shapely.union_all(g.geometry.values[involved], grid_size=gs)
    in_region = np.flatnonzero(np.isin(owner, involved))
    cells = voronoi_cells(region, b.geometry.values[in_region], gs)
    geoms = {k: g.geometry.iat[k] for k in involved}
    for pos, bi in enumerate(in_region):
        if bi not in moved or owner[bi] == t:
            continue
        s = int(owner[bi])
        piece = polygonal(shapely.intersection(cells[pos], geoms[s], grid_size=gs))
        geoms[s] = polygonal(shapely.difference(geoms[s], piece, grid_size=gs))
        geoms[t] = polygonal(shapely.union(geoms[t], piece, grid_size=gs))
    for k in involved:
        if geoms[k].is_empty:
            raise Conflict(
                f"grid {g['code'].iat[k]} would be left empty",
                field="building_ids",
                fix="merge the grids instead",
            )
        if shapely.get_num_geometries(geoms[k]) > 1:
            raise Conflict(
                f"grid {g['code'].iat[k]} would be left in pieces",
                field="building_ids",
                fix="move buildings along the shared boundary",
            )
    rows = [
        {**{c: g[c].iat[k] for c in g.columns if c != "geometry"}, "geometry": geoms[k]}
        for k in involved
    ]
    return _finish_edit(g, involved, rows, communities, buildings)


def rename_grid(grids: gpd.GeoDataFrame, code: str, name: str) -> gpd.GeoDataFrame:
    """Give a grid a new display name; its code, the identity, never changes."""
    g = _sorted_plan(grids)
    i = _row(g, code)
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a grid name cannot be empty", field="name")
    g = g.copy()
    if "name" not in g.columns:
        g["name"] = None
    g.loc[i, "name"] = name.strip()
    return g
