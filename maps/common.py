"""What the three maps share: the layers every page draws, names, teams and the page shell.

Pages are built with folium (``Map`` inside a branca ``Figure``) but draw their layers in
``static/gridmap.js`` from one JSON payload, so that filters can redraw them in the browser
and 100,000 report points stay a few megabytes. The geometry is prepared in
:mod:`maps.geometry`: simplified as a coverage, snapped to 1e-6 degrees where that breaks
nothing, and sent as delta-encoded integers.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from folium.template import Template

from geo.assign import COARSE_TABLE, GridIndex
from geo.crs import Coordsys, to_wgs84
from geo.errors import InvalidInput
from geo.settings import MapSettings
from maps.assets import AssetMode, asset_tags, csp_for
from maps.geometry import (
    Layer,
    display_lines,
    dissolve_by,
    encode_lines,
    encode_polygons,
    union_of_tiles,
)

__all__ = [
    "STATUS_NAMES",
    "assign_to_grids",
    "basemap_coordsys",
    "basemap_payload",
    "boundary_layers",
    "bounds_of",
    "category_names",
    "esc",
    "grid_labels",
    "grid_layer",
    "legend_html",
    "render_page",
    "team_rows",
]

#: Chinese names of the closed-loop steps; unknown statuses fall back to their code.
STATUS_NAMES: dict[str, str] = {
    "open": "待处理",
    "reported": "已上报",
    "registered": "已立案",
    "dispatched": "已派遣",
    "handling": "处置中",
    "in_progress": "处理中",
    "handled": "已处置",
    "verified": "已核查",
    "closed": "已结案",
    "rejected": "不予受理",
}

_RESPONSIBILITY = Path(__file__).resolve().parent.parent / "geo" / "data" / "responsibility.json"


# --- layers ------------------------------------------------------------------------------


def grid_layer(
    geoms: Sequence[Any],
    codes: list[str],
    names: list[str],
    communities: list[str],
    teams: pd.DataFrame | None,
) -> Layer:
    """The grid layer every page draws: shapes (from :func:`maps.geometry.simplify_coverage`,
    already in display coordinates) plus what the popups name."""
    return {
        **encode_polygons(geoms),
        "code": codes,
        "name": names,
        "community": communities,
        "team": team_rows(teams, codes),
    }


def assign_to_grids(points: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> np.ndarray:
    """Row index of the grid holding each point, -1 outside every grid.

    Uses a ``grid_code`` column when the points already carry one (the stored assignment
    is authoritative); otherwise the assignment rule itself (``geo.assign.GridIndex``).
    """
    n = len(points)
    lookup = pd.Series(np.arange(len(grids)), index=grids["code"].astype(str).to_numpy())
    lookup = lookup[~lookup.index.duplicated()]
    if "grid_code" in points.columns:
        codes = points["grid_code"].astype("string").fillna("")
        return codes.map(lookup).fillna(-1).astype(np.int64).to_numpy()
    if n == 0 or len(grids) == 0:
        return np.full(n, -1, dtype=np.int64)
    pts = to_wgs84(points).geometry.to_numpy() if points.crs is not None else points.geometry
    # A plan's grids, checked when they were stored or drafted.
    index = GridIndex.from_frame(
        grids, code_column="code", validated=True, cells_per_grid=COARSE_TABLE
    )
    result = index.assign(shapely.get_x(pts), shapely.get_y(pts))
    rows = lookup.reindex(index.codes.astype(str)).to_numpy(dtype=np.int64)
    return np.where(result.position >= 0, rows[result.position], -1).astype(np.int64)


# --- names and teams ---------------------------------------------------------------------


@cache
def category_names() -> tuple[dict[str, str], dict[str, str]]:
    """Chinese names of categories and subcategories from the responsibility list, if any."""
    try:
        data = json.loads(_RESPONSIBILITY.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, {}
    cats: dict[str, str] = {}
    subs: dict[str, str] = {}
    for cat in data.get("categories", []) if isinstance(data, dict) else []:
        cats[str(cat.get("code"))] = str(cat.get("name_zh") or cat.get("name") or cat["code"])
        for sub in cat.get("subcategories", []):
            subs[str(sub.get("code"))] = str(sub.get("name_zh") or sub.get("name") or sub["code"])
    return cats, subs


_TEAM_ROLES = (
    ("leader", "网格长"),
    ("deputy", "专职网格员"),
    ("party_secretary", "党支部书记"),
)


def team_rows(teams: pd.DataFrame | None, codes: Sequence[str]) -> list[list[list[str]]]:
    """Per grid, ``[[role, person], ...]`` from a teams table keyed by ``grid_code``.

    Only the three team roles are read: nothing else of a teams table reaches the page.
    """
    if teams is None or len(teams) == 0 or "grid_code" not in teams.columns:
        return [[] for _ in codes]
    by_code = teams.assign(grid_code=teams["grid_code"].astype(str))
    by_code = by_code.drop_duplicates("grid_code").set_index("grid_code")
    out: list[list[list[str]]] = []
    for code in codes:
        rows: list[list[str]] = []
        if code in by_code.index:
            rec = by_code.loc[code]
            for col, label in _TEAM_ROLES:
                if col in by_code.columns and pd.notna(rec[col]) and str(rec[col]):
                    rows.append([label, str(rec[col])])
        out.append(rows)
    return out


def grid_labels(
    grids: gpd.GeoDataFrame, communities: gpd.GeoDataFrame | None
) -> tuple[list[str], list[str], list[str]]:
    """Codes, names and community names of the grids, as strings for the payload."""
    codes = grids["code"].astype(str).tolist()
    names = (
        grids["name"].fillna("").astype(str).tolist()
        if "name" in grids.columns
        else [""] * len(codes)
    )
    comm_names: dict[str, str] = {}
    if communities is not None and len(communities) and "name" in communities.columns:
        comm_names = dict(
            zip(communities["code"].astype(str), communities["name"].astype(str), strict=False)
        )
    if "community_code" in grids.columns:
        cc = grids["community_code"].astype(str).tolist()
        comms = [comm_names.get(c, c) for c in cc]
    else:
        comms = [""] * len(codes)
    return codes, names, comms


def boundary_layers(
    simple: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame | None,
    streets: gpd.GeoDataFrame | None,
    roads: gpd.GeoDataFrame | None,
    coordsys: Coordsys,
) -> dict[str, Layer]:
    """Community and street outlines (dissolved from the drawn grids) and roads.

    ``simple`` is already in display coordinates; ``coordsys`` offsets the roads alike.
    """
    out: dict[str, Layer] = {}
    if "community_code" in simple.columns and len(simple):
        comm = dissolve_by(simple, simple["community_code"])
        names = {}
        if communities is not None and len(communities):
            names = dict(
                zip(communities["code"].astype(str), communities["name"].astype(str), strict=False)
            )
        out["communities"] = {
            **encode_lines(list(comm.values())),
            "name": [names.get(k, k) for k in comm],
        }
        if communities is not None and len(communities) and "street_code" in communities.columns:
            street_of = dict(
                zip(
                    communities["code"].astype(str),
                    communities["street_code"].astype(str),
                    strict=False,
                )
            )
            keys = [street_of.get(k) for k in comm]
            if all(keys):
                groups: dict[str, list[Any]] = {}
                for k, geom in zip(keys, comm.values(), strict=True):
                    groups.setdefault(str(k), []).append(geom)
                street_names = {}
                if streets is not None and len(streets):
                    street_names = dict(
                        zip(streets["code"].astype(str), streets["name"].astype(str), strict=False)
                    )
                merged = [union_of_tiles(v) for v in groups.values()]
                out["streets"] = {
                    **encode_lines(merged),
                    "name": [street_names.get(k, k) for k in groups],
                }
    if roads is not None and len(roads):
        out["roads"] = encode_lines(display_lines(roads, coordsys=coordsys))
    return out


# --- page --------------------------------------------------------------------------------


def basemap_coordsys(basemap: MapSettings | None) -> Coordsys:
    """The system the basemap's tiles are drawn in: GCJ-02 for AMap, else WGS 84."""
    if basemap is not None and basemap.basemap == "amap":
        return Coordsys.GCJ02
    return Coordsys.WGS84


def basemap_payload(basemap: MapSettings | None) -> list[dict[str, Any]]:
    """Tile layers for the chosen basemap; empty for ``none`` (the district's own layers)."""
    if basemap is None or basemap.basemap == "none":
        return []
    if basemap.basemap == "local":
        if not basemap.tile_url:
            raise InvalidInput("the local basemap needs a tile URL", field="maps.tile_url")
        return [{"url": basemap.tile_url, "name": "底图", "attribution": "", "subdomains": "abc"}]
    if basemap.basemap == "tianditu":
        if not basemap.tianditu_key:
            raise InvalidInput("Tianditu needs a key", field="maps.tianditu_key")
        key = basemap.tianditu_key
        base = (
            "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
            "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}"
            "&TILEROW={y}&TILECOL={x}&tk=" + key
        )
        return [
            {
                "url": base.replace("{layer}", "vec"),
                "name": "天地图",
                "attribution": "天地图",
                "subdomains": "01234567",
            },
            {
                "url": base.replace("{layer}", "cva"),
                "name": "天地图注记",
                "attribution": "",
                "subdomains": "01234567",
                "overlay": True,
            },
        ]
    return [
        {
            "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
            "name": "高德地图",
            "attribution": "高德地图 (GCJ-02)",
            "subdomains": "1234",
        }
    ]


def _json_for_script(payload: Any) -> str:
    """JSON that cannot close its ``<script>`` element: every ``<`` is escaped."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _number_ids(root: Element) -> None:
    """Replace folium's random uuid ids by a counter, so equal input gives equal bytes."""
    n = 0
    stack = [root]
    while stack:
        element = stack.pop(0)
        n += 1
        element._id = f"gm{n}"
        extra = [getattr(element, k) for k in ("header", "html", "script") if hasattr(element, k)]
        stack.extend(e for e in extra if isinstance(e, Element))
        stack.extend(element._children.values())


class _Raw(Element):
    """Literal HTML, never parsed as a Jinja template.

    branca compiles an ``Element``'s text as a template: a 2 MB payload would be lexed
    for nothing, and a grid named ``{{ ... }}`` would be evaluated.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "Raw"
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


_MAIN = Template(
    """
{% macro html(this, kwargs) %}{{ this.body|safe }}{% endmacro %}
{% macro script(this, kwargs) %}
    gridmap.start({{ this._parent.get_name() }}, "{{ this.kind }}", "{{ this.data_id }}");
{% endmacro %}
"""
)


class _GridmapLayers(MacroElement):
    """The one folium element that hands the payload to ``gridmap.js``."""

    _template = _MAIN

    def __init__(self, kind: str, body: str, data_id: str) -> None:
        super().__init__()
        self._name = "GridmapLayers"
        self.kind = kind
        self.body = body
        self.data_id = data_id


def bounds_of(geoms: Sequence[Any]) -> list[list[float]]:
    """``[[south, west], [north, east]]`` of the geometries, for ``fitBounds``."""
    valid = [g for g in geoms if g is not None and not g.is_empty]
    if not valid:
        return [[38.85, 121.5], [38.95, 121.7]]
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(valid, dtype=object))
    return [[round(miny, 6), round(minx, 6)], [round(maxy, 6), round(maxx, 6)]]


def render_page(
    *,
    kind: str,
    title: str,
    payload: dict[str, Any],
    panels_html: str,
    asset_mode: AssetMode,
    basemap: MapSettings | None,
    assets: list[str],
) -> str:
    """One standalone HTML page: folium map shell, assets, payload, legend and panels."""
    if asset_mode not in ("inline", "served"):
        raise InvalidInput(f"unknown asset mode {asset_mode!r}", field="asset_mode")
    bounds = payload["bounds"]
    center = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    m = folium.Map(location=center, zoom_start=13, tiles=None, control_scale=True)
    # Per-instance lists: folium's class-level ones are shared by every map in the process.
    m.default_js = []
    m.default_css = []
    fig = m.get_root()
    assert isinstance(fig, Figure)
    fig.title = html.escape(title)  # branca writes it unescaped
    csp = csp_for(basemap, inline=asset_mode == "inline")
    fig.header.add_child(
        _Raw(f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">'),
        name="gm_csp",
        index=0,
    )
    # An empty icon: no /favicon.ico request, which would 404 (served) or fail (file://).
    fig.header.add_child(_Raw('<link rel="icon" href="data:,">'), name="gm_icon")
    fig.header.add_child(_Raw(asset_tags(assets, asset_mode)), name="gm_assets")
    data_id = "gm-data"
    fig.header.add_child(
        _Raw(
            f'<script type="application/json" id="{data_id}">{_json_for_script(payload)}</script>'
        ),
        name="gm_data",
    )
    m.add_child(_GridmapLayers(kind, panels_html, data_id), name="gridmap")
    _number_ids(fig)
    return fig.render()


def esc(text: object) -> str:
    """HTML-escape for the panels rendered in Python."""
    return html.escape(str(text), quote=True)


def legend_html(title: str, rows: list[tuple[str, str]], note: str = "") -> str:
    """A legend box (colour swatch + label per row); ``gridmap.js`` moves it into a control."""
    items = "".join(
        f'<div class="gm-legend-row"><i style="background:{esc(color)}"></i>'
        f"<span>{esc(label)}</span></div>"
        for color, label in rows
    )
    note_html = f'<div class="gm-legend-note">{esc(note)}</div>' if note else ""
    return (
        f'<div id="gm-legend" class="gm-legend"><div class="gm-legend-title">{esc(title)}</div>'
        f'<div class="gm-legend-rows">{items}</div>{note_html}</div>'
    )
