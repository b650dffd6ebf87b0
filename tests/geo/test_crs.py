"""Metric CRS choice and the GCJ-02 offset."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.crs import (
    gcj02_to_wgs84,
    is_wgs84_like,
    metric_crs_for,
    to_metric,
    to_wgs84,
    wgs84_to_gcj02,
)

# (wgs lon, wgs lat, gcj lon, gcj lat): published test pairs of the eviltransform project.
KNOWN = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),  # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),  # Shenzhen
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),  # Beijing
]


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (121.6, 38.9, 32651),
        (116.4, 39.9, 32650),
        (151.2, -33.9, 32756),
        (-0.1, 51.5, 32630),
        (179.9, 10.0, 32660),
        (-180.0, 10.0, 32601),
    ],
)
def test_metric_crs_for(lon: float, lat: float, epsg: int) -> None:
    assert metric_crs_for(lon, lat).to_epsg() == epsg


def test_cgcs2000_is_wgs84() -> None:
    assert is_wgs84_like(4490) and is_wgs84_like("OGC:CRS84") and not is_wgs84_like(32651)
    gdf = gpd.GeoDataFrame(geometry=[shapely.Point(121.6, 38.9)], crs=4490)
    out = to_wgs84(gdf)
    assert out.crs.to_epsg() == 4326 and out.geometry.iloc[0].equals(shapely.Point(121.6, 38.9))


def test_to_metric_frame_and_array() -> None:
    gdf = gpd.GeoDataFrame(geometry=[shapely.box(121.6, 38.9, 121.601, 38.901)], crs=4326)
    projected, crs = to_metric(gdf)
    assert crs.to_epsg() == 32651
    area_m2 = projected.geometry.area.iloc[0]
    assert 8_000 < area_m2 < 10_000
    geoms, crs2 = to_metric(gdf.geometry.to_numpy())
    assert crs2 == crs and shapely.area(geoms[0]) == pytest.approx(area_m2)


@pytest.mark.parametrize(("wlon", "wlat", "glon", "glat"), KNOWN)
def test_known_pairs(wlon: float, wlat: float, glon: float, glat: float) -> None:
    lon, lat = wgs84_to_gcj02(wlon, wlat)
    assert lon == pytest.approx(glon, abs=1e-9) and lat == pytest.approx(glat, abs=1e-9)
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    assert back_lon == pytest.approx(wlon, abs=1e-7) and back_lat == pytest.approx(wlat, abs=1e-7)


def test_offset_is_hundreds_of_metres() -> None:
    import pyproj

    lon, lat = wgs84_to_gcj02(116.397, 39.909)
    dist = pyproj.Geod(ellps="WGS84").inv(116.397, 39.909, float(lon), float(lat))[2]
    assert 200 < dist < 1000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(73.0, 135.0), st.floats(18.0, 53.0)), min_size=1, max_size=50))
def test_round_trip(points: list[tuple[float, float]]) -> None:
    lon, lat = np.array(points).T
    glon, glat = wgs84_to_gcj02(lon, lat)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert np.max(np.abs(wlon - lon)) < 1e-6 and np.max(np.abs(wlat - lat)) < 1e-6


def test_outside_china_unchanged_and_vectorised() -> None:
    lon = np.array([-0.1, 151.2, 121.6])
    lat = np.array([51.5, -33.9, 38.9])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon[:2].tolist() == lon[:2].tolist() and glat[:2].tolist() == lat[:2].tolist()
    assert glon[2] != lon[2]
    wlon, wlat = gcj02_to_wgs84(lon[:2], lat[:2])
    assert wlon.tolist() == lon[:2].tolist() and wlat.tolist() == lat[:2].tolist()
