"""Workload map: households, residents, buildings and open reports per grid against a band.

Grids are coloured under / inside / over the target band of households, so a planner sees
at once where to regrid. The page lets the band be changed and recolours in place.

Given the case statistics of the grids (``geo.store.stats.case_stats``), the grid popups show
them and a switch colours the grids by a case measure (overdue cases, resolution rate, ...)
instead of the band. The figures travel as arrays aligned with the grid order, rounded.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.cases import FINAL
from geo.crs import to_wgs84
from geo.errors import InvalidInput
from geo.settings import MapSettings
from maps.assets import AssetMode
from maps.common import (
    assign_to_grids,
    basemap_coordsys,
    basemap_payload,
    boundary_layers,
    bounds_of,
    esc,
    grid_labels,
    grid_layer,
    legend_html,
    render_page,
)
from maps.geometry import simplify_coverage

__all__ = [
    "BAND_COLORS",
    "CASE_COLUMNS",
    "CASE_LAYERS",
    "LOAD_COLUMNS",
    "case_layers",
    "case_payload",
    "grid_workload",
    "is_open",
    "render_workload",
]

LOAD_COLUMNS = ("households", "residents", "buildings", "open_reports")
BAND_COLORS = {"under": "#74add1", "inside": "#a6d96a", "over": "#d73027"}
BAND_LABELS = {"under": "低于目标", "inside": "目标范围内", "over": "超出目标"}

#: Case figures sent to the page, with their rounding: ``None`` keeps integers, ``"%"``
#: sends a 0–1 rate as a percentage with one decimal, an int is the decimals kept.
CASE_COLUMNS: dict[str, int | str | None] = {
    "cases": None,
    "resolution_rate": "%",
    "on_time_rate": "%",
    "reopened_rate": "%",
    "mean_hours_to_close": 1,
    "p90_hours_to_close": 1,
    "satisfaction": 2,
    "evaluated": None,
    "open": None,
    "overdue": None,
}

#: Grid colourings by a case measure, in the order of the switch: key, switch label,
#: legend title, legend note, label of a grid without the figure.
CASE_LAYERS: tuple[tuple[str, str, str, str, str], ...] = (
    ("overdue", "超期案件", "每网格超期案件", "在办且已过办理时限", "无数据"),
    ("open", "在办案件", "每网格在办案件", "未结案且未不予受理", "无数据"),
    ("resolution_rate", "办结率", "办结率", "已结案 / 有效案件（不含不予受理）", "无有效案件"),
    ("on_time_rate", "按期办结率", "按期办结率", "按期结案 / 有时限的已结案件", "无有时限的结案"),
    ("reopened_rate", "重办率", "重办率", "曾被重新打开 / 有效案件", "无有效案件"),
    ("satisfaction", "满意度", "满意度（1–5 分）", "群众评价的平均分", "无评价"),
)
_COUNT_PALETTE = ("#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
_ZERO_COLOR = "#e5f5e0"
_GOOD_HIGH = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")
_CASE_MISSING = "#d9d9d9"
#: Fixed classes of the rates and the satisfaction, so districts and months compare.
_FIXED_BREAKS: dict[str, tuple[list[float], list[str], tuple[str, ...]]] = {
    "resolution_rate": (
        [60, 80, 90, 95],
        ["低于 60%", "60–80%", "80–90%", "90–95%", "95% 及以上"],
        _GOOD_HIGH,
    ),
    "on_time_rate": (
        [60, 80, 90, 95],
        ["低于 60%", "60–80%", "80–90%", "90–95%", "95% 及以上"],
        _GOOD_HIGH,
    ),
    "reopened_rate": (
        [2, 5, 10, 20],
        ["低于 2%", "2–5%", "5–10%", "10–20%", "20% 及以上"],
        tuple(reversed(_GOOD_HIGH)),
    ),
    "satisfaction": (
        [3, 3.5, 4, 4.5],
        ["低于 3.0", "3.0–3.5", "3.5–4.0", "4.0–4.5", "4.5 及以上"],
        _GOOD_HIGH,
    ),
}


def is_open(reports: pd.DataFrame) -> np.ndarray:
    """Open cases: status not closed/rejected; without a status column, no ``closed_at``."""
    if "status" in reports.columns:
        return (
            ~reports["status"].astype("string").fillna("").isin([s.value for s in FINAL]).to_numpy()
        )
    if "closed_at" in reports.columns:
        return reports["closed_at"].isna().to_numpy()
    return np.ones(len(reports), dtype=bool)


def grid_workload(
    grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    reports: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Per grid code: households, residents, buildings and open reports (integers)."""
    n = len(grids)
    out = pd.DataFrame(
        0,
        index=pd.Index(grids["code"].astype(str), name="grid_code"),
        columns=list(LOAD_COLUMNS),
        dtype=np.int64,
    )
    if len(buildings):
        idx = assign_to_grids(buildings, grids)
        inside = idx >= 0
        hh = pd.to_numeric(buildings["households"], errors="coerce").fillna(0).to_numpy()
        res = (
            pd.to_numeric(buildings["residents"], errors="coerce").fillna(0).to_numpy()
            if "residents" in buildings.columns
            else np.zeros(len(buildings))
        )
        out["households"] = (
            np.bincount(idx[inside], hh[inside], minlength=n).round().astype(np.int64)
        )
        out["residents"] = (
            np.bincount(idx[inside], res[inside], minlength=n).round().astype(np.int64)
        )
        out["buildings"] = np.bincount(idx[inside], minlength=n)
    if reports is not None and len(reports):
        idx = assign_to_grids(reports, grids)
        keep = (idx >= 0) & is_open(reports)
        out["open_reports"] = np.bincount(idx[keep], minlength=n)
    return out


def classify_band(households: np.ndarray, band: tuple[int, int]) -> np.ndarray:
    """``under`` / ``inside`` / ``over`` per grid (inclusive band)."""
    lo, hi = band
    return np.where(households < lo, "under", np.where(households > hi, "over", "inside"))


def _compact(value: float) -> float | int:
    """A rounded number as JSON writes it shortest: ``87.0`` goes out as ``87``."""
    return int(value) if float(value).is_integer() else value


def case_payload(case_stats: pd.DataFrame, codes: list[str]) -> dict[str, list[Any]]:
    """The case figures of :data:`CASE_COLUMNS` per grid, aligned with ``codes``.

    Rates become percentages with one decimal, hours one decimal, satisfaction two;
    a missing figure (a grid absent from the statistics, a rate without cases) is ``None``.
    """
    frame = case_stats.copy()
    frame.index = frame.index.astype(str)
    frame = frame[~frame.index.duplicated()].reindex(pd.Index(codes))
    out: dict[str, list[Any]] = {}
    for column, rounding in CASE_COLUMNS.items():
        values = (
            pd.to_numeric(frame[column], errors="coerce").astype(float).to_numpy()
            if column in frame.columns
            else np.full(len(codes), np.nan)
        )
        if rounding is None:
            out[column] = [None if np.isnan(v) else round(v) for v in values.tolist()]
        else:
            scaled, decimals = (values * 100, 1) if rounding == "%" else (values, int(rounding))
            out[column] = [
                None if not np.isfinite(v) else _compact(round(float(v), decimals)) for v in scaled
            ]
    return out


def _count_classes(values: list[Any], k: int = 4) -> tuple[list[float], list[str], list[str]]:
    """Zero, then up to ``k`` integer classes cut at quantiles of the positive counts."""
    v = np.array([x for x in values if x is not None], dtype=float)
    pos = v[v > 0]
    breaks = [1]
    if pos.size:
        for q in np.percentile(pos, [100.0 * j / k for j in range(1, k)]).tolist():
            b = int(np.floor(q)) + 1
            if breaks[-1] < b <= pos.max():
                breaks.append(b)
    labels = ["0 件"]
    for lo, hi in pairwise(breaks):
        labels.append(f"{lo} 件" if lo == hi - 1 else f"{lo}–{hi - 1} 件")
    labels.append(f"{breaks[-1]} 件及以上")
    n = len(breaks)  # classes above zero
    step = (len(_COUNT_PALETTE) - 1) / max(1, n - 1)
    colors = [_ZERO_COLOR] + [_COUNT_PALETTE[round(i * step)] for i in range(n)]
    return [float(b) for b in breaks], labels, colors


def case_layers(cases: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The colourings of the switch: per measure, exclusive upper ``breaks`` of its classes
    (the last class is open), their colours and legend labels.

    Counts get zero plus quantile classes of this district; rates and satisfaction fixed
    classes. ``gridmap.js`` puts a value in the first class whose break it is below.
    """
    out = []
    for key, label, title, note, missing in CASE_LAYERS:
        if key in _FIXED_BREAKS:
            fixed, labels, palette = _FIXED_BREAKS[key]
            breaks, colors = [float(b) for b in fixed], list(palette)
        else:
            breaks, labels, colors = _count_classes(cases[key])
            total = sum(v for v in cases[key] if v is not None)
            note = f"{note}；合计 {total:,} 件"
        out.append(
            {
                "key": key,
                "label": label,
                "title": title,
                "note": note,
                "breaks": [_compact(b) for b in breaks],
                "colors": colors,
                "labels": labels,
                "missing": missing,
            }
        )
    return out


def render_workload(
    grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    reports: gpd.GeoDataFrame | None = None,
    band: tuple[int, int] = (300, 500),
    stats: pd.DataFrame | None = None,
    *,
    communities: gpd.GeoDataFrame | None = None,
    streets: gpd.GeoDataFrame | None = None,
    roads: gpd.GeoDataFrame | None = None,
    teams: pd.DataFrame | None = None,
    title: str = "网格工作量",
    basemap: MapSettings | None = None,
    asset_mode: AssetMode = "inline",
    tolerance_m: float = 2.0,
    case_stats: pd.DataFrame | None = None,
) -> str:
    """The workload page as one HTML string.

    Parameters
    ----------
    band
        Target households per grid, inclusive (300–500 is common urban practice).
    stats
        Precomputed load indexed by grid code (e.g. from the database) with
        :data:`LOAD_COLUMNS`; computed from ``buildings`` and ``reports`` when ``None``.
    case_stats
        Case statistics indexed by grid code (``geo.store.stats.case_stats(..., level="grid")``):
        shown in the grid popups and as colourings of the switch. ``None``: no case layer.
    """
    lo, hi = band
    if lo > hi or lo < 0:
        raise InvalidInput(f"band {band} is not an interval of households", field="band")
    grids = to_wgs84(grids).reset_index(drop=True)
    codes, names, comms = grid_labels(grids, communities)
    load = stats if stats is not None else grid_workload(grids, buildings, reports)
    load = load.reindex(pd.Index(codes, name="grid_code")).fillna(0)
    for col in LOAD_COLUMNS:
        if col not in load.columns:
            load[col] = 0
    coordsys = basemap_coordsys(basemap)
    simple = simplify_coverage(grids, tolerance_m, coordsys=coordsys)
    classes = classify_band(load["households"].to_numpy(), band)
    tally = {c: int((classes == c).sum()) for c in BAND_COLORS}
    geoms = list(simple.geometry)
    payload = {
        "bounds": bounds_of(geoms),
        "basemap": basemap_payload(basemap),
        "grids": grid_layer(geoms, codes, names, comms, teams),
        **boundary_layers(simple, communities, streets, roads, coordsys),
        "load": {col: load[col].round().astype(np.int64).tolist() for col in LOAD_COLUMNS},
        "band": [int(lo), int(hi)],
        "colors": BAND_COLORS,
        "classLabels": BAND_LABELS,
        "legendTitle": "网格户数与目标",
    }
    layer_form = ""
    if case_stats is not None:
        cases = case_payload(case_stats, codes)
        layers = case_layers(cases)
        payload["cases"] = cases
        payload["caseLayers"] = layers
        payload["caseMissing"] = _CASE_MISSING
        options = "".join(
            f'<option value="{esc(spec["key"])}">{esc(spec["label"])}</option>' for spec in layers
        )
        layer_form = (
            '<form id="gm-layer" class="gm-panel" autocomplete="off">'
            '<label>网格着色<select id="gm-layer-select">'
            f'<option value="band" selected>户数负荷（目标范围）</option>{options}'
            "</select></label></form>"
        )
    legend = legend_html(
        "网格户数与目标",
        [(BAND_COLORS[c], f"{BAND_LABELS[c]}（{tally[c]} 格）") for c in BAND_COLORS],
        f"目标 {lo}–{hi} 户",
    )
    band_form = (
        '<form id="gm-band" class="gm-panel" autocomplete="off">'
        f'<label>目标下限（户）<input type="number" id="gm-band-lo" min="0" step="10" value="{lo}">'
        "</label>"
        f'<label>目标上限（户）<input type="number" id="gm-band-hi" min="0" step="10" value="{hi}">'
        "</label></form>"
    )
    summary = (
        f"{len(codes)} 个网格 · 户数 {int(load['households'].sum()):,} · "
        f"在办案件 {int(load['open_reports'].sum()):,}"
    )
    panels = (
        f'<div id="gm-title" class="gm-title">{esc(title)}<small>{esc(summary)}</small></div>'
        + band_form
        + layer_form
        + legend
    )
    return render_page(
        kind="workload",
        title=title,
        payload=payload,
        panels_html=panels,
        asset_mode=asset_mode,
        basemap=basemap,
        assets=["leaflet_css", "gridmap_css", "leaflet", "gridmap"],
    )
