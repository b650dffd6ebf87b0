"""What does the precision model cost at load, and what does it do to real districts?

(1) The whole load of the fixture district (read + validate + store, 630 grids, 20k
    buildings, 100k reports) with today's noding, against the same load running the tiling
    check gridmap had before issue #10 (``_tiling_before.py``: overlaps and gaps measured by
    area, no noding, geometry untouched). Target <= 1.3x.
(2) For every district of the test corpus (``tests/data/districts``): the CRS it was noded
    in, the near vertex pairs healed, the vertices moved by more than a millimetre, the
    largest move and the vertices added (T-junctions and densifying), and the noding time.

Everything is stored in a throwaway database ``gridmap_bench_<pid>`` on gridmap's server.

Run: .venv/bin/python bench/bench_noding.py [--repeat R] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import Case, measure, ratio, record, table
from _tiling_before import node_district_before
from bench_load import CACHE, drop_district, fixture_path

import geo.grids
from geo.grids import DistrictData, read_district, validate_district
from geo.settings import GridmapSettings
from geo.store.queries import store_district
from geo.store.session import engine_for, transaction

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "districts"


def load(url: str, path: Path, before: bool) -> None:
    """``gridmap load PATH --replace`` as the CLI runs it (``before``: the old tiling check)."""
    real = geo.grids.node_district
    if before:
        geo.grids.node_district = node_district_before  # type: ignore[assignment]
    try:
        data, repairs = validate_district(read_district([path]))
    finally:
        geo.grids.node_district = real  # type: ignore[assignment]
    with transaction(url) as session:
        store_district(session, data, replace=True, repairs=repairs, source=str(path))


def fixture_load(url: str, repeat: int) -> tuple[str, float]:
    path = fixture_path(CACHE)
    code = str(read_district([path]).code)
    cases = [
        Case("load, tiling checked as before #10", lambda _a: load(url, path, True), baseline=True),
        Case("load with noding (precision model)", lambda _a: load(url, path, False)),
    ]
    timings = measure(cases, repeat=repeat, memory=False)
    drop_district(url, code)
    cost = 1.0 / ratio(timings, "load with noding (precision model)")
    return table(timings), cost


def corpus_rows() -> str:
    manifest = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    lines = [
        "| district | delivered | noded in | healed pairs | vertices moved > 1 mm | largest move mm"
        " | vertices added | noding s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    calls: list[tuple[float, int]] = []  # (seconds, healed pairs) of each noding
    real = geo.grids.node_hierarchy

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = real(*args, **kwargs)
        calls.append((time.perf_counter() - t, out.healed))
        return out

    geo.grids.node_hierarchy = timed  # type: ignore[assignment]
    try:
        for spec in manifest["districts"]:
            data, _ = validate_district(read_district([CORPUS / p for p in spec["load"]]))
            lines.append(_row(spec, data, *calls[-1]))
    finally:
        geo.grids.node_hierarchy = real  # type: ignore[assignment]
    return "\n".join(lines)


def _row(spec: dict[str, str], data: DistrictData, seconds: float, healed: int) -> str:
    n = data.noding
    assert n is not None
    return (
        f"| {spec['key']} | {spec.get('format', '')} | {n.drawn_in} | {healed:,} | "
        f"{n.vertices_moved:,} | {n.max_move_m * 1000:.1f} | {n.vertices_added:,} | "
        f"{seconds:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()

    from api.embedded_postgres import create_database, drop_database
    from geo.store.migrate import upgrade_database

    settings = GridmapSettings(_env_file=None)  # type: ignore[call-arg]
    name = f"gridmap_bench_{os.getpid()}"
    url = create_database(settings, name, replace=True)
    try:
        upgrade_database(url)
        timings, cost = fixture_load(url, args.repeat)
    finally:
        engine_for(url).dispose()
        drop_database(settings, name)
    rows = corpus_rows()
    body = (
        "(1) Fixture load (read + validate + store), noding against the tiling check before "
        f"issue #10 in the same run: **{cost:.2f}x** its time (target <= 1.3x).\n\n"
        f"{timings}\n\n(2) The test corpus, noded at load (GRIDMAP_TOLERANCE_M = 0.01):\n\n"
        f"{rows}\n"
    )
    print(body)
    if not args.no_record:
        record("Precision model at load (bench_noding.py)", body)


if __name__ == "__main__":
    main()
