"""Map rendering without a browser: geometry, payloads, determinism, privacy, offline assets."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import folium
import geopandas as gpd
import mapclassify
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from geo.settings import MapSettings
from maps.assets import ASSETS, CSP, STATIC_DIR, csp_for, verify_assets
from maps.common import assign_to_grids
from maps.geometry import simplify_coverage
from maps.hotspots import HotspotFilters, filter_reports, quantile_breaks, render_hotspots
from maps.plan_diff import change_class, load_change, render_compare
from maps.workload import CASE_COLUMNS, case_layers, grid_workload, render_workload
from tests.geo.test_assign import oracle as assignment_oracle
from tests.strategies import Tiling, points_for, tilings

X0, Y0, CELL = 121.60, 38.90, 0.004  # a 4 x 3 block of ~350 m cells in Dalian


def wiggly_grids(nx: int = 4, ny: int = 3, k: int = 12, seed: int = 3) -> gpd.GeoDataFrame:
    """Cells whose shared edges carry many jittered vertices, shared exactly by neighbours.

    ::

        +----+----+----+----+   row 2: 0200 0201 | 0202 0203
        |    |    |    |    |   row 1: 0100 0101 | 0102 0103
        +----+----+----+----+   row 0: 0000 0001 | 0002 0003
        ...                     communities C1 (left half), C2 (right half)
    """
    rng = np.random.default_rng(seed)
    fx = np.linspace(X0, X0 + nx * CELL, nx * k + 1)
    fy = np.linspace(Y0, Y0 + ny * CELL, ny * k + 1)
    px, py = np.meshgrid(fx, fy, indexing="ij")
    jitter = rng.uniform(-1.2e-5, 1.2e-5, size=(2, *px.shape))  # about ±1 m
    px = px + jitter[0]
    py = py + jitter[1]
    cells, codes, comm = [], [], []
    for j in range(ny):
        for i in range(nx):
            a, b, c, d = i * k, (i + 1) * k, j * k, (j + 1) * k
            ring = (
                [(px[t, c], py[t, c]) for t in range(a, b)]
                + [(px[b, t], py[b, t]) for t in range(c, d)]
                + [(px[t, d], py[t, d]) for t in range(b, a, -1)]
                + [(px[a, t], py[a, t]) for t in range(d, c, -1)]
            )
            cells.append(Polygon(ring))
            codes.append(f"0{j}{i:02d}")
            comm.append("C1" if i < nx // 2 else "C2")
    return gpd.GeoDataFrame(
        {
            "code": codes,
            "community_code": comm,
            "name": [f"第{n + 1}网格" for n in range(len(codes))],
        },
        geometry=cells,
        crs=4326,
    )


def small_district(n_reports: int = 600, seed: int = 1) -> SimpleNamespace:
    """A synthetic district with the contract's layers, plus two personal-data columns."""
    rng = np.random.default_rng(seed)
    grids = wiggly_grids()
    communities = grids.dissolve("community_code").reset_index()[["community_code", "geometry"]]
    communities = communities.rename(columns={"community_code": "code"})
    communities["name"] = ["金鸿社区", "锦华社区"]
    communities["street_code"] = "S1"
    streets = gpd.GeoDataFrame(
        {"code": ["S1"], "name": ["李家街道"], "district_code": ["D1"]},
        geometry=[communities.union_all()],
        crs=4326,
    )
    roads = gpd.GeoDataFrame(
        {"name": ["中山路", "黄河路"]},
        geometry=[
            shapely.LineString([(X0, Y0 + CELL), (X0 + 4 * CELL, Y0 + CELL)]),
            shapely.LineString([(X0 + 2 * CELL, Y0), (X0 + 2 * CELL, Y0 + 3 * CELL)]),
        ],
        crs=4326,
    )
    nb = 80
    buildings = gpd.GeoDataFrame(
        {
            "building_id": [f"B{k:03d}" for k in range(nb)],
            "address": "中山路1号",
            "households": rng.integers(20, 120, nb),
            "residents": rng.integers(40, 300, nb),
        },
        geometry=gpd.points_from_xy(
            rng.uniform(X0 + 1e-4, X0 + 4 * CELL - 1e-4, nb),
            rng.uniform(Y0 + 1e-4, Y0 + 3 * CELL - 1e-4, nb),
        ),
        crs=4326,
    )
    cats = np.array(["urban_appearance", "sanitation", "traffic_parking"])
    statuses = np.array(["reported", "handling", "closed", "rejected"])
    day = rng.integers(0, 180, n_reports)
    times = pd.Timestamp("2024-01-01T09:00:00+08:00") + pd.to_timedelta(day, unit="D")
    reports = gpd.GeoDataFrame(
        {
            "report_id": [f"RPT{k:06d}" for k in range(n_reports)],
            "category": cats[rng.integers(0, 3, n_reports)],
            "subcategory": "graffiti",
            "reported_at": [t.isoformat() for t in times],
            "status": statuses[rng.integers(0, 4, n_reports)],
            "closed_at": None,
            "description": "楼道堆物 秘密描述",
            "reporter_name": "张秘密",
            "reporter_phone": "13912345678",
        },
        geometry=gpd.points_from_xy(
            rng.uniform(X0, X0 + 4 * CELL, n_reports), rng.uniform(Y0, Y0 + 3 * CELL, n_reports)
        ),
        crs=4326,
    )
    teams = pd.DataFrame(
        {
            "grid_code": grids["code"],
            "leader": [f"王{n}" for n in range(len(grids))],
            "deputy": "李副",
            "party_secretary": "赵书记",
            "leader_phone": "13700000000",
        }
    )
    return SimpleNamespace(
        grids=grids,
        communities=communities,
        streets=streets,
        roads=roads,
        buildings=buildings,
        reports=reports,
        teams=teams,
    )


def fake_case_stats(grids: gpd.GeoDataFrame, seed: int = 5) -> pd.DataFrame:
    """Case statistics shaped like ``geo.store.stats.case_stats(level="grid")``, without a database.

    The first grid has no row (a grid the statistics do not know), the second has no valid
    case (its rates and times are NaN, as ``case_stats`` gives them).
    """
    rng = np.random.default_rng(seed)
    n = len(grids)
    cases = rng.integers(5, 60, n)
    rejected = rng.integers(0, 3, n)
    closed = np.minimum(cases - rejected, rng.integers(0, 60, n))
    frame = pd.DataFrame(
        {
            "community_code": grids["community_code"].astype(str).to_numpy(),
            "street_code": "S1",
            "cases": cases,
            "rejected": rejected,
            "closed": closed,
            "resolution_rate": closed / (cases - rejected),
            "on_time_rate": rng.uniform(0.4, 1.0, n),
            "reopened_rate": rng.uniform(0.0, 0.25, n),
            "mean_hours_to_close": rng.uniform(4, 90, n),
            "p90_hours_to_close": rng.uniform(90, 400, n),
            "satisfaction": rng.uniform(2.5, 5.0, n),
            "evaluated": rng.integers(1, 30, n),
            "open": cases - rejected - closed,
            "overdue": rng.integers(0, 9, n),
        },
        index=pd.Index(grids["code"].astype(str), name="code"),
    )
    rates = ["resolution_rate", "on_time_rate", "reopened_rate", "mean_hours_to_close"]
    rates += ["p90_hours_to_close", "satisfaction"]
    frame.iloc[1, frame.columns.get_indexer(rates)] = np.nan
    frame.iloc[1, frame.columns.get_indexer(["cases", "rejected", "closed", "evaluated"])] = 0
    frame.iloc[1, frame.columns.get_indexer(["open", "overdue"])] = 0
    return frame.iloc[1:]


def old_plan() -> gpd.GeoDataFrame:
    """Three bigger grids over the same area (old plan): left half, right bottom, right top."""
    g = wiggly_grids()
    left = g[g["code"].str[-2:].isin(["00", "01"])].union_all()
    right_low = g[g["code"].isin(["0002", "0003"])].union_all()
    right_high = g[g["code"].isin(["0102", "0103", "0202", "0203"])].union_all()
    return gpd.GeoDataFrame(
        {"code": ["A1", "A2", "A3"], "community_code": ["C1", "C2", "C2"]},
        geometry=[left, right_low, right_high],
        crs=4326,
    )


@pytest.fixture(scope="module")
def dist() -> SimpleNamespace:
    return small_district()


def payload(page: str) -> dict:
    """The JSON the page hands to gridmap.js."""
    m = re.search(r'<script type="application/json" id="gm-data">(.*?)</script>', page, re.S)
    assert m
    return json.loads(m.group(1))


def hotspots(d: SimpleNamespace, **kw) -> str:
    return render_hotspots(d.grids, d.communities, d.streets, d.roads, d.reports, d.teams, **kw)


def all_pages(d: SimpleNamespace, mode: str = "inline") -> dict[str, str]:
    return {
        "hotspots": hotspots(d, asset_mode=mode),
        "workload": render_workload(
            d.grids,
            d.buildings,
            d.reports,
            (250, 450),
            communities=d.communities,
            streets=d.streets,
            roads=d.roads,
            teams=d.teams,
            asset_mode=mode,
            case_stats=fake_case_stats(d.grids),
        ),
        "compare": render_compare(
            old_plan(),
            d.grids,
            d.buildings,
            communities=d.communities,
            streets=d.streets,
            roads=d.roads,
            asset_mode=mode,
        ),
    }


# --- geometry --------------------------------------------------------------------------


def test_simplify_coverage_keeps_an_exact_tiling_at_display_precision() -> None:
    grids = wiggly_grids()
    # The tolerance is the square root of the removed triangles' area (Visvalingam-Whyatt):
    # 8 m removes ~1 m wiggles between vertices 30 m apart.
    simple = simplify_coverage(grids, tolerance_m=8.0)
    geoms = simple.geometry.to_numpy()
    assert shapely.coverage_is_valid(geoms)
    assert shapely.is_valid(geoms).all()
    coords = shapely.get_coordinates(geoms)
    assert np.array_equal(coords, np.round(coords, 6))
    before = shapely.get_num_coordinates(grids.geometry.to_numpy()).sum()
    after = shapely.get_num_coordinates(geoms).sum()
    assert after < before / 2
    # No gaps or overlaps: the union has the original's area and no holes.
    metric = simple.to_crs(32651)
    area = grids.to_crs(32651).union_all().area
    assert abs(metric.union_all().area - area) < 0.002 * area  # only the outer edge moved
    assert abs(metric.area.sum() - metric.union_all().area) < 1.0
    assert simple["code"].tolist() == grids["code"].tolist()


def test_simplify_coverage_does_not_touch_its_input() -> None:
    grids = wiggly_grids()
    copy = grids.copy()
    simplify_coverage(grids)
    assert grids.geometry.geom_equals_exact(copy.geometry, tolerance=0).all()


def test_simplify_coverage_warns_and_keeps_a_non_tiling() -> None:
    overlapping = gpd.GeoDataFrame(
        {"code": ["a", "b"]}, geometry=[box(0, 0, 2, 2), box(1, 1, 3, 3)], crs=4326
    )
    with pytest.warns(UserWarning, match="not a valid coverage"):
        out = simplify_coverage(overlapping)
    assert shapely.area(out.geometry.to_numpy()).round(6).tolist() == [4.0, 4.0]


def test_grid_coordinates_in_the_page_are_the_simplified_rounded_ones(dist) -> None:
    data = payload(hotspots(dist))
    g = data["grids"]
    ring = np.cumsum(np.array(g["g"][5][0][0]).reshape(-1, 2), axis=0) + np.array(g["o"])
    simple = simplify_coverage(dist.grids)
    expected = np.round(np.asarray(simple.geometry.iloc[5].exterior.coords)[:-1] * 1e6)
    assert np.array_equal(ring, expected.astype(np.int64))
    assert len(g["g"]) == len(dist.grids) == len(g["code"])


# --- determinism, offline, privacy ---------------------------------------------------


def test_same_input_gives_byte_identical_html(dist) -> None:
    first = all_pages(dist)
    second = all_pages(dist)
    for kind in first:
        assert first[kind] == second[kind], kind
        assert not re.search(r"[0-9a-f]{32}", first[kind].replace("sha256", "")), kind


def test_another_process_with_another_hash_seed_renders_the_same_bytes(dist) -> None:
    script = (
        "import hashlib; from tests.maps.test_maps import small_district, all_pages; "
        "print(hashlib.sha256(''.join(all_pages(small_district()).values()).encode()).hexdigest())"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    here = hashlib.sha256("".join(all_pages(dist).values()).encode()).hexdigest()
    assert out.stdout.strip() == here


def test_inline_pages_reference_no_outside_resource(dist) -> None:
    for kind, page in all_pages(dist).items():
        # Markup only: the inlined libraries' own source text may mention their home pages.
        markup = re.sub(r"<(script|style)([^>]*)>.*?</\1>", r"<\1\2></\1>", page, flags=re.S)
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", markup, re.I), kind
        assert re.findall(r"url\(([^)]*)\)", page) and all(
            u.strip("\"'").startswith(("data:", "#default#VML"))
            for u in re.findall(r"url\(([^)]*)\)", page)
        ), kind
        for host in ("jsdelivr", "cdnjs", "code.jquery.com", "bootstrapcdn", "unpkg"):
            assert host not in page, (kind, host)
        assert "Content-Security-Policy" in page
        assert "default-src &#x27;none&#x27;" in page


def test_served_pages_only_link_to_bundled_files(dist) -> None:
    for kind, page in all_pages(dist, "served").items():
        links = re.findall(r"""(?:src|href)="([^"]+)\"""", page)
        assert links, kind
        for link in links:
            if link == "data:,":  # the empty favicon
                continue
            assert link.startswith("/static/maps/"), (kind, link)
            assert (STATIC_DIR / link.removeprefix("/static/maps/").split("?")[0]).is_file()


def test_folium_class_level_asset_lists_are_untouched(dist) -> None:
    js, css = list(folium.Map.default_js), list(folium.Map.default_css)
    all_pages(dist)
    assert folium.Map.default_js == js
    assert folium.Map.default_css == css
    assert "jquery" in folium.Map().get_root().render()  # other maps keep folium's defaults


def test_no_personal_or_unlisted_report_data_reaches_the_page(dist) -> None:
    for kind, page in all_pages(dist).items():
        for secret in ("张秘密", "13912345678", "秘密描述", "RPT000001", "13700000000"):
            assert secret not in page, (kind, secret)


def test_names_cannot_break_out_of_the_page(dist) -> None:
    grids = dist.grids.copy()
    grids.loc[0, "name"] = '</script><script>alert("x")</script>'
    page = render_hotspots(grids, dist.communities, None, None, dist.reports)
    assert "<script>alert" not in page
    assert payload(page)["grids"]["name"][0] == grids.loc[0, "name"]
    grids.loc[1, "name"] = "{{ 7 * 7 }}{% raw %}"  # never evaluated as a template
    page = render_hotspots(grids, dist.communities, None, None, dist.reports, title="{{ 6 * 6 }}")
    assert payload(page)["grids"]["name"][1] == "{{ 7 * 7 }}{% raw %}"
    assert "<title>{{ 6 * 6 }}</title>" in page
    page = render_hotspots(grids, None, None, None, dist.reports, title="</title><b>x")
    assert "<title>&lt;/title&gt;&lt;b&gt;x</title>" in page


def test_pinned_assets_are_intact() -> None:
    assert verify_assets() == []
    assert {a.version for a in ASSETS if a.package == "leaflet"} == {"1.9.4"}
    for asset in ASSETS:
        text = (STATIC_DIR / asset.file).read_text(encoding="utf-8")
        assert "sourceMappingURL" not in text


# --- CSP and basemaps ------------------------------------------------------------------


def test_csp_forbids_outside_hosts_unless_a_tile_basemap_is_set() -> None:
    assert CSP == csp_for(None) == csp_for(MapSettings())
    assert "http" not in CSP and "*" not in CSP
    assert "https://*.tianditu.gov.cn" in csp_for(MapSettings(basemap="tianditu", tianditu_key="k"))
    assert "https://*.is.autonavi.com" in csp_for(MapSettings(basemap="amap"))
    local = MapSettings(basemap="local", tile_url="http://10.0.0.5:8080/tiles/{z}/{x}/{y}.png")
    assert csp_for(local).endswith("img-src 'self' data: http://10.0.0.5:8080")
    assert csp_for(MapSettings(basemap="local", tile_url="/tiles/{z}/{x}/{y}.png")) == CSP


def test_amap_basemap_shifts_drawn_geometry_only(dist) -> None:
    grids = dist.grids.copy()
    plain = payload(hotspots(dist))
    amap = payload(
        render_hotspots(
            grids, dist.communities, None, None, dist.reports, basemap=MapSettings(basemap="amap")
        )
    )
    shift_x = (amap["grids"]["o"][0] - plain["grids"]["o"][0]) / 1e6
    shift_y = (amap["grids"]["o"][1] - plain["grids"]["o"][1]) / 1e6
    # GCJ-02 in Dalian is roughly 0.006 E, 0.001 N: hundreds of metres.
    assert 0.003 < shift_x < 0.009 and 0.0 < shift_y < 0.003
    assert amap["basemap"][0]["url"].startswith("https://webrd0{s}.is.autonavi.com")
    assert grids.geometry.geom_equals_exact(dist.grids.geometry, tolerance=0).all()


def test_tianditu_needs_its_key(dist) -> None:
    from geo.errors import InvalidInput

    with pytest.raises(InvalidInput):
        hotspots(dist, basemap=MapSettings(basemap="tianditu"))
    page = hotspots(dist, basemap=MapSettings(basemap="tianditu", tianditu_key="KEY123"))
    assert "tk=KEY123" in page and "tianditu.gov.cn" in page


# --- hotspots --------------------------------------------------------------------------


def test_quantile_breaks_match_mapclassify() -> None:
    counts = np.random.default_rng(0).poisson(30, 200)
    assert quantile_breaks(counts, 5) == pytest.approx(
        mapclassify.Quantiles(counts, k=5).bins.tolist()
    )


def test_filter_reports_by_category_status_and_local_dates(dist) -> None:
    r = dist.reports
    f = HotspotFilters(category="sanitation", status=("closed",))
    out = filter_reports(r, f)
    assert len(out) == ((r["category"] == "sanitation") & (r["status"] == "closed")).sum() > 0
    # 2024-01-01T00:30+08:00 is still 2023-12-31 in UTC: local days count.
    edge = r.iloc[:2].copy()
    edge["reported_at"] = ["2024-01-01T00:30:00+08:00", "2023-12-31T23:30:00+08:00"]
    assert len(filter_reports(edge, HotspotFilters(date_from=date(2024, 1, 1)))) == 1
    assert len(filter_reports(edge, HotspotFilters(date_to=date(2023, 12, 31)))) == 1
    assert filter_reports(r, None) is r


def test_filters_parse_query_values() -> None:
    from geo.errors import InvalidInput

    f = HotspotFilters.parse("sanitation", "", "2024-01-01", None, ["open,closed", "open"])
    assert f == HotspotFilters("sanitation", None, date(2024, 1, 1), None, ("open", "closed"))
    assert HotspotFilters.parse() == HotspotFilters()
    with pytest.raises(InvalidInput):
        HotspotFilters.parse(date_from="2024-13-01")
    with pytest.raises(InvalidInput):
        HotspotFilters.parse(date_from="2024-02-01", date_to="2024-01-01")


def test_hotspot_page_counts_legend_and_popup_data(dist) -> None:
    page = hotspots(dist)
    data = payload(page)
    rep = data["reports"]
    assert len(rep["x"]) == len(dist.reports)
    assert sum(1 for g in rep["g"] if g >= 0) == len(dist.reports)
    assert 'id="gm-legend"' in page and "每网格案件数" in page
    assert [c for c, _ in data["categories"]] == sorted(dist.reports["category"].unique())
    assert dict(data["categories"])["sanitation"] == "环境卫生"  # from responsibility.json
    assert data["grids"]["community"][0] == "金鸿社区"
    assert data["grids"]["team"][0] == [
        ["网格长", "王0"],
        ["专职网格员", "李副"],
        ["党支部书记", "赵书记"],
    ]
    assert 'id="gm-filters"' in page and 'id="gm-f-category"' in page


def test_server_side_filter_reduces_what_is_embedded(dist) -> None:
    data = payload(hotspots(dist, filters=HotspotFilters(category="traffic_parking")))
    assert len(data["reports"]["x"]) == (dist.reports["category"] == "traffic_parking").sum()
    assert [c for c, _ in data["categories"]] == ["traffic_parking"]


def test_hotspots_with_no_reports_still_render(dist) -> None:
    page = render_hotspots(dist.grids, None, None, None, dist.reports.iloc[:0])
    assert payload(page)["reports"]["x"] == []


# --- workload and compare --------------------------------------------------------------


def test_grid_workload_sums_buildings_and_open_reports(dist) -> None:
    load = grid_workload(dist.grids, dist.buildings, dist.reports)
    assert load["households"].sum() == dist.buildings["households"].sum()
    assert load["buildings"].sum() == len(dist.buildings)
    open_ = ~dist.reports["status"].isin(["closed", "rejected"])
    assert load["open_reports"].sum() == open_.sum()
    assert list(load.index) == dist.grids["code"].tolist()


def test_workload_page_classes_against_the_band(dist) -> None:
    page = render_workload(dist.grids, dist.buildings, dist.reports, (250, 450))
    data = payload(page)
    hh = np.array(data["load"]["households"])
    assert data["band"] == [250, 450]
    n_over = int((hh > 450).sum())
    assert f"超出目标（{n_over} 格）" in page
    stats = pd.DataFrame(
        {"households": 400, "residents": 1, "buildings": 1, "open_reports": 0},
        index=dist.grids["code"],
    )
    page2 = render_workload(dist.grids, dist.buildings.iloc[:0], None, (300, 500), stats)
    assert f"目标范围内（{len(dist.grids)} 格）" in page2


def _workload(d: SimpleNamespace, **kw) -> str:
    return render_workload(
        d.grids, d.buildings, d.reports, (250, 450), communities=d.communities, **kw
    )


def test_workload_page_carries_case_stats_aligned_with_the_grids(dist) -> None:
    stats = fake_case_stats(dist.grids)
    shuffled = stats.sample(frac=1.0, random_state=1)  # order of the frame does not matter
    shuffled["reporter_phone"] = "13912345678"  # extra columns never reach the page
    page = _workload(dist, case_stats=shuffled)
    data = payload(page)
    cases = data["cases"]
    codes = data["grids"]["code"]
    assert list(cases) == list(CASE_COLUMNS)
    assert all(len(v) == len(codes) for v in cases.values())
    # The grid the statistics do not know: every figure missing.
    assert codes[0] not in stats.index
    assert all(v[0] is None for v in cases.values())
    # No valid case: counts are 0, rates and times missing (shown as "–").
    assert cases["cases"][1] == 0 and cases["overdue"][1] == 0
    assert cases["resolution_rate"][1] is None and cases["satisfaction"][1] is None
    # Rounded: rates in percent with one decimal, hours one decimal, satisfaction two.
    for i in range(2, len(codes)):
        row = stats.loc[codes[i]]
        assert cases["cases"][i] == row["cases"] and cases["overdue"][i] == row["overdue"]
        assert cases["resolution_rate"][i] == round(100 * row["resolution_rate"], 1)
        assert cases["on_time_rate"][i] == round(100 * row["on_time_rate"], 1)
        assert cases["mean_hours_to_close"][i] == round(row["mean_hours_to_close"], 1)
        assert cases["satisfaction"][i] == round(row["satisfaction"], 2)
    text = json.dumps(cases)
    assert not re.search(r"\d\.\d{3}", text)  # nothing longer than two decimals
    assert "13912345678" not in page and "S1" not in json.dumps(data.get("cases"))
    # The switch and its colourings, with the band first and selected.
    switch = re.search(r'<form id="gm-layer".*?</form>', page, re.S)
    assert switch
    assert '<option value="band" selected>户数负荷（目标范围）</option>' in switch.group(0)
    for label in ("超期案件", "办结率", "满意度"):
        assert f">{label}</option>" in switch.group(0)
    keys = [spec["key"] for spec in data["caseLayers"]]
    assert keys[:3] == ["overdue", "open", "resolution_rate"]
    for spec in data["caseLayers"]:
        assert len(spec["colors"]) == len(spec["labels"]) == len(spec["breaks"]) + 1
        assert spec["breaks"] == sorted(set(spec["breaks"]))
    overdue = data["caseLayers"][0]
    assert overdue["labels"][0] == "0 件" and overdue["breaks"][0] == 1
    assert f"合计 {int(stats['overdue'].sum())} 件" in overdue["note"]
    # The popup block is drawn by gridmap.js, inlined in the page.
    assert "案件统计" in page and "P90 办结时长" in page


def test_workload_page_with_case_stats_is_deterministic(dist) -> None:
    stats = fake_case_stats(dist.grids)
    first = _workload(dist, case_stats=stats)
    assert first == _workload(dist, case_stats=stats.copy())
    assert first != _workload(dist)


def test_workload_page_without_case_stats_is_unchanged(dist) -> None:
    page = _workload(dist)
    assert page == _workload(dist, case_stats=None)
    data = payload(page)
    assert set(data) == {
        "bounds",
        "basemap",
        "grids",
        "communities",
        "streets",
        "load",
        "band",
        "colors",
        "classLabels",
        "legendTitle",
    }
    assert 'id="gm-layer"' not in page and 'id="gm-band"' in page
    assert "网格户数与目标" in page


def test_workload_page_with_empty_case_stats_shows_dashes(dist) -> None:
    empty = fake_case_stats(dist.grids).iloc[:0]
    data = payload(_workload(dist, case_stats=empty))
    assert all(v == [None] * len(dist.grids) for v in data["cases"].values())
    assert data["caseLayers"][0]["labels"] == ["0 件", "1 件及以上"]


@pytest.mark.parametrize(
    ("overdue", "breaks", "labels"),
    [
        ([0, 0, 0], [1], ["0 件", "1 件及以上"]),
        ([0, 1, 1, 1], [1], ["0 件", "1 件及以上"]),
        (
            [0, 1, 2, 3, 4, 5, 6, 7, 8, None],
            [1, 3, 5, 7],
            ["0 件", "1–2 件", "3–4 件", "5–6 件", "7 件及以上"],
        ),
        ([0, 2, 2, 2, 9], [1, 3, 4], ["0 件", "1–2 件", "3 件", "4 件及以上"]),
    ],
)
def test_count_layers_have_a_zero_class_and_integer_quantile_classes(
    overdue: list, breaks: list[int], labels: list[str]
) -> None:
    spec = case_layers({"overdue": overdue, "open": overdue})[0]
    assert spec["breaks"] == breaks
    assert spec["labels"] == labels
    assert spec["colors"][0] == "#e5f5e0" and len(set(spec["colors"])) == len(labels)


def test_load_change_follows_households_to_their_old_grid() -> None:
    old = gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(0, 0, 2, 1)], crs=4326)
    new = gpd.GeoDataFrame(
        {"code": ["B1", "B2"]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)], crs=4326
    )
    buildings = gpd.GeoDataFrame(
        {"households": [300, 400]}, geometry=gpd.points_from_xy([0.5, 1.5], [0.5, 0.5]), crs=4326
    )
    change = load_change(old, new, buildings)
    assert change["households"].tolist() == [300, 400]
    assert change["before"].tolist() == [700, 700]
    assert change["delta"].tolist() == [-400, -300]
    assert change["previous"].tolist() == [[("A", 300)], [("A", 400)]]


@pytest.mark.parametrize(
    ("delta", "cls"),
    [
        (-300, 0),
        (-250, 1),
        (-101, 1),
        (-100, 2),
        (-26, 2),
        (-25, 3),
        (0, 3),
        (25, 3),
        (26, 4),
        (100, 4),
        (101, 5),
        (250, 5),
        (251, 6),
    ],
)
def test_change_classes(delta: int, cls: int) -> None:
    assert change_class(np.array([delta]), (25, 100, 250)).tolist() == [cls]


def test_compare_page_draws_old_lines_and_new_grids(dist) -> None:
    page = render_compare(old_plan(), dist.grids, dist.buildings)
    data = payload(page)
    assert len(data["old"]["g"]) == 3
    assert len(data["grids"]["g"]) == len(dist.grids)
    assert 'id="gm-old-toggle"' in page and "负荷变化" in page
    assert all(c.startswith("#") for c in data["change"]["color"])


def test_union_of_tiles_survives_tiles_that_no_longer_match() -> None:
    """Rounding a dense plan can leave neighbours overlapping or meeting at unshared vertices."""
    from maps.geometry import union_of_tiles

    tile = shapely.box(0, 0, 1, 1)
    duplicate = shapely.box(0, 0, 1, 1)  # a collapsed neighbour that now overlaps
    with pytest.raises(shapely.errors.GEOSException):
        shapely.coverage_union_all([tile, duplicate])
    merged = union_of_tiles([tile, duplicate])
    assert merged.area == pytest.approx(1.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tiling=tilings)
def test_map_counts_follow_the_assignment_rule(data: st.DataObject, tiling: Tiling) -> None:
    """Points without a stored grid go to the rule's grid (smallest code on a shared edge,
    whatever the rows' order), none outside every grid: the oracle of ``test_assign``."""
    pts = data.draw(points_for(tiling))
    rows = data.draw(st.permutations(range(len(tiling.codes))))
    grids = gpd.GeoDataFrame(
        {"code": [tiling.codes[k] for k in rows]},
        geometry=[tiling.geoms[k] for k in rows],
        crs=4326,
    )
    xy = np.array(pts, dtype=float).reshape(-1, 2)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=4326)
    got = assign_to_grids(points, grids)
    for i, (code, *_rest) in enumerate(assignment_oracle(tiling, pts)):
        assert (grids["code"].iat[got[i]] if got[i] >= 0 else None) == code, (i, pts[i])
