"""Open311 GeoReport v2 against the spec's examples, with the ``georeport`` client from PyPI
(GETs, JSON and XML) and a minimal spec client for POST (georeport 0.3.1 has no create)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from georeport import GeoReport

from fixtures.district import generate_district, write_district
from geo.settings import GridmapSettings
from geo.store.cases import create_api_key
from geo.store.session import transaction
from geo.store.taxonomy import load_taxonomy
from tests.api.conftest import LiveServer, loaded_database, running_server
from tests.api.test_cases import DISTRICT, PERSONAL, point_in

SPEC_SERVICE_FIELDS = {
    "service_code", "service_name", "description", "metadata", "type", "keywords", "group",
}  # fmt: skip
SPEC_REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
    "long", "media_url",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_district(
        generate_district("tiny", seed=7), tmp_path_factory.mktemp("tiny") / "tiny.gpkg"
    )


@pytest.fixture(scope="module")
def server(
    settings: GridmapSettings, tiny_gpkg: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    limits = {
        "GRIDMAP_CASES__LIMITS__PER_KEY_BURST": "8",
        "GRIDMAP_CASES__LIMITS__PER_KEY_PER_MINUTE": "1",
    }
    saved = {k: os.environ.get(k) for k in limits}
    os.environ.update(limits)
    try:
        with (
            loaded_database(settings, f"gridmap_api_o311_{os.getpid()}", [tiny_gpkg]) as url,
            running_server(url, tmp_path_factory.mktemp("o311_server")) as live,
        ):
            yield live
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    with transaction(server.database_url) as session:
        return create_api_key(session, "reporter", taxonomy=load_taxonomy(session)).key


def client(server: LiveServer, fmt: str = "json") -> GeoReport:
    return GeoReport(f"{server.url}/open311/v2", jurisdiction=DISTRICT, output_format=fmt)


def new_request(server: LiveServer, key: str, **extra: str) -> dict[str, object]:
    lon, lat = point_in(server, "210299001001003")
    form = {"api_key": key, "jurisdiction_id": DISTRICT, "service_code": "graffiti",
            "lat": str(lat), "long": str(lon), "description": "墙面涂鸦", **extra}  # fmt: skip
    answer = server.client.post("/open311/v2/requests.json", data=form)
    assert answer.status_code == 201, answer.text
    return dict(answer.json()[0])


def test_services_in_json_and_xml_with_the_georeport_client(server: LiveServer) -> None:
    services = client(server).get_service_list()
    assert len(services) == 132
    assert SPEC_SERVICE_FIELDS <= set(services[0])
    assert services[0]["metadata"] is False
    in_xml = client(server, "xml").get_service_list()
    assert len(in_xml) == 132 and in_xml[0]["service_code"] == services[0]["service_code"]
    definition = client(server).get_service_definition("graffiti")
    assert definition["service_code"] == "graffiti" and definition["attributes"] == []
    assert client(server, "xml").get_service_definition("graffiti")["service_code"] == "graffiti"
    assert server.client.get("/open311/v2/services/nope.json").status_code == 404
    unknown = server.client.get("/open311/v2/services.json", params={"jurisdiction_id": "999"})
    assert unknown.status_code == 404


def test_post_then_read_back_with_the_client_personal_fields_write_only(
    server: LiveServer, key: str
) -> None:
    posted = new_request(
        server, key, first_name="王", last_name="小明", phone="13812345678", email="w@x.cn",
        device_id="dev-1",
    )  # fmt: skip
    assert set(posted) >= {"service_request_id", "service_notice", "account_id", "grid_code"}
    assert posted["grid_code"] == "210299001001003"
    request_id = str(posted["service_request_id"])
    one = client(server).get_service_request(request_id)
    assert SPEC_REQUEST_FIELDS <= set(one) and one["status"] == "open"
    assert one["grid_code"] == "210299001001003" and one["service_code"] == "graffiti"
    listed = client(server).get_service_requests(service_request_id=request_id)
    assert [r["service_request_id"] for r in listed] == [request_id]
    recent = client(server).get_service_requests(status="open", service_code="graffiti")
    assert request_id in {r["service_request_id"] for r in recent}
    in_xml = client(server, "xml").get_service_request(request_id)
    assert in_xml["service_request_id"] == request_id and in_xml["grid_code"] == "210299001001003"
    for text in (str(one), str(listed), str(in_xml), server.client.get(
        "/open311/v2/requests.xml", params={"service_request_id": request_id}).text):  # fmt: skip
        assert not any(p in text for p in (*PERSONAL, "dev-1", "w@x.cn"))


def test_post_in_xml_follows_the_spec_example(server: LiveServer, key: str) -> None:
    lon, lat = point_in(server, "210299001001003")
    answer = server.client.post(
        "/open311/v2/requests.xml",
        data={"api_key": key, "service_code": "graffiti", "lat": str(lat), "long": str(lon)},
    )
    assert answer.status_code == 201
    root = ET.fromstring(answer.text)
    assert root.tag == "service_requests"
    assert root.find("request/service_request_id") is not None
    assert root.find("request/grid_code").text == "210299001001003"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "closed"),
        ("grid_code", "210299001001001"),
        ("assignee", "water"),
        ("service_request_id", "X1"),
        ("colour", "red"),
        ("attribute[WHISPER]", "x"),
    ],
)
def test_writes_refuse_privileged_and_unknown_fields(
    server: LiveServer, key: str, field: str, value: str
) -> None:
    answer = server.client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": key,
            "service_code": "graffiti",
            "lat": "38.9",
            "long": "121.6",
            field: value,
        },
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field


def test_posting_needs_a_valid_key_and_a_known_service(server: LiveServer, key: str) -> None:
    base = {"service_code": "graffiti", "lat": "38.9", "long": "121.6"}
    assert server.client.post("/open311/v2/requests.json", data=base).status_code == 401
    bad = server.client.post("/open311/v2/requests.json", data={**base, "api_key": "gm_nope"})
    assert bad.status_code == 401
    unknown = server.client.post(
        "/open311/v2/requests.json", data={**base, "api_key": key, "service_code": "nope"}
    )
    assert unknown.status_code == 404


def test_filing_is_rate_limited_per_key_with_retry_after(server: LiveServer) -> None:
    with transaction(server.database_url) as session:
        own = create_api_key(session, "reporter", taxonomy=load_taxonomy(session)).key
    statuses = []
    lon, lat = point_in(server, "210299001001003")
    for _ in range(12):
        answer = server.client.post(
            "/open311/v2/requests.json",
            data={"api_key": own, "service_code": "graffiti", "lat": str(lat), "long": str(lon)},
        )
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 1
    assert statuses[:8] == [201] * 8 and statuses[8:] == [429] * 4


def test_post_located_by_a_buildings_address_id(server: LiveServer, key: str) -> None:
    with transaction(server.database_url) as session:
        building, lon, lat = session.execute(
            sqlalchemy.text(
                "SELECT building_id, ST_X(geom), ST_Y(geom) FROM buildings ORDER BY building_id"
            )
        ).first()  # type: ignore[misc]
    there = server.client.get("/lookup", params={"lon": lon, "lat": lat}).json()
    base = {"api_key": key, "service_code": "graffiti"}
    posted = server.client.post(
        "/open311/v2/requests.json",
        data={**base, "address_id": building, "jurisdiction_id": DISTRICT},
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()[0]["grid_code"] == there["grid_code"] is not None
    for form, field in [
        ({"address_id": "no-such-building"}, "address_id"),
        ({"address_id": building, "jurisdiction_id": "999999"}, "jurisdiction_id"),
    ]:
        refused = server.client.post("/open311/v2/requests.json", data={**base, **form})
        assert refused.status_code in (404, 422), refused.text
        assert refused.json()["errors"][0]["field"] == field
