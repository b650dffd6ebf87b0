"""Coordinate systems: which metric CRS to measure in, and the GCJ-02 offset of Chinese maps.

Lengths and areas are never measured in degrees; ``metric_crs_for`` picks the UTM zone of
a place (EPSG:32651 for Dalian). CGCS2000 (EPSG:4490) is within centimetres to decimetres of
WGS 84 at city scale, so gridmap treats it as EPSG:4326 instead of asking PROJ for a
transformation that would be a no-op anyway. GCJ-02 is the deliberately offset system of
AMap and most commercial Chinese basemaps: points copied from them are hundreds of metres
off until converted.
"""

from __future__ import annotations

from typing import TypeVar

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyproj
import shapely

__all__ = [
    "WGS84",
    "gcj02_to_wgs84",
    "is_wgs84_like",
    "metric_crs_for",
    "metric_crs_for_bounds",
    "outside_china",
    "to_metric",
    "to_wgs84",
    "wgs84_to_gcj02",
]

WGS84 = pyproj.CRS.from_epsg(4326)
#: CGCS2000 geographic; treated as WGS 84 (difference below mapping precision here).
_CGCS2000_EPSG = 4490

FloatArray = npt.NDArray[np.float64]
GeoT = TypeVar("GeoT", gpd.GeoDataFrame, gpd.GeoSeries)


def metric_crs_for(lon: float, lat: float) -> pyproj.CRS:
    """Return the WGS 84 / UTM zone CRS that contains ``(lon, lat)``.

    Zones are the plain 6° ones (no Norway/Svalbard exceptions); southern latitudes get the
    327xx codes. Dalian (121.6 E, 38.9 N) gives EPSG:32651.
    """
    if not (np.isfinite(lon) and np.isfinite(lat)) or abs(lat) > 90:
        raise ValueError(f"not a longitude/latitude: ({lon}, {lat})")
    lon_wrapped = (float(lon) + 180.0) % 360.0 - 180.0
    zone = min(int((lon_wrapped + 180.0) // 6.0) + 1, 60)
    base = 32600 if lat >= 0 else 32700
    return pyproj.CRS.from_epsg(base + zone)


def metric_crs_for_bounds(bounds: tuple[float, float, float, float]) -> pyproj.CRS:
    """UTM zone of the centre of lon/lat ``bounds`` (minx, miny, maxx, maxy)."""
    minx, miny, maxx, maxy = bounds
    return metric_crs_for((minx + maxx) / 2.0, (miny + maxy) / 2.0)


def is_wgs84_like(crs: pyproj.CRS | str | int | None) -> bool:
    """True for EPSG:4326, EPSG:4490 (CGCS2000) and CRS equal to them (OGC:CRS84 included)."""
    if crs is None:
        return False
    crs = pyproj.CRS.from_user_input(crs)
    epsg = crs.to_epsg()
    if epsg in (4326, _CGCS2000_EPSG):
        return True
    # OGC:CRS84 is 4326 with lon/lat axis order: same numbers as gridmap stores them.
    return bool(crs.equals(WGS84, ignore_axis_order=True))


def to_wgs84(data: GeoT) -> GeoT:
    """Reproject to EPSG:4326; CGCS2000 is relabelled, not transformed.

    A frame without a CRS is refused by geopandas itself; callers decide about CRS-less data.
    """
    if data.crs is None:
        raise ValueError("data has no CRS; set one before reprojecting")
    if is_wgs84_like(data.crs):
        return data.set_crs(WGS84, allow_override=True)
    return data.to_crs(WGS84)


def to_metric(
    data: GeoT | npt.ArrayLike, crs: pyproj.CRS | None = None
) -> tuple[GeoT | npt.NDArray[np.object_], pyproj.CRS]:
    """Project lon/lat data to a metric CRS (the UTM zone of its centre unless ``crs`` is given).

    Accepts a GeoDataFrame/GeoSeries (any CRS; CGCS2000 counts as WGS 84) or an array of
    shapely geometries in EPSG:4326. Returns the projected data and the CRS used.
    """
    if isinstance(data, gpd.GeoDataFrame | gpd.GeoSeries):
        lonlat = to_wgs84(data)
        target = crs or metric_crs_for_bounds(tuple(lonlat.total_bounds))
        return lonlat.to_crs(target), target
    geoms = np.asarray(data, dtype=object)
    bounds = shapely.total_bounds(geoms)
    target = crs or metric_crs_for_bounds(tuple(bounds))
    transformer = pyproj.Transformer.from_crs(WGS84, target, always_xy=True)
    projected = shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(*xy.T)))
    return projected, target


# --- GCJ-02 -------------------------------------------------------------------------------
# The published "Mars" formulae: Krasovsky 1940 ellipsoid and a fixed trigonometric offset.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323


def outside_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """The rough box outside which GCJ-02 applies no offset (the usual published test)."""
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    return (lon_a < 72.004) | (lon_a > 137.8347) | (lat_a < 0.8293) | (lat_a > 55.8271)


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 minus WGS 84 in degrees at WGS 84 position ``(lon, lat)`` (inside China)."""
    x = lon - 105.0
    y = lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += common
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def _as_float_arrays(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon_a, lat_a = np.broadcast_arrays(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    return lon_a.astype(np.float64, copy=True), lat_a.astype(np.float64, copy=True)


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Offset WGS 84 lon/lat to GCJ-02 (for drawing on AMap tiles); outside China unchanged."""
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = ~outside_china(lon_a, lat_a) & np.isfinite(lon_a) & np.isfinite(lat_a)
    dlon, dlat = _gcj_offset(lon_a[inside], lat_a[inside])
    lon_a[inside] += dlon
    lat_a[inside] += dlat
    return lon_a, lat_a


def gcj02_to_wgs84(
    lon: npt.ArrayLike, lat: npt.ArrayLike, tolerance_deg: float = 1e-10, max_iter: int = 30
) -> tuple[FloatArray, FloatArray]:
    """Invert the GCJ-02 offset by fixed-point iteration (points copied from AMap -> WGS 84).

    The offset has no closed-form inverse; iterating ``wgs = gcj - offset(wgs)`` converges
    in a handful of steps because the offset varies slowly. Stops when every point moves by
    less than ``tolerance_deg``; points outside China are returned unchanged.
    """
    gcj_lon, gcj_lat = _as_float_arrays(lon, lat)
    out_lon, out_lat = gcj_lon.copy(), gcj_lat.copy()
    inside = ~outside_china(gcj_lon, gcj_lat) & np.isfinite(gcj_lon) & np.isfinite(gcj_lat)
    g_lon, g_lat = gcj_lon[inside], gcj_lat[inside]
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(max_iter):
        dlon, dlat = _gcj_offset(w_lon, w_lat)
        new_lon, new_lat = g_lon - dlon, g_lat - dlat
        step = np.maximum(np.abs(new_lon - w_lon), np.abs(new_lat - w_lat))
        w_lon, w_lat = new_lon, new_lat
        if step.size == 0 or float(step.max()) < tolerance_deg:
            break
    out_lon[inside] = w_lon
    out_lat[inside] = w_lat
    return out_lon, out_lat
