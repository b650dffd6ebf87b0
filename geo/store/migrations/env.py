"""Alembic environment: the URL comes from gridmap's settings, never from alembic.ini."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool

from geo.store.models import Base

config = context.config
target_metadata = Base.metadata

#: Tables PostGIS and its extensions own; autogenerate must never try to drop them.
FOREIGN_TABLES = {"spatial_ref_sys", "topology", "layer"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Compare only what gridmap's models declare."""
    if type_ == "table" and (name in FOREIGN_TABLES or (reflected and compare_to is None)):
        return False
    return True


def _url() -> str:
    """The URL ``upgrade_database`` passed, else GRIDMAP_DATABASE_URL (``alembic`` by hand).

    The embedded cluster's URL is the CLI's to resolve (``gridmap db url``): the store does
    not know how its database is provided.
    """
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from geo.settings import GridmapSettings

        url = GridmapSettings().database_url
    if not url:
        raise RuntimeError(
            "no database URL: run `gridmap db up` (it migrates), or set GRIDMAP_DATABASE_URL "
            '(for the embedded cluster: GRIDMAP_DATABASE_URL="$(gridmap db url)" alembic ...)'
        )
    return str(url)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        include_schemas=False,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
