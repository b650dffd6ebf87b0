"""How long does ``gridmap load`` take, and what does gridmap's report path cost over COPY?

(1) Load of the fixture district from scratch (read + validate + store; target <= 15 s),
    against reading the same layers with ``geopandas.read_file`` and no checks.
(2) Storing N reports (default 1,000,000) into the indexed ``reports`` table:
    gridmap's path (validate + assign to grids + ``copy_reports``) against a bare
    PostgreSQL COPY of the very CSV gridmap prepares (target <= 1.5x), and against
    ``GeoDataFrame.to_postgis`` (on a tenth of the rows, scaled x10, when N > 100k).

Everything runs in a throwaway database ``gridmap_bench_<pid>`` on gridmap's server.
The fixture is generated once (seed 7) and cached as a GeoPackage.

Run: .venv/bin/python bench/bench_load.py [--reports N] [--repeat R] [--fixture PATH]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import Case, Timing, measure, record, table

from geo.grids import (
    LAYERS,
    _check_geometries,
    _check_values,
    _normalise_columns,
    read_district,
    validate_district,
)
from geo.settings import GridmapSettings
from geo.store import queries
from geo.store.queries import store_district
from geo.store.session import engine_for, transaction

CACHE = Path(tempfile.gettempdir()) / "gridmap-bench" / "district-full-7.gpkg"


def fixture_path(path: Path) -> Path:
    """The full fixture district as a GeoPackage, generated once."""
    if not path.exists():
        from fixtures.district import generate_district, write_district

        print(f"generating the full fixture district -> {path} (once)", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_district(generate_district("full", seed=7), path)
    return path


def load_once(url: str, path: Path, stages: dict[str, float]) -> None:
    """What ``gridmap load PATH --replace`` does, timed per stage."""
    t0 = time.perf_counter()
    data = read_district([path])
    t1 = time.perf_counter()
    data, _ = validate_district(data)
    t2 = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with transaction(url) as session:
        store_district(
            session,
            data,
            replace=True,
            source=str(path),
            progress=lambda msg: marks.append((_stage(msg), time.perf_counter())),
        )
        marks.append(("commit", time.perf_counter()))
    t3 = time.perf_counter()
    parts = [("read", t1 - t0), ("validate", t2 - t1), ("store", t3 - t2)]
    parts += [
        (f"store/{name}", end - start)
        for (name, start), (_, end) in zip(marks, [*marks[1:], ("end", t3)], strict=True)
    ]
    for name, seconds in parts:
        stages[name] = min(stages.get(name, float("inf")), seconds)


def _stage(message: str) -> str:
    """``writing 100,000 reports`` -> ``writing reports``: one key per progress step."""
    words = message.split()
    return f"{words[0]} {words[-1]}"


def read_plain(path: Path) -> None:
    for layer in LAYERS:
        if layer in {str(n) for n, _ in pyogrio.list_layers(path)}:
            gpd.read_file(path, layer=layer, engine="pyogrio")


def drop_district(url: str, code: str) -> None:
    with engine_for(url).begin() as conn:
        conn.execute(text("DELETE FROM districts WHERE code = :c"), {"c": code})


# --- (2) reports ----------------------------------------------------------------------------


def synthetic_reports(grids: gpd.GeoDataFrame, n: int, seed: int = 11) -> gpd.GeoDataFrame:
    """``n`` reports inside the district's bounds, with the contract's columns as text."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = grids.total_bounds
    x, y = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
    start = np.datetime64("2024-01-01T00:00:00")
    seconds = rng.integers(0, 365 * 86400, n)
    reported = (start + seconds.astype("timedelta64[s]")).astype(str)
    closed = (start + (seconds + rng.integers(600, 7 * 86400, n)).astype("timedelta64[s]")).astype(
        str
    )
    open_ = rng.random(n) < 0.2
    categories = np.array(["sanitation", "street_order", "traffic", "public_facilities", "other"])
    return gpd.GeoDataFrame(
        {
            "report_id": [f"R{i:07d}" for i in range(n)],
            "category": categories[rng.integers(0, len(categories), n)],
            "subcategory": "garbage_pile",
            "reported_at": np.char.add(reported.astype("U19"), "+08:00"),
            "closed_at": np.where(open_, None, np.char.add(closed.astype("U19"), "+08:00")),
            "status": np.where(open_, "handling", "closed"),
            "description": None,
            "source": "12345 hotline",
        },
        geometry=shapely.points(x, y),
        crs=4326,
    )


def validate_reports(data: Any, reports: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The checks ``validate_district`` runs on a reports layer, and nothing else."""
    problems: list[Any] = []
    frame = _normalise_columns(reports, "reports", None, problems)
    frame = _check_geometries(frame, "reports", None, False, problems, [])
    _check_values(frame, "reports", None, problems)
    if problems:
        raise RuntimeError(problems[:3])
    return frame


def prepared_csv(
    session: Session,
    district_pk: int,
    reports: gpd.GeoDataFrame,
    codes: Any,
    grid_ids: dict[str, int],
) -> str:
    """The CSV text ``copy_reports`` sends, captured by replacing its COPY with a recorder."""
    captured: list[str] = []

    def keep(_session: Session, _table: str, frames: Any) -> None:
        buffer = io.StringIO()
        columns = ""
        for frame in frames:
            frame.to_csv(buffer, index=False, header=False, quoting=csv.QUOTE_MINIMAL, na_rep="")
            columns = ",".join(frame.columns)
        captured.append(buffer.getvalue())
        captured.append(columns)

    real = queries._copy
    queries._copy = keep  # type: ignore[assignment]
    try:
        queries.copy_reports(session, district_pk, reports, codes, grid_ids)
    finally:
        queries._copy = real  # type: ignore[assignment]
    return captured[0] + "\0" + captured[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--fixture", type=Path, default=CACHE)
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()

    from api.embedded_postgres import create_database, drop_database
    from geo.store.migrate import upgrade_database

    settings = GridmapSettings(_env_file=None)  # type: ignore[call-arg]
    name = f"gridmap_bench_{os.getpid()}"
    url = create_database(settings, name, replace=True)
    try:
        upgrade_database(url)
        run(url, args)
    finally:
        engine_for(url).dispose()
        drop_database(settings, name)


def run(url: str, args: argparse.Namespace) -> None:
    path = fixture_path(args.fixture)
    probe = read_district([path])
    code = probe.code
    sizes = (
        f"{len(probe.grids)} grids, {len(probe.buildings):,} buildings, "
        f"{len(probe.reports):,} reports, {path.stat().st_size / 2**20:.0f} MiB"
    )
    print(f"(1) loading {path.name}: {sizes}", flush=True)
    stages: dict[str, float] = {}
    load_timings = measure(
        [
            Case("read layers (geopandas, no checks)", lambda _: read_plain(path), baseline=True),
            Case(
                "gridmap load from scratch",
                lambda _: load_once(url, path, stages),
                setup=lambda: drop_district(url, code),
            ),
        ],
        repeat=args.repeat,
        memory=False,
    )
    load_table = table(load_timings)
    breakdown = ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
    best = load_timings[1].best_s
    verdict = "meets" if best <= 15 else "MISSES"
    print(load_table)
    print(f"stages (best): {breakdown}; {verdict} the 15 s target ({best:.1f} s)\n", flush=True)

    # (2) reports, into the district stored by the last load.
    data, _ = validate_district(read_district([path]))
    from geo.assign import GridIndex

    with Session(engine_for(url)) as session:
        district_pk = queries.district_id(session, code)
        plan = queries.published_plan_id(session, district_pk)
        rows = session.execute(text("SELECT code, id FROM grids WHERE plan_id = :p"), {"p": plan})
        grid_ids = {str(c): int(i) for c, i in rows}
    n = args.reports
    print(f"(2) storing {n:,} reports", flush=True)
    reports = synthetic_reports(data.grids, n)

    def truncate() -> None:
        with engine_for(url).begin() as conn:
            conn.execute(text("TRUNCATE reports CASCADE"))

    def gridmap_path(_: Any) -> None:
        frame = validate_reports(data, reports)
        index = GridIndex.from_frame(data.grids, code_column="code")
        codes = queries._assign_codes(index, frame)
        with transaction(url) as session:
            queries.copy_reports(session, district_pk, frame, codes, grid_ids)

    with Session(engine_for(url)) as session:
        index = GridIndex.from_frame(data.grids, code_column="code")
        payload = prepared_csv(
            session, district_pk, reports, queries._assign_codes(index, reports), grid_ids
        )
    body, columns = payload.split("\0")

    def bare_copy(_: Any) -> None:
        raw = engine_for(url).raw_connection()
        try:
            with raw.cursor() as cursor:  # type: ignore[attr-defined]
                sql = f"COPY reports ({columns}) FROM STDIN WITH (FORMAT csv)"
                with cursor.copy(sql) as copy:
                    copy.write(body)
            raw.commit()
        finally:
            raw.close()

    scale = max(1, n // 100_000)
    sample = reports.iloc[: n // scale]

    def to_postgis(_: Any) -> None:
        sample.to_postgis("reports_to_postgis", engine_for(url), if_exists="replace")

    def drop_scratch() -> None:
        with engine_for(url).begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS reports_to_postgis"))

    timings = measure(
        [
            Case("bare COPY of the prepared rows", bare_copy, setup=truncate, baseline=True),
            Case("gridmap: validate + assign + copy_reports", gridmap_path, setup=truncate),
            Case(f"GeoDataFrame.to_postgis ({len(sample):,} rows)", to_postgis, setup=drop_scratch),
        ],
        repeat=args.repeat,
        memory=False,
    )
    if scale > 1:
        t = timings[2]
        timings[2] = Timing(
            f"GeoDataFrame.to_postgis (x{scale} from {len(sample):,} rows)",
            t.best_s * scale,
            t.median_s * scale,
            t.peak_mib,
            t.baseline,
        )
    truncate()
    drop_scratch()
    reports_table = table(timings)
    overhead = timings[1].best_s / timings[0].best_s
    verdict2 = "meets" if overhead <= 1.5 else "MISSES"
    print(reports_table)
    print(
        f"gridmap / bare COPY = {overhead:.2f}x: {verdict2} the 1.5x target; "
        f"{n / timings[1].best_s:,.0f} reports/s\n"
    )
    if not args.no_record:
        record(
            "Load: fixture district from scratch",
            f"{sizes}\n\n{load_table}\n\nStages (best of {args.repeat}): {breakdown}. "
            f"Target <= 15 s: {verdict} ({best:.1f} s).",
        )
        record(
            f"Load: {n:,} reports into the indexed reports table",
            f"{reports_table}\n\ngridmap / bare COPY = {overhead:.2f}x (target <= 1.5x: "
            f"{verdict2}). to_postgis writes a fresh table without indexes, so it is "
            "flattered.",
        )


if __name__ == "__main__":
    main()
