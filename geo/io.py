"""Reading and writing the interchange contract's layers, refusing hostile input early.

Geometries arrive as WKB and are walked here *before* shapely parses them: GEOS 3.14
crashes on deeply nested collections, and NaN or infinite coordinates poison every
predicate downstream. Formats follow the file extension, checked against the file's first
bytes, so that a mislabelled file is named as such instead of surfacing as GDAL's words.
Text comes in the encodings Chinese offices use: Shapefile attributes in the ``.cpg``'s
encoding or, without one, UTF-8 or GBK/GB18030 as their bytes show; CSV likewise. Every CSV
gridmap writes is UTF-8 with a byte-order mark, which Excel needs to show Chinese text.
The points files of ``gridmap assign`` are read and written here too (``read_points_file``,
``write_points_file``); ``geo.assign`` only assigns.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import struct
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS, Transformer

from geo.crs import WGS84, Coordsys, is_wgs84_like, to_wgs84
from geo.errors import DataRefused, InvalidGeometry, InvalidInput, Problem
from geo.settings import InputLimits

FloatArray = npt.NDArray[np.float64]

#: Layer names of the contract, in load order (parents before children).
LAYERS = ("district", "streets", "communities", "grids", "buildings", "reports", "roads")

FORMATS = {
    ".gpkg": "gpkg",
    ".geojson": "geojson",
    ".json": "geojson",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
    ".shp": "shapefile",
    ".csv": "csv",
}
#: How messages name each format, and the extension a renamed file should get.
FORMAT_NAMES = {
    "gpkg": "GeoPackage",
    "geojson": "GeoJSON",
    "parquet": "GeoParquet",
    "shapefile": "Shapefile",
    "csv": "CSV",
}
_EXTENSIONS = {
    "gpkg": ".gpkg",
    "geojson": ".geojson",
    "parquet": ".parquet",
    "shapefile": ".shp",
    "csv": ".csv",
}
#: Every column the contract names. Shapefile field names hold 10 characters, so
#: ``community_code`` arrives as ``community_``; reading gives the full names back.
CONTRACT_COLUMNS = (
    "code",
    "name",
    "district_code",
    "street_code",
    "community_code",
    "building_id",
    "address",
    "households",
    "residents",
    "floors",
    "report_id",
    "category",
    "subcategory",
    "reported_at",
    "status",
    "closed_at",
    "description",
)
_SHAPEFILE_FIELD_CHARS = 10


#: GDAL stamps the write time into GeoPackages; a fixed date keeps exports byte-identical.
FIXED_GPKG_DATE = "2000-01-01T00:00:00Z"


def format_of(path: Path) -> str:
    """The contract format of ``path`` by extension, or a refusal naming the supported ones."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataRefused(
            problems=[
                Problem(
                    f"unsupported format {path.suffix or '(no extension)'!r}",
                    file=str(path),
                    fix="use GeoPackage (.gpkg), GeoJSON (.geojson), GeoParquet (.parquet), "
                    "Shapefile (.shp with its .shx and .dbf; unzip a zipped one first) "
                    "or CSV with lon/lat columns (.csv)",
                )
            ]
        )
    return fmt


def list_layers(path: Path, limits: InputLimits | None = None) -> list[str]:
    """Layers a file holds: GeoPackage layers by name, other formats by file stem.

    A file GDAL cannot open is refused here, naming the file, instead of escaping as a
    pyogrio error (and a traceback) from the CLI.
    """
    check_file(path, limits or InputLimits())
    fmt = format_of(path)
    if fmt != "gpkg":
        return [layer_from_stem(path)]
    try:
        with _gdal_warnings_silenced():
            return [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError, OSError, ... for corrupt files
        raise DataRefused(problems=[unreadable(path, exc)]) from exc


def layer_from_stem(path: Path) -> str:
    """``grids.geojson`` or ``shahekou_grids.geojson`` hold the ``grids`` layer."""
    stem = path.name.split(".")[0].lower()
    for layer in LAYERS:
        if stem == layer or stem.endswith(("_" + layer, "-" + layer)):
            return layer
    return stem


def check_file(path: Path, limits: InputLimits) -> None:
    """Refuse what cannot be read before GDAL tries: missing, oversized, empty, mislabelled."""
    if not path.exists():
        raise DataRefused(
            problems=[Problem("file not found", file=str(path), fix="check the path")]
        )
    if path.is_dir():
        raise DataRefused(
            problems=[
                Problem(
                    "is a folder, not a file",
                    file=str(path),
                    fix="give the folder to `gridmap load`, or name one file in it",
                )
            ]
        )
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataRefused(
            problems=[
                Problem(
                    f"file is {size:,} bytes, over the {limits.max_file_bytes:,}-byte limit",
                    file=str(path),
                    fix="split the file or raise GRIDMAP_MAX_FILE_BYTES",
                )
            ]
        )
    fmt = format_of(path)
    problem = _content_mismatch(path, fmt)
    if problem is None and fmt == "shapefile":
        problem = _missing_shapefile_part(path)
    if problem is not None:
        raise DataRefused(problems=[problem])


# --- what a file really is ------------------------------------------------------------------

_SNIFF_BYTES = 4096  # enough to see past the whitespace some tools put before JSON
_BINARY_FORMATS = ("gpkg", "parquet", "shapefile", "zip")
_LOOKS_LIKE = {
    "gpkg": "a GeoPackage (SQLite database)",
    "parquet": "a Parquet file",
    "shapefile": "a Shapefile's .shp",
    "zip": "a ZIP archive (a zipped Shapefile, or an Excel workbook?)",
    "geojson": "JSON text",
    "xml": "XML (KML or GML?)",
}


def sniff_format(head: bytes) -> str | None:
    """The format a file's first bytes show, whatever its name; None when none is known."""
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x00\x00\x27\x0a"):  # file code 9994, big-endian
        return "shapefile"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if text[:1] in (b"{", b"["):
        return "geojson"
    if text[:1] == b"<":
        return "xml"
    return None


def _content_mismatch(path: Path, fmt: str) -> Problem | None:
    """A file whose bytes are not the format its extension names, and how to fix it."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    name = FORMAT_NAMES[fmt]
    if not head:
        return Problem(
            "the file is empty (0 bytes)",
            file=str(path),
            fix=f"export the layer again as {name}; a copy or download may have been cut short",
        )
    found = sniff_format(head)
    if found == fmt or (fmt == "csv" and found not in _BINARY_FORMATS):
        return None
    what = _LOOKS_LIKE.get(found or "", "none of the formats gridmap reads")
    if found in _EXTENSIONS and found != fmt:
        fix = (
            f"rename it to {path.name.split('.')[0]}{_EXTENSIONS[found]} "
            f"(it is {FORMAT_NAMES[found]}, not {name})"
        )
    elif fmt == "csv" and found == "zip":
        fix = "save it from Excel as CSV: File > Save As > CSV UTF-8 (逗号分隔)"
    else:
        fix = (
            f"export it again as {name} from your GIS (QGIS: Export > Save Features As); "
            "if it was copied or downloaded, the copy may be damaged"
        )
    return Problem(f"is not a {name} file: its contents are {what}", file=str(path), fix=fix)


def _sibling(path: Path, suffix: str) -> Path | None:
    """``x.shx`` or ``x.SHX`` beside ``x.shp``, as GDAL looks for them."""
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.exists():
            return candidate
    return None


def _missing_shapefile_part(path: Path) -> Problem | None:
    """A Shapefile is several files; GDAL's words for a missing one name a config option."""
    if _sibling(path, ".shx") is None:
        return Problem(
            f"the Shapefile's index {path.with_suffix('.shx').name} is missing beside it",
            file=str(path),
            fix="copy every part of the Shapefile together (.shp, .shx, .dbf, .prj, .cpg); "
            "or rebuild the index: ogr2ogr --config SHAPE_RESTORE_SHX YES fixed.shp " + path.name,
        )
    if _sibling(path, ".dbf") is None:
        return Problem(
            f"the Shapefile's attribute table {path.with_suffix('.dbf').name} is missing "
            "beside it (codes and names live there)",
            file=str(path),
            fix="copy the .dbf (and .prj, .cpg) that came with the .shp into the same folder",
        )
    return None


@contextmanager
def _gdal_warnings_silenced() -> Iterator[None]:
    """GDAL's read warnings ("bad application_id") are its words, not a planner's: a file
    that cannot be read is refused in a sentence, one that can is read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def unreadable(path: Path, exc: BaseException, layer: str | None = None) -> Problem:
    """GDAL's or Arrow's refusal as a sentence naming the file, what is wrong and the fix."""
    fmt = FORMATS.get(path.suffix.lower(), "")
    name = FORMAT_NAMES.get(fmt, "spatial")
    raw = " ".join(str(exc).split())
    low = raw.lower()
    again = f"export it again as {name} from your GIS and check that it opens in QGIS"
    if type(exc).__name__ == "DataLayerError" or "could not be opened" in low:
        reason = f"has no layer {layer!r} that GDAL can open"
        fix = "name one of the file's layers (ogrinfo lists them), or " + again
    elif any(
        word in low
        for word in ("malformed", "not a database", "magic bytes", "truncated", "unexpected end")
    ):
        reason = f"the {name} file is damaged (truncated or corrupt)"
        fix = again + "; a copy or download may have been cut short"
    elif "geojson" in low or fmt == "geojson":
        detail = raw.split(";", 1)[1].strip() if ";" in raw else ""
        reason = "is not valid GeoJSON" + (f" ({detail})" if detail else "")
        fix = "correct the JSON there, or " + again
    elif "not recognized" in low or "not recognised" in low:
        reason = f"GDAL does not recognise its contents as {name}"
        fix = again
    else:
        reason = f"cannot be read as {name} (GDAL/Arrow said: {raw[:200]})"
        fix = again
    return Problem(reason, file=str(path), layer=layer, fix=fix)


def read_layer(
    path: Path, layer: str | None = None, limits: InputLimits | None = None
) -> gpd.GeoDataFrame:
    """Read one layer as a GeoDataFrame in EPSG:4326 (or its declared CRS, unreprojected).

    Returns the frame with its CRS as declared (None when the file declares none); callers
    decide plausibility and reprojection with :func:`reproject_layer`.
    """
    limits = limits or InputLimits()
    check_file(path, limits)
    fmt = format_of(path)
    layer_name = layer or layer_from_stem(path)
    try:
        if fmt == "csv":
            return _read_csv(path, layer_name)
        if fmt == "parquet":
            frame, wkb, crs = _read_parquet_raw(path)
        else:
            frame, wkb, crs = _read_ogr_raw(path, layer if fmt == "gpkg" else None, layer_name)
    except DataRefused:
        raise
    except Exception as exc:  # pyogrio/pyarrow raise many types for corrupt files
        raise DataRefused(problems=[unreadable(path, exc, layer_name)]) from exc
    guard_refusal(wkb, limits, frame, path, layer_name)
    geoms = _parse_wkb(wkb, frame, path, layer_name)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, index=frame.index), crs=crs)


def _parse_wkb(wkb: np.ndarray, frame: pd.DataFrame, path: Path, layer: str) -> np.ndarray:
    """Shapely geometries from guarded WKB; what GEOS cannot build (a ring of 2 points) is named."""
    try:
        return np.asarray(shapely.from_wkb(wkb), dtype=object)
    except shapely.errors.GEOSException:
        parsed = np.asarray(shapely.from_wkb(wkb, on_invalid="ignore"), dtype=object)
    ids = _feature_ids(frame, layer)
    bad = [i for i, (g, b) in enumerate(zip(parsed, wkb, strict=True)) if g is None and b]
    raise DataRefused(
        problems=[
            Problem(
                f"geometry cannot be built: {_geos_reason(wkb[i])}",
                file=str(path),
                layer=layer,
                feature=ids[i],
                fix="redraw or remove this feature (a ring needs at least 4 points, "
                "the last equal to the first)",
            )
            for i in bad[:50]
        ]
    )


def _geos_reason(blob: bytes) -> str:
    try:
        shapely.from_wkb(blob)
    except shapely.errors.GEOSException as exc:
        return str(exc).split(":", 1)[-1].strip()
    return "invalid WKB"


def guard_refusal(
    wkb: np.ndarray | pa.Array | pa.ChunkedArray,
    limits: InputLimits,
    attributes: pd.DataFrame | pa.Table,
    path: Path,
    layer: str,
) -> None:
    """Run the hostile-input guard on a layer's WKB; refuse naming each bad feature."""
    bad = check_wkb(wkb, limits)
    if not bad:
        return
    if isinstance(attributes, pa.Table):
        keys = [c for c in _ID_COLUMNS if c in attributes.column_names][:1]
        attributes = attributes.select(keys).to_pandas()
    ids = _feature_ids(attributes, layer)
    raise DataRefused(
        problems=[
            Problem(
                reason,
                file=str(path),
                layer=layer,
                feature=ids[i],
                fix=_guard_fix(reason, limits),
            )
            for i, reason in bad[:50]
        ]
    )


def _guard_fix(reason: str, limits: InputLimits) -> str:
    """The fix for one guard refusal: what to change in the file, or which cap to raise."""
    if "vert" in reason:
        return (
            f"remove or simplify this feature (at most {limits.max_vertices_per_feature:,} "
            "vertices), or raise GRIDMAP_MAX_VERTICES_PER_FEATURE if it is genuine"
        )
    if "nested" in reason:
        return (
            f"remove or flatten this feature (at most {limits.max_nesting_depth} levels of "
            "nesting), or raise GRIDMAP_MAX_NESTING_DEPTH if it is genuine"
        )
    if "NaN" in reason:
        return "remove or correct this feature: coordinates must be finite numbers"
    return "remove this feature or re-export the file from a GIS (its WKB is corrupt)"


_ID_COLUMNS = ("code", "building_id", "report_id", "name")


def _feature_ids(frame: pd.DataFrame, layer: str) -> list[str]:
    for column in _ID_COLUMNS:
        if column in frame.columns:
            return [f"#{i} ({column}={v})" for i, v in enumerate(frame[column].tolist())]
    return [f"#{i}" for i in range(len(frame))]


def _read_ogr_raw(
    path: Path, layer: str | None, layer_name: str
) -> tuple[pd.DataFrame, np.ndarray, Any]:
    if layer is not None:
        with _gdal_warnings_silenced():
            available = [str(name) for name, _ in pyogrio.list_layers(path)]
        if layer not in available:
            raise DataRefused(
                problems=[
                    Problem(
                        f"layer {layer!r} is missing (the file has: {', '.join(available)})",
                        file=str(path),
                        layer=layer,
                        fix=f"add a layer named {layer!r} as the data contract requires",
                    )
                ]
            )
    shapefile = FORMATS.get(path.suffix.lower()) == "shapefile"
    # A Shapefile is read as Latin-1, which maps bytes to characters one to one: its strings
    # are then decoded here, where the encoding can be chosen from the bytes themselves.
    with _gdal_warnings_silenced():
        meta, _, wkb, field_data = pyogrio.raw.read(
            path, layer=layer, datetime_as_string=True, encoding="latin1" if shapefile else None
        )
    names = [str(name) for name in meta["fields"]]
    if shapefile:
        names, field_data = decode_shapefile_text(path, layer_name, names, field_data)
        names = _untruncate(names)
    columns = {name: pd.Series(values) for name, values in zip(names, field_data, strict=True)}
    frame = pd.DataFrame(columns)
    frame = frame.reset_index(drop=True)
    if wkb is None:
        raise DataRefused(
            problems=[
                Problem(
                    "the layer has no geometry",
                    file=str(path),
                    layer=layer_name,
                    fix="write the layer with its geometry column",
                )
            ]
        )
    return frame, np.asarray(wkb, dtype=object), meta["crs"]


def _read_parquet_raw(path: Path) -> tuple[pd.DataFrame, np.ndarray, Any]:
    table = pq.read_table(path)
    geo_meta = json.loads((table.schema.metadata or {}).get(b"geo", b"{}"))
    column = geo_meta.get("primary_column", "geometry")
    if column not in table.column_names:
        raise DataRefused(
            problems=[
                Problem(
                    "no GeoParquet geometry column",
                    file=str(path),
                    fix="write the file with GeoDataFrame.to_parquet (GeoParquet 1.x, WKB)",
                )
            ]
        )
    info = geo_meta.get("columns", {}).get(column, {})
    if info.get("encoding", "WKB").upper() != "WKB":
        # Native GeoArrow encodings have no nesting to attack; let geopandas decode them.
        gdf = gpd.read_parquet(path)
        wkb = shapely.to_wkb(gdf.geometry.values)
        return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), wkb, gdf.crs
    crs: Any = info.get("crs", "OGC:CRS84")
    if crs is not None and not isinstance(crs, str):
        crs = CRS.from_json_dict(crs)
    wkb = np.asarray(table.column(column).to_numpy(zero_copy_only=False), dtype=object)
    frame = table.drop_columns([column]).to_pandas()
    return frame, wkb, crs


# --- text encodings ----------------------------------------------------------------------------

#: Strict UTF-8 first (every UTF-8 file is read right), then GB18030, a superset of GBK and
#: GB2312: what Excel and ArcGIS on Chinese Windows write. Latin-1 would "decode" anything.
DETECTED_ENCODINGS = ("utf-8", "gb18030")


def _codec_of_cpg(text: str) -> str | None:
    """The Python codec a ``.cpg`` names (``UTF-8``, ``GBK``, ``936``, ``ANSI 1252``...)."""
    word = text.strip().upper().removeprefix("ANSI").strip()
    if word in ("65001", "UTF8"):
        word = "UTF-8"
    if word in ("GBK", "GB2312", "936", "CP936", "EUC-CN", "54936"):
        return "gb18030"  # the superset: a GBK .cpg over GB18030 text is common
    for candidate in (word, f"cp{word}" if word.isdigit() else word, word.replace("_", "-")):
        try:
            return codecs.lookup(candidate).name
        except LookupError:
            continue
    return None


def decode_shapefile_text(
    path: Path, layer: str, names: list[str], field_data: list[np.ndarray]
) -> tuple[list[str], list[np.ndarray]]:
    """Field names and string values of a Shapefile read as Latin-1, decoded properly.

    The ``.cpg`` beside the file names the encoding; without one (or with one Python does not
    know), the bytes decide: strict UTF-8, else GB18030. Text that fits neither is refused,
    naming the feature and the column.
    """
    cpg = _sibling(path, ".cpg")
    declared = _codec_of_cpg(cpg.read_bytes().decode("ascii", "ignore")) if cpg else None
    text_columns = [
        i for i, values in enumerate(field_data) if values.dtype == object and len(values)
    ]
    chunks = [n.encode("latin1") for n in names]
    for i in text_columns:
        chunks.extend(v.encode("latin1") for v in field_data[i] if isinstance(v, str))
    # A newline can end no multi-byte sequence of UTF-8 or GB18030: joining keeps each value
    # whole, so one decode of the joined bytes tells whether every value decodes.
    blob = b"\n".join(chunks)
    candidates = (declared,) if declared else DETECTED_ENCODINGS
    encoding = next((c for c in candidates if _decodes(blob, c)), None)
    if encoding is None:
        raise DataRefused(problems=[_undecodable(path, layer, names, field_data, declared, cpg)])

    def decode(value: object) -> object:
        return value.encode("latin1").decode(encoding) if isinstance(value, str) else value

    decoded = list(field_data)
    for i in text_columns:
        decoded[i] = np.array([decode(v) for v in field_data[i]], dtype=object)
    return [str(decode(n)) for n in names], decoded


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _undecodable(
    path: Path,
    layer: str,
    names: list[str],
    field_data: list[np.ndarray],
    declared: str | None,
    cpg: Path | None,
) -> Problem:
    tried = [declared] if declared else list(DETECTED_ENCODINGS)
    where = "a field name"
    feature = None
    for name, values in zip(names, field_data, strict=True):
        bad = [
            i
            for i, v in enumerate(values)
            if isinstance(v, str) and not any(_decodes(v.encode("latin1"), c) for c in tried)
        ]
        if bad:
            where, feature = f"column {name!r}", f"#{bad[0]}"
            break
    if cpg is not None and declared:
        return Problem(
            f"the text of {where} is not {declared}, the encoding {cpg.name} names",
            file=str(path),
            layer=layer,
            feature=feature,
            fix=f"correct {cpg.name} (GBK for data from Chinese Windows, UTF-8 otherwise), "
            "or delete it to let gridmap tell UTF-8 from GBK by the bytes",
        )
    return Problem(
        f"the text of {where} is neither UTF-8 nor GBK/GB18030",
        file=str(path),
        layer=layer,
        feature=feature,
        fix=f"write a {path.with_suffix('.cpg').name} file beside it naming the encoding "
        "(e.g. BIG5 or 1252), or export the Shapefile again as UTF-8",
    )


def _untruncate(names: list[str]) -> list[str]:
    """``community_`` back to ``community_code``: Shapefile field names stop at 10 characters."""
    present = set(names)
    out = []
    for name in names:
        full = [
            c
            for c in CONTRACT_COLUMNS
            if len(c) > _SHAPEFILE_FIELD_CHARS
            and c[:_SHAPEFILE_FIELD_CHARS].lower() == name.lower()
            and c not in present
        ]
        out.append(full[0] if len(full) == 1 else name)
    return out


def read_csv_bytes(path: Path, layer: str | None = None) -> tuple[bytes, str]:
    """A CSV's bytes as UTF-8 without a BOM, and the encoding they came in.

    Strict UTF-8 (with or without a BOM) first, then GB18030, a superset of GBK: the
    "CSV" that Excel saves on Chinese Windows. UTF-16 ("Unicode text") and bytes that fit
    neither are refused, naming the line.
    """
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataRefused(
            problems=[
                Problem(
                    'the file is UTF-16 text (Excel\'s "Unicode text"), not CSV',
                    file=str(path),
                    layer=layer,
                    fix="save it from Excel as CSV UTF-8 (逗号分隔) instead",
                )
            ]
        )
    body = data.removeprefix(codecs.BOM_UTF8)
    if _decodes(body, "utf-8"):
        return body, "UTF-8 with BOM" if len(body) < len(data) else "UTF-8"
    try:
        return body.decode("gb18030").encode("utf-8"), "GB18030"
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise DataRefused(
            problems=[
                Problem(
                    f"line {line} is neither UTF-8 nor GBK/GB18030 text "
                    f"(byte 0x{body[exc.start]:02x} at offset {exc.start:,})",
                    file=str(path),
                    layer=layer,
                    fix="save it as CSV UTF-8 (Excel: File > Save As > CSV UTF-8)",
                )
            ]
        ) from None


def _read_csv(path: Path, layer: str) -> gpd.GeoDataFrame:
    data, _ = read_csv_bytes(path, layer)
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in ("lon", "lat") if c not in frame.columns]
    if missing:
        raise DataRefused(
            problems=[
                Problem(
                    f"CSV has no {' / '.join(missing)} column",
                    file=str(path),
                    layer=layer,
                    fix="a CSV of points needs numeric `lon` and `lat` columns (EPSG:4326)",
                )
            ]
        )
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~(np.isfinite(lon) & np.isfinite(lat)))
    if len(bad):
        ids = _feature_ids(frame, layer)
        raise DataRefused(
            problems=[
                Problem(
                    "lon/lat not finite numbers "
                    f"({frame['lon'].iat[i]!r}, {frame['lat'].iat[i]!r})",
                    file=str(path),
                    layer=layer,
                    feature=ids[i],
                    fix="give decimal degrees in the lon and lat columns",
                )
                for i in bad[:50]
            ]
        )
    frame = frame.drop(columns=["lon", "lat"])
    return gpd.GeoDataFrame(frame, geometry=shapely.points(lon, lat), crs=WGS84)


# --- the hostile-input guard -------------------------------------------------------------


class _Hostile(Exception):
    pass


_POINT_WKB_LE = 21


def check_wkb(
    wkb: np.ndarray | pa.Array | pa.ChunkedArray, limits: InputLimits
) -> list[tuple[int, str]]:
    """(row, reason) for every WKB value that is malformed, too big, too deep or not finite.

    Takes an object array of bytes or an Arrow binary column (GeoParquet read by pyarrow);
    a layer of plain little-endian 2D points is checked in bulk, without Python objects.
    """
    if len(wkb) == 0:
        return []
    if isinstance(wkb, pa.ChunkedArray | pa.Array):
        points = _arrow_point_records(wkb)
        if points is not None:
            return _check_point_records(points, limits)
        wkb = np.asarray(wkb.to_numpy(zero_copy_only=False), dtype=object)
    lengths = np.fromiter((len(b) if b is not None else -1 for b in wkb), int, len(wkb))
    if (lengths == _POINT_WKB_LE).all():
        records = np.frombuffer(b"".join(wkb), dtype=np.uint8).reshape(-1, _POINT_WKB_LE)
        return _check_point_records(records, limits)
    problems: list[tuple[int, str]] = []
    for i, blob in enumerate(wkb):
        if blob is None:
            continue  # a missing geometry is reported by validation, with its layer's rule
        reason = _check_one(bytes(blob), limits)
        if reason is not None:
            problems.append((i, reason))
    return problems


def _check_one(blob: bytes, limits: InputLimits) -> str | None:
    """Why one WKB value is refused, or None."""
    if len(blob) > limits.max_vertices_per_feature * 32 + 1024:
        return (
            f"geometry of {len(blob):,} bytes is over the vertex cap of "
            f"{limits.max_vertices_per_feature:,}"
        )
    try:
        end, vertices = _walk(blob, 0, 1, limits)
        if end != len(blob):
            raise _Hostile("trailing bytes after the geometry (malformed WKB)")
        if vertices > limits.max_vertices_per_feature:
            raise _Hostile(
                f"{vertices:,} vertices, over the cap of {limits.max_vertices_per_feature:,}"
            )
    except _Hostile as exc:
        return str(exc)
    except (struct.error, ValueError, IndexError):
        return "malformed WKB (truncated or corrupt geometry)"
    return None


def _arrow_point_records(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """The (n, 21) byte records of an Arrow column of 21-byte WKB values, else None."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        return None
    if arr.null_count:
        return None
    n = len(arr)
    offset_type = np.int32 if pa.types.is_binary(arr.type) else np.int64
    offsets = np.frombuffer(arr.buffers()[1], dtype=offset_type)[arr.offset : arr.offset + n + 1]
    if not (np.diff(offsets) == _POINT_WKB_LE).all():
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    return data[start : start + _POINT_WKB_LE * n].reshape(n, _POINT_WKB_LE)


def _check_point_records(records: np.ndarray, limits: InputLimits) -> list[tuple[int, str]]:
    """21-byte records checked in bulk as little-endian 2D points with finite x and y.

    A record that is not one (a big-endian point, another type) is walked on its own.
    """
    header_ok = (records[:, 0] == 1) & (
        np.ascontiguousarray(records[:, 1:5]).view("<u4")[:, 0] == 1
    )
    finite = np.isfinite(np.ascontiguousarray(records[:, 5:]).view("<f8")).all(axis=1)
    problems: list[tuple[int, str]] = []
    for row in np.flatnonzero(~(header_ok & finite)).tolist():
        if header_ok[row]:
            problems.append((row, "NaN or infinite coordinate"))
            continue
        reason = _check_one(records[row].tobytes(), limits)
        if reason is not None:
            problems.append((row, reason))
    return problems


def _walk(buf: bytes, offset: int, depth: int, limits: InputLimits) -> tuple[int, int]:
    """Walk one WKB geometry without parsing it into GEOS; returns (end offset, vertices)."""
    if depth > limits.max_nesting_depth:
        raise _Hostile(f"geometry nested deeper than {limits.max_nesting_depth} levels")
    order = buf[offset]
    if order not in (0, 1):
        raise _Hostile("malformed WKB (bad byte order)")
    endian = "<" if order == 1 else ">"
    (code,) = struct.unpack_from(endian + "I", buf, offset + 1)
    offset += 5
    has_z = bool(code & 0x80000000)
    has_m = bool(code & 0x40000000)
    if code & 0x20000000:  # EWKB SRID
        offset += 4
    base = code & 0x0FFFFFFF
    iso_dims, base = divmod(base, 1000)
    has_z = has_z or iso_dims in (1, 3)
    has_m = has_m or iso_dims in (2, 3)
    dims = 2 + has_z + has_m

    def coords(count: int, at: int) -> int:
        values = np.frombuffer(buf, dtype=endian + "f8", count=count * dims, offset=at)
        if not np.isfinite(values).all():
            raise _Hostile("NaN or infinite coordinate")
        return at + 8 * count * dims

    if base == 1:
        return coords(1, offset), 1
    if base == 2:
        (n,) = struct.unpack_from(endian + "I", buf, offset)
        return coords(n, offset + 4), n
    if base == 3:
        (rings,) = struct.unpack_from(endian + "I", buf, offset)
        offset += 4
        total = 0
        for _ in range(rings):
            (n,) = struct.unpack_from(endian + "I", buf, offset)
            offset = coords(n, offset + 4)
            total += n
        return offset, total
    if base in (4, 5, 6, 7):
        (parts,) = struct.unpack_from(endian + "I", buf, offset)
        offset += 4
        total = 0
        for _ in range(parts):
            offset, n = _walk(buf, offset, depth + 1, limits)
            total += n
            if total > limits.max_vertices_per_feature:
                raise _Hostile(f"over {limits.max_vertices_per_feature:,} vertices in one feature")
        return offset, total
    raise _Hostile(f"unsupported WKB geometry type {code}")


# --- CRS ---------------------------------------------------------------------------------


def lonlat_bounds(bounds: npt.ArrayLike) -> bool:
    """Bounds (minx, miny, maxx, maxy) within longitude/latitude ranges."""
    xmin, ymin, xmax, ymax = np.asarray(bounds, dtype=np.float64)
    return bool(-180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90)


def plausible_lonlat(gdf: gpd.GeoDataFrame) -> bool:
    """Every coordinate within longitude/latitude ranges."""
    return True if gdf.empty else lonlat_bounds(gdf.total_bounds)


def looks_swapped(gdf: gpd.GeoDataFrame) -> bool:
    """Latitude in x and longitude in y: y beyond ±90 while x fits a latitude."""
    if gdf.empty:
        return False
    xmin, ymin, xmax, ymax = gdf.total_bounds
    return bool(-90 <= xmin <= xmax <= 90 and (abs(ymin) > 90 or abs(ymax) > 90) and ymax <= 180)


def _implausible_rows(gdf: gpd.GeoDataFrame, swapped: bool) -> np.ndarray:
    """Rows whose bounds are not lon/lat (or, with ``swapped``, look like lat/lon)."""
    bounds = shapely.bounds(gdf.geometry.to_numpy())
    with np.errstate(invalid="ignore"):
        xmin, ymin, xmax, ymax = bounds.T
        lonlat = (xmin >= -180) & (xmax <= 180) & (ymin >= -90) & (ymax <= 90)
        if swapped:
            bad = (xmin >= -90) & (xmax <= 90) & ((np.abs(ymin) > 90) | (np.abs(ymax) > 90))
            return np.flatnonzero(bad & (ymax <= 180))
    return np.flatnonzero(~lonlat & ~np.isnan(xmin))


def _first_bad_feature(gdf: gpd.GeoDataFrame, layer: str, rows: np.ndarray) -> str | None:
    if len(rows) == 0:
        return None
    label = _feature_ids(pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), layer)[rows[0]]
    more = f" and {len(rows) - 1:,} more" if len(rows) > 1 else ""
    return f"{label}{more}"


def degrees_in_projected_crs(
    bounds: npt.ArrayLike, declared: CRS, file: str, layer: str | None
) -> Problem:
    """Lon/lat numbers labelled with a projected CRS: read as metres they land near (0, 0)."""
    xmin, ymin, xmax, ymax = (round(float(v), 6) for v in np.asarray(bounds, dtype=float))
    code = declared.to_string()
    unit = declared.axis_info[0].unit_name if declared.axis_info else "metre"
    return Problem(
        f"coordinates ({xmin}, {ymin}, {xmax}, {ymax}) are longitude/latitude degrees, but "
        f"the file declares {code} ({declared.name}), a projected CRS in {unit}s",
        file=file,
        layer=layer,
        fix="declare the CRS the numbers are in: EPSG:4326 (or EPSG:4490, CGCS2000) for "
        f"degrees, e.g. ogr2ogr -a_srs EPSG:4326 fixed.gpkg {Path(file).name}; "
        f"or reproject the data to {code} before labelling it so",
    )


def reproject_layer(gdf: gpd.GeoDataFrame, *, file: str, layer: str) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326; a frame without CRS must already be plausible lon/lat.

    A file that declares lon/lat but holds metres (GeoJSON without a ``crs`` member is
    EPSG:4326 by definition, whatever its numbers) is refused too: otherwise its features
    would surface later as absurd gaps and overlaps instead of as a CRS mistake. So is the
    reverse, degrees labelled with a projected CRS (EPSG:3857, a Gauss-Krüger zone): read
    as metres, a district would land a few hundred metres from (0°, 0°).
    """
    declared = gdf.crs
    if declared is not None and declared.is_projected and not gdf.empty and plausible_lonlat(gdf):
        raise DataRefused(
            problems=[degrees_in_projected_crs(gdf.total_bounds, declared, file, layer)]
        )
    out = gdf if declared is None else to_wgs84(gdf)
    bounds = tuple(round(float(v), 3) for v in out.total_bounds) if not out.empty else ()
    if looks_swapped(out):
        raise DataRefused(
            problems=[
                Problem(
                    "coordinates look like lat/lon swapped (x within ±90, y beyond ±90): "
                    f"bounds {bounds}",
                    file=file,
                    layer=layer,
                    feature=_first_bad_feature(out, layer, _implausible_rows(out, True)),
                    fix="write x = longitude and y = latitude (axis order lon, lat)"
                    + ("" if declared is not None else ", or declare the CRS"),
                )
            ]
        )
    if not plausible_lonlat(out):
        if declared is None:
            reason = f"no CRS declared and coordinates {bounds} are not longitude/latitude"
            fix = "declare the file's CRS (e.g. EPSG:32651 for UTM 51N)"
        elif file.lower().endswith(".csv"):
            reason = f"lon/lat out of range: bounds {bounds}"
            fix = "give decimal degrees, longitude in `lon` and latitude in `lat` (swapped?)"
        else:
            reason = (
                f"coordinates {bounds} are not longitude/latitude after reading them as "
                f"{declared.to_string()}"
            )
            fix = (
                "declare the CRS the coordinates are in (a GeoJSON without a `crs` member "
                "means EPSG:4326; projected data needs e.g. EPSG:32651)"
            )
        raise DataRefused(
            problems=[
                Problem(
                    reason,
                    file=file,
                    layer=layer,
                    feature=_first_bad_feature(out, layer, _implausible_rows(out, False)),
                    fix=fix,
                )
            ]
        )
    return out.set_crs(WGS84) if declared is None else out


def from_coordsys(gdf: gpd.GeoDataFrame, coordsys: Coordsys) -> tuple[gpd.GeoDataFrame, int]:
    """A lon/lat layer drawn on AMap (GCJ-02) or Baidu (BD-09) in WGS 84, vertex by vertex.

    Returns the layer and how many vertices moved (0 for WGS 84 and CGCS2000, unchanged).
    """
    if not coordsys.is_offset or gdf.empty:
        return gdf, 0
    geoms = gdf.geometry.to_numpy()
    converted = coordsys.geometries_to_wgs84(geoms)
    vertices = int(shapely.get_num_coordinates(geoms).sum())
    return gdf.set_geometry(gpd.GeoSeries(converted, index=gdf.index, crs=gdf.crs)), vertices


def conversion_note(coordsys: Coordsys, vertices: int) -> str | None:
    """What a summary says about a conversion (None when nothing was converted)."""
    if not coordsys.is_offset:
        return None
    return f"converted from {coordsys.label} to WGS 84 before validation ({vertices:,} vertices)"


# --- writing -----------------------------------------------------------------------------


def write_csv(table: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write a table as CSV in UTF-8 with a byte-order mark (Arrow tables by Arrow's writer).

    Excel opens a CSV without the mark in the local code page (GBK on Chinese Windows) and
    garbles UTF-8 Chinese text; with it, Excel reads UTF-8.
    """
    import pyarrow.csv as pacsv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(codecs.BOM_UTF8)
        if isinstance(table, pa.Table):
            pacsv.write_csv(table, handle)
        else:
            table.to_csv(handle, index=False, encoding="utf-8")


def refuse_shapefile_output(path: Path, layer: str | None = None) -> None:
    """gridmap reads Shapefiles but never writes one: it would cut ``community_code``."""
    if format_of(path) == "shapefile":
        raise DataRefused(
            problems=[
                Problem(
                    "gridmap does not write Shapefiles: their 10-character field names would "
                    "cut community_code and nearest_grid_code",
                    file=str(path),
                    layer=layer,
                    fix="write .gpkg (QGIS and ArcGIS open it), .geojson, .parquet or .csv",
                )
            ]
        )


def write_layer(gdf: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    """Write one layer; GeoPackages gain a layer, other formats get one file per layer."""
    refuse_shapefile_output(path, layer)
    fmt = format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "gpkg":
        os.environ.setdefault("OGR_CURRENT_DATE", FIXED_GPKG_DATE)
        pyogrio.write_dataframe(gdf, path, layer=layer, driver="GPKG")
    elif fmt == "geojson":
        pyogrio.write_dataframe(gdf, path, driver="GeoJSON", layer=layer)
    elif fmt == "parquet":
        gdf.to_parquet(path, index=False, schema_version="1.0.0")
    else:
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        if not (gdf.geom_type == "Point").all():
            raise DataRefused(
                problems=[
                    Problem(
                        "CSV holds points only",
                        file=str(path),
                        layer=layer,
                        fix="write polygons and lines as .gpkg, .geojson or .parquet",
                    )
                ]
            )
        frame["lon"] = gdf.geometry.x.to_numpy()
        frame["lat"] = gdf.geometry.y.to_numpy()
        write_csv(frame, path)


def layer_paths(out: Path, layers: Iterable[str]) -> dict[str, Path]:
    """Where each layer goes: all in one GeoPackage, else ``<stem>_<layer><suffix>`` beside it."""
    if out.suffix.lower() == ".gpkg":
        return dict.fromkeys(layers, out)
    if out.suffix == "":
        return {layer: out / f"{layer}.geojson" for layer in layers}
    return {layer: out.with_name(f"{out.stem}_{layer}{out.suffix}") for layer in layers}


def arrow_table(gdf: gpd.GeoDataFrame) -> pa.Table:
    """A GeoDataFrame as an Arrow table with WKB geometry (for fast Parquet writes)."""
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.append_column("geometry", pa.array(shapely.to_wkb(gdf.geometry.values)))


# --- points files (``gridmap assign``) ------------------------------------------------------


def point_xy(gdf: gpd.GeoDataFrame, what: str) -> tuple[FloatArray, FloatArray]:
    """Lon/lat of a Point layer already in EPSG:4326; other types or missing ones refused."""
    geoms = gdf.geometry.to_numpy()
    type_ids = shapely.get_type_id(geoms)
    bad = np.flatnonzero(type_ids != 0)
    if len(bad):
        i = int(bad[0])
        kind = "no geometry" if geoms[i] is None else shapely.get_type_id(geoms[i])
        raise InvalidGeometry(
            f"{what} row {i} is not a Point ({kind}); {len(bad)} such rows",
            field=f"row {i}",
            fix="assign takes point layers (use building entrances or centroids)",
        )
    return shapely.get_x(geoms), shapely.get_y(geoms)


#: The extensions ``gridmap assign`` reads and writes, as its refusals list them.
_POINT_FILE_SUFFIXES = (*sorted(s for s in FORMATS if s != ".csv"), ".csv")


def _format_named(path: Path, what: str) -> str:
    """The contract format of a file ``gridmap assign`` reads or writes, refused as ``what``."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"cannot tell the format of {path.name!r} from its extension",
            field=what,
            fix=f"use one of {', '.join(_POINT_FILE_SUFFIXES)}",
        )
    return fmt


def check_points_output(path: Path, layer: str | None = None) -> None:
    """Refuse an output ``gridmap assign`` cannot write, before anything is read."""
    _format_named(path, "out")
    refuse_shapefile_output(path, layer)


def _pick_layer(
    path: Path, preferred: tuple[str, ...], layer: str | None, limits: InputLimits
) -> str | None:
    """GeoPackage layer: the one named, the only one, or the first preferred name present."""
    if layer is not None or path.suffix.lower() != ".gpkg":
        return layer
    names = list_layers(path, limits)
    if len(names) == 1:
        return names[0]
    for name in preferred:
        if name in names:
            return name
    raise InvalidInput(
        f"{path.name} has layers {names}; cannot tell which to use",
        field="layer",
        fix=f"name the layer (one of {names})",
    )


def _read_layer_wgs84(
    path: Path, preferred: tuple[str, ...], layer: str | None, limits: InputLimits
) -> gpd.GeoDataFrame:
    """One layer through ``geo.io``: size, nesting, vertex, encoding and CRS guards, EPSG:4326."""
    name = _pick_layer(path, preferred, layer, limits)
    frame = read_layer(path, name, limits)
    return reproject_layer(frame, file=str(path), layer=name or layer_from_stem(path))


def read_grids_file(path: Path, layer: str | None, limits: InputLimits) -> gpd.GeoDataFrame:
    """A grids layer for ``gridmap assign``, in EPSG:4326, through every input guard."""
    if _format_named(path, "grids") == "csv":
        raise InvalidInput("grids must be polygons, not a CSV", field="grids")
    if not path.exists():
        raise InvalidInput(f"{path} does not exist", field="grids")
    return _read_layer_wgs84(path, ("grids",), layer, limits)


@dataclass
class PointsFile:
    """Points as read: attribute table + lon/lat in EPSG:4326, and how to write them back."""

    x: FloatArray
    y: FloatArray
    frame: pd.DataFrame | None = None  # attributes (csv) or GeoDataFrame (spatial)
    table: Any = None  # pyarrow.Table when read from GeoParquet (geometry kept as WKB)
    geo_meta: bytes | None = None


def read_points_file(path: Path, layer: str | None, limits: InputLimits) -> PointsFile:
    """Points for ``gridmap assign``: CSV, GeoParquet (geometry kept as is) or any layer."""
    if not path.exists():
        raise InvalidInput(f"{path} does not exist", field="points")
    fmt = _format_named(path, "points")
    if fmt == "csv":
        return _read_points_csv(path)
    if fmt == "parquet":
        return _read_points_parquet(path, limits)
    gdf = _read_layer_wgs84(path, ("buildings", "reports"), layer, limits)
    x, y = point_xy(gdf, "points")
    return PointsFile(x, y, frame=gdf)


def _read_points_csv(path: Path) -> PointsFile:
    """CSV with ``lon``/``lat`` in EPSG:4326; every other column kept as text (leading zeros).

    UTF-8 (with or without BOM), GBK and GB18030 are told apart by ``geo.io``.
    """
    data, _ = read_csv_bytes(path, "points")
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, engine="pyarrow")
    missing = [c for c in ("lon", "lat") if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{path.name} has no {' or '.join(missing)} column",
            field=missing[0],
            fix="a points CSV needs 'lon' and 'lat' columns in EPSG:4326",
        )
    x = pd.to_numeric(frame["lon"].str.strip(), errors="coerce").to_numpy(
        np.float64, na_value=np.nan
    )
    y = pd.to_numeric(frame["lat"].str.strip(), errors="coerce").to_numpy(
        np.float64, na_value=np.nan
    )
    return PointsFile(x, y, frame=frame)


def _geoparquet_meta(schema: Any) -> tuple[dict[str, Any], bytes | None]:
    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        raise InvalidInput(
            "parquet file has no GeoParquet 'geo' metadata", field="points", fix="write GeoParquet"
        )
    return json.loads(raw), raw


def _read_points_parquet(path: Path, limits: InputLimits) -> PointsFile:
    """GeoParquet points via pyarrow: x/y straight from the WKB bytes, geometry kept as is.

    The WKB goes through ``geo.io.check_wkb`` first (in bulk over Arrow's buffers for plain
    points), as every geometry gridmap reads does.
    """
    check_file(path, limits)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for damaged files
        raise DataRefused(problems=[unreadable(path, exc, "points")]) from exc
    meta, raw = _geoparquet_meta(table.schema)
    column = meta.get("primary_column", "geometry")
    col_meta = meta.get("columns", {}).get(column, {})
    # GeoParquet: a missing "crs" means OGC:CRS84; an explicit null means unknown.
    crs_json = col_meta.get("crs", "OGC:CRS84")
    encoding = col_meta.get("encoding", "WKB")
    if encoding.upper() == "WKB":
        guard_refusal(table.column(column), limits, table.drop_columns([column]), path, "points")
    x, y = _xy_from_arrow(table.column(column), encoding)
    keep_geometry = True
    bounds = (np.min(x), np.min(y), np.max(x), np.max(y)) if len(x) else None
    if crs_json is None:
        if bounds is not None and not lonlat_bounds(bounds):
            raise InvalidInput(
                "points declare no CRS and are not longitude/latitude", field="points"
            )
    else:
        crs = CRS.from_user_input(crs_json)
        if crs.is_projected and bounds is not None and lonlat_bounds(bounds):
            raise DataRefused(problems=[degrees_in_projected_crs(bounds, crs, str(path), "points")])
        if not is_wgs84_like(crs):
            to_wgs = Transformer.from_crs(crs, WGS84, always_xy=True)
            x, y = (np.asarray(v, dtype=np.float64) for v in to_wgs.transform(x, y))
            keep_geometry = False
    if not keep_geometry:
        table = table.drop_columns([column])
        return PointsFile(x, y, frame=table.to_pandas())
    return PointsFile(x, y, table=table, geo_meta=raw)


def _xy_from_arrow(column: Any, encoding: str) -> tuple[FloatArray, FloatArray]:
    """Coordinates of a Point column: 21-byte little-endian WKB decoded by numpy."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if encoding.lower() == "point" or pa.types.is_struct(arr.type):
        x = arr.field("x").to_numpy(zero_copy_only=False).astype(np.float64)
        y = arr.field("y").to_numpy(zero_copy_only=False).astype(np.float64)
        if arr.null_count:
            valid = np.asarray(arr.is_valid())
            x[~valid] = np.nan
            y[~valid] = np.nan
        return x, y
    if (
        n
        and arr.null_count == 0
        and (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type))
    ):
        off_type = np.int32 if pa.types.is_binary(arr.type) else np.int64
        offsets = np.frombuffer(arr.buffers()[1], dtype=off_type)[arr.offset : arr.offset + n + 1]
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        if (np.diff(offsets) == 21).all():
            rec = data[int(offsets[0]) : int(offsets[0]) + 21 * n].reshape(n, 21)
            wkb_type = np.ascontiguousarray(rec[:, 1:5]).view("<u4").ravel()
            if (rec[:, 0] == 1).all() and (wkb_type == 1).all():
                x = np.ascontiguousarray(rec[:, 5:13]).view("<f8").ravel()
                y = np.ascontiguousarray(rec[:, 13:21]).view("<f8").ravel()
                return x, y
    geoms = shapely.from_wkb(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object))
    frame = gpd.GeoDataFrame(geometry=geoms)
    return point_xy(frame, "points")


def write_points_file(
    points: PointsFile, cols: dict[str, np.ndarray], out_path: Path, layer: str | None
) -> None:
    """Every input row with all its columns plus ``cols``; geometry in EPSG:4326 (a GeoParquet
    read in lon/lat keeps its geometry bytes untouched)."""
    fmt = _format_named(out_path, "out")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet" and points.table is not None:
        _write_parquet_passthrough(points, cols, out_path)
        return
    if points.table is not None:
        frame = points.table.drop_columns(
            [json.loads(points.geo_meta or b"{}").get("primary_column", "geometry")]
        ).to_pandas()
    else:
        frame = points.frame
    assert frame is not None
    if isinstance(frame, gpd.GeoDataFrame):
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    frame = frame.copy()
    for name, values in cols.items():
        frame[name] = values
    if fmt == "csv":
        if "lon" not in frame.columns:
            frame["lon"] = points.x
            frame["lat"] = points.y
        write_csv(pa.Table.from_pandas(frame, preserve_index=False), out_path)
        return
    gdf = gpd.GeoDataFrame(frame, geometry=shapely.points(points.x, points.y), crs=WGS84)
    if fmt == "parquet":
        gdf.to_parquet(out_path, index=False)
        return
    if out_path.exists():
        out_path.unlink()
    gdf.to_file(out_path, layer=layer or out_path.stem, engine="pyogrio")


def _write_parquet_passthrough(
    points: PointsFile, cols: dict[str, np.ndarray], out_path: Path
) -> None:
    """Append the result columns to the arrow table; geometry bytes are written untouched."""
    table = points.table
    for name, values in cols.items():
        if values.dtype == object:
            arrow = pa.array(values, type=pa.string(), from_pandas=True)
        else:
            arrow = pa.array(values, from_pandas=name != "distance_m")
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arrow)
        else:
            table = table.append_column(name, arrow)
    pq.write_table(table, out_path)
