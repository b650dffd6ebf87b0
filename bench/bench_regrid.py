"""Is gridmap's regrid ahead of recursive bisection, METIS and k-means-constrained?

The fixture district (60 communities, 630 grids, 20,000 buildings) is regridded to 1014 grids
by gridmap and by three baselines run in this process. Baselines get gridmap's allocation of
grids to communities and the same building Voronoi cells (so nesting and "between buildings"
hold for all); they differ in how a community's cells are grouped:

- recursive bisection: weighted median cut along the longer bounding-box axis;
- METIS (pymetis, contiguous, load as vertex weight), ignoring old grids;
- METIS with old boundaries cheap to cut (edges inside an old grid weigh 10×);
- k-means-constrained on building coordinates (balances building counts, as published).

Every plan is scored by ``geo.plans.plan_metrics`` against the old plan, with gridmap's band.

Run: .venv/bin/python bench/bench_regrid.py [--size full|tiny] [--target 1014] [--no-kmeans]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import record

from fixtures.district import generate_district
from geo.plans import assign_buildings, building_loads, plan_metrics
from geo.regrid import RegridRequest, _cell_adjacency, regrid
from geo.topology import metric_crs, node_coverage, reproject, voronoi_sites

GS = 1e-7


def _community_cells(comm: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Per community: snapped Voronoi cells of its building sites, site loads and positions."""
    owner = assign_buildings(comm.geometry.values, b.geometry.values)
    load = building_loads(b)
    xy = shapely.get_coordinates(b.geometry.values)
    out = []
    for c in range(len(comm)):
        idx = np.flatnonzero(owner == c)
        region = shapely.set_precision(comm.geometry.iat[c], GS)
        uxy, inv, cells = voronoi_sites(region, xy[idx], GS)
        w = np.bincount(inv, load[idx], minlength=len(uxy))
        out.append({"uxy": uxy, "w": w, "cells": np.asarray(cells, dtype=object)})
    return out


def _plan_from_labels(
    comm: gpd.GeoDataFrame, data: list[dict[str, Any]], labels: list[np.ndarray]
) -> gpd.GeoDataFrame:
    rows = []
    for c, (d, lab) in enumerate(zip(data, labels, strict=True)):
        for p in np.unique(lab):
            geom = shapely.union_all(d["cells"][lab == p], grid_size=GS)
            rows.append(
                {
                    "code": f"{comm['code'].iat[c]}{p + 1:03d}",
                    "community_code": comm["code"].iat[c],
                    "geometry": geom,
                }
            )
    geoms = node_coverage([r["geometry"] for r in rows], GS)
    for r, g in zip(rows, geoms, strict=True):
        r["geometry"] = g
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=comm.crs)


def _rb(
    pos: np.ndarray, w: np.ndarray, n: int, first: int, lab: np.ndarray, idx: np.ndarray
) -> None:
    if n == 1 or len(idx) <= 1:
        lab[idx] = first
        return
    n1 = n // 2
    p = pos[idx]
    axis = int(np.ptp(p[:, 1]) > np.ptp(p[:, 0]))
    order = np.argsort(p[:, axis], kind="stable")
    cw = np.cumsum(w[idx][order])
    s = int(np.clip(np.searchsorted(cw, cw[-1] * n1 / n), n1 - 1, len(idx) - (n - n1) - 1))
    _rb(pos, w, n1, first, lab, idx[order[: s + 1]])
    _rb(pos, w, n - n1, first + n1, lab, idx[order[s + 1 :]])


def recursive_bisection(data: list[dict[str, Any]], counts: list[int]) -> list[np.ndarray]:
    out = []
    for d, k in zip(data, counts, strict=True):
        pos = d["uxy"] * np.array([np.cos(np.radians(38.9)), 1.0])
        lab = np.zeros(len(pos), dtype=np.int64)
        _rb(pos, d["w"], k, 0, lab, np.arange(len(pos)))
        out.append(lab)
    return out


def metis(
    data: list[dict[str, Any]], counts: list[int], old_owner: list[np.ndarray] | None
) -> list[np.ndarray]:
    import pymetis

    out = []
    for c, (d, k) in enumerate(zip(data, counts, strict=True)):
        m = len(d["cells"])
        if k == 1:
            out.append(np.zeros(m, dtype=np.int64))
            continue
        i, j, length = _cell_adjacency(d["cells"], GS, np.cos(np.radians(38.9)))
        ew = np.maximum(1, np.round(length / max(length.mean(), 1e-12) * 10)).astype(np.int64)
        if old_owner is not None:
            same = old_owner[c][i] == old_owner[c][j]
            ew = np.where(same, ew * 10, ew)
        adj: list[list[int]] = [[] for _ in range(m)]
        wts: list[list[int]] = [[] for _ in range(m)]
        for a, b, e in zip(i.tolist(), j.tolist(), ew.tolist(), strict=True):
            adj[a].append(b)
            adj[b].append(a)
            wts[a].append(e)
            wts[b].append(e)
        xadj = np.cumsum([0, *map(len, adj)])
        adjncy = np.asarray([v for row in adj for v in row])
        eweights = np.asarray([v for row in wts for v in row])
        vw = np.maximum(np.round(d["w"]).astype(np.int64), 0)
        try:
            _, parts = pymetis.part_graph(
                k, xadj=xadj, adjncy=adjncy, vweights=vw, eweights=eweights, contiguous=True
            )
        except RuntimeError:  # community in pieces: METIS refuses a contiguous partition
            _, parts = pymetis.part_graph(
                k, xadj=xadj, adjncy=adjncy, vweights=vw, eweights=eweights
            )
        out.append(np.asarray(parts, dtype=np.int64))
    return out


def kmeans_constrained(data: list[dict[str, Any]], counts: list[int]) -> list[np.ndarray]:
    from k_means_constrained import KMeansConstrained

    out = []
    for d, k in zip(data, counts, strict=True):
        m = len(d["uxy"])
        if k == 1:
            out.append(np.zeros(m, dtype=np.int64))
            continue
        size = m / k
        model = KMeansConstrained(
            n_clusters=k,
            size_min=int(np.floor(size * 0.9)),
            size_max=int(np.ceil(size * 1.1)),
            random_state=0,
            n_init=3,
        )
        pos = d["uxy"] * np.array([np.cos(np.radians(38.9)), 1.0])
        out.append(np.asarray(model.fit_predict(pos), dtype=np.int64))
    return out


def road_share(plan: gpd.GeoDataFrame, comm: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> float:
    """Share of the inner grid boundary length (community edges left out) within 1 m of a road."""
    mcrs = metric_crs(comm)
    inner = shapely.difference(
        shapely.union_all(shapely.boundary(reproject(plan.geometry.values, plan.crs, mcrs))),
        shapely.buffer(
            shapely.union_all(shapely.boundary(reproject(comm.geometry.values, comm.crs, mcrs))),
            0.05,
        ),
    )
    near = shapely.intersection(
        inner,
        shapely.buffer(shapely.union_all(reproject(roads.geometry.values, roads.crs, mcrs)), 1.0),
    )
    return round(float(near.length / max(inner.length, 1e-9)), 4)


KEYS = [
    ("max/mean", "max_over_mean"),
    ("min/mean", "min_over_mean"),
    ("CV", "cv"),
    ("in band", "band_share"),
    ("one piece", "contiguity_share"),
    ("PP mean", "polsby_popper_mean"),
    ("PP min", "polsby_popper_min"),
    ("old bnd kept (internal)", "boundary_kept_share"),
    ("old bnd kept (all)", "boundary_kept_share_all"),
    ("in-band old kept", "kept_in_band_share"),
    ("coverage valid", "coverage_valid"),
    ("inner bnd on roads", "road_share"),
]


def main() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="full")
    ap.add_argument("--target", type=int, default=1014)
    ap.add_argument("--no-kmeans", action="store_true")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    d = generate_district(args.size)
    comm = d.communities.sort_values("code").reset_index(drop=True)
    b = d.buildings.sort_values("building_id").reset_index(drop=True)
    rows: dict[str, tuple[dict[str, Any], float]] = {}

    t = time.perf_counter()
    res = regrid(comm, d.grids, b, RegridRequest(target=args.target), roads=d.roads)
    secs = time.perf_counter() - t
    res2 = regrid(comm, d.grids, b, RegridRequest(target=args.target), roads=d.roads)
    same = shapely.to_wkb(res.grids.geometry.values).tolist() == shapely.to_wkb(
        res2.grids.geometry.values
    ).tolist() and res.crosswalk.equals(res2.crosswalk)
    band = tuple(res.summary["band"])
    rows["gridmap"] = ({**res.summary, "road_share": road_share(res.grids, comm, d.roads)}, secs)
    counts = res.grids.groupby("community_code").size().reindex(comm["code"]).tolist()
    data = _community_cells(comm, b)
    grids = d.grids.sort_values("code").reset_index(drop=True)
    old_owner = []
    for c in range(len(comm)):
        og = grids[grids["community_code"] == comm["code"].iat[c]]
        old_owner.append(assign_buildings(og.geometry.values, shapely.points(data[c]["uxy"])))

    baselines: list[tuple[str, Any]] = [
        ("recursive bisection", lambda: recursive_bisection(data, counts)),
        ("METIS contiguous", lambda: metis(data, counts, None)),
        ("METIS, old boundaries cheap", lambda: metis(data, counts, old_owner)),
    ]
    if not args.no_kmeans:
        baselines.append(("k-means-constrained", lambda: kmeans_constrained(data, counts)))
    for name, fn in baselines:
        t = time.perf_counter()
        labels = fn()
        plan = _plan_from_labels(comm, data, labels)
        secs = time.perf_counter() - t
        _, summary = plan_metrics(comm, plan, b, band, parent_grids=grids)
        rows[name] = ({**summary, "road_share": road_share(plan, comm, d.roads)}, secs)

    head = "| metric | " + " | ".join(rows) + " |"
    lines = [head, "|---|" + "---:|" * len(rows)]
    for label, key in KEYS:
        lines.append(f"| {label} | " + " | ".join(str(s.get(key)) for s, _ in rows.values()) + " |")
    lines.append("| seconds | " + " | ".join(f"{t:.1f}" for _, t in rows.values()) + " |")
    lines.append("| grids | " + " | ".join(str(s["grids"]) for s, _ in rows.values()) + " |")
    body = "\n".join(lines)
    g = res.summary
    body += (
        f"\n\ngridmap: {g['old_grids']} → {g['grids']} grids, band {band[0]}–{band[1]} "
        f"(district mean ± 10%), partitioning {g['seconds_partition']} s of {g['seconds']} s, "
        f"{len(g['warnings'])} grids reported out of band, identical rerun: {same}.\n"
        "Baselines get gridmap's per-community counts and the same Voronoi cells; their "
        "seconds exclude building the cells. Old plan's inner boundary on roads: "
        f"{road_share(grids, comm, d.roads)}."
    )
    print(body)
    if not args.no_record and args.size == "full":
        record(f"regrid {args.size} {g['old_grids']} → {args.target}", body)


if __name__ == "__main__":
    main()
