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
    """Sessions on the process's one engine for ``url``; objects stay readable after commit."""
    return sessionmaker(engine_for(url), expire_on_commit=False)


@contextmanager
def transaction(
    sessions: sessionmaker[Session] | str, *, read_only: bool = False
) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back on error.

    ``sessions`` is the factory a runtime built once (the CLI's, ``create_app``'s), or a URL
    (scripts and tests). ``read_only`` makes PostgreSQL refuse any write in it (``--dry-run``
    promises one).
    """
    factory = session_factory(sessions) if isinstance(sessions, str) else sessions
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
