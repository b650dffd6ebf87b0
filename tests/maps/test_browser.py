"""The maps in a real headless Chromium, with every host but 127.0.0.1 unreachable."""

from __future__ import annotations

import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import numpy as np
import pytest
import shapely

from maps.assets import CSP, STATIC_DIR
from maps.hotspots import render_hotspots
from maps.plan_diff import render_compare
from maps.workload import render_workload
from tests.handmade import odd_layers
from tests.maps.test_geometry import decode
from tests.maps.test_maps import fake_case_stats, old_plan, small_district

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium"),
]


def _district() -> SimpleNamespace:
    """The fixture's tiny district when it exists, else the tests' own synthetic one."""
    try:
        from fixtures.district import generate_district
    except ImportError:
        return small_district()
    layers = generate_district("tiny", seed=7)
    d = SimpleNamespace(
        **{
            k: getattr(layers, k)
            for k in ("grids", "communities", "streets", "roads", "buildings", "reports")
        }
    )
    d.teams = None
    d.old = _merge_pairs(d.grids)
    return d


def _merge_pairs(grids):
    """An 'old plan': neighbouring grids of a community merged two by two."""
    import geopandas as gpd

    rows = []
    for comm, part in grids.sort_values("code").groupby("community_code", sort=True):
        geoms = list(part.geometry)
        for i in range(0, len(geoms), 2):
            rows.append(
                {
                    "code": f"OLD{len(rows):02d}",
                    "community_code": comm,
                    "geometry": gpd.GeoSeries(geoms[i : i + 2]).union_all(),
                }
            )
    return gpd.GeoDataFrame(rows, crs=grids.crs)


@pytest.fixture(scope="module")
def district() -> SimpleNamespace:
    d = _district()
    if not hasattr(d, "old"):
        d.old = old_plan()
    return d


def _rings(geom) -> list:
    """Rings of polygons (exterior then holes, part by part), or the parts of lines."""
    if geom.geom_type in ("LineString", "MultiLineString"):
        return list(shapely.get_parts(geom))
    return [ring for part in shapely.get_parts(geom) for ring in (part.exterior, *part.interiors)]


def _odd_pages(mode: str) -> dict[str, str]:
    """The three maps of the hand-drawn odd district (tiny, sliver, island-only, enclave)."""
    odd = odd_layers(reports="open")
    grids, buildings, reports = odd["grids"], odd["buildings"], odd["reports"]
    rest = {"communities": odd["communities"], "streets": odd["streets"], "roads": odd["roads"]}
    return {
        "odd_hotspots": render_hotspots(
            grids, rest["communities"], rest["streets"], rest["roads"], reports, asset_mode=mode
        ),
        "odd_workload": render_workload(
            grids, buildings, reports, (100, 200), **rest, asset_mode=mode
        ),
        "odd_compare": render_compare(
            _merge_pairs(grids), grids, buildings, **rest, asset_mode=mode
        ),
    }


@pytest.fixture(scope="module")
def site(district) -> Iterator[str]:
    """Pages (inline and served) and /static/maps/ on a local server that sends the CSP."""
    root = Path(tempfile.mkdtemp(prefix="gridmap-maps-"))
    shutil.copytree(STATIC_DIR, root / "static" / "maps")
    d = district
    for mode in ("inline", "served"):
        pages = {
            "hotspots": render_hotspots(
                d.grids, d.communities, d.streets, d.roads, d.reports, d.teams, asset_mode=mode
            ),
            "workload": render_workload(
                d.grids,
                d.buildings,
                d.reports,
                (250, 450),
                communities=d.communities,
                streets=d.streets,
                roads=d.roads,
                asset_mode=mode,
                case_stats=fake_case_stats(d.grids),
            ),
            "workload_plain": render_workload(
                d.grids, d.buildings, d.reports, (250, 450), asset_mode=mode
            ),
            "compare": render_compare(
                d.old,
                d.grids,
                d.buildings,
                communities=d.communities,
                streets=d.streets,
                roads=d.roads,
                asset_mode=mode,
            ),
        }
        pages.update(_odd_pages(mode))
        for kind, page in pages.items():
            (root / f"{kind}-{mode}.html").write_text(page, encoding="utf-8")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def end_headers(self) -> None:
            self.send_header("Content-Security-Policy", CSP)
            super().end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        yield b
        b.close()


class Visit:
    """One page load: console errors, blocked requests and the page itself."""

    def __init__(self, browser, url: str) -> None:
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.context = browser.new_context(viewport={"width": 1200, "height": 800})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.page.wait_for_function(
            "() => !!(window.gridmapState && window.gridmapState.ready)", timeout=15000
        )

    def _route(self, route) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith("data:") or host == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def state(self, expr: str):
        return self.page.evaluate(f"() => {{ const s = window.gridmapState; return {expr}; }}")

    def fills(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "path.gm-grid", "els => els.map(e => e.getAttribute('fill'))"
        )

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.blocked == [], self.blocked
        self.context.close()


@pytest.fixture
def visit(browser, site):
    opened: list[Visit] = []

    def _open(name: str) -> Visit:
        v = Visit(browser, f"{site}/{name}.html")
        opened.append(v)
        return v

    yield _open
    for v in opened:
        v.close()


@pytest.mark.parametrize("mode", ["inline", "served"])
@pytest.mark.parametrize("kind", ["hotspots", "workload", "workload_plain", "compare"])
def test_page_draws_every_grid_and_a_legend_offline(visit, district, kind: str, mode: str) -> None:
    v = visit(f"{kind}-{mode}")
    assert v.page.locator("path.gm-grid").count() == len(district.grids)
    legend = v.page.locator("#gm-legend")
    assert legend.is_visible()
    assert legend.locator(".gm-legend-row").count() >= 3
    assert v.page.locator(".leaflet-control-layers").is_visible()


@pytest.mark.parametrize("mode", ["inline", "served"])
@pytest.mark.parametrize("kind", ["odd_hotspots", "odd_workload", "odd_compare"])
def test_odd_district_pages_draw_every_grid(visit, kind: str, mode: str) -> None:
    """A 4 cm grid, a 4 cm sliver, an island-only MultiPolygon grid: each gets a path."""
    v = visit(f"{kind}-{mode}")
    paths = v.page.eval_on_selector_all(
        "path.gm-grid", "els => els.map(e => e.getAttribute('d') || '')"
    )
    assert len(paths) == len(odd_layers()["grids"])
    assert all(d and d != "M0 0" for d in paths)
    assert v.page.locator("#gm-legend").is_visible()
    # What the page draws is what the payload holds, decoded alike in JavaScript and Python.
    drawn = v.page.evaluate(
        """() => {
            const D = JSON.parse(document.getElementById("gm-data").textContent);
            return {
                data: D,
                grids: D.grids.g.map((_, i) => gridmap.polygonLatLngs(D.grids, i)),
                communities: D.communities.g.map((_, i) => gridmap.lineLatLngs(D.communities, i)),
            };
        }"""
    )
    for key, polygons in (("grids", True), ("communities", False)):
        expected = decode(drawn["data"][key], polygons=polygons)
        for js, geom in zip(drawn[key], expected, strict=True):
            rings = [r for part in js for r in (part if polygons else [part])]
            # gridmap.js gives [lat, lng] and, for polygons, leaves rings open.
            ours = [np.asarray(r.coords)[: -1 if polygons else None, ::-1] for r in _rings(geom)]
            assert len(rings) == len(ours), key
            assert all(np.array_equal(a, b) for a, b in zip(rings, ours, strict=True)), key


def test_hotspot_filters_change_what_is_drawn(visit, district) -> None:
    v = visit("hotspots-inline")
    total = v.state("s.drawn")
    assert total == len(district.reports)
    fills_before = v.fills()
    note_before = v.page.locator(".gm-legend-note").inner_text()

    v.page.select_option("#gm-f-category", index=1)
    by_cat = v.state("s.drawn")
    assert 0 < by_cat < total
    assert v.fills() != fills_before
    assert v.page.locator(".gm-legend-note").inner_text() != note_before
    # Subcategories follow the chosen category.
    n_sub = v.page.locator("#gm-f-subcategory option").count()
    assert 1 < n_sub < len(district.reports["subcategory"].unique()) + 1

    v.page.select_option("#gm-f-subcategory", index=1)
    assert v.state("s.drawn") < by_cat

    v.page.click("#gm-f-reset")
    assert v.state("s.drawn") == total
    v.page.uncheck("input[name=status][value='0']")
    assert v.state("s.drawn") < total

    v.page.click("#gm-f-reset")
    days = sorted(district.reports["reported_at"].str[:10])
    mid = days[len(days) // 2]
    v.page.fill("#gm-f-to", mid)
    v.page.dispatch_event("#gm-f-to", "change")
    assert 0 < v.state("s.drawn") < total
    assert v.state("s.drawn") == sum(1 for d in days if d <= mid)


def test_grid_popup_names_grid_community_and_counts(visit, district) -> None:
    v = visit("hotspots-served")
    v.page.locator("path.gm-grid").nth(0).click(force=True)
    popup = v.page.locator(".leaflet-popup-content")
    popup.wait_for()
    text = popup.inner_text()
    i = v.page.evaluate("() => 0")
    code = district.grids["code"].astype(str).iloc[i]
    assert code in text
    assert "社区" in text and "案件" in text
    assert popup.locator("tr.gm-cat").count() >= 1


def test_cluster_layer_is_optional(visit) -> None:
    v = visit("hotspots-inline")
    assert v.page.locator(".marker-cluster").count() == 0
    v.page.get_by_label("案件点（聚合）").check()
    v.page.wait_for_function("() => document.querySelectorAll('.marker-cluster').length > 0")


def test_compare_toggle_hides_the_old_plan(visit, district) -> None:
    v = visit("compare-inline")
    assert v.page.locator("path.gm-old").count() == len(district.old)
    v.page.uncheck("#gm-old-toggle")
    assert v.page.locator("path.gm-old").count() == 0
    v.page.check("#gm-old-toggle")
    assert v.page.locator("path.gm-old").count() == len(district.old)


def test_workload_band_recolours(visit) -> None:
    v = visit("workload-served")
    before = v.fills()
    v.page.fill("#gm-band-lo", "0")
    v.page.fill("#gm-band-hi", "100000")
    v.page.dispatch_event("#gm-band-hi", "change")
    assert v.state("s.tally.inside") == v.page.locator("path.gm-grid").count()
    assert v.fills() != before or len(set(before)) == 1


@pytest.mark.parametrize("mode", ["inline", "served"])
def test_workload_case_layer_switch_recolours_and_restores(visit, district, mode: str) -> None:
    v = visit(f"workload-{mode}")
    legend = v.page.locator("#gm-legend")
    band_fills = v.fills()
    band_legend = legend.inner_text()
    assert "网格户数与目标" in band_legend
    assert v.page.locator("#gm-layer").is_visible()
    assert v.state("s.layer") == "band"

    v.page.select_option("#gm-layer-select", "overdue")
    assert v.state("s.layer") == "overdue"
    overdue_fills = v.fills()
    assert overdue_fills != band_fills
    text = legend.inner_text()
    assert "每网格超期案件" in text and "0 件" in text and "合计" in text
    assert "无数据（1 格）" in text  # the grid the statistics do not know
    assert sum(v.state("s.caseTally")) == len(district.grids)
    assert v.page.locator("#gm-band-lo").is_disabled()

    v.page.select_option("#gm-layer-select", "resolution_rate")
    rate_fills = v.fills()
    assert rate_fills != overdue_fills and rate_fills != band_fills
    text = legend.inner_text()
    assert "办结率" in text and "95% 及以上" in text
    assert "无有效案件（2 格）" in text  # unknown grid + the grid without a valid case
    assert rate_fills[0] == rate_fills[1] == "#d9d9d9"

    v.page.select_option("#gm-layer-select", "band")
    assert v.fills() == band_fills
    assert legend.inner_text() == band_legend
    assert v.page.locator("#gm-band-lo").is_enabled()
    # The band still recolours once it is back.
    v.page.fill("#gm-band-lo", "0")
    v.page.fill("#gm-band-hi", "100000")
    v.page.dispatch_event("#gm-band-hi", "change")
    assert v.state("s.tally.inside") == len(district.grids)


def test_workload_popup_shows_the_grid_case_figures(visit, district) -> None:
    v = visit("workload-inline")
    stats = fake_case_stats(district.grids)
    # Grid 2 has every figure; grid 0 is unknown to the statistics (dashes).
    for i in (2, 0):
        # A click dispatched on the path itself: a panel may lie over the grid's centre.
        v.page.locator("path.gm-grid").nth(i).dispatch_event("click")
        code = str(district.grids["code"].iloc[i])
        # The previous popup fades out for a moment: take the one naming this grid.
        popup = v.page.locator(".leaflet-popup-content", has_text=code)
        popup.wait_for()
        text = popup.inner_text()
        for label in ("案件统计", "案件数", "办结率", "按期办结率", "重办率", "P90 办结时长"):
            assert label in text
        assert "满意度" in text and "超期" in text and "户数" in text
        if i == 0:
            assert text.count("–") == 9
        else:
            row = stats.loc[code]
            assert f"{round(100 * row['resolution_rate'], 1):g}%" in text
            assert f"{round(row['satisfaction'], 2):g} / 5" in text
            assert "–" not in text
