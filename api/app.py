"""The FastAPI application: ``create_app(settings)`` wires settings, errors and routes."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import problems
from api.auth import CasesRuntime
from api.routes import cases, districts, lookup, maps, open311, plans, reports
from geo.address_book import AddressBook
from geo.lookup import GridLookup
from geo.settings import GridmapSettings
from maps.assets import STATIC_DIR, STATIC_URL


def create_app(settings: GridmapSettings | None = None) -> FastAPI:
    """Build the app; the database URL is resolved once, the embedded cluster not started."""
    from geo.store.cluster import database_url

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
    )
    app.state.settings = settings
    app.state.database_url = database_url(settings)
    app.state.lookup = GridLookup(app.state.database_url)
    app.state.addresses = AddressBook()
    app.state.jobs = {}
    app.state.cases = CasesRuntime(settings.cases)
    problems.install(app)
    for module in (districts, lookup, reports, plans, maps, cases, open311):
        app.include_router(module.router)
    # The map pages' scripts and styles, pinned and served here: no CDN on an intranet.
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="map-assets")
    return app
