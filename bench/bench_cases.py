"""Cases: (1) filing over HTTP vs an insert-only endpoint on the same server; (2) statistics of
the full fixture's 100,000 cases by grid.

(1) One uvicorn process serves the real app plus ``POST /_bench/insert``, which inserts one
report row with no lookup, no key and no event: the floor of any write. ``wrk`` (apt) on
127.0.0.1 drives each endpoint for a fixed time with fixed connections, one after the other;
the figure is the ratio of requests per second (target >= 0.5). The filing path is Open311
``POST /open311/v2/requests.json``: key check, rate limit, responsibility list, grid lookup,
one statement writing case + event + reporter.

(2) ``geo.store.stats.case_stats(level="grid")`` on the full fixture loaded into a throwaway
database, best of N (target <= 1 s).

    .venv/bin/python bench/bench_cases.py [--seconds 10] [--connections 16] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _harness import record  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from sqlalchemy import text  # noqa: E402

from api.deps import SessionDep  # noqa: E402
from geo.settings import GridmapSettings  # noqa: E402

POINT = {"lon": 121.6, "lat": 38.9}


def bench_app() -> FastAPI:
    """The real app plus the insert-only baseline route (bench only, never shipped)."""
    from api.app import create_app

    app = create_app()

    @app.post("/_bench/insert", status_code=201)
    def insert_only(session: SessionDep) -> dict[str, Any]:
        pk = session.scalar(
            text(
                """INSERT INTO reports (district_id, report_id, category, reported_at, geom)
                   VALUES ((SELECT min(id) FROM districts),
                           'B' || nextval(pg_get_serial_sequence('reports', 'id')),
                           'bench', now(), ST_SetSRID(ST_MakePoint(121.6, 38.9), 4326))
                   RETURNING id"""
            )
        )
        return {"id": pk}

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrk(url: str, script: Path, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def _lua(body: str, content_type: str) -> str:
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{escaped}"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )


def bench_filing(settings: GridmapSettings, seconds: int, connections: int) -> dict[str, float]:
    from api.embedded_postgres import create_database, drop_database
    from fixtures.district import generate_district, write_district
    from geo.grids import read_district, validate_district
    from geo.store.cases import create_api_key
    from geo.store.migrate import upgrade_database
    from geo.store.queries import store_district
    from geo.store.session import engine_for, transaction
    from geo.store.taxonomy import load_taxonomy

    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    name = f"gridmap_bench_cases_{os.getpid()}"
    url = create_database(settings, name, replace=True)
    tmp = Path(tempfile.mkdtemp())
    proc = None
    try:
        upgrade_database(url)
        path = write_district(generate_district("tiny", seed=7), tmp / "tiny.gpkg")
        data, _ = validate_district(read_district([path]))
        with transaction(url) as session:
            store_district(session, data, source=str(path))
            key = create_api_key(session, "reporter", taxonomy=load_taxonomy(session)).key
            x, y = session.execute(
                text(
                    "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) c FROM grids"
                    " ORDER BY code LIMIT 1) p"
                )
            ).one()
        port = _free_port()
        env = {
            **os.environ,
            "GRIDMAP_DATABASE_URL": url,
            "GRIDMAP_CASES__LIMITS__PER_KEY_BURST": "100000000",
            "GRIDMAP_CASES__LIMITS__PER_ADDRESS_BURST": "100000000",
        }
        log = (tmp / "uvicorn.log").open("w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench_cases:bench_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--app-dir",
                str(Path(__file__).resolve().parent),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log.name}")
            time.sleep(0.2)
        form = f"api_key={key}&service_code=garbage_pile&lat={y}&long={x}&description=bench"
        filing = tmp / "filing.lua"
        filing.write_text(_lua(form, "application/x-www-form-urlencoded"))
        insert = tmp / "insert.lua"
        insert.write_text(_lua("", "application/json"))
        # Warm both paths (plan index, responsibility list, connection pool).
        _wrk(base + "/_bench/insert", insert, 2, connections)
        _wrk(base + "/open311/v2/requests.json", filing, 2, connections)
        baseline = _wrk(base + "/_bench/insert", insert, seconds, connections)
        candidate = _wrk(base + "/open311/v2/requests.json", filing, seconds, connections)
        with transaction(url) as session:
            filed = session.scalar(text("SELECT count(*) FROM case_events WHERE action='file'"))
            assigned = session.scalar(
                text("SELECT count(*) FROM reports WHERE report_id LIKE 'C%' AND grid_id IS NULL")
            )
        return {
            "insert_rps": baseline,
            "filing_rps": candidate,
            "ratio": candidate / baseline,
            "filed": float(filed or 0),
            "unassigned": float(assigned or 0),
        }
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # open keep-alive connections delay shutdown
                proc.kill()
                proc.wait(10)
        engine_for(url).dispose()
        engine_for.cache_clear()
        drop_database(settings, name)
        shutil.rmtree(tmp, ignore_errors=True)


def bench_stats(settings: GridmapSettings, repeat: int) -> dict[str, float]:
    from api.embedded_postgres import create_database, drop_database
    from fixtures.district import generate_district
    from geo.grids import DistrictData, validate_district
    from geo.store.migrate import upgrade_database
    from geo.store.queries import store_district
    from geo.store.session import engine_for, transaction
    from geo.store.stats import case_stats

    name = f"gridmap_bench_stats_{os.getpid()}"
    url = create_database(settings, name, replace=True)
    try:
        upgrade_database(url)
        tmp = Path(tempfile.mkdtemp())
        from fixtures.district import write_district
        from geo.grids import read_district

        path = write_district(generate_district("full", seed=7), tmp / "full.gpkg")
        data: DistrictData = validate_district(read_district([path]))[0]
        with transaction(url) as session:
            store_district(session, data, source=str(path))
        shutil.rmtree(tmp, ignore_errors=True)
        with transaction(url) as session:
            session.execute(text("ANALYZE reports"))
        times = []
        for _ in range(repeat):
            with transaction(url) as session:
                start = time.perf_counter()
                frame = case_stats(session, data.code, "grid")
                times.append(time.perf_counter() - start)
        return {
            "best_s": min(times),
            "median_s": sorted(times)[len(times) // 2],
            "grids": float(len(frame)),
            "cases": float(frame["cases"].sum()),
        }
    finally:
        engine_for(url).dispose()
        engine_for.cache_clear()
        drop_database(settings, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-stats", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    settings = GridmapSettings(_env_file=None)  # type: ignore[call-arg]
    filing = bench_filing(settings, args.seconds, args.connections)
    lines = [
        f"wrk -t2 -c{args.connections} -d{args.seconds}s on 127.0.0.1, one uvicorn worker, "
        "tiny district:",
        "",
        "| endpoint | requests/s |",
        "|---|---:|",
        f"| `POST /_bench/insert` (insert only) | {filing['insert_rps']:,.0f} |",
        f"| `POST /open311/v2/requests.json` (key, limit, lookup, case+event+reporter) "
        f"| {filing['filing_rps']:,.0f} |",
        "",
        f"Ratio filing / insert-only: **{filing['ratio']:.2f}** (target >= 0.5); "
        f"{filing['filed']:,.0f} cases filed, {filing['unassigned']:,.0f} without a grid.",
    ]
    if not args.skip_stats:
        stats = bench_stats(settings, args.repeat)
        lines += [
            "",
            f"`case_stats(level='grid')` over the full fixture ({stats['cases']:,.0f} cases in "
            f"{stats['grids']:,.0f} grids): best {stats['best_s'] * 1000:.0f} ms, median "
            f"{stats['median_s'] * 1000:.0f} ms of {args.repeat} (target <= 1 s).",
        ]
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        record("Cases: filing over HTTP and statistics", body)


if __name__ == "__main__":
    main()
