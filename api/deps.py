"""Request dependencies: one settings object, one session (one transaction) per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from geo.lookup import GridLookup
from geo.settings import GridmapSettings
from geo.store.session import transaction


def get_settings(request: Request) -> GridmapSettings:
    settings: GridmapSettings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.database_url) as session:
        yield session


def get_lookup(request: Request) -> GridLookup:
    lookup: GridLookup = request.app.state.lookup
    return lookup


SettingsDep = Annotated[GridmapSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
LookupDep = Annotated[GridLookup, Depends(get_lookup)]
