"""The engine and the one ``transaction()`` helper: commit on exit, roll back on error.

geo functions take a Session and never commit; whoever starts a multi-step change wraps
it in one transaction, so a load or a publish lands whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from geo.errors import DatabaseUnavailable


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One pooled engine per URL for the life of the process."""
    return create_engine(url, pool_pre_ping=True, future=True)


def session_factory(url: str) -> sessionmaker[Session]:
    """The sessions of one database: what a long-lived object (a cache, a job) is given."""
    return sessionmaker(engine_for(url), expire_on_commit=False)


@contextmanager
def transaction(
    database: str | sessionmaker[Session], *, read_only: bool = False
) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back on error.

    ``database`` is a URL or a session factory (``session_factory``). ``read_only`` makes
    PostgreSQL refuse any write in it (``--dry-run`` promises one).
    """
    factory = database if isinstance(database, sessionmaker) else session_factory(database)
    try:
        session = factory()
    except OperationalError as exc:  # pragma: no cover - connect errors surface on first use
        raise DatabaseUnavailable(str(exc.orig), fix="run `gridmap db up`") from exc
    try:
        with session.begin():
            if read_only:
                session.execute(text("SET TRANSACTION READ ONLY"))
            yield session
    except OperationalError as exc:
        if "connection" in str(exc.orig).lower():
            raise DatabaseUnavailable(
                f"cannot reach the database: {exc.orig}", fix="run `gridmap db up`"
            ) from exc
        raise
    finally:
        session.close()
