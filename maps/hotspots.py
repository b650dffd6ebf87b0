"""Hotspot map: reports per grid as a classed choropleth, a heat layer and optional clusters.

The server may filter first (:func:`filter_reports`, from the query string); the page then
filters again in the browser over what it holds. Reports reach the page as compact arrays
of whitelisted fields only (position, category, subcategory, status, day): never the
reporter, the description or any other column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.crs import Coordsys, to_wgs84
from geo.errors import InvalidInput
from geo.settings import MapSettings
from maps.assets import AssetMode
from maps.common import (
    STATUS_NAMES,
    assign_to_grids,
    basemap_coordsys,
    basemap_payload,
    boundary_layers,
    bounds_of,
    category_names,
    esc,
    grid_labels,
    grid_layer,
    legend_html,
    render_page,
)
from maps.geometry import simplify_coverage

__all__ = ["PALETTE", "HotspotFilters", "filter_reports", "quantile_breaks", "render_hotspots"]

#: ColorBrewer YlOrRd, 5 classes.
PALETTE = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
#: Reports are drawn at 1e-5 degrees (about 1 m): plenty for a heat layer, half the bytes.
_REPORT_SCALE = 100_000
_LOCAL_OFFSET = pd.Timedelta(hours=8)  # China Standard Time: days are counted in local time
_NO_DAY = -1_000_000


@dataclass(frozen=True)
class HotspotFilters:
    """Server-side filters from ``GET /maps/hotspots``; dates are local days, inclusive."""

    category: str | None = None
    subcategory: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    status: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls,
        category: str | None = None,
        subcategory: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        status: str | list[str] | None = None,
    ) -> HotspotFilters:
        """Build from query-string values: ISO dates, statuses repeated or comma-separated."""
        dates: list[date | None] = []
        for field, text in (("from", date_from), ("to", date_to)):
            try:
                dates.append(date.fromisoformat(text) if text else None)
            except ValueError:
                raise InvalidInput(
                    f"{text!r} is not a date", field=field, fix="use YYYY-MM-DD"
                ) from None
        items = [status] if isinstance(status, str) else list(status or [])
        statuses = tuple(
            dict.fromkeys(p.strip() for item in items for p in item.split(",") if p.strip())
        )
        if dates[0] and dates[1] and dates[0] > dates[1]:
            raise InvalidInput("the date range ends before it starts", field="from")
        return cls(category or None, subcategory or None, dates[0], dates[1], statuses)

    def describe(self) -> str:
        """One line for the page title, e.g. ``类别 市容环境 · 2024-01-01 起``."""
        cats, subs = category_names()
        parts = []
        if self.category:
            parts.append(f"类别 {cats.get(self.category, self.category)}")
        if self.subcategory:
            parts.append(f"小类 {subs.get(self.subcategory, self.subcategory)}")
        if self.date_from:
            parts.append(f"{self.date_from.isoformat()} 起")
        if self.date_to:
            parts.append(f"{self.date_to.isoformat()} 止")
        if self.status:
            parts.append("状态 " + "、".join(STATUS_NAMES.get(s, s) for s in self.status))
        return " · ".join(parts)


def _local_days(reported_at: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 in China Standard Time; unparsable times get a sentinel."""
    ts = pd.to_datetime(reported_at, utc=True, errors="coerce", format="ISO8601")
    local = (ts + _LOCAL_OFFSET).dt.floor("D")
    days = (local - pd.Timestamp("1970-01-01", tz="UTC")).dt.days
    return days.fillna(_NO_DAY).astype(np.int64).to_numpy()


def filter_reports(reports: gpd.GeoDataFrame, filters: HotspotFilters | None) -> gpd.GeoDataFrame:
    """The reports that pass the server-side filters (all of them for ``None``)."""
    if filters is None or len(reports) == 0:
        return reports
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise InvalidInput("the date range ends before it starts", field="from")
    keep = np.ones(len(reports), dtype=bool)
    if filters.category:
        keep &= (reports["category"].astype(str) == filters.category).to_numpy()
    if filters.subcategory:
        if "subcategory" not in reports.columns:
            keep &= False
        else:
            keep &= (reports["subcategory"].astype(str) == filters.subcategory).to_numpy()
    if filters.status:
        status = reports["status"].astype(str) if "status" in reports.columns else None
        keep &= status.isin(filters.status).to_numpy() if status is not None else False
    if filters.date_from or filters.date_to:
        days = _local_days(reports["reported_at"])
        epoch = date(1970, 1, 1)
        if filters.date_from:
            keep &= days >= (filters.date_from - epoch).days
        if filters.date_to:
            keep &= (days <= (filters.date_to - epoch).days) & (days != _NO_DAY)
    return reports[keep]


def quantile_breaks(counts: np.ndarray, k: int = 5) -> list[float]:
    """Upper bounds of ``k`` quantile classes, de-duplicated, as ``mapclassify.Quantiles``.

    ``gridmap.js`` computes the same breaks when the page filters, so the classes drawn
    before and after a filter follow one rule.
    """
    values = np.asarray(counts, dtype=float)
    if values.size == 0:
        return [0.0]
    qs = np.percentile(values, [100.0 * j / k for j in range(1, k + 1)])
    out: list[float] = []
    for q in qs.tolist():
        if not out or q != out[-1]:
            out.append(float(q))
    return out


def _colors_for(n: int) -> list[str]:
    if n >= len(PALETTE):
        return list(PALETTE)
    return [PALETTE[round(i * (len(PALETTE) - 1) / max(1, n - 1))] for i in range(n)]


def _legend_rows(breaks: list[float], colors: list[str]) -> list[tuple[str, str]]:
    rows, lo = [], 0
    for b, c in zip(breaks, colors, strict=True):
        hi = int(np.floor(b))
        rows.append((c, (str(hi) if lo >= hi else f"{lo}–{hi}") + " 件"))
        lo = hi + 1
    return rows


def _codes(values: pd.Series, order: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Distinct values (sorted, or in ``order`` first) and each row's index into them."""
    text = np.asarray(values.astype(object).where(values.notna(), "").to_numpy(), dtype=str)
    uniques, inverse = np.unique(text, return_inverse=True)
    present = uniques.tolist()
    if order:
        present = [v for v in order if v in present] + [v for v in present if v not in order]
        remap = np.array([present.index(v) for v in uniques.tolist()], dtype=np.int64)
        return present, remap[inverse] if len(remap) else inverse.astype(np.int64)
    return present, inverse.astype(np.int64)


def _report_payload(
    reports: gpd.GeoDataFrame, grid_index: np.ndarray, coordsys: Coordsys
) -> tuple[dict[str, Any], list[list[Any]], list[list[Any]], list[list[str]], int]:
    """Compact, whitelisted report arrays: sorted by longitude, longitudes delta-encoded."""
    cats_zh, subs_zh = category_names()
    pts = reports.geometry
    lon = pts.x.to_numpy(dtype=float)
    lat = pts.y.to_numpy(dtype=float)
    if coordsys.is_offset:
        lon, lat = coordsys.from_wgs84(lon, lat)
    cat_codes, cat_idx = _codes(reports["category"])
    sub_series = (
        reports["subcategory"]
        if "subcategory" in reports.columns
        else pd.Series([""] * len(reports))
    )
    sub_codes, sub_raw = _codes(sub_series)
    pair_keys, sub_idx = np.unique(cat_idx * max(1, len(sub_codes)) + sub_raw, return_inverse=True)
    subcategories = []
    for key in pair_keys.tolist():
        c, s = divmod(int(key), max(1, len(sub_codes)))
        code = sub_codes[s]
        subcategories.append([code, subs_zh.get(code, code) if code else "（未分类）", c])
    status_series = (
        reports["status"] if "status" in reports.columns else pd.Series([""] * len(reports))
    )
    status_codes, status_idx = _codes(status_series, order=list(STATUS_NAMES))
    days = _local_days(reports["reported_at"])
    valid_days = days[days != _NO_DAY]
    day0 = int(valid_days.min()) if valid_days.size else 0
    rel_days = np.where(days == _NO_DAY, _NO_DAY, days - day0)
    ok = np.isfinite(lon) & np.isfinite(lat)
    xi = np.round(lon * _REPORT_SCALE).astype(np.int64, copy=False) if ok.all() else None
    if xi is None:
        lon, lat = lon[ok], lat[ok]
        grid_index, cat_idx, sub_idx = grid_index[ok], cat_idx[ok], sub_idx[ok]
        status_idx, rel_days = status_idx[ok], rel_days[ok]
        xi = np.round(lon * _REPORT_SCALE).astype(np.int64)
    yi = np.round(lat * _REPORT_SCALE).astype(np.int64)
    order = np.lexsort((yi, xi))
    xi, yi = xi[order], yi[order]
    ox = int(xi.min()) if xi.size else 0
    oy = int(yi.min()) if yi.size else 0
    payload = {
        "scale": _REPORT_SCALE,
        "o": [ox, oy],
        "x": np.diff(xi, prepend=ox).tolist(),
        "y": (yi - oy).tolist(),
        "g": grid_index[order].tolist(),
        "c": cat_idx[order].tolist(),
        "s": sub_idx[order].tolist(),
        "t": status_idx[order].tolist(),
        "d": rel_days[order].tolist(),
        "day0": day0,
    }
    categories = [[c, cats_zh.get(c, c)] for c in cat_codes]
    statuses = [[s, STATUS_NAMES.get(s, s or "未知")] for s in status_codes]
    return payload, categories, subcategories, statuses, day0


def _filters_html(
    categories: list[list[Any]], statuses: list[list[str]], day_range: tuple[str, str]
) -> str:
    cat_opts = "".join(
        f'<option value="{i}">{esc(name)}</option>' for i, (_, name) in enumerate(categories)
    )
    boxes = "".join(
        f'<label><input type="checkbox" name="status" value="{i}" checked> {esc(name)}</label>'
        for i, (_, name) in enumerate(statuses)
    )
    lo, hi = day_range
    return (
        '<form id="gm-filters" class="gm-panel" autocomplete="off">'
        f'<label>类别<select id="gm-f-category"><option value="">全部类别</option>{cat_opts}'
        "</select></label>"
        '<label>小类<select id="gm-f-subcategory"><option value="">全部小类</option></select>'
        "</label>"
        f'<label>起<input type="date" id="gm-f-from" min="{lo}" max="{hi}"></label>'
        f'<label>止<input type="date" id="gm-f-to" min="{lo}" max="{hi}"></label>'
        f'<fieldset class="gm-statuses"><legend>状态</legend>{boxes}</fieldset>'
        '<button type="button" id="gm-f-reset">重置</button></form>'
    )


def render_hotspots(
    grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame | None,
    streets: gpd.GeoDataFrame | None,
    roads: gpd.GeoDataFrame | None,
    reports: gpd.GeoDataFrame,
    teams: pd.DataFrame | None = None,
    *,
    title: str = "案件热点图",
    filters: HotspotFilters | None = None,
    basemap: MapSettings | None = None,
    asset_mode: AssetMode = "inline",
    tolerance_m: float = 2.0,
    classes: int = 5,
) -> str:
    """The hotspot page as one HTML string (standalone with ``asset_mode="inline"``).

    Parameters
    ----------
    teams
        Optional table keyed by ``grid_code`` with ``leader``, ``deputy`` and
        ``party_secretary``; only those three columns reach the popups.
    filters
        Applied here before anything is embedded; the page filters further itself.
    tolerance_m
        Coverage simplification tolerance for the grid layer, in metres.
    """
    coordsys = basemap_coordsys(basemap)
    grids = to_wgs84(grids).reset_index(drop=True)
    reports = to_wgs84(filter_reports(reports, filters))
    reports = reports[reports.geometry.notna() & ~reports.geometry.is_empty]
    simple = simplify_coverage(grids, tolerance_m, coordsys=coordsys)
    codes, names, comms = grid_labels(grids, communities)
    grid_index = assign_to_grids(reports, grids)
    rep, categories, subcategories, statuses, day0 = _report_payload(reports, grid_index, coordsys)

    counts = np.bincount(grid_index[grid_index >= 0], minlength=len(grids))
    breaks = quantile_breaks(counts, classes)
    colors = _colors_for(len(breaks))
    valid = [d for d in rep["d"] if d != _NO_DAY]
    epoch = date(1970, 1, 1).toordinal()
    day_range = (
        (
            date.fromordinal(epoch + day0 + min(valid)).isoformat(),
            date.fromordinal(epoch + day0 + max(valid)).isoformat(),
        )
        if valid
        else ("", "")
    )
    geoms = list(simple.geometry)
    payload = {
        "bounds": bounds_of(geoms),
        "basemap": basemap_payload(basemap),
        "grids": grid_layer(geoms, codes, names, comms, teams),
        **boundary_layers(simple, communities, streets, roads, coordsys),
        "reports": rep,
        "categories": categories,
        "subcategories": subcategories,
        "statuses": statuses,
        "classes": {
            "k": classes,
            "breaks": breaks,
            "colors": colors,
            "palette": list(PALETTE),
            "scheme": "分位数分级",
        },
        "legendTitle": "每网格案件数",
    }
    subtitle = (filters.describe() if filters else "") or "全部案件"
    legend = legend_html(
        "每网格案件数", _legend_rows(breaks, colors), f"共 {len(reports):,} 件（分位数分级）"
    )
    panels = (
        f'<div id="gm-title" class="gm-title">{esc(title)}<small>{esc(subtitle)}</small></div>'
        + _filters_html(categories, statuses, day_range)
        + legend
    )
    return render_page(
        kind="hotspots",
        title=title,
        payload=payload,
        panels_html=panels,
        asset_mode=asset_mode,
        basemap=basemap,
        assets=[
            "leaflet_css",
            "cluster_css",
            "cluster_default_css",
            "gridmap_css",
            "leaflet",
            "heat",
            "cluster",
            "gridmap",
        ],
    )
