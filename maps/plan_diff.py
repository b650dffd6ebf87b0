"""Plan comparison map: the new plan's grids coloured by the change in load, old lines on top.

"Change in load" is per new grid: its households now minus the load of the old grids its
households came from (each building's old grid total, weighted by the building's
households). A team that took over half of a 700-household grid and now has 350 sees -350.
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
from maps.geometry import encode_lines, simplify_coverage

__all__ = ["CHANGE_COLORS", "change_class", "load_change", "render_compare"]

#: ColorBrewer RdBu reversed, 7 classes: blue = lighter load, red = heavier.
CHANGE_COLORS = ("#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b")


def load_change(
    grids_a: gpd.GeoDataFrame, grids_b: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame
) -> pd.DataFrame:
    """Per new grid: ``households``, ``before``, ``delta`` and ``previous`` old grids.

    ``previous`` lists ``(old_code, households moved)`` largest first: the crosswalk as
    the buildings see it.
    """
    codes_a = grids_a["code"].astype(str).to_numpy()
    codes_b = grids_b["code"].astype(str).to_numpy()
    hh = pd.to_numeric(buildings["households"], errors="coerce").fillna(0).to_numpy()
    bare = buildings.drop(columns=["grid_code"], errors="ignore")
    ia = assign_to_grids(bare, grids_a)
    ib = assign_to_grids(bare, grids_b)
    load_a = np.bincount(ia[ia >= 0], hh[ia >= 0], minlength=len(grids_a))
    load_b = np.bincount(ib[ib >= 0], hh[ib >= 0], minlength=len(grids_b))
    in_b = ib >= 0
    weight = np.bincount(ib[in_b], hh[in_b], minlength=len(grids_b))
    old_load = np.where(ia >= 0, load_a[np.clip(ia, 0, None)], 0.0)
    weighted = np.bincount(ib[in_b], (hh * old_load)[in_b], minlength=len(grids_b))
    before = np.divide(weighted, weight, out=np.zeros(len(grids_b)), where=weight > 0)
    moved = pd.DataFrame({"b": ib, "a": ia, "hh": hh})
    moved = moved[(moved["b"] >= 0) & (moved["a"] >= 0)]
    sums = moved.groupby(["b", "a"], sort=True)["hh"].sum().reset_index()
    previous: list[list[tuple[str, int]]] = [[] for _ in range(len(grids_b))]
    for b, a, h in sums.sort_values(["b", "hh", "a"], ascending=[True, False, True]).itertuples(
        index=False
    ):
        previous[int(b)].append((str(codes_a[int(a)]), round(float(h))))
    households = load_b.round().astype(np.int64)
    before_i = before.round().astype(np.int64)
    return pd.DataFrame(
        {
            "households": households,
            "before": before_i,
            "delta": households - before_i,
            "previous": previous,
        },
        index=pd.Index(codes_b, name="grid_code"),
    )


def change_class(delta: np.ndarray, steps: tuple[int, int, int]) -> np.ndarray:
    """Index into :data:`CHANGE_COLORS`: 3 is "about the same" (within ±steps[0])."""
    s1, s2, s3 = steps
    edges = np.array([-s3, -s2, -s1, s1, s2, s3], dtype=float)
    d = np.asarray(delta, dtype=float)
    # Losses close their class at the lower edge, gains at the upper: |delta| <= s1 is 3.
    idx = np.where(
        d <= 0, np.searchsorted(edges, d, side="right"), np.searchsorted(edges, d, side="left")
    )
    return np.clip(idx, 0, 6)


def _change_legend(steps: tuple[int, int, int]) -> list[tuple[str, str]]:
    s1, s2, s3 = steps
    labels = [
        f"减少 {s3} 户以上",
        f"减少 {s2}–{s3} 户",
        f"减少 {s1}–{s2} 户",
        f"基本不变（±{s1} 户）",
        f"增加 {s1}–{s2} 户",
        f"增加 {s2}–{s3} 户",
        f"增加 {s3} 户以上",
    ]
    return list(zip(CHANGE_COLORS, labels, strict=True))


def render_compare(
    grids_a: gpd.GeoDataFrame,
    grids_b: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    *,
    communities: gpd.GeoDataFrame | None = None,
    streets: gpd.GeoDataFrame | None = None,
    roads: gpd.GeoDataFrame | None = None,
    teams: pd.DataFrame | None = None,
    labels: tuple[str, str] = ("原方案", "新方案"),
    title: str = "网格方案对比",
    steps: tuple[int, int, int] = (25, 100, 250),
    basemap: MapSettings | None = None,
    asset_mode: AssetMode = "inline",
    tolerance_m: float = 2.0,
) -> str:
    """Plan ``b`` (new) filled by change in load, plan ``a`` (old) as toggleable dashed lines."""
    if not (0 < steps[0] < steps[1] < steps[2]):
        raise InvalidInput(f"steps {steps} must increase", field="steps")
    coordsys = basemap_coordsys(basemap)
    grids_a = to_wgs84(grids_a).reset_index(drop=True)
    grids_b = to_wgs84(grids_b).reset_index(drop=True)
    change = load_change(grids_a, grids_b, buildings)
    simple_b = simplify_coverage(grids_b, tolerance_m, coordsys=coordsys)
    simple_a = simplify_coverage(grids_a, tolerance_m, coordsys=coordsys)
    codes, names, comms = grid_labels(grids_b, communities)
    cls = change_class(change["delta"].to_numpy(), steps)
    geoms = list(simple_b.geometry)
    payload = {
        "bounds": bounds_of(geoms + list(simple_a.geometry)),
        "basemap": basemap_payload(basemap),
        "grids": grid_layer(geoms, codes, names, comms, teams),
        **boundary_layers(simple_b, communities, streets, roads, coordsys),
        "old": encode_lines(list(simple_a.geometry)),
        "oldLabel": f"{labels[0]}边界",
        "change": {
            "households": change["households"].tolist(),
            "before": change["before"].tolist(),
            "delta": change["delta"].tolist(),
            "previous": [[list(p) for p in prev] for prev in change["previous"]],
            "color": [CHANGE_COLORS[i] for i in cls.tolist()],
        },
    }
    legend = legend_html("负荷变化（户）", _change_legend(steps), f"虚线：{labels[0]}边界")
    summary = (
        f"{labels[0]} {len(grids_a)} 格 → {labels[1]} {len(grids_b)} 格 · "
        f"{int((np.abs(change['delta']) > steps[0]).sum())} 格负荷变化超过 {steps[0]} 户"
    )
    panel = (
        '<form id="gm-compare-panel" class="gm-panel" autocomplete="off">'
        f'<label><input type="checkbox" id="gm-old-toggle" checked> 显示{esc(labels[0])}边界'
        "</label></form>"
    )
    panels = (
        f'<div id="gm-title" class="gm-title">{esc(title)}<small>{esc(summary)}</small></div>'
        + panel
        + legend
    )
    return render_page(
        kind="compare",
        title=title,
        payload=payload,
        panels_html=panels,
        asset_mode=asset_mode,
        basemap=basemap,
        assets=["leaflet_css", "gridmap_css", "leaflet", "gridmap"],
    )
