"""Request dependencies: one settings object, one session (one transaction) per request.

The trivial ones are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool,
a hop that costs more than the lookup it serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from geo.settings import GridmapSettings, InputLimits
from geo.store.address import AddressBook
from geo.store.lookup import GridLookup
from geo.store.session import transaction


async def get_settings(request: Request) -> GridmapSettings:
    settings: GridmapSettings = request.app.state.settings
    return settings


async def get_limits(request: Request) -> InputLimits:
    limits: InputLimits = request.app.state.limits
    return limits


def get_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.sessions) as session:
        yield session


async def get_lookup(request: Request) -> GridLookup:
    lookup: GridLookup = request.app.state.lookup
    return lookup


async def get_addresses(request: Request) -> AddressBook:
    addresses: AddressBook = request.app.state.addresses
    return addresses


SettingsDep = Annotated[GridmapSettings, Depends(get_settings)]
LimitsDep = Annotated[InputLimits, Depends(get_limits)]
#: ``scope="function"`` commits when the route returns, before the response is sent: a client
#: that reads right after a write must see it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
LookupDep = Annotated[GridLookup, Depends(get_lookup)]
AddressBookDep = Annotated[AddressBook, Depends(get_addresses)]
