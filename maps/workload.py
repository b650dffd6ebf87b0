"""Workload map: households, residents, buildings and open reports per grid against a band.

Grids are coloured under / inside / over the target band of households, so a planner sees
at once where to regrid. The page lets the band be changed and recolours in place.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.crs import to_wgs84
from geo.errors import InvalidInput
from geo.settings import MapSettings
from maps.assets import AssetMode
from maps.common import (
    assign_to_grids,
    basemap_payload,
    boundary_layers,
    bounds_of,
    encode_polygons,
    esc,
    grid_labels,
    legend_html,
    render_page,
    simplify_coverage,
    team_rows,
)

__all__ = [
    "BAND_COLORS",
    "CLOSED_STATUSES",
    "LOAD_COLUMNS",
    "grid_workload",
    "is_open",
    "render_workload",
]

#: Statuses that end the closed loop; every other status is an open case.
CLOSED_STATUSES = frozenset({"closed", "rejected"})
LOAD_COLUMNS = ("households", "residents", "buildings", "open_reports")
BAND_COLORS = {"under": "#74add1", "inside": "#a6d96a", "over": "#d73027"}
BAND_LABELS = {"under": "低于目标", "inside": "目标范围内", "over": "超出目标"}


def is_open(reports: pd.DataFrame) -> np.ndarray:
    """Open cases: status not closed/rejected; without a status column, no ``closed_at``."""
    if "status" in reports.columns:
        return ~reports["status"].astype("string").fillna("").isin(CLOSED_STATUSES).to_numpy()
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
) -> str:
    """The workload page as one HTML string.

    Parameters
    ----------
    band
        Target households per grid, inclusive (300–500 is common urban practice).
    stats
        Precomputed load indexed by grid code (e.g. from the database) with
        :data:`LOAD_COLUMNS`; computed from ``buildings`` and ``reports`` when ``None``.
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
    simple = simplify_coverage(grids, tolerance_m)
    classes = classify_band(load["households"].to_numpy(), band)
    tally = {c: int((classes == c).sum()) for c in BAND_COLORS}
    geoms = list(simple.geometry)
    payload = {
        "bounds": bounds_of(geoms),
        "basemap": basemap_payload(basemap),
        "grids": {
            **encode_polygons(geoms, basemap is not None and basemap.basemap == "amap"),
            "code": codes,
            "name": names,
            "community": comms,
            "team": team_rows(teams, codes),
        },
        **boundary_layers(
            simple, communities, streets, roads, basemap is not None and basemap.basemap == "amap"
        ),
        "load": {col: load[col].round().astype(np.int64).tolist() for col in LOAD_COLUMNS},
        "band": [int(lo), int(hi)],
        "colors": BAND_COLORS,
        "classLabels": BAND_LABELS,
        "legendTitle": "网格户数与目标",
    }
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
