"""Contract readers without a database: formats, the hostile-WKB guard, CRS handling.

Hostile geometries are built byte by byte with ``struct`` and written with pyarrow, so that
no library parses them before gridmap's guard does (GEOS 3.14 crashes on deep nesting).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from shapely.geometry import Point, box

from geo.errors import DataRefused
from geo.grids import read_district, validate_district
from geo.io import (
    InputLimits,
    check_wkb,
    format_of,
    layer_from_stem,
    layer_paths,
    list_layers,
    looks_swapped,
    plausible_lonlat,
    read_layer,
    reproject_layer,
    write_layer,
)
from tests.handmade import X0, Y0, handmade_layers, write_handmade

LIMITS = InputLimits()

# --- raw WKB, built by hand -------------------------------------------------------------


def wkb_point(x: float, y: float, order: str = "<") -> bytes:
    return struct.pack(order + "BIdd", 1 if order == "<" else 0, 1, x, y)


def wkb_polygon(rings: list[list[tuple[float, float]]], order: str = "<") -> bytes:
    out = struct.pack(order + "BII", 1 if order == "<" else 0, 3, len(rings))
    for ring in rings:
        out += struct.pack(order + "I", len(ring))
        out += b"".join(struct.pack(order + "dd", x, y) for x, y in ring)
    return out


def wkb_nested_collection(depth: int) -> bytes:
    """GEOMETRYCOLLECTION(GEOMETRYCOLLECTION(... POINT ...)) ``depth`` levels deep."""
    return struct.pack("<BII", 1, 7, 1) * depth + wkb_point(X0, Y0)


SQUARE = [(X0, Y0), (X0 + 0.001, Y0), (X0 + 0.001, Y0 + 0.001), (X0, Y0 + 0.001), (X0, Y0)]
NAN_SQUARE = [(X0, Y0), (float("nan"), Y0), (X0 + 0.001, Y0 + 0.001), (X0, Y0)]


def write_raw_geoparquet(path: Path, columns: dict[str, list[object]], wkb: list[bytes]) -> Path:
    """A GeoParquet 1.0 file whose WKB nobody has parsed (pyarrow only copies bytes)."""
    table = pa.table({**columns, "geometry": pa.array(wkb, type=pa.binary())})
    geo_meta = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": []}},
    }
    table = table.replace_schema_metadata({b"geo": json.dumps(geo_meta).encode()})
    pq.write_table(table, path)
    return path


# --- formats and files -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["grids.shp", "grids.kml", "grids", "grids.xlsx"])
def test_unsupported_format_is_refused_with_the_supported_ones(name: str) -> None:
    with pytest.raises(DataRefused) as info:
        format_of(Path(name))
    (problem,) = info.value.problems
    assert problem.reason.startswith("unsupported format")
    assert problem.file == name
    assert ".gpkg" in (problem.fix or "") and ".parquet" in (problem.fix or "")


@pytest.mark.parametrize(
    ("stem", "layer"),
    [("grids", "grids"), ("shahekou_grids", "grids"), ("x-reports", "reports"), ("a", "a")],
)
def test_layer_from_stem(stem: str, layer: str) -> None:
    assert layer_from_stem(Path(f"{stem}.geojson")) == layer


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataRefused) as info:
        read_layer(tmp_path / "grids.geojson")
    (problem,) = info.value.problems
    assert problem.reason == "file not found"
    assert problem.fix


def test_missing_gpkg_layer_names_what_the_file_has(handmade_gpkg: Path) -> None:
    with pytest.raises(DataRefused) as info:
        read_layer(handmade_gpkg, "grid")
    (problem,) = info.value.problems
    assert problem.layer == "grid"
    assert "grids" in problem.reason and "missing" in problem.reason
    assert "grid" in (problem.fix or "")


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".parquet"])
def test_corrupt_files_are_refused_not_raised(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"grids{suffix}"
    path.write_bytes(b"\x00garbage, not a " + suffix.encode() * 50)
    with pytest.raises(DataRefused) as info:
        if suffix == ".gpkg":
            list_layers(path)
        else:
            read_layer(path)
    problem = info.value.problems[0]
    assert problem.file == str(path)
    assert problem.reason.startswith("cannot read")
    assert problem.fix


def test_file_over_the_size_cap_is_refused_before_reading(tmp_path: Path) -> None:
    path = write_handmade(tmp_path, "geojson")[0]
    size = path.stat().st_size
    with pytest.raises(DataRefused) as info:
        read_layer(path, limits=InputLimits(max_file_bytes=size - 1))
    (problem,) = info.value.problems
    assert f"{size:,} bytes" in problem.reason
    assert "GRIDMAP_MAX_FILE_BYTES" in (problem.fix or "")


def test_csv_needs_lon_and_lat(tmp_path: Path) -> None:
    path = tmp_path / "buildings.csv"
    path.write_text("building_id,address,households,x,lat\nB1,a,3,120.4,36.06\n")
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert problem.layer == "buildings" and "lon" in problem.reason
    assert "lon" in (problem.fix or "")


def test_csv_with_a_non_numeric_latitude_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "buildings.csv"
    path.write_text(
        "building_id,address,households,lon,lat\nB1,a,3,120.4,36.06\nB2,b,4,120.4,north\n"
    )
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert problem.feature == "#1 (building_id=B2)"
    assert "'north'" in problem.reason


def test_csv_keeps_codes_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "buildings.csv"
    path.write_text("building_id,address,households,lon,lat\n00071,a,3,120.4,36.06\n")
    frame = read_layer(path)
    assert frame["building_id"].tolist() == ["00071"]
    assert frame.crs is not None and frame.crs.to_epsg() == 4326


# --- the hostile-input guard -------------------------------------------------------------


@pytest.mark.parametrize(
    ("wkb", "reason"),
    [
        pytest.param(wkb_polygon([SQUARE]), None, id="square"),
        pytest.param(wkb_polygon([SQUARE], ">"), None, id="big-endian square"),
        pytest.param(wkb_nested_collection(7), None, id="8 levels (at the cap)"),
        pytest.param(wkb_nested_collection(8), "nested deeper than 8", id="9 levels"),
        pytest.param(wkb_nested_collection(10_000), "nested deeper than 8", id="10000 levels"),
        pytest.param(wkb_nested_collection(100_000), "nested deeper than 8", id="100000 levels"),
        pytest.param(wkb_polygon([NAN_SQUARE]), "NaN or infinite", id="NaN vertex"),
        pytest.param(
            wkb_polygon([[(X0, Y0), (float("inf"), Y0), (X0, Y0 + 1), (X0, Y0)]]),
            "NaN or infinite",
            id="infinite vertex",
        ),
        pytest.param(wkb_polygon([SQUARE])[:-5], "malformed", id="truncated"),
        pytest.param(wkb_polygon([SQUARE]) + b"\x00", "trailing bytes", id="trailing bytes"),
        pytest.param(b"\x07" + wkb_polygon([SQUARE])[1:], "byte order", id="bad byte order"),
        pytest.param(struct.pack("<BI", 1, 99) + b"\x00" * 20, "unsupported WKB", id="type 99"),
        pytest.param(struct.pack("<BIddd", 1, 1001, X0, Y0, 5.0), None, id="ISO point Z"),
        pytest.param(
            struct.pack("<BIIdd", 1, 0x20000001, 4326, X0, Y0), None, id="EWKB point with SRID"
        ),
    ],
)
def test_check_wkb(wkb: bytes, reason: str | None) -> None:
    found = check_wkb(np.array([wkb], dtype=object), LIMITS)
    if reason is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0][0] == 0
        assert reason in found[0][1]


def test_check_wkb_point_fast_path_names_each_bad_row() -> None:
    """A layer of plain points is checked in bulk; NaN and infinity are still named."""
    points = [wkb_point(X0, Y0), wkb_point(float("nan"), Y0), wkb_point(X0, float("-inf"))]
    points.append(b"\x01\x02\x00\x00\x00" + b"\x00" * 16)  # 21 bytes, but a LineString header
    found = check_wkb(np.array(points, dtype=object), LIMITS)
    assert [row for row, _ in found] == [1, 2, 3]
    assert "NaN" in found[1][1] and "malformed" in found[2][1]


def test_vertex_cap_counts_every_ring_and_part() -> None:
    ring = shapely.get_coordinates(shapely.segmentize(box(0, 0, 1, 1), 0.01)).tolist()
    wkb = wkb_polygon([[tuple(c) for c in ring]])
    assert len(ring) == 401
    assert not check_wkb(np.array([wkb], dtype=object), InputLimits(max_vertices_per_feature=401))
    (found,) = check_wkb(np.array([wkb], dtype=object), InputLimits(max_vertices_per_feature=400))
    assert "401 vertices, over the cap of 400" in found[1]


def test_nested_collection_in_geoparquet_is_refused_before_shapely_parses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_raw_geoparquet(
        tmp_path / "grids.parquet",
        {"code": ["G1", "G2"], "community_code": ["C1", "C1"]},
        [wkb_polygon([SQUARE]), wkb_nested_collection(10_000)],
    )
    parsed: list[int] = []
    real = shapely.from_wkb
    monkeypatch.setattr(
        shapely, "from_wkb", lambda values, *a, **k: parsed.append(1) or real(values, *a, **k)
    )
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    assert parsed == []
    (problem,) = info.value.problems
    assert problem.layer == "grids"
    assert problem.feature == "#1 (code=G2)"
    assert "nested deeper than 8 levels" in problem.reason
    assert "GRIDMAP_MAX_NESTING_DEPTH" in (problem.fix or "")


def test_nan_coordinates_in_geoparquet_are_refused(tmp_path: Path) -> None:
    path = write_raw_geoparquet(
        tmp_path / "grids.parquet",
        {"code": ["G1"], "community_code": ["C1"]},
        [wkb_polygon([NAN_SQUARE])],
    )
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    assert "NaN or infinite coordinate" in info.value.problems[0].reason


def test_polygon_over_the_vertex_cap_is_refused(tmp_path: Path) -> None:
    dense = shapely.segmentize(box(X0, Y0, X0 + 0.01, Y0 + 0.01), 0.0001)
    frame = gpd.GeoDataFrame({"code": ["G1"]}, geometry=[dense], crs=4326)
    path = tmp_path / "grids.geojson"
    frame.to_file(path, driver="GeoJSON")
    with pytest.raises(DataRefused) as info:
        read_layer(path, limits=InputLimits(max_vertices_per_feature=100))
    (problem,) = info.value.problems
    assert "vertex cap of 100" in problem.reason
    assert problem.feature == "#0 (code=G1)"


def test_valid_geoparquet_written_by_hand_reads(tmp_path: Path) -> None:
    path = write_raw_geoparquet(
        tmp_path / "grids.parquet", {"code": ["G1"]}, [wkb_polygon([SQUARE], ">")]
    )
    frame = read_layer(path)
    assert frame.crs is not None and frame.crs.equals("OGC:CRS84")
    assert frame.geometry.iat[0].equals(shapely.Polygon(SQUARE))


# --- CRS ---------------------------------------------------------------------------------


def _frame(*points: tuple[float, float], crs: object = None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"building_id": [f"B{i}" for i in range(len(points))]},
        geometry=[Point(p) for p in points],
        crs=crs,
    )


def test_plausibility_predicates() -> None:
    assert plausible_lonlat(_frame((120.4, 36.1)))
    assert not plausible_lonlat(_frame((265_000.0, 3_994_000.0)))
    assert looks_swapped(_frame((36.1, 120.4)))
    assert not looks_swapped(_frame((120.4, 36.1)))


def test_no_crs_in_metres_is_refused() -> None:
    with pytest.raises(DataRefused) as info:
        reproject_layer(_frame((265_000.0, 3_994_000.0)), file="b.parquet", layer="buildings")
    (problem,) = info.value.problems
    assert "no CRS declared" in problem.reason
    assert problem.feature == "#0 (building_id=B0)"
    assert "EPSG:32651" in (problem.fix or "")


def test_no_crs_swapped_is_refused() -> None:
    frame = _frame((36.1, 120.4), (36.2, 120.5))
    with pytest.raises(DataRefused) as info:
        reproject_layer(frame, file="b.parquet", layer="buildings")
    (problem,) = info.value.problems
    assert "swapped" in problem.reason
    assert problem.feature == "#0 (building_id=B0) and 1 more"


def test_declared_lonlat_holding_metres_is_refused() -> None:
    """GeoJSON without a ``crs`` member is EPSG:4326 by definition, whatever its numbers."""
    frame = _frame((265_000.0, 3_994_000.0), crs=4326)
    with pytest.raises(DataRefused) as info:
        reproject_layer(frame, file="grids.geojson", layer="grids")
    assert "not longitude/latitude after reading them as EPSG:4326" in (
        info.value.problems[0].reason
    )


def test_no_crs_lonlat_is_taken_as_wgs84() -> None:
    out = reproject_layer(_frame((120.4, 36.1)), file="b.parquet", layer="buildings")
    assert out.crs is not None and out.crs.to_epsg() == 4326


def _multi(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.multipolygons([geom]) if geom.geom_type == "Polygon" else geom


def _whole_district_in(crs: str) -> dict[str, gpd.GeoDataFrame]:
    return {name: frame.to_crs(crs) for name, frame in handmade_layers().items()}


@pytest.mark.parametrize(
    ("crs", "fmt"),
    [
        ("EPSG:32651", "gpkg"),
        ("EPSG:32651", "geojson"),
        ("EPSG:32651", "parquet"),
        ("EPSG:4490", "gpkg"),
        ("EPSG:4490", "parquet"),
    ],
)
def test_district_in_another_crs_loads_to_the_same_grids(
    tmp_path: Path, crs: str, fmt: str
) -> None:
    """UTM and CGCS2000 files validate (no false slivers) and match the lon/lat original
    within the tolerance (1 cm; noding densifies long edges, so vertices differ)."""
    paths = write_handmade(tmp_path, fmt, **_whole_district_in(crs))
    data, repairs = validate_district(read_district(paths))
    assert repairs == []
    original = handmade_layers()["grids"]
    assert data.grids["code"].tolist() == original["code"].tolist()
    for got, want in zip(data.grids.geometry, original.geometry, strict=True):
        assert shapely.hausdorff_distance(got, _multi(want), densify=0.01) < 1e-7
        assert shapely.symmetric_difference(got, want).area < 1e-7 * want.length
    points = shapely.get_coordinates(data.buildings.geometry.to_numpy())
    want_points = shapely.get_coordinates(handmade_layers()["buildings"].geometry.to_numpy())
    assert np.abs(points - want_points).max() < 1e-7


def test_district_in_metres_without_crs_is_refused(tmp_path: Path) -> None:
    layers = {
        name: frame.to_crs(32651).set_crs(None, allow_override=True)
        for name, frame in handmade_layers().items()
    }
    with pytest.raises(DataRefused) as info:
        read_district(write_handmade(tmp_path, "parquet", **layers))
    problem = info.value.problems[0]
    assert problem.layer == "district" and "no CRS declared" in problem.reason


def test_swapped_csv_points_are_refused(tmp_path: Path) -> None:
    buildings = handmade_layers()["buildings"]
    swapped = buildings.set_geometry(
        shapely.transform(buildings.geometry.to_numpy(), lambda xy: xy[:, ::-1])
    )
    with pytest.raises(DataRefused) as info:
        read_district(write_handmade(tmp_path, "csv", buildings=swapped))
    (problem,) = info.value.problems
    assert problem.layer == "buildings" and "swapped" in problem.reason
    assert problem.feature and problem.feature.startswith("#0 (building_id=B0000)")


# --- writing -----------------------------------------------------------------------------


def test_layer_paths() -> None:
    assert layer_paths(Path("d.gpkg"), ["grids"]) == {"grids": Path("d.gpkg")}
    assert layer_paths(Path("out"), ["grids"]) == {"grids": Path("out/grids.geojson")}
    assert layer_paths(Path("x/d.parquet"), ["grids"]) == {"grids": Path("x/d_grids.parquet")}


def test_csv_refuses_polygons(tmp_path: Path) -> None:
    with pytest.raises(DataRefused) as info:
        write_layer(handmade_layers()["grids"], tmp_path / "grids.csv", "grids")
    assert "points only" in info.value.problems[0].reason
