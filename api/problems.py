"""RFC 9457 problem details: the one status table and the one handler for every error.

Routes never raise HTTPException; geo raises GridmapError subclasses carrying the field
and the reason, and this module turns them into ``application/problem+json``.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo.errors import (
    Conflict,
    DatabaseUnavailable,
    DataRefused,
    Forbidden,
    GridmapError,
    InvalidInput,
    NotAllowed,
    NotFound,
    RateLimited,
    Unauthenticated,
    library_errors,
    translate,
)

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("gridmap.api")

#: Most specific class first.
STATUS: list[tuple[type[GridmapError], int, str]] = [
    (Unauthenticated, 401, "Unauthenticated"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
    (NotAllowed, 409, "Step not allowed"),
    (RateLimited, 429, "Too many requests"),
    (Conflict, 409, "Conflict"),
    (DataRefused, 422, "Data refused"),
    (InvalidInput, 422, "Invalid input"),
    (DatabaseUnavailable, 503, "Database unavailable"),
    (GridmapError, 400, "Bad request"),
]


def problem(
    status: int, title: str, detail: str, instance: str, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def _gridmap_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GridmapError)
    status, title = next((s, t) for cls, s, t in STATUS if isinstance(exc, cls))
    errors: list[dict[str, Any]] = []
    if exc.problems:
        errors = [p.as_dict() for p in exc.problems]
    elif exc.field:
        errors = [
            {"field": exc.field, "reason": exc.reason, **({"fix": exc.fix} if exc.fix else {})}
        ]
    response = problem(status, title, str(exc), request.url.path, errors)
    if isinstance(exc, NotAllowed):
        body = {**json.loads(bytes(response.body)), "allowed": exc.allowed}
        response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(
                str(p) for p in err["loc"] if p not in ("query", "body", "path", "[key]")
            ),
            "reason": err["msg"],
            "in": str(err["loc"][0]) if err["loc"] else None,
        }
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['field'] or 'request'}: {e['reason']}" for e in errors)
    return problem(422, "Invalid input", detail, request.url.path, errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail), str(exc.detail), request.url.path)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug still answers in problem+json, without leaking internals to the client."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        500, "Internal error", "an unexpected error occurred; it has been logged", request.url.path
    )


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    """GEOS, GDAL or the database failed: the problem ``translate`` names, else a 500."""
    error = translate(exc)
    if error is None:
        return await _internal_error(request, exc)
    return await _gridmap_error(request, error)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GridmapError, _gridmap_error)
    for library_error in library_errors():
        app.add_exception_handler(library_error, _library_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


#: OpenAPI description of a problem response, for ``responses=`` on routes.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": title,
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["type", "title", "status", "detail"],
                }
            }
        },
    }
    for status, title in (
        (401, "Unauthenticated"),
        (403, "Forbidden"),
        (404, "Not found"),
        (409, "Conflict"),
        (422, "Invalid input"),
        (429, "Too many requests"),
    )
}
