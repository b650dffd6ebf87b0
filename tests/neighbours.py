"""A second district beside the hand-drawn one, to test districts among districts.

旅顺口区 (210212, 大连市) is the hand-drawn district of ``tests/handmade.py`` moved six
units east (a 500 m strait between the two), renamed, and re-addressed so that the two
share what real districts share: the road name 山东路 with the same house numbers, and a
community named 汇泉社区 in each. Its other road, 黄河路, exists only here; the hand-drawn
district's 山东路37-72号 exist only there::

    市南区(手绘) 370202                        旅顺口区 210212 (大连市)
    +---+---+---+---+  []                  +---+---+---+---+  []
    |汇泉社区|太|燕儿岛社区|  island        |汇泉社区|得|龙河社区  |  蛇岛
    +---+---+---+---+                      +---+---+---+---+
    x=0             4  4.5-5               6              10  10.5-11

Buildings of 汇泉社区 and 得胜社区 (山东路1-36号) repeat the hand-drawn district's
addresses there; those of 龙河社区 are on 黄河路.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from tests.handmade import UNIT, handmade_layers

CODE = "210212"
NAME = "旅顺口区"
CITY = "大连市"
SHIFT_UNITS = 6.0
STREETS = ("得胜街道", "登峰街道")
COMMUNITIES = ("汇泉社区", "得胜社区", "龙河社区")
GRID_NAMES = ("汇泉一网格", "汇泉二网格", "得胜网格", "龙河一网格", "龙河二网格", "蛇岛网格")


def shifted(
    layers: dict[str, gpd.GeoDataFrame], dx_deg: float, dy_deg: float = 0.0
) -> dict[str, gpd.GeoDataFrame]:
    """The layers moved by (dx, dy) degrees; equal vertices stay equal, so tilings stay exact."""
    out = {}
    for name, frame in layers.items():
        moved = frame.copy()
        moved[moved.geometry.name] = shapely.transform(
            frame.geometry.to_numpy(), lambda xy: xy + np.array([dx_deg, dy_deg])
        )
        out[name] = moved
    return out


def neighbour_layers() -> dict[str, gpd.GeoDataFrame]:
    """旅顺口区 as contract layers in EPSG:4326."""
    base = handmade_layers()
    layers = shifted(base, SHIFT_UNITS * UNIT)
    old_codes = {str(c): CODE + str(c)[6:] for layer in base.values() for c in _codes(layer)}

    def recode(values: object) -> list[str]:
        return [old_codes[str(v)] for v in values]  # type: ignore[attr-defined]

    district = layers["district"]
    district["code"], district["name"], district["city"] = [CODE], [NAME], [CITY]
    streets = layers["streets"]
    streets["code"], streets["district_code"] = recode(streets["code"]), CODE
    streets["name"] = list(STREETS)
    communities = layers["communities"]
    communities["code"] = recode(communities["code"])
    communities["street_code"] = recode(communities["street_code"])
    communities["name"] = list(COMMUNITIES)
    grids = layers["grids"]
    grids["code"], grids["community_code"] = recode(grids["code"]), recode(grids["community_code"])
    grids["name"] = list(GRID_NAMES)
    buildings = layers["buildings"]
    n = len(buildings)
    buildings["building_id"] = [f"L{i:04d}" for i in range(n)]
    half = n // 2  # the first three grids: 汇泉社区 and 得胜社区
    buildings["address"] = [
        f"山东路{i + 1}号{i % 5 + 1}栋" if i < half else f"黄河路{i - half + 1}号{i % 3 + 1}栋"
        for i in range(n)
    ]
    reports = layers["reports"]
    reports["report_id"] = [f"L{r}" for r in reports["report_id"]]
    layers["roads"]["name"] = ["黄河路", "山东路"]
    return layers


def _codes(frame: gpd.GeoDataFrame) -> list[str]:
    return [str(c) for c in frame["code"]] if "code" in frame.columns else []
