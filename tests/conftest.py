"""Shared fixtures: a real PostGIS database for the session, rolled-back sessions per test.

The embedded cluster of the checkout (``.gridmap/``) is started once; each pytest run gets
its own throwaway database ``gridmap_test_<pid>``, migrated to head, dropped at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from geo.settings import GridmapSettings
from tests.handmade import write_handmade


@pytest.fixture(scope="session")
def settings() -> GridmapSettings:
    return GridmapSettings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def database_url(settings: GridmapSettings) -> Iterator[str]:
    """A fresh, migrated PostGIS database for this test session."""
    from api import embedded_postgres
    from geo.store.migrate import upgrade_database
    from geo.store.session import engine_for

    name = f"gridmap_test_{os.getpid()}"
    url = embedded_postgres.create_database(settings, name, replace=True)
    upgrade_database(url)
    yield url
    engine_for(url).dispose()
    engine_for.cache_clear()
    embedded_postgres.drop_database(settings, name)


@pytest.fixture(scope="session", autouse=True)
def embedded_cluster_lifetime(settings: GridmapSettings) -> Iterator[None]:
    """A cluster the test run had to start is stopped at the very end; one that was already
    running (a developer's ``./dev.sh up``) is left as it was."""
    from api import embedded_postgres

    started_here = not settings.database_url and not embedded_postgres.status(settings).running
    yield
    if started_here:
        embedded_postgres.stop(settings)


@pytest.fixture
def db_session(database_url: str) -> Iterator[Session]:
    """A session whose work is rolled back after the test, commits included."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()
    engine.dispose()


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI (run in-process or as a subprocess) at the test database."""
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", database_url)
    return database_url


@pytest.fixture(scope="session")
def handmade_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-drawn district as one GeoPackage."""
    return write_handmade(tmp_path_factory.mktemp("handmade"))[0]
