"""Even a bug answers in RFC 9457 problem+json, without internals."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from geo.settings import GridmapSettings


def test_unexpected_error_is_a_problem_without_internals(database_url: str) -> None:
    app = create_app(GridmapSettings(_env_file=None, database_url=database_url))  # type: ignore[call-arg]

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret connection string postgresql://u:p@h/db")

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == 500 and body["title"] == "Internal error"
    assert "secret" not in answer.text
