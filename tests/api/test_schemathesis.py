"""Generated requests for every operation of the OpenAPI document: no 5xx, answers in schema.

A server of its own over a database of its own (the hand-drawn district), because
generated POSTs file reports, start regrids and publish plans.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from geo.settings import GridmapSettings
from tests.api.conftest import LiveServer, loaded_database, running_server


@pytest.fixture(scope="module")
def fuzzed_server(
    settings: GridmapSettings, handmade_gpkg: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with (
        loaded_database(settings, f"gridmap_fuzz_{os.getpid()}", [handmade_gpkg]) as url,
        running_server(url, tmp_path_factory.mktemp("fuzz")) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25


def test_no_server_error_and_answers_in_schema(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, 25 generated cases each (hundreds in all), derandomised."""
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS, timeout=60)

        try:
            run()
        except BaseException as exc:  # schemathesis raises ExceptionGroups; report them all
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
