"""A small benchmark harness: baseline and candidates in one process, ratios, RESULTS.md.

Why in one process: the machine's load changes from run to run, so only ratios measured
side by side mean anything. Timings are best-of-N wall clock; peak memory is measured in a
separate run under ``tracemalloc`` (Python and numpy allocations; GEOS's own C heap is not
seen), so tracing never slows the timed runs.
"""

from __future__ import annotations

import gc
import re
import shlex
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass
class Case:
    """One way of doing the job; ``setup`` (untimed) returns the argument ``run`` takes."""

    name: str
    run: Callable[[Any], Any]
    setup: Callable[[], Any] | None = None
    baseline: bool = False


@dataclass
class Timing:
    """Best and median seconds of the timed runs and the traced peak in MiB."""

    name: str
    best_s: float
    median_s: float
    peak_mib: float
    baseline: bool


def _one_run(case: Case) -> float:
    arg = case.setup() if case.setup else None
    gc.collect()
    start = time.perf_counter()
    case.run(arg)
    return time.perf_counter() - start


def _peak_mib(case: Case) -> float:
    arg = case.setup() if case.setup else None
    gc.collect()
    tracemalloc.start()
    try:
        case.run(arg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def measure(cases: list[Case], repeat: int = 3, memory: bool = True) -> list[Timing]:
    """Time every case ``repeat`` times, interleaved so load drifts hit all alike."""
    runs: dict[str, list[float]] = {c.name: [] for c in cases}
    for _ in range(repeat):
        for case in cases:
            runs[case.name].append(_one_run(case))
    out = []
    for case in cases:
        times = sorted(runs[case.name])
        peak = _peak_mib(case) if memory else float("nan")
        out.append(Timing(case.name, times[0], times[len(times) // 2], peak, case.baseline))
    return out


def table(timings: list[Timing]) -> str:
    """A Markdown table; ``speed-up`` is baseline best / case best."""
    base = next((t for t in timings if t.baseline), timings[0])
    lines = [
        "| case | best s | median s | speed-up vs baseline | peak MiB (tracemalloc) |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in timings:
        ratio = base.best_s / t.best_s if t.best_s > 0 else float("inf")
        tag = " (baseline)" if t is base else ""
        cells = [f"{t.best_s:.3f}", f"{t.median_s:.3f}", f"{ratio:.1f}x", f"{t.peak_mib:.0f}"]
        lines.append(f"| {t.name}{tag} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio(timings: list[Timing], name: str) -> float:
    """Baseline best over the named case's best."""
    base = next((t for t in timings if t.baseline), timings[0])
    case = next(t for t in timings if t.name == name)
    return base.best_s / case.best_s


def command_line() -> str:
    """The command that produced these figures, as one would type it from the repo root."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join([".venv/bin/python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def record(section: str, body: str, path: Path = RESULTS_PATH) -> None:
    """Replace (or append) ``## section`` in RESULTS.md with ``body`` and the command."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"## {section}\n\n`{command_line()}` ({stamp})\n\n{body.strip()}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text, encoding="utf-8")
