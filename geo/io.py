"""Reading and writing the interchange contract's layers, refusing hostile input early.

Geometries arrive as WKB and are walked here *before* shapely parses them: GEOS 3.14
crashes on deeply nested collections, and NaN or infinite coordinates poison every
predicate downstream. Formats follow the file extension.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS

from geo.crs import WGS84, to_wgs84
from geo.errors import DataRefused, Problem

#: Layer names of the contract, in load order (parents before children).
LAYERS = ("district", "streets", "communities", "grids", "buildings", "reports", "roads")

FORMATS = {
    ".gpkg": "gpkg",
    ".geojson": "geojson",
    ".json": "geojson",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
    ".csv": "csv",
}


#: GDAL stamps the write time into GeoPackages; a fixed date keeps exports byte-identical.
FIXED_GPKG_DATE = "2000-01-01T00:00:00Z"


@dataclass(frozen=True)
class InputLimits:
    """Caps applied to raw input before any geometry is parsed."""

    max_file_bytes: int = 2 * 1024**3
    max_vertices_per_feature: int = 1_000_000
    max_nesting_depth: int = 8


def format_of(path: Path) -> str:
    """The contract format of ``path`` by extension, or a refusal naming the supported ones."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataRefused(
            problems=[
                Problem(
                    f"unsupported format {path.suffix or '(no extension)'!r}",
                    file=str(path),
                    fix="use GeoPackage (.gpkg), GeoJSON (.geojson), GeoParquet (.parquet) "
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
    _check_file(path, limits or InputLimits())
    fmt = format_of(path)
    if fmt != "gpkg":
        return [layer_from_stem(path)]
    try:
        return [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError, OSError, ... for corrupt files
        raise DataRefused(
            problems=[
                Problem(
                    f"cannot read: {exc}",
                    file=str(path),
                    fix="check that the file is a valid GeoPackage (open it in QGIS or ogrinfo)",
                )
            ]
        ) from exc


def layer_from_stem(path: Path) -> str:
    """``grids.geojson`` or ``shahekou_grids.geojson`` hold the ``grids`` layer."""
    stem = path.name.split(".")[0].lower()
    for layer in LAYERS:
        if stem == layer or stem.endswith(("_" + layer, "-" + layer)):
            return layer
    return stem


def _check_file(path: Path, limits: InputLimits) -> None:
    if not path.exists():
        raise DataRefused(
            problems=[Problem("file not found", file=str(path), fix="check the path")]
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


def read_layer(
    path: Path, layer: str | None = None, limits: InputLimits | None = None
) -> gpd.GeoDataFrame:
    """Read one layer as a GeoDataFrame in EPSG:4326 (or its declared CRS, unreprojected).

    Returns the frame with its CRS as declared (None when the file declares none); callers
    decide plausibility and reprojection with :func:`reproject_layer`.
    """
    limits = limits or InputLimits()
    _check_file(path, limits)
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
        raise DataRefused(
            problems=[
                Problem(
                    f"cannot read: {exc}",
                    file=str(path),
                    layer=layer_name,
                    fix="check that the file is a valid " + fmt,
                )
            ]
        ) from exc
    bad = check_wkb(wkb, limits)
    if bad:
        ids = _feature_ids(frame, layer_name)
        raise DataRefused(
            problems=[
                Problem(
                    reason,
                    file=str(path),
                    layer=layer_name,
                    feature=ids[i],
                    fix=_guard_fix(reason, limits),
                )
                for i, reason in bad[:50]
            ]
        )
    geoms = shapely.from_wkb(wkb)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, index=frame.index), crs=crs)


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


def _feature_ids(frame: pd.DataFrame, layer: str) -> list[str]:
    for column in ("code", "building_id", "report_id", "name"):
        if column in frame.columns:
            return [f"#{i} ({column}={v})" for i, v in enumerate(frame[column].tolist())]
    return [f"#{i}" for i in range(len(frame))]


def _read_ogr_raw(
    path: Path, layer: str | None, layer_name: str
) -> tuple[pd.DataFrame, np.ndarray, Any]:
    if layer is not None:
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
    meta, _, wkb, field_data = pyogrio.raw.read(path, layer=layer, datetime_as_string=True)
    columns = {
        str(name): pd.Series(values)
        for name, values in zip(meta["fields"], field_data, strict=True)
    }
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


def _read_csv(path: Path, layer: str) -> gpd.GeoDataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
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


def check_wkb(wkb: np.ndarray, limits: InputLimits) -> list[tuple[int, str]]:
    """(row, reason) for every WKB value that is malformed, too big, too deep or not finite."""
    if len(wkb) == 0:
        return []
    problems: list[tuple[int, str]] = []
    lengths = np.fromiter((len(b) if b is not None else -1 for b in wkb), int, len(wkb))
    # Fast path: a layer of plain little-endian 2D points is checked in bulk.
    if (lengths == _POINT_WKB_LE).all():
        buf = np.frombuffer(b"".join(wkb), dtype=np.uint8).reshape(-1, _POINT_WKB_LE)
        header_ok = (buf[:, 0] == 1) & (buf[:, 1:5].copy().view("<u4")[:, 0] == 1)
        coords = buf[:, 5:].copy().view("<f8")
        finite = np.isfinite(coords).all(axis=1)
        for row in np.flatnonzero(~(header_ok & finite)).tolist():
            reason = "NaN or infinite coordinate" if header_ok[row] else "malformed point WKB"
            problems.append((row, reason))
        return problems
    for i, blob in enumerate(wkb):
        if blob is None:
            continue  # a missing geometry is reported by validation, with its layer's rule
        if len(blob) > limits.max_vertices_per_feature * 32 + 1024:
            problems.append(
                (
                    i,
                    f"geometry of {len(blob):,} bytes is over the vertex cap of "
                    f"{limits.max_vertices_per_feature:,}",
                )
            )
            continue
        try:
            end, vertices = _walk(bytes(blob), 0, 1, limits)
            if end != len(blob):
                raise _Hostile("trailing bytes after the geometry (malformed WKB)")
            if vertices > limits.max_vertices_per_feature:
                raise _Hostile(
                    f"{vertices:,} vertices, over the cap of {limits.max_vertices_per_feature:,}"
                )
        except _Hostile as exc:
            problems.append((i, str(exc)))
        except (struct.error, ValueError, IndexError):
            problems.append((i, "malformed WKB (truncated or corrupt geometry)"))
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


def plausible_lonlat(gdf: gpd.GeoDataFrame) -> bool:
    """Every coordinate within longitude/latitude ranges."""
    if gdf.empty:
        return True
    xmin, ymin, xmax, ymax = gdf.total_bounds
    return bool(-180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90)


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


def reproject_layer(gdf: gpd.GeoDataFrame, *, file: str, layer: str) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326; a frame without CRS must already be plausible lon/lat.

    A file that declares lon/lat but holds metres (GeoJSON without a ``crs`` member is
    EPSG:4326 by definition, whatever its numbers) is refused too: otherwise its features
    would surface later as absurd gaps and overlaps instead of as a CRS mistake.
    """
    declared = gdf.crs
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


# --- writing -----------------------------------------------------------------------------


def write_layer(gdf: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    """Write one layer; GeoPackages gain a layer, other formats get one file per layer."""
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
        frame.to_csv(path, index=False)


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
