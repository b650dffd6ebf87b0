"""How often does address lookup find the right building, and never a wrong one, and how fast?

Scores ``geo.address.AddressIndex`` on the corpus ``tests/data/address_corpus.csv``
against two baselines: the naive one (rapidfuzz ``process.extractOne`` with ``WRatio``
over the raw addresses, which always answers) and the same after ``normalize_address``
(to show what normalising alone buys and what structure adds). Building sets, corpus
rules and the scoring rule live in ``tests/geo/test_address.py``: a *wrong pick* is a
``best`` that is not the expected building, and any ``best`` on a must-be-ambiguous query
or on one that must find nothing (it names a place that has no such building).

Run: .venv/bin/python bench/bench_address.py [--record] [--write-corpus]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import record
from rapidfuzz import fuzz, process

from geo.address import normalize_address
from tests.geo.test_address import (
    BUILDING_SETS,
    CORPUS_PATH,
    Row,
    Score,
    read_corpus,
    score_corpus,
    search_index,
    write_corpus,
)

Search = Callable[[str, str], tuple[str | None, bool]]


@cache
def _choices(source: str, normalised: bool) -> tuple[list[str], list[str]]:
    frame = BUILDING_SETS[source]()
    addresses = list(frame["address"])
    if normalised:
        addresses = [normalize_address(a) for a in addresses]
    return addresses, list(frame["building_id"])


def naive(source: str, query: str) -> tuple[str | None, bool]:
    """extractOne over the raw addresses: always one answer, never 'ambiguous'."""
    addresses, ids = _choices(source, False)
    hit = process.extractOne(query, addresses, scorer=fuzz.WRatio)
    return (ids[hit[2]] if hit else None), False


def naive_normalised(source: str, query: str) -> tuple[str | None, bool]:
    """The same after normalising the query: numerals, width, prefixes, variants."""
    addresses, ids = _choices(source, True)
    hit = process.extractOne(normalize_address(query), addresses, scorer=fuzz.WRatio)
    return (ids[hit[2]] if hit else None), False


def _warm(search: Search, rows: list[Row]) -> None:
    for source in {r.source for r in rows}:
        search(source, next(r.query for r in rows if r.source == source))


def _best_of(search: Search, rows: list[Row], repeat: int) -> tuple[Score, float]:
    _warm(search, rows)
    runs = [score_corpus(rows, search)[0] for _ in range(repeat)]
    return runs[0], min(r.seconds for r in runs) / len(rows) * 1000


def _by_kind(rows: list[Row], search: Search) -> dict[str, tuple[int, int, int]]:
    """kind -> (queries, right, wrong picks); right means hit or, if must be, flagged."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        best, ambiguous = search(row.source, row.query)
        cell = out[f"{row.source}/{row.kind}"]
        cell[0] += 1
        if row.expected_building_id:
            cell[1] += best == row.expected_building_id
            cell[2] += best is not None and best != row.expected_building_id
        elif row.expected_candidates:
            cell[1] += ambiguous and best is None
            cell[2] += best is not None
        else:
            cell[1] += not ambiguous and best is None
            cell[2] += best is not None
    return {k: (v[0], v[1], v[2]) for k, v in sorted(out.items())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--write-corpus", action="store_true", help="regenerate the corpus")
    args = parser.parse_args(argv)
    if args.write_corpus:
        print(f"{write_corpus()} rows -> {CORPUS_PATH}")
    rows = read_corpus()
    cases: list[tuple[str, Search]] = [
        ("naive extractOne(WRatio) over raw addresses (baseline)", naive),
        ("normalize_address + extractOne(WRatio)", naive_normalised),
        ("AddressIndex.search", search_index),
    ]
    lines = [
        f"Corpus: {len(rows)} queries "
        f"({sum(1 for r in rows if r.expected_building_id)} with one right answer, "
        f"{sum(1 for r in rows if r.expected_candidates)} that must be ambiguous, "
        f"{sum(1 for r in rows if not r.expected_building_id and not r.expected_candidates)}"
        " that must find nothing); building sets tiny (fixture, 300), names20k (20,000) and "
        "two (two hand-drawn districts sharing a road, 144).",
        "",
        "| method | top-1 accuracy (single-answer) | ambiguous flagged (must-be) "
        "| nothing picked (must-be) | answered ambiguous | wrong picks | ms/query "
        "| vs baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base_ms = None
    for name, search in cases:
        score, ms = _best_of(search, rows, args.repeat)
        base_ms = base_ms or ms
        lines.append(
            f"| {name} | {score.hits}/{score.single} = {score.accuracy:.1%} "
            f"| {score.flagged}/{score.must_be_ambiguous} "
            f"| {score.nothing}/{score.must_be_none} "
            f"| {score.answered_ambiguous / score.total:.1%} | {score.wrong_picks} "
            f"| {ms:.2f} | {base_ms / ms:.1f}x |"
        )
    lines += ["", "Per kind (AddressIndex): queries, right, wrong picks", ""]
    lines += ["| set/kind | queries | right | wrong picks |", "|---|---:|---:|---:|"]
    for kind, (n, right, wrong) in _by_kind(rows, search_index).items():
        lines.append(f"| {kind} | {n} | {right} | {wrong} |")
    body = "\n".join(lines)
    print(body)
    if args.record:
        record("Address lookup", body)


if __name__ == "__main__":
    main()
