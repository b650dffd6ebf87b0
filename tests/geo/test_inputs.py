"""No traceback on input: the dry run's rules come from the schema, every problem is listed,
times without an offset are China time, and a failure of the database underneath is a
message naming district, layer and feature with nothing stored."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hypothesis
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.cli import app
from geo.columns import INT16, INT32, STORED_RULES
from geo.errors import (
    DatabaseUnavailable,
    Problem,
    ProcessingFailed,
    problem_lines,
    translate,
    where,
)
from geo.grids import parse_times
from geo.settings import GridmapSettings
from tests.api.conftest import loaded_database
from tests.geo.test_load import fingerprint
from tests.handmade import CODE, handmade_layers, write_handmade


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "500", "GRIDMAP_DATABASE_URL": url})


def one_line(text_: str) -> str:
    return " ".join(text_.split())


# --- the rules are the schema's -------------------------------------------------------------


def test_the_dry_run_rules_are_the_migrated_schema(db_session: Session) -> None:
    """NOT NULL, length, type and every CHECK of the migrated tables, as the rules say.

    A CHECK is probed by evaluating the database's own constraint expression just inside
    and just outside the bounds the rules declare; a declared bound narrower than its
    column's type must have its CHECK, and every CHECK its declared bound.
    """
    rules = STORED_RULES
    widths = {"integer": INT32, "smallint": INT16}
    kinds = {
        "integer": "integer",
        "smallint": "integer",
        "bigint": "integer",
        "text": "text",
        "character varying": "text",
        "timestamp with time zone": "time",
        "double precision": "number",
    }
    for layer in rules:
        columns = rules[layer].names
        table = "districts" if layer == "district" else layer  # the table a layer is stored in
        schema = {
            row.column_name: row
            for row in db_session.execute(
                text(
                    "SELECT column_name, is_nullable, column_default, data_type, "
                    "character_maximum_length FROM information_schema.columns "
                    "WHERE table_name = :t"
                ),
                {"t": table},
            )
        }
        by_column = {r.column: r for r in rules[layer].columns}
        assert set(by_column) <= set(schema), layer  # every declared column is stored
        for column, rule in by_column.items():
            row = schema[column]
            assert rule.required == (row.is_nullable == "NO" and row.column_default is None), column
            assert rule.max_chars == row.character_maximum_length, column
            assert rule.kind == kinds[row.data_type], column
        checks = db_session.execute(
            text(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname = :t AND c.contype = 'c'"
            ),
            {"t": table},
        ).scalars()
        narrowed = {
            column
            for column, rule in by_column.items()
            if rule.kind == "integer" and (rule.low, rule.high) != widths[schema[column].data_type]
        }
        checked = set()
        for definition in checks:
            expression = re.fullmatch(r"CHECK \((.*)\)", definition)
            assert expression, definition
            column = next(c for c in columns if re.search(rf"\b{c}\b", definition))
            checked.add(column)
            rule = by_column[column]
            assert rule.low is not None, definition
            probes = {rule.low: True, rule.low - 1: False}
            if rule.high is not None and rule.high < 2**15 - 1:
                probes |= {rule.high: True, rule.high + 1: False}
            for value, holds in probes.items():
                sql = re.sub(rf"\b{column}\b", f"({value})", expression.group(1))
                assert db_session.scalar(text(f"SELECT {sql}")) is holds, (definition, value)
        assert checked == narrowed, layer
        uniques = {
            tuple(sorted(set(row[0]) - {"district_id", "plan_id"}))
            for row in db_session.execute(
                text(
                    "SELECT array_agg(a.attname::text) FROM pg_constraint c "
                    "JOIN pg_class t ON t.oid = c.conrelid "
                    "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (c.conkey) "
                    "WHERE t.relname = :t AND c.contype = 'u' GROUP BY c.oid"
                ),
                {"t": table},
            )
        }
        in_files = {key for key in uniques if key and set(key) <= set(columns)}
        assert set(rules[layer].unique) == in_files, layer


# --- times --------------------------------------------------------------------------------

OFFSETS = st.sampled_from(
    [None, "Z", "+08:00", "+0800", "+08", "-05:00", "+05:45", "+14:00", "-12:00", "+00:00"]
)


def _offset(written: str | None) -> timedelta:
    if written is None:
        return timedelta(hours=8)  # the contract: China time
    if written == "Z":
        return timedelta(0)
    sign = -1 if written[0] == "-" else 1
    digits = written[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))


@hypothesis.settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1992, 1, 1), max_value=datetime(2100, 1, 1)),
            OFFSETS,
            st.sampled_from(["T", " "]),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_times_with_and_without_offsets_mix_in_one_column(
    values: list[tuple[datetime, str | None, str, bool]],
) -> None:
    written, expected = [], []
    for moment, offset, separator, seconds in values:
        moment = (
            moment.replace(microsecond=0) if seconds else moment.replace(second=0, microsecond=0)
        )
        clock = moment.strftime("%H:%M:%S" if seconds else "%H:%M")
        written.append(f"{moment:%Y-%m-%d}{separator}{clock}{offset or ''}")
        expected.append((moment - _offset(offset)).replace(tzinfo=UTC))
    parsed = parse_times(pd.Series(written, dtype=object))
    assert [t.to_pydatetime() for t in parsed] == expected


def test_times_that_are_not_times_or_empty_are_missing() -> None:
    parsed = parse_times(pd.Series(["2025-02-30T08:00:00+08:00", "soon", "", None, "2025-03-01"]))
    assert parsed.isna().tolist() == [True, True, True, True, False]
    assert parsed.iat[4] == pd.Timestamp("2025-02-28T16:00:00Z")


# --- every problem, a sample of each kind ------------------------------------------------------


def test_problem_lines_show_fifty_of_a_kind_and_count_the_rest() -> None:
    negative = [
        Problem(f"households -{i} is negative", layer="buildings", field="households")
        for i in range(120)
    ]
    other = [Problem("code is empty", layer="grids", field="code", feature="#0")]
    lines = problem_lines([*negative, *other])
    assert len(lines) == 52
    assert lines[49] == str(negative[49])
    assert lines[50] == (
        "… and 70 more of this kind (layer buildings, field households: households … is negative)"
    )
    assert lines[51] == str(other[0])


def test_a_refusal_lists_every_problem_of_every_layer(database_url: str, tmp_path: Path) -> None:
    """120 bad buildings, an empty grid code and a bad time: one refusal says all of it."""
    layers = handmade_layers()
    buildings = pd.concat([layers["buildings"]] * 2, ignore_index=True)
    buildings["building_id"] = [f"B{i:04d}" for i in range(len(buildings))]
    buildings["address"] = [f"海口路{i}号" for i in range(len(buildings))]
    buildings["households"] = -1
    buildings = buildings.iloc[:120]
    layers["buildings"] = type(layers["buildings"])(buildings, crs=4326)
    layers["grids"].loc[2, "code"] = ""
    layers["reports"].loc[5, "reported_at"] = "yesterday"
    paths = [str(p) for p in write_handmade(tmp_path, "csv", **layers)]
    result = invoke(database_url, "load", *paths, "--dry-run")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "refused: 122 problems found; nothing was loaded"
    assert sum("households -1 is negative" in line for line in lines) == 50
    assert any("… and 70 more of this kind" in line for line in lines)
    said = one_line(result.stderr)
    assert "layer grids, feature #2 (太平角网格), field code: code is empty" in said
    assert "reported_at 'yesterday' is not an ISO 8601 time" in said
    as_json = invoke(database_url, "load", *paths, "--dry-run", "--json")
    payload = json.loads(as_json.stdout)
    assert payload["total"] == len(payload["problems"]) == 122


# --- the database refuses what the checks could not know -------------------------------------


@pytest.fixture(scope="module")
def guarded(settings: GridmapSettings, handmade_gpkg: Path) -> Iterator[str]:
    """The hand-drawn district in a database with a CHECK the models do not have."""
    with loaded_database(settings, f"gridmap_inputs_{os.getpid()}", [handmade_gpkg]) as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text("ALTER TABLE buildings ADD CONSTRAINT ck_site_floors CHECK (floors < 100)")
            )
        engine.dispose()
        yield url


@pytest.mark.parametrize("fmt", ["gpkg", "csv"])
def test_a_database_refusal_names_district_layer_feature_and_stores_nothing(
    fmt: str, guarded: str, tmp_path: Path
) -> None:
    layers = handmade_layers()
    layers["buildings"].loc[3, "floors"] = 150
    paths = [str(p) for p in write_handmade(tmp_path, fmt, **layers)]
    dry = invoke(guarded, "load", *paths, "--replace", "--dry-run")
    assert dry.exit_code == 0  # the rule lives only in this database, not in the models
    before = fingerprint(guarded)
    result = invoke(guarded, "load", *paths, "--replace")
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    said = one_line(result.stderr)
    assert said.startswith(
        f"error: district {CODE}, layer buildings, feature B0003: the database refused it: "
        'new row for relation "buildings" violates check constraint "ck_site_floors"'
    ), said
    assert "; nothing was stored (fix:" in said
    assert fingerprint(guarded) == before
    as_json = invoke(guarded, "load", *paths, "--replace", "--json")
    problem = json.loads(as_json.stdout)["problems"][0]
    assert problem == {
        "reason": problem["reason"],
        "layer": "buildings",
        "feature": "B0003",
        "fix": problem["fix"],
        "district": CODE,
    }


# --- translate: each library's real exception ---------------------------------------------


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


def test_a_geos_failure_names_what_where_recorded() -> None:
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    square = shapely.box(0, 0, 2, 2)

    def fails() -> None:
        with where(district="370202"), where(layer="grids", shapes=(["A", "B"], [bowtie, square])):
            shapely.intersection(bowtie, square)

    error = translate(_raised(fails))
    assert isinstance(error, ProcessingFailed)
    assert str(error).startswith(
        "district 370202, layer grids, feature A, B: GEOS could not process the geometry near "
        "(0.500000, 0.500000): TopologyException: side location conflict; nothing was stored"
    )


def test_a_gdal_failure_is_a_sentence(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.gpkg"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)

    def read() -> None:
        with where(layer="grids", file=str(corrupt)):
            pyogrio.read_dataframe(corrupt)

    error = translate(_raised(read))
    assert isinstance(error, ProcessingFailed) and error.library == "GDAL"
    assert str(error).startswith(
        f"file {corrupt}, layer grids: GDAL cannot read or write it: file is not a database; "
        "nothing was stored (fix: check that the file opens in a GIS"
    )


def test_database_failures_are_translated_and_bugs_are_not(db_session: Session) -> None:
    def divide() -> None:
        with db_session.begin_nested(), where(layer="reports", feature="R1"):
            db_session.execute(text("SELECT 1 / 0"))

    error = translate(_raised(divide))
    assert isinstance(error, ProcessingFailed) and error.library == "PostgreSQL"
    assert str(error).startswith(
        "layer reports, feature R1: the database refused it: division by zero"
    )

    def typo() -> None:
        with db_session.begin_nested():
            db_session.execute(text("SELECT no_such_column FROM reports"))

    assert translate(_raised(typo)) is None  # wrong SQL is a bug: it keeps its traceback


def test_an_unreachable_database_is_unavailable() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    error = translate(_raised(engine.connect))
    assert isinstance(error, DatabaseUnavailable)
    engine.dispose()
