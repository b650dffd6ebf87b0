"""The planner's flow from the CLI on the hand-drawn district (not made by the generator)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app
from geo.settings import GridmapSettings
from geo.store.session import transaction
from tests.api.conftest import loaded_database

HANDMADE = "370202"


@pytest.fixture(scope="module")
def handmade_db(settings: GridmapSettings, handmade_gpkg: Path) -> Iterator[str]:
    with loaded_database(settings, f"gridmap_plancli_{os.getpid()}", [handmade_gpkg]) as url:
        yield url


def run(url: str, *args: str) -> dict | list:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, [*args, "--json"], env={"GRIDMAP_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_regrid_edit_compare_publish_from_the_cli(handmade_db: str, tmp_path: Path) -> None:
    with transaction(handmade_db) as session:
        old_codes = set(session.scalars(text("SELECT code FROM grids")))
        reports_before = session.scalar(text("SELECT count(*) FROM reports"))
    drafted = run(handmade_db, "regrid", "--district", HANDMADE, "--target", "9", "--seed", "1")
    plan_id = drafted["plan_id"]
    assert drafted["metrics"]["grids"] == 9 and drafted["metrics"]["coverage_valid"]

    shown = run(handmade_db, "plan", "show", str(plan_id))
    assert shown["guarantee_problems"] == [] and shown["status"] == "draft"
    plans = run(handmade_db, "plan", "list", "--district", HANDMADE)
    published = next(p["plan_id"] for p in plans if p["status"] == "published")
    compared = run(handmade_db, "plan", "compare", str(published), str(plan_id))
    assert compared["b"]["summary"]["grids"] == 9

    with transaction(handmade_db) as session:
        some_code = session.scalar(
            text("SELECT code FROM grids WHERE plan_id = :p ORDER BY code LIMIT 1"), {"p": plan_id}
        )
    run(
        handmade_db, "plan", "edit", str(plan_id), "rename", "--grid", some_code, "--name", "新网格"
    )

    out = tmp_path / "plan.geojson"
    result = CliRunner().invoke(
        app,
        ["plan", "export", str(plan_id), "--out", str(out)],
        env={"GRIDMAP_DATABASE_URL": handmade_db},
    )
    assert result.exit_code == 0 and out.exists()

    done = run(handmade_db, "plan", "publish", str(plan_id))
    assert done["retired_plan_id"] == published

    with transaction(handmade_db) as session:
        crosswalk_old = set(
            session.scalars(
                text("SELECT DISTINCT old_code FROM grid_crosswalk WHERE plan_id = :p"),
                {"p": plan_id},
            )
        )
        # every old report is under a grid of the new plan (or, at sea, under none)
        misplaced = session.scalar(
            text(
                """SELECT count(*) FROM reports r JOIN grids g ON g.id = r.grid_id
                   WHERE g.plan_id <> :p"""
            ),
            {"p": plan_id},
        )
        reports_after = session.scalar(text("SELECT count(*) FROM reports"))
    assert crosswalk_old == old_codes  # every old grid is in the crosswalk
    assert misplaced == 0 and reports_after == reports_before
