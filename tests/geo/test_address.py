"""Address normalising and lookup: a numeral table, hypothesis on numerals, a scored corpus.

The corpus (``tests/data/address_corpus.csv``) is written by ``write_corpus`` below,
deterministically, from two building sets:

* ``tiny``: the project's fixture district ``generate_district("tiny", seed=7)``, 300
  buildings on 6 roads, with grid codes joined from its grids;
* ``names20k``: 20,000 buildings on the 319 road names of ``fixtures/names.py`` (built
  here, seed 7), because similar names (长春路, 长春街, 长春北路) are where matching gets
  hard, and the full fixture takes minutes to generate;
* ``two``: two districts in one index, the hand-drawn 市南区 of ``tests/handmade.py`` and
  旅顺口区 of ``tests/neighbours.py``, 144 buildings, sharing the road 山东路 (same house
  numbers) and a community name: a query naming its place must match only there, one
  naming no place must be ambiguous where both districts have the building, and one
  naming a place without that building must pick nothing.

Regenerate it with ``.venv/bin/python -m tests.geo.test_address --write-corpus``.

The rule scored: a *wrong pick* is an answer whose ``best`` is set but is not the
expected building (for a query that must be ambiguous or must find nothing, any ``best``
is wrong). Wrong picks must be zero; a query with one right answer counts as a hit only
when ``best`` is that building, so an honest "ambiguous" on such a query costs accuracy,
never safety. A row with neither an expected building nor candidates must find nothing.
"""

from __future__ import annotations

import csv
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures import names
from geo.address import (
    AddressIndex,
    chinese_to_int,
    normalize_address,
    parse_address,
)
from geo.errors import InvalidInput

CORPUS_PATH = Path(__file__).resolve().parent.parent / "data" / "address_corpus.csv"
CITY = "大连市"
SEED = 7

# ---------------------------------------------------------------- building sets


def _placed_buildings(layers: Any, city: str | None) -> pd.DataFrame:
    """Buildings with their grid (smallest code on a shared edge) and place names."""
    import geopandas as gpd

    def layer(name: str) -> gpd.GeoDataFrame:
        return layers[name] if isinstance(layers, dict) else getattr(layers, name)

    grids = layer("grids")[["code", "community_code", "geometry"]].rename(
        columns={"code": "grid_code"}
    )
    joined = gpd.sjoin(layer("buildings"), grids, how="left", predicate="intersects")
    joined = joined.sort_values(["building_id", "grid_code"]).drop_duplicates("building_id")
    communities = layer("communities").set_index("code")
    streets = layer("streets").set_index("code")["name"]
    community = communities.loc[joined["community_code"]]
    district = layer("district")
    return pd.DataFrame(
        {
            "building_id": joined["building_id"].to_numpy(),
            "address": joined["address"].to_numpy(),
            "grid_code": joined["grid_code"].to_numpy(),
            "community_name": community["name"].to_numpy(),
            "street_name": streets.loc[community["street_code"]].to_numpy(),
            "district_name": district["name"].iloc[0],
            "city_name": city,
            "district_code": district["code"].iloc[0],
        }
    )


@cache
def tiny_buildings() -> pd.DataFrame:
    """The tiny fixture district's buildings with grid, community and street names."""
    from fixtures.district import generate_district

    return _placed_buildings(generate_district("tiny", SEED), CITY)


@cache
def two_district_buildings() -> pd.DataFrame:
    """The hand-drawn 市南区 (no city recorded) and 旅顺口区 (大连市) in one frame."""
    from tests.handmade import handmade_layers
    from tests.neighbours import CITY as NEIGHBOUR_CITY
    from tests.neighbours import neighbour_layers

    return pd.concat(
        [
            _placed_buildings(handmade_layers(), None),
            _placed_buildings(neighbour_layers(), NEIGHBOUR_CITY),
        ],
        ignore_index=True,
    )


@cache
def names20k_buildings(n: int = 20_000, seed: int = SEED) -> pd.DataFrame:
    """20,000 buildings on every road name of fixtures/names.py, like the full district's.

    Numbers run up each road in steps of 1 or 2; a number has 1-5 buildings (栋), mostly 1.
    """
    rng = np.random.default_rng(seed)
    stem_roads = [s + x for s in names.ROAD_STEMS for x in names.ROAD_SUFFIXES]
    roads = list(dict.fromkeys([*names.MAJOR_ROADS, *stem_roads]))  # 太原街 is in both
    communities = [f"{stem}社区" for stem in names.COMMUNITY_STEMS[:60]]
    streets = [s[0] for s in names.FULL_STREETS]
    rows: list[tuple[str, str, str, str, str]] = []
    per_road = np.full(len(roads), n // len(roads))
    per_road[: n - per_road.sum()] += 1
    for r, road in enumerate(roads):
        number, made = 0, 0
        while made < per_road[r]:
            number += int(rng.choice([1, 2], p=[0.6, 0.4]))
            count = int(rng.choice([1, 2, 3, 4, 5], p=[0.55, 0.25, 0.12, 0.05, 0.03]))
            for unit in range(1, min(count, per_road[r] - made) + 1):
                c = (r * 7 + number // 25) % len(communities)
                grid = f"210204{c // 9 + 1:03d}{c + 1:03d}{number // 12 % 9 + 1:03d}"
                rows.append((f"{road}{number}号{unit}栋", grid, communities[c], streets[c % 7], ""))
                made += 1
    frame = pd.DataFrame(
        rows, columns=["address", "grid_code", "community_name", "street_name", "_"]
    ).drop(columns="_")
    frame.insert(0, "building_id", [f"N{i + 1:06d}" for i in range(len(frame))])
    frame["district_name"] = "沙河口区"
    frame["city_name"] = CITY
    return frame


BUILDING_SETS: dict[str, Callable[[], pd.DataFrame]] = {
    "tiny": tiny_buildings,
    "names20k": names20k_buildings,
    "two": two_district_buildings,
}


@cache
def index_for(source: str) -> AddressIndex:
    """One index per building set, built once per test session."""
    return AddressIndex(BUILDING_SETS[source]())


# ---------------------------------------------------------------- numerals

_DIGITS = "零一二三四五六七八九"


def to_chinese(n: int, *, liang: bool = False) -> str:
    """The written Chinese numeral of 1 <= n <= 9999 (一千零五, 十五, 一百一十)."""
    out = ""
    zero_pending = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit == 0:
            zero_pending = bool(out)
            continue
        if zero_pending:
            out += "零"
            zero_pending = False
        word = "两" if liang and digit == 2 and value >= 100 else _DIGITS[digit]
        if value == 10 and digit == 1 and not out:
            word = ""  # 十五, not 一十五
        out += word + unit
    return out


def to_chinese_digits(n: int, zero: str = "〇") -> str:
    """Digit by digit, as house and room numbers are read: 105 -> 一〇五."""
    return "".join(zero if d == "0" else _DIGITS[int(d)] for d in str(n))


FULLWIDTH = str.maketrans("0123456789-#", "０１２３４５６７８９－＃")

# ---------------------------------------------------------------- corpus

# Near-homophones and look-alikes that pinyin input and hurried typing produce.
_TYPO_CHARS = {
    "路": "洛露陆",
    "街": "接阶节",
    "中": "钟忠",
    "山": "衫删",
    "河": "和合",
    "口": "扣",
    "安": "按岸",
    "西": "溪希",
    "东": "冬",
    "南": "楠男",
    "北": "背",
    "长": "常场",
    "春": "椿纯",
    "州": "洲舟",
    "阳": "杨扬",
    "海": "嗨",
    "兴": "星",
    "工": "公",
    "白": "百",
    "沙": "砂",
    "星": "新",
    "广": "光",
    "场": "厂",
    "宁": "凝",
    "京": "经",
    "岛": "导",
    "门": "们",
    "原": "源",
    "林": "琳",
    "江": "将",
}


@dataclass(frozen=True)
class Row:
    """One corpus query and what it must find."""

    source: str
    kind: str
    query: str
    expected_building_id: str
    expected_address: str
    expected_candidates: str = ""  # space-separated, for must-be-ambiguous queries


def _split(address: str) -> tuple[str, int, int]:
    parsed = parse_address(address)
    assert parsed.number is not None and parsed.building is not None
    return parsed.road, int(parsed.number), int(parsed.building)


def _typo(road: str, roads: set[str], rng: np.random.Generator) -> str | None:
    """A one-character slip in the road name that does not spell another road."""
    options = []
    for i, char in enumerate(road):
        options += [road[:i] + c + road[i + 1 :] for c in _TYPO_CHARS.get(char, "")]
    if len(road) >= 4:
        options += [road[:i] + road[i + 1 :] for i in range(len(road) - 1)]  # dropped char
    options = [o for o in options if o not in roads and o != road]
    return str(rng.choice(options)) if options else None


def _unit_room(rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(1, 7)), int(rng.integers(1, 19)) * 100 + int(rng.integers(1, 5))


def _queries_for(
    b: pd.Series, frame: pd.DataFrame, roads: set[str], rng: np.random.Generator, kind: str
) -> str | None:
    """A query of the given kind for building ``b``; None when this building can't make one."""
    road, number, building = _split(b.address)
    unit, room = _unit_room(rng)
    pick = int(rng.integers(0, 4))
    if kind == "exact":
        return [
            b.address,
            f"{b.address}{unit}单元{room}室",
            f"{road}{number}号{building}栋{unit}单元",
            f"{b.address}{room}",
        ][pick]
    if kind == "numerals":
        num = to_chinese(number, liang=pick == 1) if pick < 3 else to_chinese_digits(number)
        tail = [f"{to_chinese(building)}栋", f"{to_chinese(building)}号楼"][pick % 2]
        if pick == 2:
            tail += f"{to_chinese(unit)}单元{to_chinese_digits(room, '零')}室"
        return f"{road}{num}号{tail}"
    if kind == "fullwidth":
        text = [
            b.address,
            f"{road}{number}号{building}号楼",
            f"{road}　{number}号　{building}栋",
            f"{b.address}{unit}单元{room}室",
        ][pick]
        return text.translate(FULLWIDTH)
    if kind == "prefix":
        parts = [b.city_name, b.district_name, b.street_name, b.community_name]
        chosen = [p for p, keep in zip(parts, rng.random(4) < 0.6, strict=True) if keep]
        if not chosen:
            chosen = [b.district_name]
        sep = " " if rng.random() < 0.4 else ""
        return sep.join([*chosen, b.address])
    if kind == "typo":
        typo = _typo(road, roads, rng)
        return None if typo is None else f"{typo}{number}号{building}栋"
    if kind == "variant":
        return (
            [
                f"{road}{number}-{building}",
                f"{road}{number}号{building}幢",
                f"{road}{number}号{building}#楼",
                f"{road}{number}号{building}-{unit}-{room}",
            ][pick]
            if rng.random() < 0.8
            else f"{road}{number}-{building}-{unit}-{room}"
        )
    if kind == "noise":
        return [
            f"{road}，{number}号；{building}栋。",
            f" {road} {number} 号 {building} 栋 {unit} 单元 ",
            f"{road}{number}号第{building}栋{unit}单元{room // 100}楼",
            f"{road}{number}号({building}栋){unit}门{room}",
        ][pick]
    raise ValueError(kind)


def _partial_rows(
    source: str, frame: pd.DataFrame, rng: np.random.Generator, count: int
) -> list[Row]:
    """Road + number without the building, and number + building without the road."""
    parsed = frame["address"].str.extract(r"^(?P<road>.*?)(?P<number>\d+)号(?P<building>\d+)栋$")
    frame = frame.assign(**parsed)
    rows: list[Row] = []
    for i in rng.choice(len(frame), size=count, replace=False):
        b = frame.iloc[int(i)]
        if i % 2 == 0:
            same = frame[(frame.road == b.road) & (frame.number == b.number)]
            query = f"{b.road}{b.number}号"
        else:
            same = frame[(frame.number == b.number) & (frame.building == b.building)]
            query = f"{b.number}号{b.building}栋"
        if len(same) == 1:
            rows.append(Row(source, "partial", query, b.building_id, b.address))
        else:
            ids = " ".join(sorted(same.building_id))
            rows.append(Row(source, "partial", query, "", "", ids))
    return rows


# Hand-written cases on the tiny district's roads (兴工街, 西安路, 沙河口路, 白山路,
# 星海广场, 海岛路): address -> queries.
HANDWRITTEN_TINY: dict[str, list[tuple[str, str]]] = {
    "西安路2号1栋": [
        ("typo", "西按路2号1栋"),
        ("numerals", "西安路贰号壹栋"),
        ("prefix", "辽宁省大连市星海样例区西安路2号1栋"),
        ("noise", "【西安路2号1栋】"),
    ],
    "兴工街30号1栋": [
        ("typo", "星工街30号1栋"),
        ("numerals", "兴工街三十号一栋"),
        ("variant", "兴工街30号1座"),
        ("fullwidth", "兴工街３０号１栋"),
    ],
    "沙河口路10号1栋": [
        ("typo", "沙和口路10号1栋"),
        ("typo", "沙河口洛十号一栋"),
        ("prefix", "星海样例区沙河口路10号1栋"),
    ],
    "星海广场1号1栋": [
        ("typo", "星海广厂1号1栋"),
        ("variant", "星海广场1-1"),
        ("numerals", "星海广场一号一号楼"),
    ],
}


def _handwritten(frame: pd.DataFrame) -> list[Row]:
    by_address = frame.set_index("address")["building_id"]
    rows = []
    for address, queries in HANDWRITTEN_TINY.items():
        if address not in by_address:
            continue  # the fixture changed; regenerate and revisit these
        rows += [Row("tiny", kind, q, by_address[address], address) for kind, q in queries]
    return rows


KINDS = ("exact", "numerals", "fullwidth", "prefix", "typo", "variant", "noise")
#: Kinds of the two-district set: naming the building's own places, naming none, naming
#: the other district (which may or may not have that address).
PLACE_KINDS = ("place", "unplaced", "elsewhere")
_PLACE_COLUMNS = ("district_name", "street_name", "community_name")
# Hand-written cases on the two districts: query -> the places the building must be in.
# 山东路1-36号 are in both, 山东路37-72号 only in 市南区, 黄河路 only in 旅顺口区.
HANDWRITTEN_TWO: list[tuple[str, str, dict[str, str]]] = [
    ("大连市旅顺口区山东路5号5栋", "山东路5号5栋", {"district_name": "旅顺口区"}),
    ("旅顺口区 山东路五号五栋", "山东路5号5栋", {"district_name": "旅顺口区"}),
    ("市南区山东路5号5栋", "山东路5号5栋", {"district_name": "市南区(手绘)"}),
    ("青岛市市南区山东路５号５栋", "山东路5号5栋", {"district_name": "市南区(手绘)"}),
    ("山东路5号5栋", "山东路5号5栋", {}),
    ("汇泉社区山东路5号5栋", "山东路5号5栋", {"community_name": "汇泉社区"}),
    ("旅顺口区汇泉社区山东路5号5栋", "山东路5号5栋", {"district_name": "旅顺口区"}),
    ("得胜街道山东路5号5栋", "山东路5号5栋", {"street_name": "得胜街道"}),
    ("八大关街道汇泉社区山东路5号5栋", "山东路5号5栋", {"street_name": "八大关街道"}),
    ("大连市旅顺口区山东路50号5栋", "山东路50号5栋", {"district_name": "旅顺口区"}),
    ("山东路50号5栋", "山东路50号5栋", {}),
    ("黄河路3号3栋", "黄河路3号3栋", {}),
    ("市南区黄河路3号3栋", "黄河路3号3栋", {"district_name": "市南区(手绘)"}),
    ("甘井子区山东路5号5栋", "山东路5号5栋", {"district_name": "甘井子区"}),
    ("大连市甘井子区黄河路3号3栋", "黄河路3号3栋", {"district_name": "甘井子区"}),
    ("太平角社区山东路5号5栋", "山东路5号5栋", {"community_name": "太平角社区"}),
    ("得胜社区山东路30号5栋", "山东路30号5栋", {"community_name": "得胜社区"}),
]


def _spoken(name: str) -> str:
    """A place name as people type it: without the remark in brackets (市南区(手绘))."""
    return name.split("(")[0]


def _expected_row(
    source: str, kind: str, query: str, frame: pd.DataFrame, inside: pd.Series
) -> Row:
    """The row for a query meaning the buildings ``inside``: one, several or none."""
    ids = sorted(frame.loc[inside, "building_id"])
    if len(ids) == 1:
        return Row(source, kind, query, ids[0], frame.loc[inside, "address"].iloc[0])
    return Row(source, kind, query, "", "", " ".join(ids))


def _place_rows(
    source: str, frame: pd.DataFrame, rng: np.random.Generator, count: int
) -> list[Row]:
    """Queries over two districts with the same road: each names a place, or none.

    What a query must find is worked out from the frame, not from the parser: the
    buildings with that address inside every place the query names.
    """
    roads = {parse_address(a).road for a in frame["address"]}
    districts = sorted(frame["district_name"].unique())
    rows: list[Row] = []
    for kind in PLACE_KINDS:
        for i in rng.choice(len(frame), size=count, replace=False):
            b = frame.iloc[int(i)]
            style = str(rng.choice(["exact", "numerals", "fullwidth", "noise", "variant"]))
            text = _queries_for(b, frame, roads, rng, style)
            assert text is not None
            inside = frame["address"] == b.address
            names: list[str] = []
            other = next(d for d in districts if d != b.district_name)
            if kind == "place":
                keep = rng.random(3) < 0.5
                if not keep.any():
                    keep[int(rng.integers(3))] = True
                for column, kept in zip(_PLACE_COLUMNS, keep, strict=True):
                    if kept:
                        names.append(_spoken(b[column]))
                        inside &= frame[column] == b[column]
            elif kind == "elsewhere":
                names.append(_spoken(other))
                inside &= frame["district_name"] == other
            # The named district's city, or for 市南区 (which records none) its real one.
            home = b.district_name if kind != "elsewhere" else other
            recorded = frame.loc[frame["district_name"] == home, "city_name"].iloc[0]
            city = [recorded or "青岛市"] if names and rng.random() < 0.5 else []
            sep = " " if rng.random() < 0.3 else ""
            rows.append(_expected_row(source, kind, sep.join([*city, *names, text]), frame, inside))
    for query, address, places in HANDWRITTEN_TWO:
        inside = frame["address"] == address
        for column, value in places.items():
            inside &= frame[column] == value
        rows.append(_expected_row(source, "place", query, frame, inside))
    return rows


def make_corpus(per_kind: dict[str, int] | None = None) -> list[Row]:
    """The whole corpus, deterministically: per building set, so many queries per kind."""
    per_kind = per_kind or {"tiny": 30, "names20k": 45, "two": 40}
    rows: list[Row] = []
    for source, build in BUILDING_SETS.items():
        frame = build()
        rng = np.random.default_rng([SEED, len(frame)])
        if source == "two":
            rows += _place_rows(source, frame, rng, per_kind[source])
            continue
        roads = {parse_address(a).road for a in frame["address"]}
        for kind in KINDS:
            made = 0
            for i in rng.permutation(len(frame)):
                b = frame.iloc[int(i)]
                query = _queries_for(b, frame, roads, rng, kind)
                if query is None:
                    continue
                rows.append(Row(source, kind, query, b.building_id, b.address))
                made += 1
                if made == per_kind[source]:
                    break
        rows += _partial_rows(source, frame, rng, per_kind[source])
        if source == "tiny":
            rows += _handwritten(frame)
    return rows


def write_corpus(path: Path = CORPUS_PATH) -> int:
    """Write the corpus CSV; returns the number of rows."""
    rows = make_corpus()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(Row.__dataclass_fields__)
        writer.writerows(
            (
                r.source,
                r.kind,
                r.query,
                r.expected_building_id,
                r.expected_address,
                r.expected_candidates,
            )
            for r in rows
        )
    return len(rows)


def read_corpus(path: Path = CORPUS_PATH) -> list[Row]:
    """The corpus rows as written (queries keep their spaces and full-width characters)."""
    with path.open(encoding="utf-8", newline="") as f:
        return [Row(**record) for record in csv.DictReader(f)]


@dataclass
class Score:
    """Corpus figures: hits among single-answer queries, flags among ambiguous ones."""

    single: int = 0
    hits: int = 0
    must_be_ambiguous: int = 0
    flagged: int = 0
    must_be_none: int = 0
    nothing: int = 0
    wrong_picks: int = 0
    answered_ambiguous: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.single + self.must_be_ambiguous + self.must_be_none

    @property
    def accuracy(self) -> float:
        return self.hits / self.single if self.single else float("nan")


def score_corpus(
    rows: list[Row], search: Callable[[str, str], tuple[str | None, bool]]
) -> tuple[Score, list[tuple[Row, str | None, bool]]]:
    """Score ``search(source, query) -> (best_id or None, ambiguous)`` over the rows."""
    score = Score()
    misses = []
    start = time.perf_counter()
    for row in rows:
        best, ambiguous = search(row.source, row.query)
        score.answered_ambiguous += ambiguous
        if row.expected_building_id:
            score.single += 1
            score.hits += best == row.expected_building_id
            wrong = best is not None and best != row.expected_building_id
            if best != row.expected_building_id:
                misses.append((row, best, ambiguous))
        elif row.expected_candidates:
            score.must_be_ambiguous += 1
            score.flagged += ambiguous and best is None
            wrong = best is not None
            if not ambiguous or best is not None:
                misses.append((row, best, ambiguous))
        else:
            score.must_be_none += 1
            score.nothing += not ambiguous and best is None
            wrong = best is not None
            if ambiguous or best is not None:
                misses.append((row, best, ambiguous))
        score.wrong_picks += wrong
    score.seconds = time.perf_counter() - start
    return score, misses


def search_index(source: str, query: str) -> tuple[str | None, bool]:
    """The candidate under test, as ``score_corpus`` wants it."""
    answer = index_for(source).search(query)
    return (answer.best.building_id if answer.best else None), answer.ambiguous


# ---------------------------------------------------------------- tests: normalising


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("中山路123号2栋", "中山路123号2栋"),
        ("大连市沙河口区中山路123号2栋3单元501室", "中山路123号2栋"),
        ("辽宁省大连市沙河口区李家街道金鸿社区中山路123号2栋", "中山路123号2栋"),
        ("中山路一百二十三号二栋", "中山路123号2栋"),
        ("中山路１２３号２号楼", "中山路123号2栋"),
        ("中山路123-2", "中山路123号2栋"),
        ("中山路123-2-3-501", "中山路123号2栋"),
        ("中山路123号2-3-501", "中山路123号2栋"),
        ("沙河口区 中山路 123号", "中山路123号"),
        ("中山洛123号2栋", "中山洛123号2栋"),
        ("中山路123号2幢", "中山路123号2栋"),
        ("中山路123号2座", "中山路123号2栋"),
        ("中山路123号2#楼", "中山路123号2栋"),
        ("中山路123号第二栋", "中山路123号2栋"),
        ("中山路１２３号　２栋，３单元", "中山路123号2栋"),
        ("中山路123号楼", "中山路123号"),
        ("中山路123号5楼", "中山路123号"),
        ("五一路五号", "五一路5号"),  # the road keeps its numerals
        ("五四路一〇五号二幢三单元五〇一", "五四路105号2栋"),
        ("中山路两百号", "中山路200号"),
        ("中山路十五号", "中山路15号"),
        ("中山路二十号", "中山路20号"),
        ("中山路一零五号", "中山路105号"),
        ("中山路0123号02栋", "中山路123号2栋"),
        ("中山路12号a座", "中山路12号A栋"),
    ],
)
def test_normalize_address(text: str, expected: str) -> None:
    assert normalize_address(text) == expected


def test_normalize_strips_given_prefixes() -> None:
    assert normalize_address("金鸿社区中山路1号", strip_prefixes=["金鸿社区"]) == "中山路1号"


def test_parse_keeps_unit_and_room() -> None:
    parsed = parse_address("大连市沙河口区中山路一百二十三号二栋三单元五〇一室")
    assert (parsed.road, parsed.number, parsed.building) == ("中山路", "123", "2")
    assert (parsed.unit, parsed.room) == ("3", "501")
    assert parsed.prefix == ("大连市", "沙河口区")


def test_parse_bare_trailing_number_is_the_room() -> None:
    parsed = parse_address("中山路123号2栋501")
    assert (parsed.building, parsed.room) == ("2", "501")


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("十", 10), ("十五", 15), ("二十", 20), ("一百一", 110), ("两千三", 2300), ("一〇五", 105)],
)
def test_chinese_to_int(numeral: str, value: int) -> None:
    assert chinese_to_int(numeral) == value


@given(st.integers(1, 9999), st.booleans())
def test_chinese_numerals_normalise(n: int, liang: bool) -> None:
    assert chinese_to_int(to_chinese(n, liang=liang)) == n
    assert normalize_address(f"中山路{to_chinese(n, liang=liang)}号") == f"中山路{n}号"
    assert normalize_address(f"中山路{to_chinese_digits(n)}号") == f"中山路{n}号"


@given(st.integers(1, 9999), st.integers(1, 30))
def test_fullwidth_normalises(n: int, b: int) -> None:
    text = unicodedata.normalize("NFC", f"中山路{n}号{b}栋").translate(FULLWIDTH)
    assert normalize_address(text) == f"中山路{n}号{b}栋"


# ---------------------------------------------------------------- tests: lookup

HANDMADE = pd.DataFrame(
    {
        "building_id": ["H1", "H2", "H3", "H4", "H5", "H6"],
        "address": [
            "中山路123号1栋",
            "中山路123号2栋",
            "中山路125号1栋",
            "沈阳路12号1栋",
            "沈阳街12号1栋",
            "黄河路7号1栋",
        ],
        "grid_code": ["G01", "G01", "G02", "G03", "G03", "G04"],
        "community_name": ["金鸿社区", "金鸿社区", "金鸿社区", "锦华社区", "瑞祥社区", "锦华社区"],
        "street_name": ["李家街道"] * 6,
    }
)


@pytest.fixture(scope="module")
def handmade_index() -> AddressIndex:
    return AddressIndex(HANDMADE, prefixes=["大连市", "沙河口区"])


@pytest.mark.parametrize(
    "query",
    [
        "大连市沙河口区中山路123号2栋3单元501室",
        "中山路一百二十三号二栋",
        "中山路１２３号２号楼",
        "中山路123-2",
        "中山洛123号2栋",
        "李家街道金鸿社区 中山路 123号 2栋",
    ],
)
def test_search_finds_the_building(handmade_index: AddressIndex, query: str) -> None:
    answer = handmade_index.search(query)
    assert answer.best is not None and answer.best.building_id == "H2"
    assert not answer.ambiguous
    assert answer.best.grid_code == "G01"
    assert answer.normalized == normalize_address(query, strip_prefixes=["李家街道", "金鸿社区"])


def test_number_without_building_is_ambiguous(handmade_index: AddressIndex) -> None:
    answer = handmade_index.search("沙河口区 中山路 123号")
    assert answer.ambiguous and answer.best is None
    assert {c.building_id for c in answer.candidates[:2]} == {"H1", "H2"}
    assert "栋" in answer.reason


def test_unique_number_without_building_is_found(handmade_index: AddressIndex) -> None:
    answer = handmade_index.search("中山路125号")
    assert answer.best is not None and answer.best.building_id == "H3"


def test_equally_close_roads_are_ambiguous(handmade_index: AddressIndex) -> None:
    """沈阳 is as far from 沈阳路 as from 沈阳街, and both have 12号1栋."""
    answer = handmade_index.search("沈阳12号1栋")
    assert answer.ambiguous and answer.best is None
    assert {c.building_id for c in answer.candidates[:2]} == {"H4", "H5"}


def test_community_name_settles_it(handmade_index: AddressIndex) -> None:
    """沈阳街 is in 瑞祥社区, 沈阳路 is not."""
    answer = handmade_index.search("瑞祥社区沈阳12号1栋")
    assert answer.best is not None and answer.best.building_id == "H5"


def test_no_road_is_ambiguous_unless_unique(handmade_index: AddressIndex) -> None:
    assert handmade_index.search("12号1栋").ambiguous
    answer = handmade_index.search("7号1栋")
    assert answer.best is not None and answer.best.building_id == "H6"


def test_homophone_typo_is_found(handmade_index: AddressIndex) -> None:
    """沈阳露 sounds like 沈阳路 (lu), not like 沈阳街 (jie); 沈阳洛 (luo) sounds like neither."""
    answer = handmade_index.search("沈阳露12号1栋")
    assert answer.best is not None and answer.best.building_id == "H4"
    assert handmade_index.search("沈阳洛12号1栋").ambiguous


def test_other_building_is_no_pick(handmade_index: AddressIndex) -> None:
    """中山路125号 has only 1栋: 5栋 is a different building, not a typo to fix silently."""
    answer = handmade_index.search("中山路125号5栋")
    assert answer.best is None and not answer.ambiguous
    assert answer.candidates[0].building_id == "H3"


def test_missing_number_is_no_pick(handmade_index: AddressIndex) -> None:
    answer = handmade_index.search("中山路999号1栋")
    assert answer.best is None and not answer.ambiguous
    assert answer.candidates  # the nearest numbers, to show what exists
    assert "no building" in answer.reason


@pytest.mark.parametrize("query", ["", "   ", "，。！", "123", "123号", "abc", "2栋"])
def test_garbage_is_refused(handmade_index: AddressIndex, query: str) -> None:
    with pytest.raises(InvalidInput) as info:
        handmade_index.search(query)
    assert info.value.field == "address"


def test_index_refuses_frame_without_address() -> None:
    with pytest.raises(InvalidInput):
        AddressIndex(pd.DataFrame({"building_id": ["x"]}))


# ---------------------------------------------------------------- tests: places

# Two districts of one city with the same road and building: the example.
DALIAN = pd.DataFrame(
    {
        "building_id": ["S1", "S2", "L1", "L2"],
        "address": ["黄河路79号2栋", "黄河路80号1栋", "黄河路79号2栋", "白山路3号1栋"],
        "grid_code": ["SG1", "SG1", "LG1", "LG2"],
        "district_code": ["210204", "210204", "210212", "210212"],
        "district_name": ["沙河口区", "沙河口区", "旅顺口区", "旅顺口区"],
        "street_name": ["白山路街道", "白山路街道", "得胜街道", "得胜街道"],
        "community_name": ["福民社区", "福民社区", "光荣社区", "光荣社区"],
        "city_name": ["大连市"] * 4,
    }
)
DALIAN_UNITS = pd.DataFrame(
    {
        "level": ["community", "community", "community", "grid", "grid", "grid"],
        "code": ["210204001001", "210212001001", "210212001002", "SG1", "LG1", "LG2"],
        "name": ["福民社区", "光荣社区", "海港社区", "福民一网格", "光荣第一网格", "光荣第二网格"],
        "district_code": ["210204", "210212", "210212", "210204", "210212", "210212"],
        "district_name": ["沙河口区", "旅顺口区", "旅顺口区", "沙河口区", "旅顺口区", "旅顺口区"],
        "street_name": ["白山路街道", "得胜街道", "得胜街道", "白山路街道", "得胜街道", "得胜街道"],
        "community_name": [None, None, None, "福民社区", "光荣社区", "光荣社区"],
        "street_code": ["210204001", "210212001", "210212001", None, None, None],
        "community_code": [None, None, None, "210204001001", "210212001001", "210212001001"],
        "grids": [["SG1"], ["LG1", "LG2"], [], None, None, None],
    }
)


@pytest.fixture(scope="module")
def dalian() -> AddressIndex:
    return AddressIndex(DALIAN, units=DALIAN_UNITS)


@pytest.mark.parametrize(
    ("query", "building"),
    [
        ("大连市旅顺口区黄河路79号2栋", "L1"),
        ("旅顺口区黄河路七十九号二号楼", "L1"),
        ("大连市 沙河口区 黄河路79号2栋", "S1"),
        ("沙河口区黄河路79-2", "S1"),
        ("白山路街道黄河路79号2栋", "S1"),  # a street named after a road is still a street
        ("光荣社区黄河路79号2栋", "L1"),
        ("得胜街道光荣社区黄河路79号2栋3单元", "L1"),
        ("沙和口区黄河路79号2栋", "S1"),  # sounds like 沙河口区: read as it
        ("万达小区黄河路80号1栋", "S2"),  # a housing estate names no district
    ],
)
def test_a_named_place_confines_the_match(dalian: AddressIndex, query: str, building: str) -> None:
    answer = dalian.search(query)
    assert answer.best is not None and answer.best.building_id == building, answer.reason
    assert not answer.ambiguous
    assert all(c.district_code == answer.best.district_code for c in answer.candidates)


def test_no_place_named_is_ambiguous_across_districts(dalian: AddressIndex) -> None:
    answer = dalian.search("黄河路79号2栋")
    assert answer.ambiguous and answer.best is None
    assert {(c.building_id, c.district_code) for c in answer.candidates} == {
        ("S1", "210204"),
        ("L1", "210212"),
    }
    assert "2 districts" in answer.reason and "沙河口区" in answer.reason
    assert "旅顺口区" in answer.reason and "name the district" in answer.reason


def test_a_place_without_the_building_picks_nothing_and_says_where_it_is(
    dalian: AddressIndex,
) -> None:
    answer = dalian.search("大连市旅顺口区黄河路80号1栋")
    assert answer.best is None and not answer.ambiguous
    assert all(c.district_code == "210212" for c in answer.candidates)
    assert "旅顺口区" in answer.reason and "沙河口区" in answer.reason
    inconsistent = dalian.search("沙河口区光荣社区黄河路79号2栋")  # 光荣社区 is in 旅顺口区
    assert inconsistent.best is None and not inconsistent.candidates


def test_a_district_that_is_not_loaded_matches_nothing() -> None:
    """Only 沙河口区 is loaded: 旅顺口区's 黄河路 is not 沙河口区's, whatever the score."""
    shahekou = AddressIndex(DALIAN[DALIAN["district_code"] == "210204"])
    answer = shahekou.search("大连市旅顺口区黄河路79号2栋")
    assert answer.best is None and not answer.candidates and not answer.ambiguous
    assert "no district named 旅顺口区" in answer.reason and "沙河口区" in answer.reason
    assert shahekou.search("黄河路79号2栋").best is not None  # naming no place still works


def test_an_unknown_community_is_never_picked(dalian: AddressIndex) -> None:
    answer = dalian.search("旅顺口区金星社区黄河路79号2栋")
    assert answer.best is None
    assert "金星社区" in answer.reason
    assert [c.building_id for c in answer.candidates] == ["L1"]  # still inside 旅顺口区


def test_district_filter_narrows_like_naming_it(dalian: AddressIndex) -> None:
    answer = dalian.search("黄河路79号2栋", district="210212")
    assert answer.best is not None and answer.best.building_id == "L1"
    assert not dalian.search("沙河口区黄河路79号2栋", district="210212").candidates


def test_a_place_name_that_starts_a_road_name_leaves_the_road_alone() -> None:
    """A community recorded as plain 西安 must not eat the 西安 of 西安路."""
    frame = DALIAN.assign(
        community_name="西安", address=DALIAN["address"].str.replace("黄河", "西安")
    )
    answer = AddressIndex(frame).search("旅顺口区西安路79号2栋")
    assert answer.best is not None and answer.best.building_id == "L1"


def test_remarks_in_brackets_are_no_part_of_a_place_name() -> None:
    frame = DALIAN.assign(district_name=DALIAN["district_name"] + "(测试)")
    answer = AddressIndex(frame).search("旅顺口区黄河路79号2栋")
    assert answer.best is not None and answer.best.building_id == "L1"


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        ("光荣社区", ["210212001001"]),
        ("大连市旅顺口区光荣社区", ["210212001001"]),
        ("光荣社区居委会", ["210212001001"]),
        ("光容社区", ["210212001001"]),  # a homophone typo
        ("海港社区", ["210212001002"]),  # no buildings, found all the same
        ("光荣第一网格", ["LG1"]),
        ("光荣社区第一网格", ["LG1"]),
        ("光荣社区 第二网格", ["LG2"]),
        ("福民一网格", ["SG1"]),
        ("福民社区1网格", ["SG1"]),
    ],
)
def test_a_community_or_grid_is_found_by_name(
    dalian: AddressIndex, query: str, codes: list[str]
) -> None:
    answer = dalian.search(query)
    assert [u.code for u in answer.units] == codes, answer.reason
    assert not answer.ambiguous and answer.best is None and not answer.candidates
    unit = answer.units[0]
    if unit.level == "community":
        assert unit.grids == {"光荣社区": ("LG1", "LG2"), "海港社区": ()}.get(unit.name, ("SG1",))
    else:
        assert unit.community_code is not None and unit.community_code.endswith("001")


def test_same_named_units_in_two_districts_are_ambiguous() -> None:
    units = DALIAN_UNITS.assign(
        name=["福民社区", "福民社区", "海港社区", "福民一网格", "福民一网格", "光荣第二网格"]
    )
    index = AddressIndex(DALIAN, units=units)
    answer = index.search("福民社区")
    assert answer.ambiguous and [u.district_code for u in answer.units] == ["210204", "210212"]
    assert "name the district" in answer.reason
    one = index.search("旅顺口区福民社区")
    assert [u.code for u in one.units] == ["210212001001"] and not one.ambiguous
    assert len(index.search("福民一网格").units) == 2


def test_a_place_name_alone_is_no_building(dalian: AddressIndex) -> None:
    answer = dalian.search("金星社区")
    assert answer.best is None and not answer.candidates and not answer.units
    assert "no community or grid named 金星社区" in answer.reason


_TWO = two_district_buildings()


@settings(max_examples=150, deadline=None)
@given(
    row=st.integers(0, len(_TWO) - 1),
    levels=st.sets(st.sampled_from(_PLACE_COLUMNS), min_size=1),
    other=st.booleans(),
    city=st.booleans(),
    style=st.sampled_from(["exact", "numerals", "fullwidth", "noise", "variant", "typo"]),
    seed=st.integers(0, 2**16),
)
def test_never_a_building_outside_the_named_places(
    row: int, levels: set[str], other: bool, city: bool, style: str, seed: int
) -> None:
    """Whatever is named (the building's own places, or another district's), every
    candidate lies inside all the named places."""
    b = _TWO.iloc[row]
    rng = np.random.default_rng(seed)
    roads = {parse_address(a).road for a in _TWO["address"]}
    text = _queries_for(b, _TWO, roads, rng, style) or b.address
    places = {column: b[column] for column in levels}
    if other:
        places = {"district_name": next(d for d in _TWO["district_name"] if d != b.district_name)}
    names = [_spoken(places[c]) for c in _PLACE_COLUMNS if c in places]
    query = "".join([*(["大连市"] if city else []), *names, text])
    answer = index_for("two").search(query)
    inside = np.ones(len(_TWO), dtype=bool)
    for column, value in places.items():
        inside &= (_TWO[column] == value).to_numpy()
    allowed = set(_TWO.loc[inside, "building_id"])
    assert {c.building_id for c in answer.candidates} <= allowed, (query, answer.reason)


# ---------------------------------------------------------------- tests: corpus


@pytest.fixture(scope="module")
def corpus() -> list[Row]:
    return read_corpus()


def test_corpus_is_current(corpus: list[Row]) -> None:
    """Expected ids still name the same addresses; else regenerate (see module docstring)."""
    assert len(corpus) >= 300
    assert {r.kind for r in corpus} >= {*KINDS, *PLACE_KINDS, "partial"}
    for source, build in BUILDING_SETS.items():
        frame = build().set_index("building_id")["address"]
        stale = [
            r.query
            for r in corpus
            if r.source == source
            and r.expected_building_id
            and frame.get(r.expected_building_id) != r.expected_address
        ]
        assert not stale, f"{len(stale)} stale rows; run python -m tests.geo.test_address"


def test_corpus_accuracy(corpus: list[Row]) -> None:
    score, misses = score_corpus(corpus, search_index)
    detail = "\n".join(f"{r.kind} {r.query} -> {best} ambiguous={amb}" for r, best, amb in misses)
    assert score.wrong_picks == 0, detail
    assert score.flagged == score.must_be_ambiguous, detail
    assert score.nothing == score.must_be_none, detail
    assert score.accuracy >= 0.95, detail


def test_ambiguous_candidates_are_the_right_ones(corpus: list[Row]) -> None:
    """A must-be-ambiguous answer lists buildings the query fits, best first."""
    for row in corpus:
        if row.expected_building_id or not row.expected_candidates:
            continue
        answer = index_for(row.source).search(row.query)
        expected = set(row.expected_candidates.split())
        top = answer.candidates[0].score
        tied = {c.building_id for c in answer.candidates if c.score == top}
        assert tied <= expected, row.query


def test_search_is_fast() -> None:
    """Under 5 ms a query on 20,000 buildings (checked loosely here; bench has figures)."""
    index = index_for("names20k")
    queries = [r.query for r in read_corpus() if r.source == "names20k"][:200]
    start = time.perf_counter()
    for q in queries:
        index.search(q)
    per_query_ms = (time.perf_counter() - start) / len(queries) * 1000
    assert per_query_ms < 20, per_query_ms


if __name__ == "__main__":
    if "--write-corpus" in sys.argv:
        print(f"{write_corpus()} rows -> {CORPUS_PATH}")
