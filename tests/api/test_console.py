"""The CLI's runtime: settings read once; only commands that use the database reach it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text

from api import embedded_postgres
from api.console import Runtime
from geo.settings import GridmapSettings
from geo.store.session import engine_for
from tests.handmade import handmade_layers

GRIDMAP = Path(sys.executable).with_name("gridmap")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unreachable(tmp_path: Path) -> dict[str, str]:
    """An environment whose database is a closed port: a command that connects fails."""
    url = f"postgresql://gridmap:secret@127.0.0.1:{_closed_port()}/gridmap"
    return {**os.environ, "GRIDMAP_DATABASE_URL": url, "COLUMNS": "200"}


def gridmap(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``gridmap`` in a process of its own, away from the checkout's .env."""
    return subprocess.run(
        [str(GRIDMAP), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def point_files(tmp_path: Path) -> tuple[Path, Path]:
    grids, points = tmp_path / "grids.geojson", tmp_path / "buildings.geojson"
    handmade_layers()["grids"].to_file(grids, driver="GeoJSON")
    handmade_layers()["buildings"].to_file(points, driver="GeoJSON")
    return grids, points


def test_help_assign_on_files_and_db_never_touch_the_database(
    tmp_path: Path, unreachable: dict[str, str], point_files: tuple[Path, Path]
) -> None:
    grids, points = point_files
    out = tmp_path / "assigned.csv"
    assert "Usage: gridmap" in gridmap(tmp_path, unreachable, "--help").stdout
    assigned = gridmap(
        tmp_path, unreachable, "assign", "--grids", str(grids), "--points", str(points),
        "--out", str(out), "--json",
    )  # fmt: skip
    assert assigned.returncode == 0, assigned.stderr
    buildings = len(handmade_layers()["buildings"])
    assert json.loads(assigned.stdout)["points"] == buildings
    assert len(pd.read_csv(out, encoding="utf-8-sig")) == buildings
    url = gridmap(tmp_path, unreachable, "db", "url")
    assert url.returncode == 0 and url.stdout.strip().endswith("/gridmap"), url.stderr
    status = gridmap(tmp_path, unreachable, "db", "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["running"] is False
    down = gridmap(tmp_path, unreachable, "db", "down", "--json")
    assert json.loads(down.stdout) == {"stopped": False, "external": True}


def test_a_command_that_needs_the_database_says_it_cannot_reach_it(
    tmp_path: Path, unreachable: dict[str, str]
) -> None:
    """The other side of the test above: the port is really closed."""
    listed = gridmap(tmp_path, unreachable, "plan", "list", "--district", "210204")
    assert listed.returncode == 1
    assert "cannot connect to GRIDMAP_DATABASE_URL" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_assign_takes_its_input_caps_from_the_settings(
    tmp_path: Path, unreachable: dict[str, str], point_files: tuple[Path, Path]
) -> None:
    grids, points = point_files
    capped = {**unreachable, "GRIDMAP_MAX_VERTICES_PER_FEATURE": "4"}
    args = ("assign", "--grids", str(grids), "--points", str(points), "--out", "out.csv")
    refused = gridmap(tmp_path, capped, *args)
    assert refused.returncode == 1
    assert "over the cap of 4" in refused.stderr, refused.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_bad_setting_is_one_line_naming_its_variable(
    tmp_path: Path, unreachable: dict[str, str]
) -> None:
    bad = {**unreachable, "GRIDMAP_TOLERANCE_M": "5"}
    for args in (("plan", "list", "--district", "210204"), ("db", "url")):
        refused = gridmap(tmp_path, bad, *args)
        assert refused.returncode == 1, args
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "GRIDMAP_TOLERANCE_M" in refused.stderr and "Traceback" not in refused.stderr


@pytest.fixture
def unmigrated(settings: GridmapSettings) -> Iterator[str]:
    """An empty PostGIS database: no migration has run on it."""
    name = f"gridmap_runtime_{os.getpid()}"
    url = embedded_postgres.create_database(settings, name, replace=True)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        embedded_postgres.drop_database(settings, name)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_runtime_migrates_on_first_use_and_only_once(unmigrated: str) -> None:
    rt = Runtime(GridmapSettings(_env_file=None, database_url=unmigrated))  # type: ignore[call-arg]
    assert rt.limits.lookup_batch_limit == rt.settings.lookup_batch_limit
    assert "alembic_version" not in _tables(unmigrated)  # reading settings touched nothing
    with rt.transaction() as session:
        assert session.scalar(text("SELECT count(*) FROM grid_plans")) == 0
    assert "alembic_version" in _tables(unmigrated)
    engine = create_engine(unmigrated)
    with engine.begin() as conn:  # were the migrations run again, they would put it back
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    with rt.transaction(read_only=True) as session:
        assert session.scalar(text("SELECT count(*) FROM districts")) == 0
    assert "alembic_version" not in _tables(unmigrated)
    assert rt.sessions is rt.sessions
