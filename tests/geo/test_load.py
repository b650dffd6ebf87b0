"""``gridmap load`` and ``gridmap export`` end to end, against the real test database.

Every refusal of the issue has a broken file here. Each is loaded with ``--replace`` over a
stored copy of the same district, so a refusal that let anything through would show as a
changed database: the test compares a fingerprint of every table before and after.

The district is the hand-drawn one of ``tests/handmade.py`` under its own code (379901),
so this module never collides with another module's loads of the handmade district::

    y=2 +-------+-------+-------+-------+
        |  G11  |  G12  |  G31  |  G32  |      [] island G33
        |       | +---+ |       |       |
        |       | |G21| |       |       |
        |       | +---+ |       |       |
    y=0 +-------+-------+-------+-------+
        x=0     1       2       3       4     (units of 0.005 degrees)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import Result
from shapely.geometry import LineString, Point, Polygon, box
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.cli import app
from geo.crs import Coordsys
from geo.grids import DistrictData
from geo.io import arrow_table
from geo.store.queries import count_rows, district_counts, list_district_codes, load_district_data
from geo.store.session import engine_for
from tests.geo.test_io import wkb_nested_collection, wkb_polygon, write_raw_geoparquet
from tests.handmade import UNIT, X0, Y0, handmade_layers, write_handmade
from tests.neighbours import shifted

CODE = "379901"
OTHER = "379902"
ROOT = Path(__file__).resolve().parents[2]
TABLES = (
    "districts",
    "streets",
    "communities",
    "grid_plans",
    "grids",
    "buildings",
    "reports",
    "roads",
    "grid_teams",
    "grid_crosswalk",
)
runner = CliRunner()


def xy(x: float, y: float) -> tuple[float, float]:
    return (X0 + x * UNIT, Y0 + y * UNIT)


def cell(x1: float, y1: float, x2: float, y2: float) -> Polygon:
    return box(*xy(x1, y1), *xy(x2, y2))


def district_layers(code: str = CODE) -> dict[str, gpd.GeoDataFrame]:
    """The handmade layers under ``code`` (grid codes are G11, G12, G21, G31, G32, G33)."""
    layers = handmade_layers()
    layers["district"]["code"] = code
    layers["streets"]["district_code"] = code
    return layers


def apart(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    """OTHER's layers 0.1° north of CODE's: two stored districts never share ground."""
    return shifted(layers, 0.0, 0.1)


def grid_code(label: str) -> str:
    """G11 -> the handmade grid code of that cell."""
    order = ["G11", "G12", "G21", "G31", "G32", "G33"]
    return str(handmade_layers()["grids"]["code"].iat[order.index(label)])


def changed(layer: str, **edits: Callable[[gpd.GeoDataFrame], None]) -> gpd.GeoDataFrame:
    """A copy of one layer with ``edit(frame)`` applied."""
    frame = district_layers()[layer].copy()
    for edit in edits.values():
        edit(frame)
    return frame


def set_geometry(frame: gpd.GeoDataFrame, row: int, geom: shapely.Geometry) -> None:
    geoms = frame.geometry.to_numpy().copy()
    geoms[row] = geom
    frame[frame.geometry.name] = geoms


def write(tmp: Path, fmt: str = "geojson", **layers: gpd.GeoDataFrame) -> list[Path]:
    """The district with ``layers`` replaced (GeoJSON by default: the quickest to write)."""
    return write_handmade(tmp, fmt, **{**district_layers(), **layers})


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "500", **(env or {})})


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- the database's state -------------------------------------------------------------------


def fingerprint(url: str) -> dict[str, Any]:
    """Every table's row count and content hash, plus the per-district counts of geo.store."""
    with Session(engine_for(url)) as session:
        tables = {
            table: tuple(
                session.execute(
                    text(
                        "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id)) "
                        f"FROM {table} t"
                    )
                ).one()
            )
            for table in TABLES
        }
        districts = {
            code: {"rows": count_rows(session, code), **district_counts(session, code)}
            for code in list_district_codes(session)
        }
    return {"tables": tables, "districts": districts}


def stored(url: str, code: str = CODE) -> DistrictData:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return load_district_data(session, code)
    finally:
        engine.dispose()


def delete_district(url: str, code: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM districts WHERE code = :c"), {"c": code})
    engine.dispose()


@pytest.fixture(scope="module")
def loaded(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The handmade district stored under CODE for the whole module."""
    paths = write(tmp_path_factory.mktemp("loaded"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRIDMAP_DATABASE_URL", database_url)
        result = invoke("load", *map(str, paths), "--replace", "--json")
    assert result.exit_code == 0, result.output
    yield database_url
    delete_district(database_url, CODE)
    delete_district(database_url, OTHER)


# --- the refusals ---------------------------------------------------------------------------


@dataclass
class Broken:
    """A broken input and what the refusal must say about it."""

    make: Callable[[Path], list[Path]]
    reason: tuple[str, ...]
    layer: str | None = None
    feature: str | None = None
    fix: str = "fix:"
    env: dict[str, str] = field(default_factory=dict)


def _without(tmp: Path, layer: str) -> list[Path]:
    paths = write(tmp, "geojson")
    (tmp / f"{layer}.geojson").unlink()
    return [p for p in paths if p.exists()]


def _replace_file(paths: list[Path], layer: str, new: Path) -> list[Path]:
    return [new if p.stem == layer else p for p in paths]


def _zipped_shapefile(tmp: Path) -> list[Path]:
    paths = write(tmp / "layers", "geojson")
    shp = tmp / "grids.shp"
    pyogrio.write_dataframe(district_layers()["grids"], shp, driver="ESRI Shapefile")
    zipped = tmp / "grids.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for part in tmp.glob("grids.*"):
            if part != zipped:
                archive.write(part, part.name)
    return _replace_file(paths, "grids", zipped)


def _unknown_layer(tmp: Path) -> list[Path]:
    extra = tmp / "parcels.geojson"
    district_layers()["grids"].to_file(extra, driver="GeoJSON")
    return [*write(tmp / "layers"), extra]


def _corrupt_gpkg(tmp: Path) -> list[Path]:
    path = tmp / "handmade.gpkg"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    return [path]


def _metres_without_crs(tmp: Path) -> list[Path]:
    layers = {
        name: frame.to_crs(32651).set_crs(None, allow_override=True)
        for name, frame in district_layers().items()
    }
    return write_handmade(tmp, "parquet", **layers)


def _geojson_in_metres(tmp: Path) -> list[Path]:
    """A GeoJSON with UTM numbers and no ``crs`` member: EPSG:4326 by the spec."""
    paths = write(tmp, "geojson")
    collection = json.loads(district_layers()["grids"].to_crs(32651).to_json())
    collection.pop("crs", None)
    (tmp / "grids.geojson").write_text(json.dumps(collection))
    return paths


def _swapped(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return frame.set_geometry(shapely.transform(frame.geometry.to_numpy(), lambda c: c[:, ::-1]))


def _nested_parquet(tmp: Path) -> list[Path]:
    paths = write(tmp, "parquet")
    grids = district_layers()["grids"]
    blobs = [bytes(b) for b in shapely.to_wkb(grids.geometry.to_numpy())]
    blobs[0] = wkb_nested_collection(100_000)  # shapely.from_wkb segfaults on this
    columns = {c: grids[c].tolist() for c in ("code", "community_code", "name")}
    write_raw_geoparquet(tmp / "grids.parquet", columns, blobs)
    return paths


def _nan_parquet(tmp: Path) -> list[Path]:
    paths = write(tmp, "parquet")
    grids = district_layers()["grids"]
    blobs = [bytes(b) for b in shapely.to_wkb(grids.geometry.to_numpy())]
    blobs[3] = wkb_polygon([[xy(2, 0), (float("nan"), Y0), xy(3, 2), xy(2, 2), xy(2, 0)]])
    columns = {c: grids[c].tolist() for c in ("code", "community_code", "name")}
    write_raw_geoparquet(tmp / "grids.parquet", columns, blobs)
    return paths


def _infinite_point_parquet(tmp: Path) -> list[Path]:
    paths = write(tmp, "parquet")
    buildings = district_layers()["buildings"]
    table = arrow_table(buildings)
    blobs = table.column("geometry").to_pylist()
    blobs[5] = shapely.to_wkb(Point(X0, Y0))[:-8] + np.float64(np.inf).tobytes()
    columns = {c: table.column(c).to_pylist() for c in table.column_names if c != "geometry"}
    write_raw_geoparquet(tmp / "buildings.parquet", columns, blobs)
    return paths


def _dense_grid(tmp: Path) -> list[Path]:
    grids = changed(
        "grids", e=lambda f: set_geometry(f, 0, shapely.segmentize(cell(0, 0, 1, 2), 1e-4))
    )
    return write(tmp, "geojson", grids=grids)


def _dates(frame: gpd.GeoDataFrame) -> None:
    frame.loc[2, "reported_at"] = "2025-02-30T08:00:00+08:00"
    frame.loc[5, "closed_at"] = "yesterday"


BOWTIE = Polygon([xy(0, 0), xy(1, 2), xy(1, 0), xy(0, 2)])

BROKEN: dict[str, Broken] = {
    "missing file": Broken(
        lambda tmp: [tmp / "nope.gpkg"], ("file not found",), fix="check the path"
    ),
    "missing layer": Broken(
        lambda tmp: _without(tmp, "grids"),
        ("required layer 'grids' is missing",),
        layer="grids",
        fix="add a 'grids' layer",
    ),
    "missing required column": Broken(
        lambda tmp: write(tmp, grids=district_layers()["grids"].drop(columns="community_code")),
        ("required column 'community_code' is missing",),
        layer="grids",
        fix="add the 'community_code' column",
    ),
    "unsupported format": Broken(
        _zipped_shapefile, ("unsupported format '.zip'",), fix="unzip a zipped one first"
    ),
    "file of no known layer": Broken(
        _unknown_layer, ("cannot tell which layer 'parcels.geojson' holds",), fix="grids.geojson"
    ),
    "corrupt GeoPackage": Broken(
        _corrupt_gpkg, ("the GeoPackage file is damaged",), fix="export it again as GeoPackage"
    ),
    "no CRS, coordinates in metres": Broken(
        _metres_without_crs,
        ("no CRS declared", "are not longitude/latitude"),
        layer="district",
        feature=f"#0 (code={CODE})",
        fix="declare the file's CRS",
    ),
    "GeoJSON in metres without a crs member": Broken(
        _geojson_in_metres,
        ("not longitude/latitude after reading them as EPSG:4326",),
        layer="grids",
        feature=f"#0 (code={grid_code('G11')}) and 5 more",
        fix="declare the CRS",
    ),
    "lat/lon swapped in a CSV": Broken(
        lambda tmp: write(tmp, "csv", buildings=_swapped(district_layers()["buildings"])),
        ("lat/lon swapped",),
        layer="buildings",
        feature="#0 (building_id=B0000) and 71 more",
        fix="x = longitude",
    ),
    "lat/lon swapped in a GeoJSON": Broken(
        lambda tmp: write(tmp, "geojson", grids=_swapped(district_layers()["grids"])),
        ("lat/lon swapped",),
        layer="grids",
        fix="x = longitude",
    ),
    "self-intersection": Broken(
        lambda tmp: write(tmp, grids=changed("grids", e=lambda f: set_geometry(f, 0, BOWTIE))),
        ("invalid geometry: Self-intersection[",),
        layer="grids",
        feature=grid_code("G11"),
        fix="--repair",
    ),
    "grid that is a line": Broken(
        lambda tmp: write(
            tmp,
            "geojson",
            grids=changed(
                "grids", e=lambda f: set_geometry(f, 0, LineString([xy(0, 0), xy(1, 2)]))
            ),
        ),
        ("geometry is a LineString, expected Polygon or MultiPolygon",),
        layer="grids",
        feature=grid_code("G11"),
        fix="holds Polygon / MultiPolygon",
    ),
    "building that is a polygon": Broken(
        lambda tmp: write(
            tmp,
            "geojson",
            buildings=changed("buildings", e=lambda f: set_geometry(f, 4, cell(0, 0, 0.1, 0.1))),
        ),
        ("geometry is a Polygon, expected Point",),
        layer="buildings",
        feature="B0004",
    ),
    "duplicate grid code": Broken(
        lambda tmp: write(
            tmp,
            grids=changed(
                "grids",
                e=lambda f: f.__setitem__(
                    "code", f["code"].replace(grid_code("G12"), grid_code("G11"))
                ),
            ),
        ),
        ("duplicate code", "features [0, 1]"),
        layer="grids",
        feature=grid_code("G11"),
        fix="make code unique",
    ),
    "missing grid code": Broken(
        lambda tmp: write(
            tmp, grids=changed("grids", e=lambda f: f.loc.__setitem__((0, "code"), None))
        ),
        ("code is empty",),
        layer="grids",
        feature="#0",
        fix="fill in the code of every grids feature",
    ),
    "duplicate report id": Broken(
        lambda tmp: write(
            tmp,
            reports=changed("reports", e=lambda f: f.loc.__setitem__((3, "report_id"), "R00001")),
        ),
        ("duplicate report_id 'R00001'",),
        layer="reports",
        feature="R00001",
    ),
    "orphan grid": Broken(
        lambda tmp: write(
            tmp,
            grids=changed(
                "grids", e=lambda f: f.loc.__setitem__((0, "community_code"), CODE + "009")
            ),
        ),
        (f"community_code '{CODE}009' names no feature of the communities layer",),
        layer="grids",
        feature=grid_code("G11"),
        fix="use an existing communities code",
    ),
    "overlapping grids": Broken(
        lambda tmp: write(
            tmp, grids=changed("grids", e=lambda f: set_geometry(f, 0, cell(0, 0, 1.2, 2)))
        ),
        (
            "overlap of ",
            f" m wide, between grids {grid_code('G11')} and {grid_code('G12')}",
            "near (120.38",
        ),
        layer="grids",
        feature=f"{grid_code('G11')}, {grid_code('G12')}",
        fix="redraw the grids so that they tile",
    ),
    "gap inside a community": Broken(
        lambda tmp: write(
            tmp, grids=changed("grids", e=lambda f: set_geometry(f, 0, cell(0, 0, 0.8, 2)))
        ),
        ("gap of ", " m wide, in community ", "near (120.38", "no grid covers it"),
        layer="grids",
        feature=f"{grid_code('G11')}, {grid_code('G12')}",
        fix="redraw the grids so that they tile",
    ),
    "grid not inside its community": Broken(
        lambda tmp: write(
            tmp, grids=changed("grids", e=lambda f: set_geometry(f, 5, cell(4.5, 0.5, 5.2, 1)))
        ),
        (f"part of grid {grid_code('G33')} outside its community",),
        layer="grids",
        feature=grid_code("G33"),
    ),
    "building outside the district": Broken(
        lambda tmp: write(
            tmp, buildings=changed("buildings", e=lambda f: set_geometry(f, 7, Point(xy(6, 1))))
        ),
        ("m outside the district",),
        layer="buildings",
        feature="B0007",
        fix="correct its coordinates",
    ),
    "negative households": Broken(
        lambda tmp: write(
            tmp,
            buildings=changed("buildings", e=lambda f: f.loc.__setitem__((3, "households"), -5)),
        ),
        ("households -5 is negative",),
        layer="buildings",
        feature="B0003",
        fix="households must be zero or more",
    ),
    "households beyond PostgreSQL integer": Broken(
        lambda tmp: write(
            tmp,
            buildings=changed("buildings", e=lambda f: f.loc.__setitem__((3, "households"), 2**31)),
        ),
        ("households 2147483648 is over 2,147,483,647",),
        layer="buildings",
        feature="B0003",
    ),
    "unparseable dates": Broken(
        lambda tmp: write(tmp, reports=changed("reports", e=_dates)),
        (
            "reported_at '2025-02-30T08:00:00+08:00' is not an ISO 8601 time",
            "closed_at 'yesterday'",
        ),
        layer="reports",
        feature="R00002",
        fix="2025-03-01T08:30:00+08:00",
    ),
    "status longer than the column": Broken(
        lambda tmp: write(
            tmp,
            reports=changed(
                "reports",
                e=lambda f: f.loc.__setitem__((1, "status"), "waiting for the street office" * 2),
            ),
        ),
        ("is longer than 32 characters",),
        layer="reports",
        feature="R00001",
    ),
    "geometry collection 100,000 deep": Broken(
        _nested_parquet,
        ("geometry nested deeper than 8 levels",),
        layer="grids",
        feature=f"#0 (code={grid_code('G11')})",
        fix="remove or flatten this feature",
    ),
    "NaN coordinate": Broken(
        _nan_parquet,
        ("NaN or infinite coordinate",),
        layer="grids",
        feature=f"#3 (code={grid_code('G31')})",
    ),
    "infinite point": Broken(
        _infinite_point_parquet,
        ("NaN or infinite coordinate",),
        layer="buildings",
        feature="#5 (building_id=B0005)",
    ),
    "polygon over the vertex cap": Broken(
        _dense_grid,
        ("vertex cap of 50",),
        layer="grids",
        feature=f"#0 (code={grid_code('G11')})",
        fix="raise GRIDMAP_MAX_VERTICES_PER_FEATURE",
        env={"GRIDMAP_MAX_VERTICES_PER_FEATURE": "50"},
    ),
    "file over the size cap": Broken(
        lambda tmp: write(tmp),
        ("over the 10,000-byte limit",),
        fix="raise GRIDMAP_MAX_FILE_BYTES",
        env={"GRIDMAP_MAX_FILE_BYTES": "10000"},
    ),
}


@pytest.mark.parametrize("case", BROKEN.values(), ids=BROKEN.keys())
def test_refusal_names_layer_feature_reason_and_fix_and_changes_nothing(
    case: Broken, loaded: str, cli_env: str, tmp_path: Path
) -> None:
    paths = case.make(tmp_path)
    before = fingerprint(loaded)
    result = invoke("load", *map(str, paths), "--replace", env=case.env)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    said = one_line(result.stderr)
    assert "refused:" in said and "nothing was loaded" in said
    for reason in case.reason:
        assert reason in said
    if case.layer:
        assert f"layer {case.layer}" in said
    if case.feature:
        assert f"feature {case.feature}" in said
    assert case.fix in said
    assert fingerprint(loaded) == before


def test_loading_an_existing_district_without_replace_is_refused(
    loaded: str, cli_env: str, tmp_path: Path
) -> None:
    before = fingerprint(loaded)
    result = invoke("load", *map(str, write(tmp_path)))
    assert result.exit_code == 1
    said = one_line(result.stderr)
    assert f"district {CODE} is already loaded" in said and "--replace" in said
    assert fingerprint(loaded) == before


def test_refused_load_of_a_new_district_leaves_no_trace(
    loaded: str, cli_env: str, tmp_path: Path
) -> None:
    layers = district_layers(OTHER)
    layers["buildings"].loc[0, "households"] = -1
    before = fingerprint(loaded)
    result = invoke("load", *map(str, write_handmade(tmp_path, "gpkg", **layers)))
    assert result.exit_code == 1
    assert fingerprint(loaded) == before
    assert OTHER not in before["districts"]


def test_dry_run_validates_and_stores_nothing(loaded: str, cli_env: str, tmp_path: Path) -> None:
    before = fingerprint(loaded)
    result = invoke("load", *map(str, write(tmp_path)), "--replace", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    keys = ("valid", "district_code", "repairs", "coordsys", "converted")
    keys += ("naive_times", "shared_addresses")
    assert {k: verdict[k] for k in keys} == {
        "valid": True,
        "district_code": CODE,
        "repairs": 0,
        "coordsys": "wgs84",
        "converted": None,
        "naive_times": 0,
        "shared_addresses": 0,
    }
    assert verdict["noding"]["noise_pieces"] == 0 and verdict["noding"]["max_move_m"] < 0.01
    assert fingerprint(loaded) == before


# --- atomicity ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [CODE, OTHER], ids=["replace", "new district"])
def test_a_load_that_fails_at_its_last_step_lands_nothing(
    code: str, loaded: str, cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COPY of reports is the last write: failing there must roll back the delete too."""

    def broken_copy(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full while copying reports")

    monkeypatch.setattr("geo.store.queries.copy_reports", broken_copy)
    before = fingerprint(loaded)
    layers = district_layers(code)
    paths = write_handmade(tmp_path, "gpkg", **(layers if code == CODE else apart(layers)))
    result = invoke("load", *map(str, paths), "--replace")
    assert isinstance(result.exception, RuntimeError)
    assert fingerprint(loaded) == before


# --- loads that work --------------------------------------------------------------------------


def test_load_json_summary_and_first_published_plan(
    loaded: str, cli_env: str, tmp_path: Path
) -> None:
    result = invoke("load", *map(str, write(tmp_path, "csv")), "--replace", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["district_code"] == CODE and summary["replaced"] is True
    expected = {"streets": 2, "communities": 3, "grids": 6, "buildings": 72, "reports": 42}
    assert {k: summary[k] for k in expected} == expected
    assert summary["households"] == int(district_layers()["buildings"]["households"].sum())
    assert summary["reports_unassigned"] == 1  # the report at sea, a normal case
    state = fingerprint(loaded)
    counts = state["districts"][CODE]
    assert counts["plan_id"] == summary["plan_id"] and counts["grids"] == 6
    engine = create_engine(loaded)
    with engine.connect() as conn:
        plans = conn.execute(
            text(
                "SELECT p.status::text FROM grid_plans p JOIN districts d ON d.id = p.district_id "
                "WHERE d.code = :c"
            ),
            {"c": CODE},
        ).scalars()
        assert list(plans) == ["published"]  # the replaced district's plans went with it
    engine.dispose()


def test_repair_fixes_invalid_rings_and_slivers_and_reports_each(
    loaded: str, cli_env: str, tmp_path: Path
) -> None:
    """A spike (Ring Self-intersection) and a real gap between G11 and G12: a triangle 1.1 km
    long and 0.3 m wide at one end (wider than the tolerance, narrower than --repair-width-m)."""
    layers = district_layers(OTHER)
    spike = Polygon([xy(0, 0), xy(1, 0), xy(1, 2), xy(0.5, 2), xy(0.5, 1), xy(0.5, 2), xy(0, 2)])
    set_geometry(layers["grids"], 0, spike)
    sliver = 0.3 / 90_000  # degrees of longitude at one corner: 0.3 m at Qingdao
    g12 = layers["grids"].geometry.iat[1]
    moved = shapely.transform(
        g12,
        lambda c: np.where(
            np.isclose(c, xy(1, 2)).all(axis=1)[:, None], c + np.array([sliver, 0.0]), c
        ),
    )
    set_geometry(layers["grids"], 1, moved)
    layers = apart(layers)
    paths = write_handmade(tmp_path, "gpkg", **layers)

    refused = invoke("load", *map(str, paths))
    assert refused.exit_code == 1
    said = one_line(refused.stderr)
    assert "Ring Self-intersection" in said and "run with --repair to apply make_valid" in said

    result = invoke("load", *map(str, paths), "--repair", "--json")
    assert result.exit_code == 0, result.stderr
    repairs = json.loads(result.stdout)["repairs"]
    assert any(
        f"feature {grid_code('G11')}: made valid (Ring Self-intersection" in r for r in repairs
    )
    assert any("absorbed gap of " in r and " m wide, in community " in r for r in repairs)
    grids = stored(loaded, OTHER).grids
    assert grids.geometry.is_valid.all()
    community = layers["communities"].geometry.iat[0]
    union = shapely.union_all(grids.geometry.to_numpy()[:2])
    assert shapely.symmetric_difference(union, community).area < 1e-12


def test_noise_is_absorbed_without_repair_and_counted(
    loaded: str, cli_env: str, tmp_path: Path
) -> None:
    """A gap 1.1 km long and 4 mm wide at one end (area ~2 m²) is noise, not a problem:
    slivers are judged by width. The vertex is snapped onto its neighbour's edge and the
    summary says how far it moved."""
    layers = district_layers(OTHER)
    g12 = layers["grids"].geometry.iat[1]
    moved = shapely.transform(
        g12,
        lambda c: np.where(
            np.isclose(c, xy(1, 2)).all(axis=1)[:, None], c + np.array([5e-8, 0.0]), c
        ),
    )
    set_geometry(layers["grids"], 1, moved)
    paths = write_handmade(tmp_path, "gpkg", **apart(layers))
    result = invoke("load", *map(str, paths), "--replace", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["repairs"] == []
    assert summary["noding"]["vertices_moved"] >= 1
    assert 0.003 < summary["noding"]["max_move_m"] <= 0.01


# --- round trip -----------------------------------------------------------------------------


def _sorted(frame: gpd.GeoDataFrame, key: str) -> gpd.GeoDataFrame:
    return frame.sort_values(key).reset_index(drop=True)


def _plain(values: pd.Series) -> list[object]:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]


def assert_same_layer(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame, key: str) -> None:
    got, want = _sorted(got, key), _sorted(want, key)
    assert sorted(got.columns) == sorted(want.columns)
    assert got[key].tolist() == want[key].tolist()
    for a, b in zip(got.geometry, want.geometry, strict=True):
        assert shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=1e-9)
    for column in got.columns:
        if column == got.geometry.name:
            continue
        if column in ("reported_at", "closed_at"):
            a = pd.to_datetime(got[column], utc=True, format="ISO8601")
            b = pd.to_datetime(want[column], utc=True, format="ISO8601")
            assert a.equals(b), column
        else:
            a, b = _plain(got[column]), _plain(want[column])
            assert [str(v) if v is not None else None for v in a] == [
                str(v) if v is not None else None for v in b
            ], column


KEYS = {
    "district": "code",
    "streets": "code",
    "communities": "code",
    "grids": "code",
    "buildings": "building_id",
    "reports": "report_id",
    "roads": "name",
}


@pytest.mark.parametrize("target", ["export.gpkg", "folder", "parquet/export.parquet"])
def test_load_export_load_gives_the_same_data(
    target: str, loaded: str, cli_env: str, tmp_path: Path
) -> None:
    invoke("load", *map(str, write(tmp_path / "in")), "--replace")
    first = stored(loaded)
    out = tmp_path / target
    exported = invoke("export", "--district", CODE, "--out", str(out), "--json")
    assert exported.exit_code == 0, exported.stderr
    files = json.loads(exported.stdout)["files"]
    assert files
    reloaded = invoke("load", *files, "--replace", "--json")
    assert reloaded.exit_code == 0, reloaded.stderr
    second = stored(loaded)
    for name, key in KEYS.items():
        assert_same_layer(second.layer(name), first.layer(name), key)


def test_stored_district_keeps_what_the_file_said(
    loaded: str, cli_env: str, tmp_path: Path
) -> None:
    """Codes, extra columns and report times (as instants) survive a load."""
    invoke("load", *map(str, write(tmp_path)), "--replace")
    data = stored(loaded)
    source = district_layers()
    grids = _sorted(data.grids, "code")
    assert grids["name"].tolist() == _sorted(source["grids"], "code")["name"].tolist()
    buildings = _sorted(data.buildings, "building_id")
    assert buildings["rental_units"].tolist() == source["buildings"]["rental_units"].tolist()
    reports = _sorted(data.reports, "report_id")
    want = source["reports"]
    for column in ("reported_at", "closed_at"):
        assert pd.to_datetime(reports[column], utc=True).equals(
            pd.to_datetime(want[column], utc=True)
        )
    assert reports["subcategory"].tolist() == want["subcategory"].tolist()


# --- as a real process ----------------------------------------------------------------------


def _gridmap(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import app; app()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "GRIDMAP_DATABASE_URL": url, "COLUMNS": "500"},
        timeout=120,
    )


def test_hostile_file_in_a_real_process_is_refused_without_crashing(
    loaded: str, tmp_path: Path
) -> None:
    """A 100,000-deep collection kills a process whose GEOS parses it (SIGSEGV in
    ``shapely.from_wkb`` with GEOS 3.14.1); gridmap's guard refuses it before that."""
    before = fingerprint(loaded)
    done = _gridmap("load", *map(str, _nested_parquet(tmp_path)), "--replace", url=loaded)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "geometry nested deeper than 8 levels" in one_line(done.stderr)
    assert fingerprint(loaded) == before


def test_load_json_in_a_real_process(loaded: str, tmp_path: Path) -> None:
    done = _gridmap(
        "load", *map(str, write(tmp_path, "geojson")), "--replace", "--json", url=loaded
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["grids"] == 6


# --- output that must survive odd text and scripts ---------------------------------------------


def test_a_problem_text_with_brackets_is_printed_not_parsed(
    loaded: str, cli_env: str, tmp_path: Path
) -> None:
    grids = changed("grids", e=lambda f: f.loc.__setitem__((0, "community_code"), "[/x]"))
    result = invoke("load", *map(str, write(tmp_path, grids=grids)), "--replace")
    assert result.exit_code == 1
    assert "'[/x]' names no feature" in one_line(result.stderr)


def test_a_refusal_with_json_is_json(loaded: str, cli_env: str, tmp_path: Path) -> None:
    result = invoke("load", str(tmp_path / "nope.gpkg"), "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["problems"][0]["reason"] == "file not found"


# --- drawn on AMap or Baidu ---------------------------------------------------------------------


@pytest.mark.parametrize("coordsys", [Coordsys.GCJ02, Coordsys.BD09])
def test_district_drawn_on_amap_or_baidu_is_stored_in_wgs84(
    loaded: str, cli_env: str, tmp_path: Path, coordsys: Coordsys
) -> None:
    """``--coordsys`` converts every vertex before validation; the summary says so."""
    code = "379903"
    east = np.array([0.05, 0.0])  # beside the module's districts, not over them
    wgs = {
        name: frame.set_geometry(shapely.transform(frame.geometry.to_numpy(), lambda c: c + east))
        for name, frame in district_layers(code).items()
    }
    drawn = {
        name: frame.set_geometry(coordsys.geometries_from_wgs84(frame.geometry.to_numpy()))
        for name, frame in wgs.items()
    }
    paths = write_handmade(tmp_path, "csv", **drawn)
    try:
        result = invoke("load", *map(str, paths), "--coordsys", coordsys.value, "--json")
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["district_code"] == code and summary["coordsys"] == coordsys.value
        assert summary["converted"].startswith(f"converted from {coordsys.label} to WGS 84")
        assert f"converted from {coordsys.label}" in one_line(result.stderr)
        got = stored(loaded, code)
        for name, key in (("grids", "code"), ("buildings", "building_id")):
            a, b = _sorted(got.layer(name), key), _sorted(wgs[name], key)
            for stored_geom, wanted in zip(a.geometry, b.geometry, strict=True):
                assert shapely.hausdorff_distance(stored_geom, wanted) < 1e-9
        again = invoke("load", *map(str, paths), "--coordsys", coordsys.value, "--replace")
        assert again.exit_code == 0, again.stderr
        assert f"Coordinates converted from {coordsys.label} to WGS 84" in one_line(again.stdout)
    finally:
        delete_district(loaded, code)
