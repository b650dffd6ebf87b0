"""The served map pages: real server, real headless Chromium, network outside 127.0.0.1 cut."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import LiveServer
from tests.maps.test_browser import CHROMIUM, Visit, browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

DISTRICT = "370202"


@pytest.mark.parametrize(
    "path",
    [
        f"/maps/hotspots?district={DISTRICT}",
        f"/maps/hotspots?district={DISTRICT}&category=sanitation&from=2025-01-01&to=2025-12-31",
        f"/maps/workload?district={DISTRICT}",
    ],
)
def test_served_page_has_a_strict_csp_and_no_outside_url(
    live_server: LiveServer, path: str
) -> None:
    answer = live_server.client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "http" not in csp
    urls = set(re.findall(r"""(?:src|href)=["']([^"']+)""", answer.text))
    outside = [u for u in urls if not u.startswith(("/static/maps/", "#", "data:"))]
    assert urls and not outside, outside
    assert "unpkg" not in answer.text and "cdn" not in answer.text.lower()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/maps/hotspots?district={DISTRICT}&from=yesterday", "from"),
        (f"/maps/hotspots?district={DISTRICT}&from=2025-05-01&to=2025-01-01", "from"),
        (f"/maps/workload?district={DISTRICT}&low=500&high=300", "low"),
        ("/maps/workload?district=000000", "district"),
        (f"/maps/compare?district={DISTRICT}&a=1", "b"),
    ],
)
def test_bad_map_requests_get_problems(live_server: LiveServer, path: str, field: str) -> None:
    answer = live_server.client.get(path)
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"] == field for e in answer.json()["errors"])


def test_served_hotspot_page_draws_offline_in_chromium(live_server: LiveServer, browser) -> None:  # noqa: F811
    visit = Visit(browser, f"{live_server.url}/maps/hotspots?district={DISTRICT}")
    try:
        assert len(visit.fills()) == 6  # the hand-drawn district's six grids
        assert visit.page.locator(".gm-legend").first.is_visible()
    finally:
        visit.close()


def test_docs_open_offline_in_chromium(live_server: LiveServer, browser) -> None:  # noqa: F811
    page_html = live_server.client.get("/docs").text
    assert "cdn" not in page_html.lower() and "/static/docs/swagger-ui-bundle.js" in page_html
    visit = browser.new_context()
    blocked: list[str] = []

    def route(r) -> None:  # type: ignore[no-untyped-def]
        if r.request.url.startswith(live_server.url):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    visit.route("**/*", route)
    page = visit.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/docs")
    page.wait_for_selector(".opblock", timeout=15000)  # the operations are listed
    assert page.locator(".opblock").count() >= 15
    assert errors == [] and blocked == []
    visit.close()
