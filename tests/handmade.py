"""A district drawn by hand with geopandas, not by the project's generator.

It has what real districts have and the fixture might not: an enclave (a community inside
another, leaving a hole), an island grid, a MultiPolygon community, points on shared edges
and vertices, and a report at sea. Coordinates are in Qingdao, far from the fixture.

    y=2 +-------+-------+-------+-------+
        |  G11  |  G12  |  G31  |  G32  |      [] island (G33, community C3)
        |       | +---+ |       |       |
        |       | |G21| |       |       |
        |       | +---+ |       |       |
    y=0 +-------+-------+-------+-------+
        x=0     1       2       3       4     (units of 0.005 degrees)
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

X0, Y0, UNIT = 120.38, 36.06, 0.005
CODE = "370202"


def _box(x1: float, y1: float, x2: float, y2: float) -> Polygon:
    return box(X0 + x1 * UNIT, Y0 + y1 * UNIT, X0 + x2 * UNIT, Y0 + y2 * UNIT)


def _pt(x: float, y: float) -> Point:
    return Point(X0 + x * UNIT, Y0 + y * UNIT)


def handmade_layers(seed: int = 3) -> dict[str, gpd.GeoDataFrame]:
    """The layers as GeoDataFrames in EPSG:4326."""
    enclave = _box(1.25, 0.5, 1.75, 1.5)
    island = _box(4.5, 0.5, 5.0, 1.0)
    g11 = _box(0, 0, 1, 2)
    g12 = _box(1, 0, 2, 2).difference(enclave)
    g31, g32 = _box(2, 0, 3, 2), _box(3, 0, 4, 2)
    s1 = _box(0, 0, 2, 2)
    s2 = MultiPolygon([_box(2, 0, 4, 2), island])
    district = MultiPolygon([_box(0, 0, 4, 2), island])
    c1 = _box(0, 0, 2, 2).difference(enclave)
    c3 = s2
    crs = "EPSG:4326"
    layers = {
        "district": gpd.GeoDataFrame(
            {"code": [CODE], "name": ["市南区(手绘)"]}, geometry=[district], crs=crs
        ),
        "streets": gpd.GeoDataFrame(
            {
                "code": [CODE + "001", CODE + "002"],
                "name": ["八大关街道", "香港中路街道"],
                "district_code": [CODE, CODE],
            },
            geometry=[s1, s2],
            crs=crs,
        ),
        "communities": gpd.GeoDataFrame(
            {
                "code": [CODE + "001001", CODE + "001002", CODE + "002001"],
                "name": ["汇泉社区", "太平角社区", "燕儿岛社区"],
                "street_code": [CODE + "001", CODE + "001", CODE + "002"],
            },
            geometry=[c1, enclave, c3],
            crs=crs,
        ),
        "grids": gpd.GeoDataFrame(
            {
                "code": [
                    CODE + "001001001",
                    CODE + "001001002",
                    CODE + "001002001",
                    CODE + "002001001",
                    CODE + "002001002",
                    CODE + "002001003",
                ],
                "community_code": [CODE + "001001"] * 2 + [CODE + "001002"] + [CODE + "002001"] * 3,
                "name": [
                    "汇泉一网格",
                    "汇泉二网格",
                    "太平角网格",
                    "燕儿岛一网格",
                    "燕儿岛二网格",
                    "小岛网格",
                ],
            },
            geometry=[g11, g12, enclave, g31, g32, island],
            crs=crs,
        ),
    }
    rng = np.random.default_rng(seed)
    points: list[Point] = []
    for geom in layers["grids"].geometry:
        minx, miny, maxx, maxy = geom.bounds
        placed = 0
        while placed < 12:
            p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            if geom.buffer(-1e-5).contains(p):
                points.append(p)
                placed += 1
    n = len(points)
    layers["buildings"] = gpd.GeoDataFrame(
        {
            "building_id": [f"B{i:04d}" for i in range(n)],
            "address": [f"山东路{i + 1}号{i % 5 + 1}栋" for i in range(n)],
            "households": rng.integers(10, 120, n),
            "residents": rng.integers(20, 300, n),
            "floors": rng.integers(2, 30, n),
            "rental_units": rng.integers(0, 10, n),
        },
        geometry=points,
        crs=crs,
    )
    # Reports: inside grids, on a shared edge, on a shared vertex, in the enclave, at sea.
    special = [_pt(1, 1), _pt(2, 2), _pt(1.5, 1), _pt(1.25, 0.5), _pt(4.2, 1.0), _pt(4.75, 0.75)]
    report_points = points[: n // 2] + special
    m = len(report_points)
    layers["reports"] = gpd.GeoDataFrame(
        {
            "report_id": [f"R{i:05d}" for i in range(m)],
            "category": ["sanitation", "street_order", "traffic"] * (m // 3) + ["other"] * (m % 3),
            "subcategory": ["garbage_pile"] * m,
            "reported_at": [f"2025-0{1 + i % 9}-1{i % 10}T08:30:00+08:00" for i in range(m)],
            "status": ["closed" if i % 4 else "handling" for i in range(m)],
            "closed_at": [None if i % 4 == 0 else "2025-10-01T12:00:00+08:00" for i in range(m)],
        },
        geometry=report_points,
        crs=crs,
    )
    layers["roads"] = gpd.GeoDataFrame(
        {"name": ["山东路", "香港中路"]},
        geometry=[_line(0, 1, 4, 1), _line(2, 0, 2, 2)],
        crs=crs,
    )
    return layers


def stored_layers(seed: int = 3) -> dict[str, gpd.GeoDataFrame]:
    """The layers as ``gridmap load`` stores them: noded, densified, on the precision grid.

    Tests that ask "which stored grid covers this point" need these, not the drawing: a
    vertex computed as ``X0 + x * UNIT`` is an ulp off its stored, rounded self.
    """
    from geo.grids import DistrictData, validate_district

    data, _ = validate_district(DistrictData(**handmade_layers(seed)))
    return {name: data.layer(name) for name in handmade_layers(seed)}


def _line(x1: float, y1: float, x2: float, y2: float) -> LineString:
    return LineString([(X0 + x1 * UNIT, Y0 + y1 * UNIT), (X0 + x2 * UNIT, Y0 + y2 * UNIT)])


def write_handmade(directory: Path, fmt: str = "gpkg", **changes: gpd.GeoDataFrame) -> list[Path]:
    """Write the district (with ``changes`` replacing layers) as a GeoPackage or per-layer files."""
    layers = {**handmade_layers(), **changes}
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "gpkg":
        path = directory / "handmade.gpkg"
        if path.exists():
            path.unlink()
        for name, frame in layers.items():
            frame.to_file(path, layer=name, driver="GPKG")
        return [path]
    paths = []
    for name, frame in layers.items():
        if fmt == "csv" and name in ("buildings", "reports"):
            path = directory / f"{name}.csv"
            table = pd.DataFrame(frame.drop(columns="geometry"))
            table["lon"], table["lat"] = frame.geometry.x, frame.geometry.y
            table.to_csv(path, index=False)
        elif fmt == "parquet":
            path = directory / f"{name}.parquet"
            frame.to_parquet(path)
        else:
            path = directory / f"{name}.geojson"
            frame.to_file(path, driver="GeoJSON")
        paths.append(path)
    return paths
