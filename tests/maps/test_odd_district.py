"""Maps of an odd district drawn by hand, end to end: ``gridmap load``, ``gridmap map`` and
``/maps/*`` over a real PostGIS, then the served pages in headless Chromium.

Two copies of :func:`tests.handmade.odd_layers` are loaded with the real command: one whose
cases are all closed (a plan without open cases) and one without any report. Between them
they have a grid of 4 cm in a hole of its neighbour and a 4 cm sliver (both rounded away at
1e-6 degrees: the crash of issue 10), an enclave community without buildings, a community of
one 3,000-household building, an island-only community whose grid is a MultiPolygon, and a
road shorter than the display precision.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from api.cli import app
from geo.settings import GridmapSettings
from geo.store.queries import plan_grids
from geo.store.session import engine_for, transaction
from tests.api.conftest import LiveServer, running_server
from tests.handmade import ODD_CODE, odd_layers
from tests.maps.test_browser import CHROMIUM, Visit, browser  # noqa: F401  (fixture)
from tests.maps.test_geometry import decode

BARE_CODE = "370213"  # the copy without reports
GRIDS = 8


@dataclass(frozen=True)
class OddDb:
    url: str
    published: dict[str, int]
    draft: int  # a draft of the odd district: the tiny grid merged back into its neighbour
    grid_codes: dict[str, list[str]]


def _gridmap(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``gridmap`` command, as a planner runs it."""
    exe = Path(sys.executable).with_name("gridmap")
    return subprocess.run(
        [str(exe), *args],
        env={**os.environ, "GRIDMAP_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _write(layers: dict[str, gpd.GeoDataFrame], path: Path) -> Path:
    for name, frame in layers.items():
        frame.to_file(path, layer=name, driver="GPKG")
    return path


def _save_merged_draft(url: str) -> int:
    """A draft plan with the tiny grid merged back into the grid around it.

    ``gridmap regrid`` is not used here: this file tests the maps, not the regrid.
    """
    from geo.store.plans import plan_inputs, save_draft

    with transaction(url) as session:
        inputs = plan_inputs(session, ODD_CODE)
        grids = inputs.grids[["code", "community_code", "name", "geometry"]].copy()
        outer, tiny = ODD_CODE + "001001001", ODD_CODE + "001001002"
        merged = shapely.coverage_union_all(grids.geometry[grids["code"].isin([outer, tiny])])
        grids = grids[grids["code"] != tiny].reset_index(drop=True)
        grids.loc[grids["code"] == outer, "geometry"] = merged
        crosswalk = pd.DataFrame(
            columns=["old_code", "new_code", "shared_area_m2", "buildings", "households"]
        )
        return save_draft(
            session,
            inputs,
            gpd.GeoDataFrame(grids, geometry="geometry", crs=4326),
            params={},
            summary={},
            grid_metrics=pd.DataFrame(),
            crosswalk=crosswalk,
            author="test",
        )


@pytest.fixture(scope="module")
def odd_db(settings: GridmapSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OddDb]:
    from api.embedded_postgres import create_database, drop_database
    from geo.store.migrate import upgrade_database

    name = f"gridmap_odd_{os.getpid()}"
    url = create_database(settings, name, replace=True)
    upgrade_database(url)
    folder = tmp_path_factory.mktemp("odd")
    files = [
        _write(odd_layers(reports="closed"), folder / "odd.gpkg"),
        _write(odd_layers(reports="none", code=BARE_CODE, dx=0.05), folder / "bare.gpkg"),
    ]
    try:
        for path in files:
            done = _gridmap(url, "load", str(path))
            assert done.returncode == 0, done.stdout + done.stderr
            assert "Traceback" not in done.stderr
        published: dict[str, int] = {}
        codes: dict[str, list[str]] = {}
        with transaction(url) as session:
            from geo.store.queries import district_id, published_plan_id

            for code in (ODD_CODE, BARE_CODE):
                published[code] = published_plan_id(session, district_id(session, code))
                codes[code] = plan_grids(session, published[code])["code"].tolist()
        yield OddDb(url, published, _save_merged_draft(url), codes)
    finally:
        engine_for(url).dispose()
        engine_for.cache_clear()
        drop_database(settings, name)


@pytest.fixture(scope="module")
def odd_server(odd_db: OddDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(odd_db.url, tmp_path_factory.mktemp("odd-server")) as server:
        yield server


def page_payload(page: str) -> dict:  # type: ignore[type-arg]
    m = re.search(r'<script type="application/json" id="gm-data">(.*?)</script>', page, re.S)
    assert m, "no payload in the page"
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def assert_draws_every_grid(page: str, codes: list[str]) -> dict:  # type: ignore[type-arg]
    """Every grid in the payload, each decoding to valid rings; the grids still a coverage;
    community outlines along grid edges."""
    data = page_payload(page)
    assert data["grids"]["code"] == codes
    grids = np.asarray(decode(data["grids"]), dtype=object)
    assert len(grids) == len(codes)
    assert shapely.is_valid(grids).all(), shapely.is_valid_reason(grids)
    assert shapely.coverage_is_valid(grids)
    edges = shapely.union_all(shapely.boundary(grids))
    for line in decode(data["communities"], polygons=False):
        assert shapely.covers(edges, line)
    return data


def _parts(data: dict, code: str) -> list[int]:  # type: ignore[type-arg]
    """Rings per polygon of grid ``code`` in the payload."""
    i = data["grids"]["code"].index(code)
    return [len(poly) for poly in data["grids"]["g"][i]]


# --- CLI ---------------------------------------------------------------------------------


def test_gridmap_map_hotspots_draws_the_odd_district(odd_db: OddDb, tmp_path: Path) -> None:
    """The command of the issue's crash, run as the installed program."""
    out = tmp_path / "hotspots.html"
    done = _gridmap(odd_db.url, "map", "hotspots", "--district", ODD_CODE, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "GEOSException" not in done.stderr
    data = assert_draws_every_grid(out.read_text(encoding="utf-8"), odd_db.grid_codes[ODD_CODE])
    assert _parts(data, ODD_CODE + "001001001") == [2]  # A1 keeps the tiny grid's hole
    assert _parts(data, ODD_CODE + "002002001") == [1, 1]  # the grid of two islands
    assert sum(len(f) for f in data["roads"]["g"]) == 2  # the 3 cm lane is drawn too
    assert len(data["reports"]["g"]) == 22


@pytest.mark.parametrize("district", [ODD_CODE, BARE_CODE])
@pytest.mark.parametrize("kind", ["hotspots", "workload"])
def test_map_commands_on_odd_districts(
    odd_db: OddDb, tmp_path: Path, kind: str, district: str
) -> None:
    out = tmp_path / f"{kind}.html"
    result = CliRunner().invoke(
        app,
        ["map", kind, "--district", district, "--out", str(out)],
        env={"GRIDMAP_DATABASE_URL": odd_db.url},
    )
    assert result.exit_code == 0 and result.exception is None, result.output
    page = out.read_text(encoding="utf-8")
    data = assert_draws_every_grid(page, odd_db.grid_codes[district])
    if kind == "hotspots" and district == BARE_CODE:
        assert data["reports"]["g"] == [] and "共 0 件" in page
    if kind == "workload":
        load = dict(zip(data["grids"]["code"], data["load"]["households"], strict=True))
        assert load[district + "001002001"] == 3000  # the tower alone in its community
        assert load[district + "001003001"] == 0  # the park
        assert data["load"]["open_reports"] == [0] * GRIDS  # no open case anywhere
        if district == ODD_CODE:
            assert data["cases"]["open"] == [0] * GRIDS
            assert sum(data["cases"]["cases"]) == 22  # every report lies in a grid
        else:
            assert set(data["cases"]["cases"]) == {0}


def test_map_compare_and_workload_of_a_draft(odd_db: OddDb, tmp_path: Path) -> None:
    env = {"GRIDMAP_DATABASE_URL": odd_db.url}
    a, b = odd_db.published[ODD_CODE], odd_db.draft
    for args, name in (
        (["map", "compare", "--district", ODD_CODE, "--a", str(a), "--b", str(b)], "ab"),
        (["map", "compare", "--district", ODD_CODE, "--a", str(b), "--b", str(a)], "ba"),
        (["map", "workload", "--district", ODD_CODE, "--plan", str(b)], "draft"),
    ):
        out = tmp_path / f"{name}.html"
        result = CliRunner().invoke(app, [*args, "--out", str(out)], env=env)
        assert result.exit_code == 0 and result.exception is None, result.output
        data = page_payload(out.read_text(encoding="utf-8"))
        n = GRIDS if name == "ba" else GRIDS - 1
        assert len(decode(data["grids"])) == n
        if name != "draft":
            old = decode(data["old"], polygons=False)
            assert len(old) == (GRIDS - 1 if name == "ba" else GRIDS)


# --- HTTP and the browser ----------------------------------------------------------------


def _paths(odd_db: OddDb) -> list[tuple[str, str]]:
    a, b = odd_db.published[ODD_CODE], odd_db.draft
    return [
        (f"/maps/hotspots?district={ODD_CODE}", ODD_CODE),
        (f"/maps/hotspots?district={ODD_CODE}&status=handling", ODD_CODE),
        (f"/maps/hotspots?district={BARE_CODE}", BARE_CODE),
        (f"/maps/workload?district={ODD_CODE}&low=100&high=200", ODD_CODE),
        (f"/maps/workload?district={BARE_CODE}", BARE_CODE),
        (f"/maps/workload?district={ODD_CODE}&plan={b}", "draft"),
        (f"/maps/compare?district={ODD_CODE}&a={a}&b={b}", "draft"),
        (f"/maps/compare?district={ODD_CODE}&a={b}&b={a}", ODD_CODE),
    ]


def test_served_maps_of_odd_districts(odd_db: OddDb, odd_server: LiveServer) -> None:
    for path, which in _paths(odd_db):
        answer = odd_server.client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        data = page_payload(answer.text)
        if which == "draft":
            assert len(data["grids"]["code"]) == GRIDS - 1
            assert shapely.coverage_is_valid(np.asarray(decode(data["grids"]), dtype=object))
        else:
            assert_draws_every_grid(answer.text, odd_db.grid_codes[which])


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_served_odd_maps_open_in_chromium_and_draw_every_grid(
    odd_db: OddDb,
    odd_server: LiveServer,
    browser,  # noqa: F811
) -> None:
    # Served from the store: the reports-less district, a filter, a draft, both compares.
    paths = _paths(odd_db)
    for path, which in [paths[1], paths[2], paths[5], paths[6], paths[7]]:
        visit = Visit(browser, odd_server.url + path)
        try:
            n = GRIDS - 1 if which == "draft" else GRIDS
            paths = visit.page.eval_on_selector_all(
                "path.gm-grid", "els => els.map(e => e.getAttribute('d') || '')"
            )
            assert len(paths) == n, path
            assert all(d and d != "M0 0" for d in paths), path
            assert visit.page.locator("#gm-legend").is_visible()
        finally:
            visit.close()  # asserts no JS error and no request outside 127.0.0.1
