"""A real server for API tests: uvicorn in a subprocess, on 127.0.0.1, over its own database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from geo.grids import read_district, validate_district
from geo.settings import GridmapSettings
from geo.store.queries import store_district
from geo.store.session import engine_for, transaction


@dataclass(frozen=True)
class LiveServer:
    url: str
    database_url: str
    client: httpx.Client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def api_database(settings: GridmapSettings, handmade_gpkg: Path) -> Iterator[str]:
    """A database of its own holding the hand-drawn district (the API tests only read it)."""
    with loaded_database(settings, f"gridmap_api_{os.getpid()}", [handmade_gpkg]) as url:
        yield url


@contextmanager
def running_server(database_url: str, log_dir: Path) -> Iterator[LiveServer]:
    """uvicorn with the real app in a subprocess on a free 127.0.0.1 port."""
    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": database_url}
    log = (log_dir / "uvicorn.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the API server did not start; see {log.name}")
        time.sleep(0.2)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield LiveServer(url, database_url, client)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@contextmanager
def loaded_database(settings: GridmapSettings, name: str, files: list[Path]) -> Iterator[str]:
    """A throwaway database holding the district in ``files``."""
    from api.embedded_postgres import create_database, drop_database
    from geo.store.migrate import upgrade_database

    url = create_database(settings, name, replace=True)
    upgrade_database(url)
    data, _ = validate_district(read_district(files))
    with transaction(url) as session:
        store_district(session, data, source=str(files[0]))
    try:
        yield url
    finally:
        engine_for(url).dispose()
        engine_for.cache_clear()
        drop_database(settings, name)


@pytest.fixture(scope="session")
def live_server(
    api_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The API over the hand-drawn district (read-mostly tests)."""
    with running_server(api_database, tmp_path_factory.mktemp("server")) as server:
        yield server
