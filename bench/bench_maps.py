"""How light and how fast are gridmap's maps on a full district?

Figures (issue 6): size of the choropleth page of 1014 grids against the same map made with
a plain ``folium.GeoJson(grids)`` (target <= 0.4x), with the shared-edge tiling still exact
at display precision; time for the hotspot page with 100,000 reports to open in headless
Chromium (map drawn, idle; target <= 3 s); page sizes; generation time per map type.

Data: the fixture's full district (seed 7: 630 grids, 20,000 buildings, 100,000 reports).
Shahekou went from 630 grids to 1014; the fixture has the 630, so the 384 grids with most
households are halved along a chord between two of their own vertices (no new vertex on
any shared edge, so the result still tiles exactly). That plan is the "new" one.

Run: .venv/bin/python bench/bench_maps.py [--screenshots docs] [--repeat 3]
"""

from __future__ import annotations

import argparse
import http.server
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import Case, measure, record, table

from fixtures.district import generate_district
from maps.assets import CSP, STATIC_DIR
from maps.hotspots import render_hotspots
from maps.plan_diff import render_compare
from maps.workload import grid_workload, render_workload

CHROMIUM = "/usr/bin/chromium"
BAND = (300, 500)


def _halve(poly: shapely.Polygon) -> tuple[shapely.Polygon, shapely.Polygon] | None:
    """Two halves of a polygon cut along a chord between two of its vertices."""
    if len(poly.interiors):
        return None
    ring = np.asarray(poly.exterior.coords)[:-1]
    n = len(ring)
    if n < 6:
        return None
    best = None
    for i in range(0, n, max(1, n // 24)):
        for off in range(n // 3, 2 * n // 3 + 1, max(1, n // 24)):
            j = (i + off) % n
            a = ring[np.r_[i : (j if j > i else j + n) + 1] % n]
            b = ring[np.r_[j : (i if i > j else i + n) + 1] % n]
            pa, pb = shapely.Polygon(a), shapely.Polygon(b)
            if not (pa.is_valid and pb.is_valid):
                continue
            if abs(pa.area + pb.area - poly.area) > 1e-6 * poly.area:
                continue
            score = abs(pa.area - pb.area) + 0.5 * np.hypot(*(ring[i] - ring[j])) ** 2
            if best is None or score < best[0]:
                best = (score, pa, pb)
    return (best[1], best[2]) if best else None


def split_to(grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, target: int) -> gpd.GeoDataFrame:
    """Halve the grids with most households until there are ``target`` grids."""
    load = grid_workload(grids, buildings)
    order = load["households"].to_numpy().argsort(kind="stable")[::-1]
    metric = grids.to_crs(32651)
    halves: dict[int, tuple[shapely.Polygon, shapely.Polygon]] = {}
    for i in order:
        if len(grids) + len(halves) >= target:
            break
        geom = metric.geometry.iloc[i]
        if geom.geom_type == "Polygon" and (cut := _halve(geom)):
            halves[int(i)] = cut
    rows = []
    for i, row in enumerate(metric.itertuples(index=False)):
        base = {"code": row.code, "community_code": row.community_code, "name": row.name}
        if i in halves:
            for k, part in enumerate(halves[i], start=1):
                rows.append(
                    {**base, "code": f"{row.code}{k}", "name": f"{row.name}{k}", "geometry": part}
                )
        else:
            rows.append({**base, "geometry": row.geometry})
    return gpd.GeoDataFrame(rows, crs=metric.crs).to_crs(4326)


def decode_grids(page: str) -> np.ndarray:
    """Rebuild the drawn grid polygons exactly as gridmap.js does (integers / 1e6)."""
    data = json.loads(
        re.search(r'id="gm-data">(.*?)</script>', page, re.S).group(1)  # type: ignore[union-attr]
    )
    g = data["grids"]
    o = np.array(g["o"])
    polys = []
    for feature in g["g"]:
        parts = []
        for poly in feature:
            rings = [(np.cumsum(np.array(r).reshape(-1, 2), axis=0) + o) / 1e6 for r in poly]
            parts.append(shapely.Polygon(rings[0], rings[1:]))
        polys.append(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))
    return np.asarray(polys, dtype=object)


def plain_folium(grids: gpd.GeoDataFrame) -> str:
    """The baseline: folium's default map with the grids as one plain GeoJson layer."""
    c = grids.union_all().centroid
    m = folium.Map(location=[c.y, c.x], zoom_start=13)
    folium.GeoJson(grids).add_to(m)
    return m.get_root().render()


class _Server:
    """Serves a page and /static/maps/ on 127.0.0.1 with the CSP, as gridmap would."""

    def __init__(self, root: Path) -> None:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def end_headers(self) -> None:
                self.send_header("Content-Security-Policy", CSP)
                super().end_headers()

            def log_message(self, *a) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def open_times(urls: dict[str, str], repeat: int, shots: dict[str, Path]) -> dict[str, list[float]]:
    """Seconds from navigation to map drawn and idle, per URL, in a fresh page each time."""
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {k: [] for k in urls}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
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
        for _ in range(repeat):
            for name, url in urls.items():
                ctx = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
                page = ctx.new_page()
                errors: list[str] = []
                page.on("console", lambda m, e=errors: m.type == "error" and e.append(m.text))
                page.on("pageerror", lambda x, e=errors: e.append(str(x)))
                page.on(
                    "response",
                    lambda r, e=errors: r.status >= 400 and e.append(f"{r.status} {r.url}"),
                )
                start = time.perf_counter()
                page.goto(url, wait_until="load", timeout=60_000)
                page.wait_for_function(
                    "() => !!(window.gridmapState && window.gridmapState.ready)", timeout=60_000
                )
                # Two animation frames: the heat layer and the paths are on screen.
                page.evaluate(
                    "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
                )
                out[name].append(time.perf_counter() - start)
                if errors:
                    raise RuntimeError(f"{name}: console errors {errors}")
                if name in shots:
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(shots.pop(name)))
                ctx.close()
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--screenshots", type=Path, default=None, help="write docs PNGs here")
    parser.add_argument("--no-record", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()

    t = time.perf_counter()
    d = generate_district("full", seed=7)
    print(f"fixture: {time.perf_counter() - t:.1f} s", flush=True)
    new = split_to(d.grids, d.buildings, 1014)
    assert len(new) == 1014, len(new)
    assert shapely.coverage_is_valid(new.geometry.to_numpy())
    print(f"grids {len(d.grids)} -> {len(new)}; reports {len(d.reports):,}", flush=True)

    # --- page size: choropleth of 1014 grids ------------------------------------------
    base_html = plain_folium(new)
    served = render_workload(
        new,
        d.buildings,
        d.reports,
        BAND,
        communities=d.communities,
        streets=d.streets,
        roads=d.roads,
        asset_mode="served",
    )
    inline = render_workload(
        new,
        d.buildings,
        d.reports,
        BAND,
        communities=d.communities,
        streets=d.streets,
        roads=d.roads,
        asset_mode="inline",
    )
    bare = render_workload(new, d.buildings, d.reports, BAND, asset_mode="served")
    drawn = decode_grids(served)
    exact = bool(shapely.coverage_is_valid(drawn)) and bool(shapely.is_valid(drawn).all())
    area_before = new.to_crs(32651).union_all().area
    area_drawn = gpd.GeoSeries(drawn, crs=4326).to_crs(32651)
    overlap_m2 = float(area_drawn.area.sum() - area_drawn.union_all().area)
    verts = (
        int(shapely.get_num_coordinates(new.geometry.to_numpy()).sum()),
        int(shapely.get_num_coordinates(drawn).sum()),
    )
    size_rows = [
        ("plain folium.GeoJson(grids), CDN assets (baseline)", len(base_html.encode())),
        ("workload choropleth, grids only, served assets", len(bare.encode())),
        ("workload choropleth + boundaries + roads, served assets", len(served.encode())),
        ("workload choropleth + boundaries + roads, inline (standalone)", len(inline.encode())),
    ]
    base_size = size_rows[0][1]
    size_md = "\n".join(
        ["| page (1014 grids) | bytes | vs baseline |", "|---|---:|---:|"]
        + [f"| {n} | {s:,} | {s / base_size:.2f}x |" for n, s in size_rows]
    )
    tiling_md = (
        f"Drawn grids decoded from the page: {len(drawn)} polygons, coverage_is_valid={exact}, "
        f"overlap {overlap_m2:.2f} m², union area {area_drawn.union_all().area / 1e6:.3f} km² "
        f"vs {area_before / 1e6:.3f} km² stored; vertices {verts[0]:,} -> {verts[1]:,}."
    )
    print(size_md, "\n", tiling_md, flush=True)

    # --- generation time per map type ------------------------------------------------
    cases = [
        Case("plain folium.GeoJson(1014 grids)", lambda _: plain_folium(new), baseline=True),
        Case(
            "render_workload (1014 grids)",
            lambda _: render_workload(
                new,
                d.buildings,
                d.reports,
                BAND,
                communities=d.communities,
                streets=d.streets,
                roads=d.roads,
            ),
        ),
        Case(
            "render_hotspots (1014 grids, 100k reports)",
            lambda _: render_hotspots(new, d.communities, d.streets, d.roads, d.reports),
        ),
        Case(
            "render_compare (630 -> 1014 grids)",
            lambda _: render_compare(
                d.grids,
                new,
                d.buildings,
                communities=d.communities,
                streets=d.streets,
                roads=d.roads,
            ),
        ),
    ]
    timings = measure(cases, repeat=max(1, args.repeat - 1), memory=False)
    gen_md = table(timings)
    print(gen_md, flush=True)

    # --- hotspot page with 100,000 reports in Chromium --------------------------------
    root = Path(tempfile.mkdtemp(prefix="gridmap-bench-"))
    (root / "static").mkdir()
    (root / "static" / "maps").symlink_to(STATIC_DIR)
    hot_inline = render_hotspots(
        new, d.communities, d.streets, d.roads, d.reports, title="沙河口区 案件热点"
    )
    hot_served = render_hotspots(
        new,
        d.communities,
        d.streets,
        d.roads,
        d.reports,
        title="沙河口区 案件热点",
        asset_mode="served",
    )
    (root / "hotspots.html").write_text(hot_inline, encoding="utf-8")
    (root / "hotspots-served.html").write_text(hot_served, encoding="utf-8")
    (root / "workload.html").write_text(inline, encoding="utf-8")
    compare = render_compare(
        d.grids,
        new,
        d.buildings,
        communities=d.communities,
        streets=d.streets,
        roads=d.roads,
        title="沙河口区 630 → 1014 网格",
    )
    (root / "compare.html").write_text(compare, encoding="utf-8")
    server = _Server(root)
    urls = {
        "hotspots, inline, file://": f"file://{root / 'hotspots.html'}",
        "hotspots, served, http://127.0.0.1": f"{server.url}/hotspots-served.html",
    }
    shots: dict[str, Path] = {}
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
        urls["workload, inline"] = f"file://{root / 'workload.html'}"
        urls["compare, inline"] = f"file://{root / 'compare.html'}"
        shots = {
            "hotspots, inline, file://": args.screenshots / "map-hotspots.png",
            "workload, inline": args.screenshots / "map-workload.png",
            "compare, inline": args.screenshots / "map-compare.png",
        }
    try:
        opened = open_times(urls, args.repeat, shots)
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
    open_md = "\n".join(
        ["| page | bytes | open best s | open median s |", "|---|---:|---:|---:|"]
        + [
            f"| {name} | {size:,} | {min(opened[name]):.2f} "
            f"| {statistics.median(opened[name]):.2f} |"
            for name, size in [
                ("hotspots, inline, file://", len(hot_inline.encode())),
                ("hotspots, served, http://127.0.0.1", len(hot_served.encode())),
                ("workload, inline", len(inline.encode())),
                ("compare, inline", len(compare.encode())),
            ]
            if name in opened
        ]
    )
    print(open_md, flush=True)
    body = (
        f"{len(new)} grids, {len(d.reports):,} reports, {len(d.buildings):,} buildings "
        "(fixture full, seed 7; 630 grids halved to 1014).\n\n"
        f"Page size of the choropleth:\n\n{size_md}\n\n{tiling_md}\n\n"
        f"Generation time per map type:\n\n{gen_md}\n\n"
        "Opening in headless Chromium (navigation to map drawn and idle; outside hosts "
        f"unresolvable):\n\n{open_md}\n"
    )
    if not args.no_record:
        record("Maps: page size, generation and opening time", body)


if __name__ == "__main__":
    main()
