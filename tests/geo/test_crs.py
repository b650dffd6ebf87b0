"""Metric CRS choice and the GCJ-02 and BD-09 offsets."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.crs import (
    Coordsys,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    is_wgs84_like,
    metric_crs_for,
    to_metric,
    to_wgs84,
    wgs84_to_bd09,
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


# --- BD-09 -----------------------------------------------------------------------------------

#: (gcj lon, gcj lat, bd lon, bd lat): the coordtransform project's published example
#: (Tiananmen), and Beijing railway station as AMap and Baidu show it (5 decimals).
KNOWN_BD = [
    (116.404, 39.915, 116.41036949371029, 39.92133699351021, 1e-9),
    (116.42703, 39.90245, 116.43351, 39.90851, 1e-5),
]
#: The same project's one-step inverse of BD-09 (116.404, 39.915): right to about 1e-6
#: degrees; the iterated inverse must agree with it to that and be exact where it is not.
PUBLISHED_BD_INVERSE = (116.39762729119315, 39.90865673957631)


@pytest.mark.parametrize(("glon", "glat", "blon", "blat", "tol"), KNOWN_BD)
def test_known_bd09_pairs(glon: float, glat: float, blon: float, blat: float, tol: float) -> None:
    lon, lat = gcj02_to_bd09(glon, glat)
    assert lon == pytest.approx(blon, abs=tol) and lat == pytest.approx(blat, abs=tol)
    back_lon, back_lat = bd09_to_gcj02(blon, blat)
    assert back_lon == pytest.approx(glon, abs=max(tol, 1e-9))
    assert back_lat == pytest.approx(glat, abs=max(tol, 1e-9))


def test_bd09_inverse_refines_the_published_approximation() -> None:
    lon, lat = bd09_to_gcj02(116.404, 39.915)
    want_lon, want_lat = PUBLISHED_BD_INVERSE
    assert lon == pytest.approx(want_lon, abs=2e-6) and lat == pytest.approx(want_lat, abs=2e-6)
    assert (lon, lat) != pytest.approx(PUBLISHED_BD_INVERSE, abs=1e-8)  # iterated, not copied
    f_lon, f_lat = gcj02_to_bd09(lon, lat)
    assert f_lon == pytest.approx(116.404, abs=1e-11) and f_lat == pytest.approx(39.915, abs=1e-11)


def test_bd09_offset_in_dalian_is_hundreds_of_metres() -> None:
    import pyproj

    lon, lat = wgs84_to_bd09(121.6, 38.9)
    dist = pyproj.Geod(ellps="WGS84").inv(121.6, 38.9, float(lon), float(lat))[2]
    assert 800 < dist < 1500  # GCJ-02's ~600 m plus Baidu's ~700 m, roughly aligned


CHINA_POINTS = st.lists(
    st.tuples(st.floats(73.0, 135.0), st.floats(18.0, 53.0)), min_size=1, max_size=50
)


@settings(max_examples=200, deadline=None)
@given(CHINA_POINTS)
def test_bd09_round_trips(points: list[tuple[float, float]]) -> None:
    lon, lat = np.array(points).T
    blon, blat = gcj02_to_bd09(lon, lat)
    glon, glat = bd09_to_gcj02(blon, blat)
    assert np.max(np.abs(glon - lon)) < 1e-9 and np.max(np.abs(glat - lat)) < 1e-9
    wlon, wlat = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert np.max(np.abs(wlon - lon)) < 1e-6 and np.max(np.abs(wlat - lat)) < 1e-6


@settings(max_examples=100, deadline=None)
@given(CHINA_POINTS, st.sampled_from(list(Coordsys)))
def test_coordsys_converts_both_ways(points: list[tuple[float, float]], system: Coordsys) -> None:
    """Each system's to_wgs84 undoes its from_wgs84; only GCJ-02 and BD-09 move points."""
    lon, lat = np.array(points).T
    olon, olat = system.from_wgs84(lon, lat)
    assert system.is_offset == bool(np.any((olon != lon) | (olat != lat)))
    wlon, wlat = system.to_wgs84(olon, olat)
    assert np.max(np.abs(wlon - lon)) < 1e-6 and np.max(np.abs(wlat - lat)) < 1e-6


def test_coordsys_converts_every_vertex_of_geometries() -> None:
    """Shared vertices stay shared: two squares converted keep their common edge."""
    a, b = shapely.box(121.60, 38.90, 121.61, 38.91), shapely.box(121.61, 38.90, 121.62, 38.91)
    wgs = Coordsys.BD09.geometries_to_wgs84([a, b])
    assert shapely.get_num_coordinates(wgs).tolist() == [5, 5]
    shared = shapely.intersection(wgs[0], wgs[1])
    assert shared.geom_type == "LineString" and shapely.area(shapely.union(*wgs)) > 0
    xy = shapely.get_coordinates(b)
    lon, lat = bd09_to_wgs84(xy[:, 0], xy[:, 1])
    assert np.array_equal(shapely.get_coordinates(wgs[1]), np.column_stack([lon, lat]))
    assert Coordsys.WGS84.geometries_to_wgs84([a])[0].equals(a)
    assert len(Coordsys.GCJ02.geometries_to_wgs84([])) == 0


def test_bd09_and_non_finite_inputs_pass_through() -> None:
    lon, lat = bd09_to_gcj02([np.nan, 121.6], [38.9, np.inf])
    assert np.isnan(lon[0]) and np.isinf(lat[1])
