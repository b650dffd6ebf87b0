"""Coordinate systems: which metric CRS to measure in, and the offsets of Chinese web maps.

Lengths and areas are never measured in degrees; ``metric_crs_for`` picks the UTM zone of
a place (EPSG:32651 for Dalian). CGCS2000 (EPSG:4490) is within centimetres to decimetres of
WGS 84 at city scale, so gridmap treats it as EPSG:4326 instead of asking PROJ for a
transformation that would be a no-op anyway. GCJ-02 is the deliberately offset system of
AMap and most commercial Chinese basemaps, and BD-09 is Baidu's further offset of GCJ-02:
points copied from them are hundreds of metres off until converted. ``Coordsys`` is the one
list of these systems that the CLI, the API and the maps share.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt
import pyproj
import shapely

__all__ = [
    "WGS84",
    "Coordsys",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "is_wgs84_like",
    "metric_crs_for",
    "metric_crs_for_bounds",
    "outside_china",
    "to_metric",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

WGS84 = pyproj.CRS.from_epsg(4326)
#: CGCS2000 geographic; treated as WGS 84 (difference below mapping precision here).
_CGCS2000_EPSG = 4490

FloatArray = npt.NDArray[np.float64]
if TYPE_CHECKING:  # geopandas costs half a second: the CLI imports Coordsys without it
    import geopandas as gpd

GeoT = TypeVar("GeoT", "gpd.GeoDataFrame", "gpd.GeoSeries")


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


def metric_crs_for_bounds(bounds: npt.ArrayLike) -> pyproj.CRS:
    """UTM zone of the centre of lon/lat ``bounds`` (minx, miny, maxx, maxy)."""
    minx, miny, maxx, maxy = (float(v) for v in np.asarray(bounds, dtype=np.float64).ravel())
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
    import geopandas as gpd

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


# --- BD-09 ----------------------------------------------------------------------------------
# Baidu's published formulae: GCJ-02 rotated and scaled by small trigonometric terms, then
# shifted by (0.0065, 0.006) degrees. Applied everywhere (Baidu has no "outside China" box).
_BD_X_PI = np.pi * 3000.0 / 180.0
_BD_DLON = 0.0065
_BD_DLAT = 0.006


def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Offset GCJ-02 lon/lat to BD-09 (Baidu's forward formula, exact)."""
    x, y = _as_float_arrays(lon, lat)
    z = np.hypot(x, y) + 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _bd09_to_gcj02_approx(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The published one-step inverse: right to about 1e-6 degrees (decimetres)."""
    x, y = lon - _BD_DLON, lat - _BD_DLAT
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def bd09_to_gcj02(
    lon: npt.ArrayLike, lat: npt.ArrayLike, tolerance_deg: float = 1e-12, max_iter: int = 30
) -> tuple[FloatArray, FloatArray]:
    """Invert the BD-09 offset: the published approximation, refined by fixed-point iteration.

    The published inverse alone is off by up to a decimetre; iterating
    ``gcj += bd - gcj02_to_bd09(gcj)`` makes ``gcj02_to_bd09(bd09_to_gcj02(p)) == p`` to
    within ``tolerance_deg``, as ``gcj02_to_wgs84`` does for GCJ-02.
    """
    bd_lon, bd_lat = _as_float_arrays(lon, lat)
    finite = np.isfinite(bd_lon) & np.isfinite(bd_lat)
    out_lon, out_lat = bd_lon.copy(), bd_lat.copy()
    b_lon, b_lat = bd_lon[finite], bd_lat[finite]
    g_lon, g_lat = _bd09_to_gcj02_approx(b_lon, b_lat)
    for _ in range(max_iter):
        f_lon, f_lat = gcj02_to_bd09(g_lon, g_lat)
        d_lon, d_lat = b_lon - f_lon, b_lat - f_lat
        g_lon, g_lat = g_lon + d_lon, g_lat + d_lat
        if d_lon.size == 0 or float(max(np.abs(d_lon).max(), np.abs(d_lat).max())) < tolerance_deg:
            break
    out_lon[finite] = g_lon
    out_lat[finite] = g_lat
    return out_lon, out_lat


def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS 84 to BD-09 (for comparing with points taken from Baidu maps)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Points copied from Baidu maps to WGS 84: BD-09 to GCJ-02 to WGS 84, both inverted."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


# --- the coordinate systems callers name ------------------------------------------------------


class Coordsys(StrEnum):
    """The lon/lat systems a point or a file can come in; the one list every path accepts.

    ``wgs84`` (GPS, Tianditu) and ``cgcs2000`` (China's datum) are stored as they are;
    ``gcj02`` (AMap/Gaode, Tencent) and ``bd09`` (Baidu) are converted vertex by vertex.
    """

    WGS84 = "wgs84"
    CGCS2000 = "cgcs2000"
    GCJ02 = "gcj02"
    BD09 = "bd09"

    @property
    def label(self) -> str:
        """How summaries and answers name it."""
        return _COORDSYS_LABELS[self]

    @property
    def is_offset(self) -> bool:
        """True for the deliberately offset systems that must be converted."""
        return self in (Coordsys.GCJ02, Coordsys.BD09)

    def to_wgs84(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Lon/lat in this system to WGS 84."""
        if self is Coordsys.GCJ02:
            return gcj02_to_wgs84(lon, lat)
        if self is Coordsys.BD09:
            return bd09_to_wgs84(lon, lat)
        return _as_float_arrays(lon, lat)

    def from_wgs84(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """WGS 84 lon/lat to this system (to draw on its tiles)."""
        if self is Coordsys.GCJ02:
            return wgs84_to_gcj02(lon, lat)
        if self is Coordsys.BD09:
            return wgs84_to_bd09(lon, lat)
        return _as_float_arrays(lon, lat)

    def geometries_to_wgs84(self, geoms: npt.ArrayLike) -> npt.NDArray[np.object_]:
        """Every vertex of lon/lat geometries to WGS 84 (shared vertices stay shared)."""
        return _transform(np.asarray(geoms, dtype=object), self.to_wgs84)

    def geometries_from_wgs84(self, geoms: npt.ArrayLike) -> npt.NDArray[np.object_]:
        """Every vertex of WGS 84 geometries to this system."""
        return _transform(np.asarray(geoms, dtype=object), self.from_wgs84)


_COORDSYS_LABELS = {
    Coordsys.WGS84: "WGS 84",
    Coordsys.CGCS2000: "CGCS2000",
    Coordsys.GCJ02: "GCJ-02 (AMap/Gaode)",
    Coordsys.BD09: "BD-09 (Baidu)",
}


def _transform(
    geoms: npt.NDArray[np.object_],
    convert: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
) -> npt.NDArray[np.object_]:
    if len(geoms) == 0:
        return geoms
    result: npt.NDArray[np.object_] = shapely.transform(
        geoms, lambda xy: np.column_stack(convert(xy[:, 0], xy[:, 1]))
    )
    return result
