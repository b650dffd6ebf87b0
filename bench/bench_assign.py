"""How much faster is GridIndex than a geopandas spatial join, in memory and file to file?

Synthetic plan: a Voronoi tiling of random seeds clipped to a ~35 km² box around Dalian's
Shahekou district (121.6 E, 38.9 N), edges densified to ~20-60 vertices per grid, fixed
seeds. Points are uniform in the box. Baselines are built fairly: the sjoin gets its points
as a ready GeoDataFrame (untimed) and builds its index inside the timing, as GridIndex does.

Run: .venv/bin/python bench/bench_assign.py [--points N] [--grids N] [--big-grids N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import Case, measure, ratio, record, table

from geo.assign import GridIndex, assign_files

CENTRE_LON, CENTRE_LAT, AREA_KM2 = 121.6, 38.9, 35.0


def district_box() -> shapely.Polygon:
    """The ~35 km² square the synthetic district fills."""
    side_km = AREA_KM2**0.5
    dlat = side_km / 111.32
    dlon = side_km / (111.32 * np.cos(np.radians(CENTRE_LAT)))
    return shapely.box(
        CENTRE_LON - dlon / 2, CENTRE_LAT - dlat / 2, CENTRE_LON + dlon / 2, CENTRE_LAT + dlat / 2
    )


def voronoi_grids(n_grids: int, seed: int = 20220701) -> gpd.GeoDataFrame:
    """A tiling of ``n_grids`` Voronoi cells with ~20-60 vertices each (edges densified)."""
    rng = np.random.default_rng(seed)
    box = district_box()
    minx, miny, maxx, maxy = box.bounds
    seeds = shapely.multipoints(
        np.column_stack([rng.uniform(minx, maxx, n_grids), rng.uniform(miny, maxy, n_grids)])
    )
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=box))
    cells = shapely.intersection(cells, box)
    # A Voronoi cell has ~6 edges; cut each into ~5 so a grid has ~30 vertices.
    perimeter_deg = np.sqrt(box.area / n_grids) * 4
    cells = shapely.segmentize(cells, perimeter_deg / 30)
    codes = np.array([f"210204{i:06d}" for i in range(len(cells))], dtype=object)
    return gpd.GeoDataFrame({"code": codes}, geometry=cells, crs="EPSG:4326")


def random_points(n_points: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Uniform lon/lat in the district box."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = district_box().bounds
    return rng.uniform(minx, maxx, n_points), rng.uniform(miny, maxy, n_points)


def fresh_grids(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy without a cached spatial index, so the baseline pays for building one."""
    return gpd.GeoDataFrame(
        {"code": grids["code"].to_numpy()},
        geometry=grids.geometry.to_numpy().copy(),
        crs=grids.crs,
    )


def in_memory(n_points: int, n_grids: int, repeat: int) -> str:
    """GridIndex (build + assign) vs sjoin(predicate="within") (index build included)."""
    grids = voronoi_grids(n_grids)
    lon, lat = random_points(n_points)
    points = gpd.GeoDataFrame(geometry=shapely.points(lon, lat), crs="EPSG:4326")

    def sjoin(arg: Any) -> Any:
        return gpd.sjoin(points, arg, predicate="within", how="left")

    def sjoin_from_lonlat(arg: Any) -> Any:
        pts = gpd.GeoDataFrame(geometry=shapely.points(lon, lat), crs="EPSG:4326")
        return gpd.sjoin(pts, arg, predicate="within", how="left")

    def grid_index(arg: Any) -> Any:
        return GridIndex.from_frame(arg).assign(lon, lat)

    def grid_index_validated(arg: Any) -> Any:
        # A stored plan read back (GET /lookup's loader): validated when it was stored.
        codes = arg["code"].to_numpy(dtype=object)
        return GridIndex.from_arrays(codes, arg.geometry.to_numpy(), validated=True).assign(
            lon, lat
        )

    cases = [
        Case("geopandas.sjoin within, points prebuilt", sjoin, lambda: fresh_grids(grids), True),
        Case(
            "geopandas.sjoin within + shapely.points(lon, lat)",
            sjoin_from_lonlat,
            lambda: fresh_grids(grids),
        ),
        Case("GridIndex.from_frame + assign", grid_index, lambda: fresh_grids(grids)),
        Case(
            "GridIndex.from_arrays(validated=True) + assign",
            grid_index_validated,
            lambda: fresh_grids(grids),
        ),
    ]
    timings = measure(cases, repeat=repeat)
    # Same answers? (sjoin has no tie rule; the random points here are never on an edge.)
    joined = sjoin(fresh_grids(grids))
    ours = GridIndex.from_frame(grids).assign(lon, lat).grid_code
    theirs = joined.groupby(level=0)["code"].min().reindex(range(n_points)).to_numpy()
    theirs = np.where(pd.isna(theirs), None, theirs)
    agree = int((ours == theirs).sum())
    idx = GridIndex.from_frame(grids)
    labels = idx.raster.labels
    one_us = single_point_us(idx, lon, lat)
    note = (
        f"{n_points:,} points, {len(grids):,} grids "
        f"({shapely.get_num_coordinates(grids.geometry.to_numpy()).mean():.0f} vertices/grid "
        f"on average); answers agree on {agree:,}/{n_points:,} points; raster "
        f"{idx.raster.nx}x{idx.raster.ny} cells, {np.mean(labels <= -3):.1%} boundary cells. "
        f"One point per call (GET /lookup): best {one_us[0]:.0f} µs, median {one_us[1]:.0f} µs "
        f"over {len(SINGLE_POINT_SAMPLE)} points of the sample."
    )
    body = table(timings) + "\n\n" + note
    print(body)
    print(f"speed-up vs sjoin: {ratio(timings, 'GridIndex.from_frame + assign'):.1f}x\n")
    return body


SINGLE_POINT_SAMPLE = range(0, 1000, 5)


def single_point_us(idx: GridIndex, lon: np.ndarray, lat: np.ndarray) -> tuple[float, float]:
    """Best and median µs of ``assign`` with one point (interior, edge and outside alike)."""
    times = []
    for i in SINGLE_POINT_SAMPLE:
        x, y = lon[i : i + 1], lat[i : i + 1]
        idx.assign(x, y)  # warm
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            idx.assign(x, y)
            best = min(best, time.perf_counter() - start)
        times.append(best * 1e6)
    return float(np.min(times)), float(np.median(times))


def file_to_file(n_points: int, n_grids: int, repeat: int) -> str:
    """assign_files on GeoParquet vs a plain geopandas script (read, sjoin, write)."""
    grids = voronoi_grids(n_grids)
    lon, lat = random_points(n_points)
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        grids_path = tmpdir / "grids.parquet"
        points_path = tmpdir / "buildings.parquet"
        grids.to_parquet(grids_path)
        gpd.GeoDataFrame(
            {
                "building_id": np.char.add("B", np.arange(n_points).astype(str)).astype(object),
                "households": rng.integers(1, 200, n_points),
                "address": "大连市沙河口区",
            },
            geometry=shapely.points(lon, lat),
            crs="EPSG:4326",
        ).to_parquet(points_path)

        def geopandas_script(_: Any) -> Any:
            pts = gpd.read_parquet(points_path)
            grd = gpd.read_parquet(grids_path)
            out = gpd.sjoin(pts, grd[["code", "geometry"]], predicate="within", how="left")
            out = out.drop(columns="index_right").rename(columns={"code": "grid_code"})
            out.to_parquet(tmpdir / "baseline.parquet")

        def ours(_: Any) -> Any:
            return assign_files(grids_path, points_path, tmpdir / "ours.parquet")

        timings = measure(
            [
                Case("geopandas read_parquet + sjoin + to_parquet", geopandas_script, None, True),
                Case("assign_files (GeoParquet -> GeoParquet)", ours),
            ],
            repeat=repeat,
        )
        summary = ours(None)
    note = (
        f"{n_points:,} points with 3 attribute columns, {len(grids):,} grids; "
        f"stage seconds of one assign_files run: {summary.timings_s}."
    )
    body = table(timings) + "\n\n" + note
    print(body)
    print(
        f"speed-up file to file: {ratio(timings, 'assign_files (GeoParquet -> GeoParquet)'):.1f}x\n"
    )
    return body


def main() -> None:
    """Run the three comparisons and record them in bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--grids", type=int, default=1014)
    parser.add_argument("--big-grids", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    sections = [
        (
            f"assign: {args.points:,} points over {args.grids:,} grids (in memory)",
            in_memory(args.points, args.grids, args.repeat),
        ),
        (
            f"assign: {args.points:,} points over {args.big_grids:,} grids (in memory)",
            in_memory(args.points, args.big_grids, args.repeat),
        ),
        (
            f"assign: {args.points:,} points, file to file (GeoParquet)",
            file_to_file(args.points, args.grids, args.repeat),
        ),
    ]
    if not args.no_record:
        for title, body in sections:
            record(title, body)


if __name__ == "__main__":
    main()
