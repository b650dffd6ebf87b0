"""Publishing a plan: gridmap's publish vs a plain SQL re-assignment pass, same transaction kind.

Both run inside a transaction that is rolled back, so the demo's draft stays a draft and
the runs can repeat. gridmap re-assigns in Python (GridIndex) and writes back with one COPY
and one UPDATE per table, then carries teams over; the baseline is the obvious
``UPDATE … SET grid_id = (SELECT … ST_Covers … ORDER BY code LIMIT 1)``.

Needs the fixture district and the demo's 1014-grid draft (``gridmap demo --no-serve``).
Run: ``.venv/bin/python bench/bench_publish.py [--plan ID]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.embedded_postgres import database_url
from bench._harness import Case, measure, record, table
from geo.settings import GridmapSettings
from geo.store.plans import list_plans, publish
from geo.store.session import transaction

DISTRICT = "210204"


class _Rollback(Exception):
    pass


def _rolled_back(url: str, work: Any) -> None:
    try:
        with transaction(url) as session:
            work(session)
            raise _Rollback
    except _Rollback:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=int, default=None, help="draft id (default: newest)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    url = database_url(GridmapSettings())
    with transaction(url) as session:
        drafts = [p for p in list_plans(session, DISTRICT) if p["status"] == "draft"]
    if not drafts:
        raise SystemExit("no draft plan: run `gridmap demo --no-serve` first")
    plan_id = args.plan or drafts[-1]["plan_id"]

    def sql_pass(session: Any) -> None:
        for table_name in ("buildings", "reports"):
            session.execute(
                text(
                    f"""UPDATE {table_name} t SET grid_id = (
                          SELECT g.id FROM grids g
                          WHERE g.plan_id = :plan AND ST_Covers(g.geom, t.geom)
                          ORDER BY g.code COLLATE "C" LIMIT 1)
                        WHERE t.district_id = (SELECT id FROM districts WHERE code = :d)"""
                ),
                {"plan": plan_id, "d": DISTRICT},
            )

    timings = measure(
        [
            Case(
                "SQL UPDATE … ST_Covers re-assignment only",
                lambda _: _rolled_back(url, sql_pass),
                baseline=True,
            ),
            Case(
                "gridmap publish (checks, retire, re-assign, teams)",
                lambda _: _rolled_back(url, lambda s: publish(s, plan_id)),
            ),
        ],
        repeat=args.repeat,
        memory=False,
    )
    body = (
        f"Plan {plan_id} (1014 grids) over district {DISTRICT}: 20,000 buildings and 100,000 "
        f"reports re-assigned; target <= 10 s.\n\n{table(timings)}"
    )
    print(body)
    if not args.no_record:
        record("Publish a plan", body)


if __name__ == "__main__":
    main()
