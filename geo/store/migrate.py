"""Apply, check and roll back the schema with Alembic, from code (``gridmap db up``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import OperationalError

from geo.errors import DatabaseUnavailable

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    """An Alembic config bound to ``url``; the ini file holds no URL."""
    config = Config(str(ALEMBIC_INI))
    config.attributes["url"] = url
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Create the PostGIS extension if needed, then migrate to ``revision``."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        command.upgrade(alembic_config(url), revision)
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot migrate the database: {exc.orig}",
            fix="check GRIDMAP_DATABASE_URL, or run `gridmap db up` for the embedded cluster",
        ) from exc
    finally:
        engine.dispose()


def downgrade_database(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
