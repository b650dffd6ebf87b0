"""The FastAPI application: ``create_app(settings)`` wires settings, errors and routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api import problems
from api.auth import CasesRuntime
from api.routes import cases, districts, lookup, maps, open311, plans, reports
from geo.settings import GridmapSettings
from geo.store.address import AddressBook
from geo.store.lookup import GridLookup
from geo.store.session import session_factory
from maps.assets import STATIC_DIR, STATIC_URL

#: Swagger UI (swagger-ui-dist 5.35.0 from npm), bundled for offline /docs.
DOCS_ASSETS = Path(__file__).resolve().parent / "static" / "docs"


def create_app(settings: GridmapSettings | None = None) -> FastAPI:
    """Build the app; the database URL and the session factory are built once from the
    settings (the embedded cluster is not started: ``gridmap serve`` or ``db up`` did)."""
    from api.embedded_postgres import database_url

    settings = settings or GridmapSettings()
    app = FastAPI(
        title="gridmap",
        version="0.1.0",
        summary="Which grid owns a point or an address; districts, grids and reports.",
        description=(
            "A point belongs to the grid of the district's published plan whose closed polygon "
            "covers it; on a boundary shared by several grids, to the smallest grid code. "
            "Errors are RFC 9457 problem details naming the field and the reason."
        ),
        docs_url=None,  # served below from bundled assets: the default loads a public CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.limits = settings.input_limits
    url = database_url(settings)
    app.state.sessions = session_factory(url)
    app.state.lookup = GridLookup(app.state.sessions)
    app.state.addresses = AddressBook()
    app.state.jobs = {}
    app.state.cases = CasesRuntime(settings.cases)
    problems.install(app)
    for module in (districts, lookup, reports, plans, maps, cases, open311):
        app.include_router(module.router)
    # The map pages' and the docs' scripts and styles, pinned and served here: no CDN on
    # an isolated intranet.
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="map-assets")
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="gridmap API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    return app
