"""A garden of odd inputs: ``gridmap load --dry-run`` must say what ``gridmap load`` will do.

Each input is the hand-drawn district (``tests/handmade.py``, under its own code 379903) with
one oddity, written by a real tool (GDAL through pyogrio for GeoPackage and GeoJSON, pandas
for CSV, a text editor's bytes where the tools would clean the value up). For every one:
the dry run and the real load exit 0 or 1, never with a Python exception, and with the same
verdict; a refused load leaves the database exactly as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import Result
from typer.testing import CliRunner

from api.cli import app
from tests.geo.test_load import delete_district, fingerprint
from tests.handmade import handmade_layers, write_handmade

CODE = "379903"
ROOT = Path(__file__).resolve().parents[2]
Layers = dict[str, gpd.GeoDataFrame]


def layers() -> Layers:
    out = handmade_layers()
    out["district"]["code"] = CODE
    out["streets"]["district_code"] = CODE
    return out


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "500"})


@dataclass
class Odd:
    """One odd input: how to change the layers, which format writes them, and the verdict."""

    change: Callable[[Layers], None]
    fmt: str = "gpkg"
    loads: bool = False
    says: str = ""


def _set(layer: str, row: int, column: str, value: object) -> Callable[[Layers], None]:
    def change(ls: Layers) -> None:
        frame = ls[layer]
        if column not in frame.columns:
            frame[column] = None
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value

    return change


def _column(layer: str, column: str, values: Callable[[int], object]) -> Callable[[Layers], None]:
    def change(ls: Layers) -> None:
        frame = ls[layer]
        frame[column] = pd.Series([values(i) for i in range(len(frame))], index=frame.index)

    return change


def _empty(layer: str) -> Callable[[Layers], None]:
    def change(ls: Layers) -> None:
        ls[layer] = ls[layer].iloc[0:0]

    return change


def _both(*changes: Callable[[Layers], None]) -> Callable[[Layers], None]:
    def change(ls: Layers) -> None:
        for c in changes:
            c(ls)

    return change


GARDEN: dict[str, Odd] = {
    "as drawn": Odd(lambda ls: None, loads=True),
    "empty address": Odd(_set("buildings", 3, "address", ""), says="address is empty"),
    "address of spaces (CSV)": Odd(
        _set("buildings", 3, "address", "   "), fmt="csv", says="address is empty"
    ),
    "null address (GeoJSON)": Odd(
        _set("buildings", 3, "address", None), fmt="geojson", says="address is empty"
    ),
    "address on two buildings": Odd(_set("buildings", 5, "address", "山东路1号1栋"), loads=True),
    "mixed naive and offset times (CSV)": Odd(
        _set("reports", 3, "reported_at", "2025-03-01 08:30"), fmt="csv", loads=True
    ),
    "every time naive, one a date": Odd(
        _both(
            _column("reports", "reported_at", lambda i: f"2025-04-{1 + i % 28:02d}T09:00:00"),
            _set("reports", 0, "reported_at", "2025-04-01"),
        ),
        loads=True,
    ),
    "times in Z and +0800": Odd(
        _both(
            _set("reports", 1, "reported_at", "2025-03-01T00:30:00Z"),
            _set("reports", 2, "reported_at", "2025-03-01T08:30:00+0800"),
        ),
        loads=True,
    ),
    "a due time that is not a time": Odd(
        _column("reports", "due_at", lambda i: "soon" if i == 4 else None),
        says="due_at 'soon' is not an ISO 8601 time",
    ),
    "NUL in an attribute (CSV)": Odd(
        _column("buildings", "note", lambda i: "a\x00b" if i == 2 else "ok"),
        fmt="csv",
        says="holds a NUL character",
    ),
    "satisfaction 7": Odd(
        _column("reports", "satisfaction", lambda i: 7 if i == 1 else 4),
        says="satisfaction 7 is over 5",
    ),
    "satisfaction 0 (GeoJSON)": Odd(
        _column("reports", "satisfaction", lambda i: 0 if i == 1 else None),
        fmt="geojson",
        says="is under 1 (fix: satisfaction must be between 1 and 5)",
    ),
    "reopened beyond integer": Odd(
        _column("reports", "reopened", lambda i: 2**40 if i == 1 else 0),
        says="reopened 1099511627776 is over 2,147,483,647",
    ),
    "floors as words (CSV)": Odd(
        _set("buildings", 2, "floors", "six"), fmt="csv", says="floors 'six' is not a number"
    ),
    "households 3.5": Odd(
        _set("buildings", 2, "households", 3.5), says="households 3.5 is not a whole number"
    ),
    "status longer than its column": Odd(
        _set("reports", 2, "status", "x" * 33), says="is longer than 32 characters"
    ),
    "blank street name": Odd(_set("streets", 0, "name", " "), says="name is empty"),
    "road without a name (GeoJSON)": Odd(
        _set("roads", 0, "name", None), fmt="geojson", says="name is empty"
    ),
    "report without a category": Odd(_set("reports", 2, "category", ""), says="category"),
    "empty reports layer": Odd(_empty("reports"), loads=True),
    "no buildings at all": Odd(_empty("buildings"), loads=True),
    "a district of two features": Odd(
        lambda ls: ls.__setitem__("district", pd.concat([ls["district"]] * 2, ignore_index=True)),
        says="the district layer has 2 features",
    ),
    "a very long grid name and emoji": Odd(_set("grids", 0, "name", "网格🏠" * 3000), loads=True),
    "extra columns named like the table's (CSV)": Odd(
        _both(
            _column("buildings", "attrs", lambda i: "x"),
            _column("buildings", "grid_id", lambda i: i),
            _column("buildings", "id", lambda i: -i),
        ),
        fmt="csv",
        loads=True,
    ),
    "infinite and huge numbers in attributes (GeoJSON)": Odd(
        _both(
            _column("buildings", "ratio", lambda i: float("inf") if i == 1 else 0.5),
            _column("buildings", "phone", lambda i: 10**30 if i == 1 else 1),
        ),
        fmt="geojson",
        loads=True,
    ),
}


@pytest.fixture(scope="module")
def stored(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The district as drawn, stored under CODE: every garden load replaces it."""
    paths = write_handmade(tmp_path_factory.mktemp("stored"), "gpkg", **layers())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRIDMAP_DATABASE_URL", database_url)
        result = invoke("load", *map(str, paths), "--replace")
    assert result.exit_code == 0, result.output
    yield database_url
    delete_district(database_url, CODE)


def write_odd(odd: Odd, folder: Path) -> list[Path]:
    ls = layers()
    odd.change(ls)
    return write_handmade(folder, odd.fmt, **ls)


@pytest.mark.parametrize("odd", GARDEN.values(), ids=GARDEN.keys())
def test_the_dry_run_says_what_the_load_does(
    odd: Odd, stored: str, cli_env: str, tmp_path: Path
) -> None:
    paths = [str(p) for p in write_odd(odd, tmp_path)]
    dry = invoke("load", *paths, "--replace", "--dry-run")
    before = None if odd.loads else fingerprint(stored)
    real = invoke("load", *paths, "--replace")
    for result in (dry, real):
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert result.exit_code in (0, 1)
        assert "Traceback" not in result.output
    assert dry.exit_code == real.exit_code, (dry.stderr, real.stderr)
    assert real.exit_code == (0 if odd.loads else 1), real.stderr
    if not odd.loads:
        assert odd.says in " ".join(real.stderr.split())
        assert fingerprint(stored) == before


def test_mixed_times_are_stored_as_instants_and_counted(
    stored: str, cli_env: str, tmp_path: Path
) -> None:
    """``2025-03-01 08:30`` is China time; the summary counts the values without an offset."""
    ls = layers()
    reports = ls["reports"]
    reports["reported_at"] = reports["reported_at"].astype(object)
    reports.loc[3, "reported_at"] = "2025-03-01 08:30"
    reports.loc[4, "reported_at"] = "2025-03-01T00:30:00Z"
    reports["closed_at"] = reports["closed_at"].astype(object)
    reports.loc[1, "closed_at"] = "2025-10-01T12:00:00"
    paths = [str(p) for p in write_handmade(tmp_path, "csv", **ls)]
    dry = invoke("load", *paths, "--dry-run", "--replace", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["naive_times"] == 2
    assert "2 report times had no offset: taken as +08:00" in dry.stderr
    real = invoke("load", *paths, "--replace", "--json")
    assert real.exit_code == 0, real.stderr
    assert json.loads(real.stdout)["naive_times"] == 2
    from sqlalchemy import create_engine, text

    engine = create_engine(stored)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text(
                    "SELECT r.report_id, to_char(r.reported_at AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD HH24:MI') FROM reports r JOIN districts d ON d.id = r.district_id "
                    "WHERE d.code = :c AND r.report_id IN ('R00003', 'R00004')"
                ),
                {"c": CODE},
            ).all()
        )
        closed = conn.execute(
            text(
                "SELECT to_char(closed_at AT TIME ZONE 'UTC', 'HH24:MI') FROM reports r "
                "JOIN districts d ON d.id = r.district_id WHERE d.code = :c "
                "AND r.report_id = 'R00001'"
            ),
            {"c": CODE},
        ).scalar_one()
    engine.dispose()
    assert rows == {"R00003": "2025-03-01 00:30", "R00004": "2025-03-01 00:30"}
    assert closed == "04:00"


def _gridmap(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import app; app()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "GRIDMAP_DATABASE_URL": url, "COLUMNS": "500"},
        timeout=120,
    )


@pytest.mark.parametrize("name", ["empty address", "mixed naive and offset times (CSV)"])
def test_in_a_real_process_stderr_has_no_traceback(name: str, stored: str, tmp_path: Path) -> None:
    """The two crashes of the issue, as a planner's shell sees them."""
    odd = GARDEN[name]
    paths = [str(p) for p in write_odd(odd, tmp_path)]
    dry = _gridmap("load", *paths, "--replace", "--dry-run", url=stored)
    real = _gridmap("load", *paths, "--replace", url=stored)
    for done in (dry, real):
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert dry.returncode == real.returncode == (0 if odd.loads else 1)


def test_geometry_odd_layers_are_listed_too(stored: str, cli_env: str, tmp_path: Path) -> None:
    """A layer with an invalid grid and one with bad values: both are listed in one refusal."""
    ls = layers()
    bowtie = shapely.Polygon([(120.38, 36.06), (120.385, 36.07), (120.385, 36.06), (120.38, 36.07)])
    grids = ls["grids"]
    geoms = grids.geometry.to_numpy().copy()
    geoms[0] = bowtie
    grids[grids.geometry.name] = geoms
    ls["buildings"]["households"] = np.where(
        np.arange(len(ls["buildings"])) < 3, -1, ls["buildings"]["households"]
    )
    paths = [str(p) for p in write_handmade(tmp_path, "gpkg", **ls)]
    result = invoke("load", *paths, "--replace", "--dry-run")
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert "4 problems found" in said
    assert "invalid geometry: Self-intersection" in said
    assert said.count("is negative") == 3
