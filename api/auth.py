"""API keys and roles for the case routes, and the filing rate limits.

Clients send ``Authorization: Bearer KEY``; Open311 clients may send ``api_key`` instead (the
spec's parameter). Only the sha256 of a key is stored (``geo.store.cases.hash_key``).

The limits are token buckets per key and per client address, held in the server process:
with several uvicorn workers each has its own (say so in a deployment note), which is the
usual trade for not needing Redis on an isolated government network.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.deps import SessionDep
from geo.cases import Actor
from geo.errors import RateLimited, Unauthenticated
from geo.settings import CaseSettings
from geo.store.cases import actor_for_key
from geo.store.taxonomy import TaxonomyCache
from geo.taxonomy import Taxonomy


class TokenBuckets:
    """Token buckets by name; ``take`` refuses with the seconds until the next token."""

    def __init__(self, burst: int, per_minute: float) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str, now: float | None = None) -> float:
        """0 when a token was taken, else the wait in seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                if len(self._buckets) > 100_000:  # forget idle callers, bounded memory
                    self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 600}
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate


class CasesRuntime:
    """What the case routes keep per app: settings, limits and the responsibility list."""

    def __init__(self, settings: CaseSettings) -> None:
        self.settings = settings
        limits = settings.limits
        self.per_key = TokenBuckets(limits.per_key_burst, limits.per_key_per_minute)
        self.per_address = TokenBuckets(limits.per_address_burst, limits.per_address_per_minute)
        self.taxonomy = TaxonomyCache()


async def cases_runtime(request: Request) -> CasesRuntime:
    """The app's case runtime, built once in ``create_app``."""
    runtime: CasesRuntime = request.app.state.cases
    return runtime


CasesDep = Annotated[CasesRuntime, Depends(cases_runtime)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "the Authorization header must be 'Bearer KEY'", field="Authorization"
            )
        return token.strip()
    return None


def authenticate(session: Session, token: str | None) -> Actor:
    if not token:
        raise Unauthenticated(
            "this needs an API key",
            field="Authorization",
            fix="send 'Authorization: Bearer KEY' (gridmap keys create --role ROLE)",
        )
    return actor_for_key(session, token)


def current_actor(request: Request, session: SessionDep) -> Actor:
    """The actor of a request that must carry a key (``Authorization: Bearer``)."""
    return authenticate(session, bearer_token(request))


ActorDep = Annotated[Actor, Depends(current_actor)]


def get_taxonomy(session: SessionDep, cases: CasesDep) -> Taxonomy:
    return cases.taxonomy.get(session)


TaxonomyDep = Annotated[Taxonomy, Depends(get_taxonomy)]


def check_filing_rate(request: Request, cases: CasesRuntime, actor: Actor | None) -> None:
    """Per key and per client address; 429 with Retry-After when either is spent."""
    address = request.client.host if request.client else "unknown"
    wait = cases.per_address.take(f"addr:{address}")
    if wait:
        raise RateLimited(f"too many cases filed from {address}", retry_after_s=wait)
    if actor is not None and actor.key_id is not None:
        wait = cases.per_key.take(f"key:{actor.key_id}")
        if wait:
            raise RateLimited("too many cases filed with this key", retry_after_s=wait)
