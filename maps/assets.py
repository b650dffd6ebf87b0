"""Bundled, pinned JS/CSS for the maps: pages never load a script, style or icon from a CDN.

Government networks are often cut off from the internet, so every page either inlines its
assets (standalone files, ``file://``) or references ``/static/maps/<file>`` served by
gridmap itself from :data:`STATIC_DIR`. Folium's own CDN lists are never used: each map
instance gets empty ``default_js``/``default_css`` (never the shared class attributes).

The vendored files come from the npm registry (``npm pack NAME@VERSION``) with only their
``sourceMappingURL`` comment removed; :data:`ASSETS` pins each file's version and sha256.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from geo.settings import MapSettings

__all__ = [
    "ASSETS",
    "CSP",
    "STATIC_DIR",
    "STATIC_URL",
    "Asset",
    "AssetMode",
    "asset_tags",
    "csp_for",
    "tile_hosts",
    "verify_assets",
]

#: Directory the app serves at :data:`STATIC_URL` (``app.mount("/static/maps", ...)``).
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static/maps"

AssetMode = Literal["inline", "served"]


@dataclass(frozen=True)
class Asset:
    """One vendored file, pinned by package version and content hash."""

    name: str
    file: str
    package: str
    version: str
    sha256: str

    @property
    def kind(self) -> Literal["js", "css"]:
        """Script or stylesheet, from the file extension."""
        return "css" if self.file.endswith(".css") else "js"


#: Every file a map page may need, in load order. ``gridmap.*`` are gridmap's own.
ASSETS: tuple[Asset, ...] = (
    Asset(
        "leaflet_css",
        "leaflet.css",
        "leaflet",
        "1.9.4",
        "a7837102824184820dfa198d1ebcd109ff6d0ff9a2672a074b9a1b4d147d04c6",
    ),
    Asset(
        "leaflet",
        "leaflet.js",
        "leaflet",
        "1.9.4",
        "dc71f8a6880bc3ca1bd9fa8dc5f1af48c702dc510b0a78240a07c5feed7ce935",
    ),
    Asset(
        "heat",
        "leaflet-heat.js",
        "leaflet.heat",
        "0.2.0",
        "eb952aae5806a1102729f291bab887dde783ace859819a354827a776e73e486a",
    ),
    Asset(
        "cluster_css",
        "MarkerCluster.css",
        "leaflet.markercluster",
        "1.5.3",
        "614dea0a98ff3f4ead74f04918f6b1d1b9ba435c25b5fc23b21a394d1e3e4d87",
    ),
    Asset(
        "cluster_default_css",
        "MarkerCluster.Default.css",
        "leaflet.markercluster",
        "1.5.3",
        "61258232d98d64dc2a7b1e02130d67421bc5b9bda5994eef70228ff97570c170",
    ),
    Asset(
        "cluster",
        "leaflet.markercluster.js",
        "leaflet.markercluster",
        "1.5.3",
        "b1ef34ccee0fb36d856ff4719c759046a0e14293dbbf9d531d969735481168bc",
    ),
    Asset(
        "gridmap_css",
        "gridmap.css",
        "gridmap",
        "0.2.0",
        "f977e82622d09f7928e8bb813eca196da0a3d502e834c4dcd8aea91736a85111",
    ),
    Asset(
        "gridmap",
        "gridmap.js",
        "gridmap",
        "0.3.0",
        "29a2ad3f9adfa0d9c35f08b2af612fda3ea48c79a03c243f9cf922497fe27a7c",
    ),
)

_BY_NAME = {a.name: a for a in ASSETS}
_BASE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:"
)
#: Content-Security-Policy for served pages with no tile basemap (the default).
CSP = _BASE_CSP

#: Tile hosts of the hosted basemaps; only these may appear in ``img-src``.
_TIANDITU_HOSTS = "https://*.tianditu.gov.cn"
_AMAP_HOSTS = "https://*.is.autonavi.com"


def tile_hosts(basemap: MapSettings | None) -> list[str]:
    """Origins the page must fetch tiles from: none for the default ``none`` basemap."""
    if basemap is None or basemap.basemap == "none":
        return []
    if basemap.basemap == "tianditu":
        return [_TIANDITU_HOSTS]
    if basemap.basemap == "amap":
        return [_AMAP_HOSTS]
    parts = urlsplit(basemap.tile_url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        host = parts.netloc.replace("{s}", "*")
        return [f"{parts.scheme}://{host}"]
    return []  # a relative URL is served by gridmap itself: 'self'


def csp_for(basemap: MapSettings | None, *, inline: bool = False) -> str:
    """The CSP for a page: outside hosts forbidden except the configured tile host.

    ``inline=True`` gives the policy for a standalone file, which needs no 'self' at all:
    it is written into the page as a ``<meta>`` so even a file opened from disk cannot
    reach the network.
    """
    hosts = " ".join(tile_hosts(basemap))
    if inline:
        policy = (
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src data:"
        )
    else:
        policy = _BASE_CSP
    return f"{policy} {hosts}".rstrip() if hosts else policy


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_assets() -> list[str]:
    """Names of pinned files whose content no longer matches its sha256 (empty when fine)."""
    return [a.name for a in ASSETS if a.sha256 and _sha256(STATIC_DIR / a.file) != a.sha256]


_CSS_URL = re.compile(r"url\((['\"]?)(images/[^)'\"]+)\1\)")


@cache
def _inline_text(name: str) -> str:
    """File contents ready to sit inside a ``<script>``/``<style>``; CSS images as data URIs."""
    asset = _BY_NAME[name]
    text = (STATIC_DIR / asset.file).read_text(encoding="utf-8")
    if asset.kind == "css":

        def _data_uri(match: re.Match[str]) -> str:
            raw = (STATIC_DIR / match.group(2)).read_bytes()
            return f'url("data:image/png;base64,{base64.b64encode(raw).decode()}")'

        text = _CSS_URL.sub(_data_uri, text)
        return text.replace("</style", "<\\/style")
    return text.replace("</script", "<\\/script")


def asset_tags(names: list[str], mode: AssetMode) -> str:
    """HTML tags for the named assets: inlined contents or links under :data:`STATIC_URL`."""
    out: list[str] = []
    for name in names:
        asset = _BY_NAME[name]
        if mode == "inline":
            tag = "style" if asset.kind == "css" else "script"
            out.append(
                f"<{tag}>/* {asset.package} {asset.version} */\n{_inline_text(name)}</{tag}>"
            )
        elif asset.kind == "css":
            out.append(
                f'<link rel="stylesheet" href="{STATIC_URL}/{asset.file}?v={asset.version}">'
            )
        else:
            out.append(f'<script src="{STATIC_URL}/{asset.file}?v={asset.version}"></script>')
    return "\n".join(out)
