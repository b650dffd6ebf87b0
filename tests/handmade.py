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


# --- an odd district ---------------------------------------------------------------------

#: Origin of the odd district: east of the hand-drawn one, so the two never overlap.
ODD_X0, ODD_Y0 = 120.42, 36.08
ODD_CODE = "370203"
#: Sizes below the display precision (1e-6 degrees, about 0.1 m) and above the topology
#: tolerance (0.01 m): the tiny grid is about 4 cm across, the sliver about 4 cm high.
TINY_DEG = 4e-7
SLIVER_DEG = 3.5e-7


def _faces(lines: list[LineString]) -> list[Polygon]:
    """The faces of hand-drawn lines, noded so that neighbours share every vertex."""
    import shapely

    noded = shapely.node(shapely.MultiLineString(lines))
    return [g for g in shapely.get_parts(shapely.polygonize([noded])) if isinstance(g, Polygon)]


def _pick(faces: list[Polygon], *points: Point) -> Polygon | MultiPolygon:
    """The union (sharing vertices) of the faces holding the given points."""
    import shapely

    chosen = [f for f in faces if any(f.contains(p) for p in points)]
    assert chosen, points
    return shapely.coverage_union_all(chosen) if len(chosen) > 1 else chosen[0]


def odd_layers(
    *, reports: str = "closed", code: str = ODD_CODE, dx: float = 0.0
) -> dict[str, gpd.GeoDataFrame]:
    """A district with everything odd that real districts have, drawn by hand::

        y=2 +-------+-------+-------+
            |  A1   |  B1   |  C1   |       +--+   +--+
            |  ·A2  | +---+ |       |       |D1|   |D1|   D1: one MultiPolygon grid,
            |       | | E | |=======| C2    +--+   +--+   the island-only community
            |       | +---+ |  C3   |
        y=0 +-------+-------+-------+
            x=0     1       2       3   (units of 0.005 degrees, origin ODD_X0, ODD_Y0)

    - A2: a tiny grid (``TINY_DEG`` square, about 4 cm) in a hole of A1; both round to one
      point at 1e-6 degrees;
    - C2: a sliver grid ``SLIVER_DEG`` (about 4 cm) high across its community;
    - B1: a community of one building, a very large one (3,000 households);
    - E: an enclave community (a hole in B1) without buildings, a park;
    - D1: an island-only community whose one grid is a MultiPolygon of two islands.

    ``reports``: ``"closed"`` (every case closed or rejected: a plan without open cases),
    ``"none"`` (a district without reports: the layer is left out) or ``"open"``. ``code``
    and ``dx`` (degrees east) draw a second copy beside the first.
    """

    def _odd_xy(x: float, y: float) -> tuple[float, float]:
        return ODD_X0 + dx + x * UNIT, ODD_Y0 + y * UNIT

    def _odd_box(x1: float, y1: float, x2: float, y2: float) -> Polygon:
        return box(*_odd_xy(x1, y1), *_odd_xy(x2, y2))

    ax, ay = 0.5, 1.2  # the tiny grid's corner, in units
    tiny = box(*_odd_xy(ax, ay), _odd_xy(ax, ay)[0] + TINY_DEG, _odd_xy(ax, ay)[1] + TINY_DEG)
    sliver_y = 0.8
    y_low = _odd_xy(0, sliver_y)[1]
    y_high = y_low + SLIVER_DEG
    x2, x3 = _odd_xy(2, 0)[0], _odd_xy(3, 0)[0]
    lines = [
        LineString([_odd_xy(0, 0), _odd_xy(3, 0), _odd_xy(3, 2), _odd_xy(0, 2), _odd_xy(0, 0)]),
        LineString([_odd_xy(1, 0), _odd_xy(1, 2)]),
        LineString([_odd_xy(2, 0), _odd_xy(2, 2)]),
        LineString([(x2, y_low), (x3, y_low)]),
        LineString([(x2, y_high), (x3, y_high)]),
        _odd_box(1.3, 0.5, 1.7, 1.5).exterior,
        tiny.exterior,
    ]
    faces = _faces(lines)
    a2 = _pick(faces, tiny.centroid)
    a1 = _pick(faces, Point(_odd_xy(0.2, 0.2)))
    b1 = _pick(faces, Point(_odd_xy(1.1, 0.2)))
    e = _pick(faces, Point(_odd_xy(1.5, 1.0)))
    c1 = _pick(faces, Point(_odd_xy(2.5, 1.5)))
    c2 = _pick(faces, Point(((x2 + x3) / 2, (y_low + y_high) / 2)))
    c3 = _pick(faces, Point(_odd_xy(2.5, 0.2)))
    d1 = MultiPolygon([_odd_box(3.5, 0.5, 3.9, 0.9), _odd_box(4.3, 1.1, 4.6, 1.4)])
    import shapely

    ca = shapely.coverage_union_all([a1, a2])
    cc = shapely.coverage_union_all([c1, c2, c3])
    s1 = shapely.coverage_union_all([ca, b1, e])
    s2 = shapely.union_all([cc, d1])
    district = shapely.union_all([s1, s2])
    crs = "EPSG:4326"
    comm = {"A": code + "001001", "B": code + "001002", "E": code + "001003"}
    comm |= {"C": code + "002001", "D": code + "002002"}
    grid_rows = [
        ("A", "001", "东山一网格", a1),
        ("A", "002", "东山微网格", a2),
        ("B", "001", "塔楼网格", b1),
        ("E", "001", "公园网格", e),
        ("C", "001", "河北网格", c1),
        ("C", "002", "河道网格", c2),
        ("C", "003", "河南网格", c3),
        ("D", "001", "双岛网格", d1),
    ]
    layers = {
        "district": gpd.GeoDataFrame(
            {"code": [code], "name": ["市北区(奇异)"]}, geometry=[district], crs=crs
        ),
        "streets": gpd.GeoDataFrame(
            {
                "code": [code + "001", code + "002"],
                "name": ["东山街道", "海岛街道"],
                "district_code": [code, code],
            },
            geometry=[s1, s2],
            crs=crs,
        ),
        "communities": gpd.GeoDataFrame(
            {
                "code": list(comm.values()),
                "name": ["东山社区", "塔楼社区", "公园社区", "河道社区", "双岛社区"],
                "street_code": [code + "001"] * 3 + [code + "002"] * 2,
            },
            geometry=[ca, b1, e, cc, d1],
            crs=crs,
        ),
        "grids": gpd.GeoDataFrame(
            {
                "code": [comm[c] + n for c, n, _, _ in grid_rows],
                "community_code": [comm[c] for c, _, _, _ in grid_rows],
                "name": [name for _, _, name, _ in grid_rows],
            },
            geometry=[g for _, _, _, g in grid_rows],
            crs=crs,
        ),
    }
    # Buildings: a dozen in A1 and in C1/C3, three on the islands, the tower alone in B1,
    # none in the park, the tiny grid or the sliver.
    places = [(0.1 + 0.07 * i, 0.3 + 0.1 * (i % 4)) for i in range(12)]
    places += [(2.1 + 0.07 * i, 1.1 + 0.2 * (i % 4)) for i in range(6)]
    places += [(2.1 + 0.07 * i, 0.1 + 0.15 * (i % 4)) for i in range(6)]
    places += [(3.6, 0.6), (3.8, 0.8), (4.45, 1.25), (1.1, 1.8)]
    households = [40 + 7 * i for i in range(len(places) - 1)] + [3000]
    points = [Point(_odd_xy(x, y)) for x, y in places]
    n = len(points)
    layers["buildings"] = gpd.GeoDataFrame(
        {
            "building_id": [f"OB{i:03d}" for i in range(n)],
            "address": [f"辽宁路{i + 1}号" for i in range(n - 1)] + ["辽宁路塔楼1号"],
            "households": households,
            "residents": [2 * h for h in households],
        },
        geometry=points,
        crs=crs,
    )
    if reports != "none":
        spots = [*points[:20], Point(_odd_xy(1.5, 1.0)), Point(_odd_xy(4.45, 1.2))]
        m = len(spots)
        statuses = ["closed", "rejected", "closed", "closed"] if reports == "closed" else None
        layers["reports"] = gpd.GeoDataFrame(
            {
                "report_id": [f"OR{i:04d}" for i in range(m)],
                "category": ["sanitation", "traffic"] * (m // 2) + ["other"] * (m % 2),
                "subcategory": ["garbage_pile"] * m,
                "reported_at": [f"2025-0{1 + i % 9}-0{1 + i % 9}T09:00:00+08:00" for i in range(m)],
                "status": [
                    statuses[i % 4] if statuses else ("handling" if i % 2 else "closed")
                    for i in range(m)
                ],
                "closed_at": ["2025-10-01T12:00:00+08:00"] * m,
            },
            geometry=spots,
            crs=crs,
        )
    layers["roads"] = gpd.GeoDataFrame(
        {"name": ["辽宁路", "短巷"]},
        geometry=[
            LineString([_odd_xy(0, 1.0), _odd_xy(3, 1.0)]),
            LineString([_odd_xy(0.3, 0.3), (_odd_xy(0.3, 0.3)[0] + 3e-7, _odd_xy(0.3, 0.3)[1])]),
        ],
        crs=crs,
    )
    return layers
