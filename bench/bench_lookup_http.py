"""GET /lookup over HTTP against an empty endpoint and a plain PostGIS query, same server.

One uvicorn process (``--workers``, default 1) serves the real app plus two bench-only
routes: ``/bench/empty`` (an empty FastAPI endpoint) and ``/bench/sql`` (one ``ST_Covers``
query per request). wrk (``apt-get install wrk``) drives each for a bounded duration on
127.0.0.1, cycling through the same fixed-seed points inside the district.

Needs the fixture district loaded (``./dev.sh up`` or ``gridmap demo --no-serve``).
Run: ``.venv/bin/python bench/bench_lookup_http.py [--seconds 10] [--connections 32]``.
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

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import record

DISTRICT = "210204"


def create_bench_app():  # type: ignore[no-untyped-def]
    """The real app plus the two comparison endpoints (bench only, never in the product)."""
    from sqlalchemy import text

    from api.app import create_app
    from geo.store.session import transaction

    app = create_app()

    @app.get("/bench/empty")
    async def empty() -> dict[str, str]:
        return {}

    @app.get("/bench/sql")
    def sql(lon: float, lat: float) -> dict[str, str | None]:
        with transaction(app.state.sessions) as session:
            code = session.scalar(
                text(
                    """SELECT g.code FROM grids g JOIN grid_plans p ON p.id = g.plan_id
                       WHERE p.status = 'published'
                         AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))
                       ORDER BY g.code COLLATE "C" LIMIT 1"""
                ),
                {"x": lon, "y": lat},
            )
        return {"grid_code": code}

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def run_wrk(url: str, paths: list[str], seconds: int, connections: int) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) for ``paths`` cycled by wrk."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        script = Path(tmp) / "cycle.lua"
        script.write_text(LUA % listing)
        done = subprocess.run(
            [
                "wrk",
                f"-t{min(2, connections)}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", done.stdout)
    assert p99 is not None, done.stdout
    value, unit = float(p99.group(1)), p99.group(2)
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    if re.search(r"Non-2xx", done.stdout):
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}")
    return rps, p99_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bench_lookup_http:create_bench_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/bench/empty", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        grids = httpx.get(base + "/grids", params={"district": DISTRICT}, timeout=60).json()
        if not grids.get("features"):
            raise SystemExit(f"district {DISTRICT} is not loaded: run gridmap demo --no-serve")
        coords = np.array(
            [c for f in grids["features"] for c in _first_ring(f["geometry"])], dtype=float
        )
        lo, hi = coords.min(axis=0), coords.max(axis=0)
        rng = np.random.default_rng(7)
        # Two kinds of traffic: where residents really report from (the stored reports), and
        # uniform over the bounding box (a third of it at sea: the nearest-grid path).
        at_reports = _report_points(DISTRICT, args.points, rng)
        uniform = rng.uniform(lo, hi, size=(args.points, 2))
        lookup = [f"/lookup?lon={x:.6f}&lat={y:.6f}" for x, y in at_reports]
        lookup_bbox = [f"/lookup?lon={x:.6f}&lat={y:.6f}" for x, y in uniform]
        sql = [f"/bench/sql?lon={x:.6f}&lat={y:.6f}" for x, y in at_reports]
        for path in (lookup[0], sql[0]):  # warm the caches
            assert httpx.get(base + path, timeout=60).status_code == 200
        rows = []
        for name, paths in (
            ("empty FastAPI endpoint (baseline)", ["/bench/empty"]),
            ("GET /lookup at report locations (in-memory GridIndex)", lookup),
            ("GET /lookup uniform over the bbox (a third at sea)", lookup_bbox),
            ("plain PostGIS ST_Covers per request, report locations", sql),
        ):
            rps, p99 = run_wrk(base, paths, args.seconds, args.connections)
            rows.append((name, rps, p99))
    finally:
        server.terminate()
        server.wait(20)
    base_rps, base_p99 = rows[0][1], rows[0][2]
    lines = [
        "| endpoint | requests/s | p99 ms | × empty rps | × empty p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rps, p99 in rows:
        ratios = f"{rps / base_rps:.2f} | {p99 / base_p99:.2f}"
        lines.append(f"| {name} | {rps:,.0f} | {p99:.1f} | {ratios} |")
    body = (
        f"wrk, {args.connections} connections, {args.seconds} s each, {args.workers} uvicorn "
        f"worker(s), 127.0.0.1, {args.points} fixed-seed points per kind in district "
        f"{DISTRICT}.\n\n" + "\n".join(lines)
    )
    print(body)
    if not args.no_record:
        record("HTTP lookup", body)


def _report_points(district: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` stored report locations of the district, drawn with a fixed seed."""
    from sqlalchemy import text

    from api.embedded_postgres import database_url
    from geo.settings import GridmapSettings
    from geo.store.session import transaction

    with transaction(database_url(GridmapSettings())) as session:
        rows = session.execute(
            text(
                """SELECT ST_X(r.geom), ST_Y(r.geom) FROM reports r
                   JOIN districts d ON d.id = r.district_id WHERE d.code = :d ORDER BY r.id"""
            ),
            {"d": district},
        ).all()
    xy = np.array(rows, dtype=float)
    return xy[rng.choice(len(xy), size=n, replace=len(xy) < n)]


def _first_ring(geometry: dict) -> list[list[float]]:  # type: ignore[type-arg]
    return geometry["coordinates"][0][0]


if __name__ == "__main__":
    main()
