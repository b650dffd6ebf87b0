"""Contract readers without a database: formats, encodings, the hostile-WKB guard, CRSs.

Hostile geometries are built byte by byte with ``struct`` and written with pyarrow, so that
no library parses them before gridmap's guard does (GEOS 3.14 crashes on deep nesting).
Every other file is written by the tools planners use: GDAL (pyogrio, and Debian's ogr2ogr
for Shapefiles in GBK and for reprojection), pandas for CSV in Excel's encodings.
"""

from __future__ import annotations

import codecs
import json
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import Point, box
from typer.testing import CliRunner

from api.cli import app as cli_app
from geo.assign import assign_files
from geo.crs import Coordsys
from geo.errors import DataRefused
from geo.grids import read_district, validate_district, write_district_layers
from geo.io import (
    InputLimits,
    check_wkb,
    format_of,
    layer_from_stem,
    layer_paths,
    list_layers,
    looks_swapped,
    plausible_lonlat,
    read_csv_bytes,
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


@pytest.mark.parametrize("name", ["grids.zip", "grids.kml", "grids", "grids.xlsx"])
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


# --- files GDAL cannot read: a sentence naming the file and the fix, never GDAL's words -----

#: Phrases of GDAL, SQLite and Arrow that must never reach a planner alone.
RAW_INTERNALS = ("sqlite3_", "<DRIVER>", "It might help", "libduckdb", "magic bytes", "OGR")


def _handmade_file(tmp: Path, fmt: str) -> Path:
    """The hand-drawn grids layer written by pyogrio (GeoJSON, GeoPackage) or pyarrow."""
    grids = handmade_layers()["grids"]
    path = tmp / f"real.{fmt}"
    if fmt == "parquet":
        grids.to_parquet(path)
    else:
        pyogrio.write_dataframe(grids, path, layer="grids")
    return path


def _cut(tmp: Path, fmt: str, keep: float) -> Path:
    data = _handmade_file(tmp, fmt).read_bytes()
    path = tmp / f"grids.{fmt}"
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _renamed(tmp: Path, fmt: str, suffix: str) -> Path:
    path = tmp / f"grids{suffix}"
    _handmade_file(tmp, fmt).rename(path)
    return path


def _garbage(tmp: Path, suffix: str) -> Path:
    path = tmp / f"grids{suffix}"
    path.write_bytes(b"\x00garbage, not a " + suffix.encode() * 50)
    return path


def _xlsx_as_csv(tmp: Path) -> Path:
    path = tmp / "buildings.csv"
    with zipfile.ZipFile(path, "w") as workbook:  # an .xlsx is a ZIP of XML parts
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    return path


def _shp_with_bad_header(tmp: Path) -> Path:
    path = _shapefile(tmp, handmade_layers()["grids"], "grids")
    path.write_bytes(b"garbage!" * 30)
    return path


BAD_FILES = {
    "garbage .gpkg": (lambda t: _garbage(t, ".gpkg"), "is not a GeoPackage file", "export it"),
    "garbage .geojson": (lambda t: _garbage(t, ".geojson"), "is not a GeoJSON file", "export"),
    "garbage .parquet": (lambda t: _garbage(t, ".parquet"), "is not a GeoParquet", "export"),
    "truncated .gpkg": (lambda t: _cut(t, "gpkg", 0.3), "is damaged", "cut short"),
    "truncated .geojson": (lambda t: _cut(t, "geojson", 0.5), "is not valid GeoJSON (", "JSON"),
    "truncated .parquet": (lambda t: _cut(t, "parquet", 0.5), "is damaged", "cut short"),
    "empty .geojson": (lambda t: _cut(t, "geojson", 0), "empty", "export the layer again"),
    "GeoPackage named .geojson": (
        lambda t: _renamed(t, "gpkg", ".geojson"),
        "contents are a GeoPackage",
        "rename it to grids.gpkg",
    ),
    "GeoJSON named .parquet": (
        lambda t: _renamed(t, "geojson", ".parquet"),
        "is not a GeoParquet file: its contents are JSON",
        "rename it to grids.geojson",
    ),
    "GeoParquet named .gpkg": (
        lambda t: _renamed(t, "parquet", ".gpkg"),
        "its contents are a Parquet file",
        "rename it to grids.parquet",
    ),
    "Excel workbook named .csv": (_xlsx_as_csv, "ZIP archive", "CSV UTF-8"),
    "Shapefile with a damaged header": (_shp_with_bad_header, "is not a Shapefile", "export"),
}


@pytest.mark.parametrize(("make", "words", "fix"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_files_gdal_cannot_read_are_named_with_the_fix(
    tmp_path: Path, make: Callable[[Path], Path], words: str, fix: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(DataRefused) as info:
        if path.suffix == ".gpkg":
            list_layers(path)
        read_layer(path)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert words in problem.reason
    assert fix in (problem.fix or "")
    assert not any(raw in problem.reason for raw in RAW_INTERNALS), problem.reason


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


#: The address book as a planner's Excel saves it: Chinese text, a GB18030-only character
#: (䶮, in names since 2000) where the encoding can hold it, and a Chinese extra column.
def _buildings_csv(path: Path, encoding: str) -> pd.DataFrame:
    buildings = handmade_layers()["buildings"]
    table = pd.DataFrame(buildings.drop(columns="geometry"))
    table["lon"], table["lat"] = buildings.geometry.x, buildings.geometry.y
    if encoding in ("utf-8", "utf-8-sig", "gb18030"):
        table.loc[0, "address"] = "䶮家巷1号"
    table["备注"] = "出租"
    table.to_csv(path, index=False, encoding=encoding)
    return table


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_utf8_bom_gbk_and_gb18030_reads_the_same(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "buildings.csv"
    table = _buildings_csv(path, encoding)
    assert path.read_bytes().startswith(codecs.BOM_UTF8) == (encoding == "utf-8-sig")
    _, detected = read_csv_bytes(path)
    assert detected == {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM"}.get(encoding, "GB18030")
    frame = read_layer(path)
    assert list(frame.columns[:3]) == ["building_id", "address", "households"]
    assert frame["address"].tolist() == table["address"].tolist()
    assert frame["备注"].tolist() == ["出租"] * len(table)
    assert np.allclose(frame.geometry.x, table["lon"])


def test_utf16_csv_is_refused_with_the_excel_fix(tmp_path: Path) -> None:
    path = tmp_path / "buildings.csv"
    _buildings_csv(path, "utf-16")
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert "UTF-16" in problem.reason and "CSV UTF-8" in (problem.fix or "")


def test_csv_in_no_known_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "buildings.csv"
    path.write_bytes(
        b"building_id,address,households,lon,lat\nB1,a,3,120.4,36.06\nB2,\xff\xfe,3,1,1\n"
    )
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert problem.reason.startswith("line 3 is neither UTF-8 nor GBK/GB18030")
    assert problem.layer == "buildings"


# --- Shapefiles ----------------------------------------------------------------------------


def ogr2ogr(*args: str | Path) -> None:
    """Debian's ogr2ogr, as planners convert data (``./dev.sh test`` installs gdal-bin)."""
    tool = shutil.which("ogr2ogr")
    assert tool, "ogr2ogr is missing: ./dev.sh test installs Debian's gdal-bin"
    subprocess.run([tool, *map(str, args)], check=True, capture_output=True)


def _shapefile(
    tmp: Path, frame: gpd.GeoDataFrame, layer: str, encoding: str = "UTF-8", cpg: bool = True
) -> Path:
    """One layer written by pyogrio (GDAL's Shapefile driver), with or without its .cpg."""
    path = tmp / f"{layer}.shp"
    pyogrio.write_dataframe(frame, path, encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink()
    return path


def _shapefile_folder(tmp: Path, encoding: str, *, cpg: bool, srs: str = "EPSG:4326") -> Path:
    """The whole district as ogr2ogr writes a GeoPackage out to Shapefiles, one per layer."""
    gpkg = write_handmade(tmp / "source")[0]
    folder = tmp / "shapefiles"
    ogr2ogr("-f", "ESRI Shapefile", "-lco", f"ENCODING={encoding}", "-t_srs", srs, folder, gpkg)
    if not cpg:
        for part in folder.glob("*.cpg"):
            part.unlink()
    return folder


@pytest.mark.parametrize(
    ("encoding", "cpg"),
    [("GBK", True), ("GBK", False), ("UTF-8", True), ("UTF-8", False), ("GB18030", False)],
)
def test_shapefile_folder_reads_like_the_geopackage(
    tmp_path: Path, encoding: str, cpg: bool
) -> None:
    """Chinese names survive GBK and UTF-8, with the .cpg or told from the bytes alone;
    the 10-character field names (``community_``) get their contract names back."""
    folder = _shapefile_folder(tmp_path, encoding, cpg=cpg)
    raw = (folder / "grids.dbf").read_bytes()
    assert "汇泉一网格".encode("utf-8" if encoding == "UTF-8" else "gbk") in raw
    assert b"community_\x00" in raw  # what ogr2ogr made of community_code
    data, repairs = validate_district(read_district([folder]))
    assert repairs == []
    want = handmade_layers()
    for name in ("district", "streets", "communities", "grids", "roads"):
        assert data.layer(name)["name"].tolist() == want[name]["name"].tolist(), name
    assert data.grids["community_code"].tolist() == want["grids"]["community_code"].tolist()
    assert data.buildings["address"].tolist() == want["buildings"]["address"].tolist()
    assert data.streets["district_code"].tolist() == want["streets"]["district_code"].tolist()
    assert "subcategory" in data.reports.columns and "reported_at" in data.reports.columns


def test_gb18030_only_characters_are_detected(tmp_path: Path) -> None:
    """𠮷 is four bytes in GB18030 and not in GBK at all: decoding as GBK would fail."""
    grids = handmade_layers()["grids"]
    grids["name"] = [f"𠮷{i}网格" for i in range(len(grids))]
    path = _shapefile(tmp_path, grids, "grids", "GB18030", cpg=False)
    assert "𠮷".encode("gb18030") in path.with_suffix(".dbf").read_bytes()
    with pytest.raises(UnicodeEncodeError):
        "𠮷".encode("gbk")
    assert read_layer(path)["name"].tolist() == grids["name"].tolist()


def test_chinese_field_names_are_decoded_too(tmp_path: Path) -> None:
    grids = handmade_layers()["grids"].assign(备注=lambda f: ["临街"] * len(f))
    frame = read_layer(_shapefile(tmp_path, grids, "grids", "GBK", cpg=False))
    assert frame["备注"].tolist() == ["临街"] * len(grids)


def test_a_cpg_that_names_the_wrong_encoding_is_refused(tmp_path: Path) -> None:
    path = _shapefile(tmp_path, handmade_layers()["grids"], "grids", "GBK")
    path.with_suffix(".cpg").write_text("UTF-8")
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert "grids.cpg" in problem.reason and "utf-8" in problem.reason
    assert problem.feature == "#0" and "'name'" in problem.reason
    assert "delete it" in (problem.fix or "") and "GBK" in (problem.fix or "")


def test_text_in_neither_utf8_nor_gb18030_is_refused_without_a_cpg(tmp_path: Path) -> None:
    """ÿþ (Latin-1 0xFF 0xFE) is valid in neither; with its .cpg it reads as Latin-1."""
    grids = handmade_layers()["grids"]
    grids["name"] = ["ok"] * (len(grids) - 1) + ["ÿþ"]
    path = _shapefile(tmp_path, grids, "grids", "ISO-8859-1")
    assert read_layer(path)["name"].iloc[-1] == "ÿþ"
    path.with_suffix(".cpg").unlink()
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert "neither UTF-8 nor GBK/GB18030" in problem.reason
    assert problem.feature == f"#{len(grids) - 1}" and "grids.cpg" in (problem.fix or "")


@pytest.mark.parametrize(("part", "words"), [(".shx", "index"), (".dbf", "attribute table")])
def test_shapefile_missing_a_part_is_named(tmp_path: Path, part: str, words: str) -> None:
    path = _shapefile(tmp_path, handmade_layers()["grids"], "grids", "GBK")
    path.with_suffix(part).unlink()
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert f"grids{part}" in problem.reason and words in problem.reason
    assert "copy" in (problem.fix or "")


def test_load_of_a_shapefile_folder_missing_a_part_is_one_line(tmp_path: Path) -> None:
    """Through the CLI: exit 1, one line naming the file and the fix, no traceback."""
    folder = _shapefile_folder(tmp_path, "GBK", cpg=True)
    (folder / "communities.dbf").unlink()
    result = CliRunner().invoke(cli_app, ["load", str(folder), "--dry-run"], env={"COLUMNS": "500"})
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "Error" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip().startswith("-")]
    assert len(lines) == 1
    assert "communities.shp" in lines[0] and "communities.dbf is missing" in lines[0]


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


def test_big_endian_points_pass_the_bulk_check() -> None:
    points = [wkb_point(X0, Y0, ">"), wkb_point(X0, Y0), wkb_point(float("nan"), Y0, ">")]
    found = check_wkb(np.array(points, dtype=object), LIMITS)
    assert found == [(2, "NaN or infinite coordinate")]
    arrow = pa.array(points, type=pa.binary())
    assert check_wkb(arrow, LIMITS) == found
    assert check_wkb(pa.chunked_array([arrow[:1], arrow[1:]]), LIMITS) == found


def test_polygon_geos_cannot_build_is_named_not_raised(tmp_path: Path) -> None:
    """An open ring passes the WKB walk but GEOS refuses to build it."""
    path = write_raw_geoparquet(
        tmp_path / "grids.parquet",
        {"code": ["G1", "G2"]},
        [wkb_polygon([SQUARE]), wkb_polygon([[(X0, Y0), (X0 + 1, Y0)]])],
    )
    with pytest.raises(DataRefused) as info:
        read_layer(path)
    (problem,) = info.value.problems
    assert problem.feature == "#1 (code=G2)"
    assert "cannot be built" in problem.reason and "closed linestring" in problem.reason


def _assign_grids(tmp: Path) -> Path:
    path = tmp / "grids.geojson"
    handmade_layers()["grids"].to_file(path, driver="GeoJSON")
    return path


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (wkb_nested_collection(100_000), "nested deeper than 8 levels"),
        (wkb_point(X0, float("inf")), "NaN or infinite coordinate"),
        (wkb_point(X0, Y0)[:-3], "malformed"),
    ],
    ids=["nested", "infinite", "truncated"],
)
def test_assign_guards_geoparquet_points_before_shapely_parses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blob: bytes, words: str
) -> None:
    points = write_raw_geoparquet(
        tmp_path / "buildings.parquet",
        {"building_id": ["B1", "B2", "B3"]},
        [wkb_point(X0 + 0.001, Y0 + 0.001), blob, wkb_point(X0 + 0.002, Y0 + 0.001)],
    )
    parsed: list[object] = []
    real = shapely.from_wkb
    monkeypatch.setattr(
        shapely, "from_wkb", lambda values, *a, **k: parsed.append(values) or real(values, *a, **k)
    )
    with pytest.raises(DataRefused) as info:
        assign_files(_assign_grids(tmp_path), points, tmp_path / "out.parquet")
    assert not any(blob in np.atleast_1d(np.asarray(v, dtype=object)) for v in parsed)
    (problem,) = info.value.problems
    assert problem.feature == "#1 (building_id=B2)" and words in problem.reason
    assert problem.file == str(points)


def test_assign_guards_geopackage_and_shapefile_points(tmp_path: Path) -> None:
    """GDAL-read points pass through the same guard (and its vertex cap)."""
    grids = _assign_grids(tmp_path)
    buildings = handmade_layers()["buildings"]
    shp = _shapefile(tmp_path, buildings, "buildings", "GBK", cpg=False)
    out = tmp_path / "out.csv"
    summary = assign_files(grids, shp, out)
    assert summary.points == len(buildings) and summary.unassigned == 0
    assigned = pd.read_csv(out, dtype=str, encoding="utf-8-sig")
    assert out.read_bytes().startswith(codecs.BOM_UTF8)
    assert assigned["address"].tolist() == buildings["address"].tolist()
    assert assigned["building_id"].tolist() == buildings["building_id"].tolist()
    zigzag = [(X0 + (k % 2) * 1e-4, Y0 + k * 1e-4) for k in range(20)]  # grids have <= 10
    lines = buildings.set_geometry([shapely.LineString(zigzag)] * len(buildings))
    gpkg = tmp_path / "lines.gpkg"
    lines.to_file(gpkg, layer="buildings")
    with pytest.raises(DataRefused) as info:
        assign_files(grids, gpkg, out, limits=InputLimits(max_vertices_per_feature=15))
    (problem, *_) = info.value.problems
    assert problem.file == str(gpkg) and "20 vertices, over the cap of 15" in problem.reason


def test_assign_reads_gbk_csv_and_writes_excel_csv(tmp_path: Path) -> None:
    points = tmp_path / "buildings.csv"
    table = _buildings_csv(points, "gbk")
    out = tmp_path / "assigned.csv"
    summary = assign_files(_assign_grids(tmp_path), points, out)
    assert summary.points == len(table)
    raw = out.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8) and "出租".encode() in raw
    again = pd.read_csv(out, dtype=str, encoding="utf-8-sig")
    assert again["address"].tolist() == table["address"].tolist()
    assert again["备注"].tolist() == ["出租"] * len(table)


def test_assign_refuses_degrees_labelled_web_mercator(tmp_path: Path) -> None:
    buildings = handmade_layers()["buildings"].set_crs("EPSG:3857", allow_override=True)
    points = tmp_path / "buildings.parquet"
    buildings.to_parquet(points)
    with pytest.raises(DataRefused) as info:
        assign_files(_assign_grids(tmp_path), points, tmp_path / "out.parquet")
    (problem,) = info.value.problems
    assert "EPSG:3857" in problem.reason and problem.file == str(points)


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


#: Dalian, in CGCS2000 3-degree Gauss-Krüger zone 41 (CM 123E), is where EPSG:4550 applies.
TO_DALIAN = 121.6 - 120.38


def _moved(layers: dict[str, gpd.GeoDataFrame], dx: float) -> dict[str, gpd.GeoDataFrame]:
    return {
        name: frame.set_geometry(
            shapely.transform(frame.geometry.to_numpy(), lambda c: c + np.array([dx, 0.0]))
        )
        for name, frame in layers.items()
    }


def _written_in(tmp: Path, crs: str, fmt: str, tool: str, dx: float) -> list[Path]:
    """The district reprojected to ``crs`` by ``tool`` and written as ``fmt``."""
    layers = _moved(handmade_layers(), dx)
    if tool == "geopandas":
        return write_handmade(tmp, fmt, **{n: f.to_crs(crs) for n, f in layers.items()})
    source = write_handmade(tmp / "source", "gpkg", **layers)[0]
    if fmt == "shp":
        ogr2ogr("-f", "ESRI Shapefile", "-lco", "ENCODING=GBK", "-t_srs", crs, tmp / "shp", source)
        return [tmp / "shp"]
    out = tmp / f"district.{fmt}"
    ogr2ogr("-f", "GPKG", "-t_srs", crs, out, source)
    return [out]


@pytest.mark.parametrize(
    ("crs", "fmt", "tool", "dx"),
    [
        ("EPSG:32651", "gpkg", "geopandas", 0.0),
        ("EPSG:32651", "geojson", "geopandas", 0.0),
        ("EPSG:32651", "parquet", "geopandas", 0.0),
        ("EPSG:32651", "shp", "ogr2ogr", 0.0),
        ("EPSG:4490", "gpkg", "geopandas", 0.0),
        ("EPSG:4490", "parquet", "geopandas", 0.0),
        ("EPSG:4490", "shp", "ogr2ogr", 0.0),
        ("EPSG:4326", "shp", "ogr2ogr", 0.0),
        ("EPSG:4549", "gpkg", "ogr2ogr", 0.0),
        ("EPSG:4549", "shp", "ogr2ogr", 0.0),
        ("EPSG:4549", "parquet", "geopandas", 0.0),
        ("EPSG:4550", "gpkg", "ogr2ogr", TO_DALIAN),
        ("EPSG:4550", "shp", "ogr2ogr", TO_DALIAN),
    ],
)
def test_district_in_another_crs_loads_to_the_same_grids(
    tmp_path: Path, crs: str, fmt: str, tool: str, dx: float
) -> None:
    """UTM, CGCS2000 and its Gauss-Krüger zones, written by geopandas or by ogr2ogr: every
    file declares its CRS, is reprojected, validates and matches the lon/lat original."""
    paths = _written_in(tmp_path, crs, fmt, tool, dx)
    grids_file = next(p for p in _listed(paths) if p.stem in ("grids", "district", "handmade"))
    declared = read_layer(grids_file, "grids" if grids_file.suffix == ".gpkg" else None).crs
    assert declared is not None and declared.equals(CRS.from_user_input(crs))
    data, repairs = validate_district(read_district(paths))
    assert repairs == []
    original = _moved(handmade_layers(), dx)
    assert data.grids["code"].tolist() == original["grids"]["code"].tolist()
    for got, want in zip(data.grids.geometry, original["grids"].geometry, strict=True):
        # Within the tolerance (1 cm; noding densifies long edges, so vertices differ).
        assert shapely.hausdorff_distance(got, _multi(want), densify=0.01) < 1e-7
        assert shapely.symmetric_difference(got, want).area < 1e-7 * want.length
    points = shapely.get_coordinates(data.buildings.geometry.to_numpy())
    want_points = shapely.get_coordinates(original["buildings"].geometry.to_numpy())
    assert np.abs(points - want_points).max() < 1e-7


def _listed(paths: list[Path]) -> list[Path]:
    """The grids file first: a GeoPackage holds it, a folder has grids.shp."""
    files = [q for p in paths for q in (sorted(p.glob("*.shp")) if p.is_dir() else [p])]
    return sorted(files, key=lambda q: q.stem != "grids")


@pytest.mark.parametrize(
    ("crs", "fmt"), [("EPSG:3857", "gpkg"), ("EPSG:4549", "gpkg"), ("EPSG:4549", "shp")]
)
def test_degrees_labelled_with_a_projected_crs_are_refused(
    tmp_path: Path, crs: str, fmt: str
) -> None:
    """``ogr2ogr -a_srs`` labels without reprojecting, as a hasty export does: the numbers are
    still degrees. Read as EPSG:3857 metres, the district would sit at 0.001°E."""
    source = write_handmade(tmp_path / "source")[0]
    out = tmp_path / ("shp" if fmt == "shp" else "labelled.gpkg")
    ogr2ogr("-f", "ESRI Shapefile" if fmt == "shp" else "GPKG", "-a_srs", crs, out, source)
    with pytest.raises(DataRefused) as info:
        read_district([out])
    # Every layer is refused, each naming its file and the declared CRS; the district first.
    problems = info.value.problems
    assert len(problems) == 7 and all(crs in p.reason for p in problems)
    problem = problems[0]
    assert problem.file == str(out / "district.shp" if fmt == "shp" else out)
    assert problem.layer == "district"
    assert "longitude/latitude degrees" in problem.reason and crs in problem.reason
    assert "metres" in problem.reason
    assert "EPSG:4326" in (problem.fix or "") and "-a_srs" in (problem.fix or "")


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


# --- maps that offset their coordinates: AMap (GCJ-02), Baidu (BD-09) --------------------


def _drawn_on(coordsys: Coordsys) -> dict[str, gpd.GeoDataFrame]:
    """The district as a planner traced it over AMap or Baidu tiles: every vertex offset."""
    return {
        name: frame.set_geometry(coordsys.geometries_from_wgs84(frame.geometry.to_numpy()))
        for name, frame in handmade_layers().items()
    }


@pytest.mark.parametrize("coordsys", [Coordsys.GCJ02, Coordsys.BD09])
def test_district_drawn_on_amap_or_baidu_is_converted_before_validation(
    tmp_path: Path, coordsys: Coordsys
) -> None:
    paths = write_handmade(tmp_path, "csv", **_drawn_on(coordsys))
    as_drawn = read_district(paths)
    data, repairs = validate_district(read_district(paths, coordsys=coordsys))
    assert repairs == [] and data.coordsys is coordsys
    vertices = sum(
        int(shapely.get_num_coordinates(f.geometry.to_numpy()).sum())
        for f in handmade_layers().values()
    )
    assert data.converted == (
        f"converted from {coordsys.label} to WGS 84 before validation ({vertices:,} vertices)"
    )
    want = handmade_layers()
    for name in ("grids", "communities", "buildings", "reports", "roads"):
        unconverted = shapely.get_coordinates(as_drawn.layer(name).geometry.to_numpy())
        original = shapely.get_coordinates(want[name].geometry.to_numpy())
        assert np.abs(unconverted - original).max() > 0.004  # hundreds of metres off
        if name in ("grids", "communities"):  # noded and densified: compare shapes
            moved = shapely.hausdorff_distance(
                data.layer(name).geometry.to_numpy(), want[name].geometry.to_numpy(), densify=0.01
            )
            assert moved.max() < 1e-7, name  # within a centimetre
            continue
        got = shapely.get_coordinates(data.layer(name).geometry.to_numpy())
        assert np.abs(got - original).max() < 1e-9, name  # a tenth of a millimetre


def test_wgs84_and_cgcs2000_are_not_converted(tmp_path: Path) -> None:
    paths = write_handmade(tmp_path, "geojson")
    plain = read_district(paths)
    for coordsys in (Coordsys.WGS84, Coordsys.CGCS2000):
        data = read_district(paths, coordsys=coordsys)
        assert data.converted is None
        assert data.grids.geometry.equals(plain.grids.geometry)


@pytest.mark.parametrize("coordsys", [Coordsys.GCJ02, Coordsys.BD09])
def test_load_dry_run_says_what_it_converted(tmp_path: Path, coordsys: Coordsys) -> None:
    paths = [str(p) for p in write_handmade(tmp_path, "geojson", **_drawn_on(coordsys))]
    env = {"COLUMNS": "500"}
    args = ["load", *paths, "--coordsys", coordsys.value, "--dry-run"]
    result = CliRunner().invoke(cli_app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    said = json.loads(result.stdout)
    assert said["valid"] is True and said["coordsys"] == coordsys.value
    assert said["converted"].startswith(f"converted from {coordsys.label} to WGS 84")
    text = CliRunner().invoke(cli_app, args, env=env)
    assert text.exit_code == 0, text.output
    assert f"converted from {coordsys.label} to WGS 84 before validation" in text.stdout
    wrong = CliRunner().invoke(cli_app, ["load", *paths, "--coordsys", "baidu"], env=env)
    assert wrong.exit_code == 2 and "bd09" in wrong.output


# --- writing -----------------------------------------------------------------------------


def test_layer_paths() -> None:
    assert layer_paths(Path("d.gpkg"), ["grids"]) == {"grids": Path("d.gpkg")}
    assert layer_paths(Path("out"), ["grids"]) == {"grids": Path("out/grids.geojson")}
    assert layer_paths(Path("x/d.parquet"), ["grids"]) == {"grids": Path("x/d_grids.parquet")}


def test_csv_is_written_with_a_bom_and_reads_back(tmp_path: Path) -> None:
    """Excel on Chinese Windows shows UTF-8 Chinese text only behind a byte-order mark."""
    buildings = handmade_layers()["buildings"]
    path = tmp_path / "buildings.csv"
    write_layer(buildings, path, "buildings")
    raw = path.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8) and raw.count(codecs.BOM_UTF8) == 1
    assert "山东路1号1栋".encode() in raw
    again = read_layer(path)
    assert again["address"].tolist() == buildings["address"].tolist()
    assert list(again.columns) == list(buildings.columns)


def test_export_writes_csv_that_excel_reads(tmp_path: Path) -> None:
    data, _ = validate_district(read_district(write_handmade(tmp_path / "in")))
    written = write_district_layers(data, tmp_path / "out" / "d.csv")
    csvs = sorted(p.name for p in written if p.suffix == ".csv")
    assert csvs == ["d_buildings.csv", "d_reports.csv"]
    for path in written:
        if path.suffix == ".csv":
            assert path.read_bytes().startswith(codecs.BOM_UTF8)
    again, _ = validate_district(read_district(written))
    assert again.buildings["address"].tolist() == data.buildings["address"].tolist()


def test_shapefiles_are_read_but_never_written(tmp_path: Path) -> None:
    data, _ = validate_district(read_district(write_handmade(tmp_path / "in")))
    with pytest.raises(DataRefused) as info:
        write_district_layers(data, tmp_path / "out" / "d.shp")
    assert "10-character field names" in info.value.problems[0].reason
    with pytest.raises(DataRefused):
        assign_files(_assign_grids(tmp_path), tmp_path / "in" / "handmade.gpkg", tmp_path / "o.shp")
    assert not list(tmp_path.glob("**/*.shp"))


def test_csv_refuses_polygons(tmp_path: Path) -> None:
    with pytest.raises(DataRefused) as info:
        write_layer(handmade_layers()["grids"], tmp_path / "grids.csv", "grids")
    assert "points only" in info.value.problems[0].reason
