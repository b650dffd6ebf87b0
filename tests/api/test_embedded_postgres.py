"""The embedded cluster against a real PostgreSQL: each test has its own home and server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from typer.testing import CliRunner

from api import embedded_postgres
from api.commands.db import db_app
from geo.errors import Conflict, DatabaseUnavailable, InvalidInput
from geo.settings import EmbeddedDatabase, GridmapSettings


def make_settings(home: Path) -> GridmapSettings:
    return GridmapSettings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=None,
        embedded=EmbeddedDatabase(home=home),
    )


def remove_cluster(config: GridmapSettings) -> None:
    """Stop the server and delete a run_dir kept outside the temporary home."""
    embedded_postgres.stop(config)
    data_dir = embedded_postgres.status(config).data_dir
    if data_dir is not None and data_dir.parent.parent == embedded_postgres.SHARED_ROOT:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def config(tmp_path: Path) -> Iterator[GridmapSettings]:
    settings = make_settings(tmp_path / ".gridmap")
    try:
        yield settings
    finally:
        remove_cluster(settings)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GridmapSettings]:
    """One initialised cluster for the tests that only need one to exist (saves initdb)."""
    settings = make_settings(tmp_path_factory.mktemp("shared") / ".gridmap")
    try:
        embedded_postgres.ensure_running(settings)
        yield settings
    finally:
        remove_cluster(settings)


@pytest.fixture
def stopped(shared_home: GridmapSettings) -> Iterator[GridmapSettings]:
    """The shared cluster, stopped before and after the test."""
    embedded_postgres.stop(shared_home)
    try:
        yield shared_home
    finally:
        embedded_postgres.stop(shared_home)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_status_of_a_fresh_home_creates_nothing(tmp_path: Path) -> None:
    status = embedded_postgres.status(make_settings(tmp_path / ".gridmap"))
    assert status == embedded_postgres.ClusterStatus(False, None, None, None, None, False)
    assert not (tmp_path / ".gridmap").exists()


def test_up_is_idempotent_and_down_stops(config: GridmapSettings) -> None:
    # Three callers at once on a fresh home: the file lock lets one initialise.
    with ThreadPoolExecutor(3) as pool:
        urls = set(pool.map(lambda _: embedded_postgres.ensure_running(config), range(3)))
    assert len(urls) == 1
    url = urls.pop()
    first = embedded_postgres.status(config)
    assert embedded_postgres.ensure_running(config) == url
    second = embedded_postgres.status(config)
    assert first.running and first.pid is not None and not first.external
    assert second.pid == first.pid
    assert first.port == urlsplit(url).port
    assert first.url == url == embedded_postgres.database_url(config)
    with psycopg.connect(libpq(url)) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone() is not None
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)

    assert embedded_postgres.stop(config) is True
    stopped = embedded_postgres.status(config)
    assert not stopped.running and stopped.pid is None and stopped.port == first.port
    assert embedded_postgres.stop(config) is False


def test_stale_pid_file_is_removed_with_a_note(stopped: GridmapSettings) -> None:
    config = stopped
    data_dir = embedded_postgres.status(config).data_dir
    assert data_dir is not None
    gone = subprocess.Popen(["true"])
    gone.wait()
    port = embedded_postgres.status(config).port
    (data_dir / "postmaster.pid").write_text(
        f"{gone.pid}\n{data_dir}\n{int(time.time())}\n{port}\n\n127.0.0.1\n0 0\nready\n"
    )
    assert not embedded_postgres.status(config).running

    notes: list[str] = []
    embedded_postgres.ensure_running(config, notes.append)
    assert any("stale" in note and str(gone.pid) in note for note in notes)
    assert embedded_postgres.status(config).running


def test_taken_port_moves_to_a_free_one_with_a_note(stopped: GridmapSettings) -> None:
    config = stopped
    old_port = embedded_postgres.status(config).port
    with socket.socket() as squatter:
        # The stopped server's connections may leave the port in TIME_WAIT for a while.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port or 0))
        squatter.listen()
        notes: list[str] = []
        url = embedded_postgres.ensure_running(config, notes.append)
    new_port = urlsplit(url).port
    assert new_port != old_port
    assert any(f"port {old_port} is in use" in note for note in notes)
    assert embedded_postgres.status(config).port == new_port
    assert json.loads((config.embedded.home / "state.json").read_text())["port"] == new_port
    with psycopg.connect(libpq(url)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_data_dir_of_another_major_version_is_refused(stopped: GridmapSettings) -> None:
    data_dir = embedded_postgres.status(stopped).data_dir
    assert data_dir is not None
    version_file = data_dir / "PG_VERSION"
    real = version_file.read_text()
    version_file.write_text("9\n")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            embedded_postgres.ensure_running(stopped)
    finally:
        version_file.write_text(real)
    assert "PostgreSQL 9" in caught.value.reason
    assert caught.value.fix is not None and "gridmap db down" in caught.value.fix


@pytest.mark.skipif(os.geteuid() != 0, reason="the private-checkout case exists only as root")
def test_root_runs_the_server_outside_a_private_checkout(tmp_path: Path) -> None:
    """CI clones into `mktemp -d` (0700, root): the server account cannot reach the home."""
    checkout = tmp_path / "fresh"
    checkout.mkdir(mode=0o700)
    settings = make_settings(checkout / ".gridmap")
    try:
        url = embedded_postgres.ensure_running(settings)
        status = embedded_postgres.status(settings)
        assert status.running and status.data_dir is not None
        assert status.data_dir.parent.parent == embedded_postgres.SHARED_ROOT
        owner = status.data_dir.stat().st_uid
        assert owner != 0
        state = json.loads((checkout / ".gridmap" / "state.json").read_text())
        assert state["run_dir"] == str(status.data_dir.parent)
        assert state["os_user"] == settings.embedded.os_user
        with psycopg.connect(libpq(url)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (embedded_postgres.DB_USER,)
        assert embedded_postgres.stop(settings)
        assert not embedded_postgres.status(settings).running
    finally:
        remove_cluster(settings)


def test_create_and_drop_a_throwaway_database(shared_home: GridmapSettings) -> None:
    config = shared_home
    name = f"gridmap_test_{os.getpid()}"
    url = embedded_postgres.create_database(config, name)
    assert urlsplit(url).path == f"/{name}"
    with psycopg.connect(libpq(url)) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone() is not None
    with pytest.raises(Conflict):
        embedded_postgres.create_database(config, name)
    holder = psycopg.connect(libpq(url), autocommit=True)
    try:  # replace=True drops the old database even with a connection open
        assert embedded_postgres.create_database(config, name, replace=True) == url
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")
    finally:
        holder.close()
    embedded_postgres.drop_database(config, name)
    with psycopg.connect(libpq(embedded_postgres.database_url(config))) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        assert row is None
    with pytest.raises(InvalidInput):
        embedded_postgres.drop_database(config, config.embedded.database)
    with pytest.raises(InvalidInput):
        embedded_postgres.create_database(config, "bad name; drop")


def test_cli_prints_url_and_status_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # keep a developer's .env out of it
    home = tmp_path / ".gridmap"
    env = {"GRIDMAP_DATABASE_URL": "", "GRIDMAP_EMBEDDED__HOME": str(home)}
    runner = CliRunner()

    result = runner.invoke(db_app, ["url", "--json"], env=env)
    assert result.exit_code == 0, result.output
    expected = embedded_postgres.database_url(make_settings(home))
    assert json.loads(result.stdout) == {"url": expected, "external": False}
    plain = runner.invoke(db_app, ["url"], env=env)
    assert plain.stdout == expected + "\n"

    status = runner.invoke(db_app, ["status", "--json"], env=env)
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert shown["running"] is False and shown["external"] is False
    assert "***" in shown["url"] and expected not in status.stdout  # password masked

    external = {"GRIDMAP_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x"}
    shown = json.loads(runner.invoke(db_app, ["url", "--json"], env=external).stdout)
    assert shown == {"url": "postgresql+psycopg://u:secret@127.0.0.1:1/x", "external": True}
    down = runner.invoke(db_app, ["down", "--json"], env=external)
    assert json.loads(down.stdout) == {"stopped": False, "external": True}

    bad = runner.invoke(db_app, ["url"], env={"GRIDMAP_DATABASE_URL": "mysql://x"})
    assert bad.exit_code == 1
    assert bad.stderr.count("\n") == 1 and "error:" in bad.stderr
    assert "Traceback" not in bad.output
