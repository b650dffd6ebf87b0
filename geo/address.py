"""Chinese addresses -> buildings, saying how sure the answer is.

People type an address partly, with or without city and district, in full-width or
half-width digits, Chinese or Arabic numerals and with typos. A character-level fuzzy
match over whole addresses gets this wrong in the way that matters: "中山路123号2栋" and
"中山路128号2栋" differ by one character but are different buildings, while
"大连市沙河口区中山路一百二十三号二号楼" and "中山路123号2栋" are the same one. So the query
is normalised and parsed into road, number and building first; only the road name is
matched fuzzily, the number and building must agree exactly.

When the query does not single out one building (two roads equally close, or no building
given where a number has several) the answer lists the candidates and says it is
ambiguous; it never picks one silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from rapidfuzz import fuzz, process

from geo.errors import InvalidInput

__all__ = [
    "LEVELS",
    "AddressAnswer",
    "AddressIndex",
    "Candidate",
    "ParsedAddress",
    "PlaceUnit",
    "chinese_to_int",
    "normalize_address",
    "parse_address",
]

# ---------------------------------------------------------------- numerals

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "○": 0,
    "一": 1,
    "壹": 1,
    "二": 2,
    "贰": 2,
    "两": 2,
    "三": 3,
    "叁": 3,
    "四": 4,
    "肆": 4,
    "五": 5,
    "伍": 5,
    "六": 6,
    "陆": 6,
    "七": 7,
    "柒": 7,
    "八": 8,
    "捌": 8,
    "九": 9,
    "玖": 9,
}
_CN_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_CHARS = "".join(_CN_DIGITS) + "".join(_CN_UNITS)


def chinese_to_int(numeral: str) -> int:
    """Read a Chinese numeral: 一百二十三 -> 123, 十五 -> 15, 一〇五 -> 105, 一百一 -> 110.

    Without 十/百/千 the characters are digits read one by one (一〇五, 二〇一), as
    people spell house and room numbers. A trailing digit right after 百 or 千 is the
    colloquial short form (一百一 = 110, 两千三 = 2300); after 零 it is a plain unit digit.
    """
    if not numeral or any(c not in _CN_DIGITS and c not in _CN_UNITS for c in numeral):
        raise ValueError(f"not a Chinese numeral: {numeral!r}")
    if not any(c in _CN_UNITS for c in numeral):
        return int("".join(str(_CN_DIGITS[c]) for c in numeral))
    total = 0
    digit: int | None = None
    last_unit = 0
    after_zero = False
    for char in numeral:
        if char in _CN_UNITS:
            unit = _CN_UNITS[char]
            total += (1 if digit is None else digit) * unit
            digit, last_unit, after_zero = None, unit, False
        elif _CN_DIGITS[char] == 0:
            after_zero, digit = True, None
        else:
            digit = _CN_DIGITS[char]
    if digit is not None:
        short_form = last_unit >= 100 and not after_zero
        total += digit * (last_unit // 10 if short_form else 1)
    return total


# ---------------------------------------------------------------- normalising

# Words that end a number in an address; a Chinese numeral before one of these is a number.
_NUMBER_ENDS = "号|栋|幢|座|楼|单元|门|室|层|户|网格|-|#"
_CN_NUMBER = re.compile(rf"第?([{_CN_CHARS}]+)(?=(?:{_NUMBER_ENDS}))")
# A numeral closing the address after a unit word: the room in "3单元五〇一".
_CN_TRAILING = re.compile(rf"(?<=号|栋|元|层)([{_CN_CHARS}]+)$")
_DASHES = re.compile(r"\s*[-‐‑‒–—―−~～﹣]+\s*")
_JUNK = re.compile(r"[^\w#-]+")  # spaces and punctuation; \w keeps CJK, letters, digits
_BUILDING_WORDS = re.compile(r"(\d+|[A-Za-z])(?:号楼|号院楼|栋楼|幢楼|栋|幢|座|#楼)")
_ROAD_NUMBER_LOU = re.compile(r"^(\D*[^\d号栋]\d+)号楼")
_UNIT_WORDS = re.compile(r"(\d+)(?:单元|门洞|门)")
_ROOM_WORDS = re.compile(r"(\d+)(?:室|户|房)")
_FLOOR_WORDS = re.compile(r"(\d+)(?:层|楼)")
_ORDINAL = re.compile(r"第(?=\d)")
_HASH_NUMBER = re.compile(r"(\d+)#")
# After 号 a dashed run is building-unit-room ("123号2-3-501"); without 号 it starts
# with the house number ("123-2", "123-2-3-501").
_DASHED_AFTER_NUMBER = re.compile(r"(?<=号)(\d+|[A-Za-z])((?:-\d+){1,2})(?=$|\D)")
_DASHED = re.compile(r"(\d+)号?((?:-[0-9A-Za-z]+){1,3})(?=$|[^0-9A-Za-z])")

_GENERIC_PREFIXES = (
    re.compile(r"^中国"),
    re.compile(r"^[\u4e00-\u9fff]{2,7}?(?:省|自治区)"),
    re.compile(r"^[\u4e00-\u9fff]{1,6}?市"),
    re.compile(r"^[\u4e00-\u9fff]{1,6}?(?:区|县)"),
    re.compile(r"^[\u4e00-\u9fff]{1,8}?(?:街道办事处|街道|镇|乡)"),
    re.compile(r"^[\u4e00-\u9fff]{1,8}?(?:社区居委会|社区|居委会)"),
)

_PARSE = re.compile(
    r"""^(?P<road>.*?)
    (?P<number>\d+)号?
    (?:(?P<building>[0-9]+|[A-Za-z])栋)?
    (?:(?P<unit>\d+)单元)?
    (?:(?P<floor>\d+)层)?
    (?:(?P<room>\d+)室)?
    (?P<rest>.*)$""",
    re.VERBOSE,
)


def _chinese_numbers_to_arabic(text: str) -> str:
    """Convert Chinese numerals only where they are numbers of the address.

    Road names keep theirs: 五一路, 五四路 are names, 五一路五号 is number 5 on 五一路.
    """

    def convert(match: re.Match[str]) -> str:
        return str(chinese_to_int(match.group(1)))

    return _CN_TRAILING.sub(convert, _CN_NUMBER.sub(convert, text))


def _below_building(parts: list[str]) -> str:
    """Unit and room from dashed parts: [3, 501] -> 3单元501室; [501] -> 501室; [3] -> 3单元."""
    if len(parts) == 2:
        return f"{parts[0]}单元{parts[1]}室"
    if len(parts) == 1:
        return f"{parts[0]}{'室' if len(parts[0]) >= 3 else '单元'}"
    return ""


def _undash(match: re.Match[str]) -> str:
    """123-2 -> 123号2栋; 123-2-3-501 -> 123号2栋3单元501室; 123-2-501 -> 123号2栋501室."""
    parts = match.group(2).strip("-").split("-")
    return f"{match.group(1)}号{parts[0]}栋" + _below_building(parts[1:])


def _undash_after_number(match: re.Match[str]) -> str:
    """(123号)2-3-501 -> 2栋3单元501室."""
    return f"{match.group(1)}栋" + _below_building(match.group(2).strip("-").split("-"))


def _canonical(text: str) -> str:
    """Full-width -> half-width, no spaces or punctuation, Arabic numerals, one word per part."""
    text = unicodedata.normalize("NFKC", text)
    text = _DASHES.sub("-", text)
    text = _JUNK.sub("", text).replace("_", "")
    text = _ORDINAL.sub("", _chinese_numbers_to_arabic(text))
    # "中山路123号楼": with no house number before it, 号楼 closes the house number.
    text = _ROAD_NUMBER_LOU.sub(r"\1号", text)
    text = _BUILDING_WORDS.sub(r"\1栋", text)
    text = _HASH_NUMBER.sub(r"\1号", text)
    text = _UNIT_WORDS.sub(r"\1单元", text)
    text = _ROOM_WORDS.sub(r"\1室", text)
    text = _FLOOR_WORDS.sub(r"\1层", text)
    text = _DASHED_AFTER_NUMBER.sub(_undash_after_number, text)
    text = _DASHED.sub(_undash, text)
    text = text.replace("号号", "号")
    return text.replace("-", "")


def _strip_prefixes(
    text: str, names: Sequence[str], roads: Sequence[str] = ()
) -> tuple[str, list[str]]:
    """Remove leading city/district/street/community names; return the rest and what went.

    Stops at a known road (the generic rules would cut "西市街" to "街" otherwise), unless a
    known place name longer than that road starts there (白山路街道, a street).
    """
    removed: list[str] = []
    changed = True
    while changed and text:
        changed = False
        road = max((len(r) for r in roads if text.startswith(r)), default=0)
        for name in names:  # a known name longer than the road: 白山路街道 is not 白山路
            if name and text.startswith(name) and road < len(name) < len(text):
                removed.append(name)
                text, changed = text[len(name) :], True
                break
        if changed:
            continue
        if road:
            break
        for pattern in _GENERIC_PREFIXES:
            match = pattern.match(text)
            if match and match.end() < len(text):
                removed.append(match.group(0))
                text, changed = text[match.end() :], True
                break
    return text, removed


def _prefix_names(names: Iterable[str]) -> list[str]:
    """Place names as they appear after canonicalising, longest first.

    No short forms ("沙河口" for 沙河口区): they collide with road names (沙河口路), and a
    leftover place name before the road does no harm, as roads are matched by their tail.
    """
    out = {_plain_name(name) for name in names}
    return sorted(out - {""}, key=len, reverse=True)


# A remark in brackets is no part of a name: 市南区(手绘), 金鸿社区（筹）.
_REMARK = re.compile(r"[(\[【][^)\]】]*[)\]】]")


def _plain_name(name: object) -> str:
    """A place name as queries spell it: half-width, no remark in brackets, no punctuation."""
    text = _REMARK.sub("", unicodedata.normalize("NFKC", str(name)))
    return _JUNK.sub("", text)


@dataclass(frozen=True)
class ParsedAddress:
    """An address split into the parts that identify a building and those below it.

    ``road`` may still carry a place name the prefix rules did not know; matching treats
    it by its tail. ``prefix`` lists the city/district/street/community names removed.
    """

    road: str
    number: str | None = None
    building: str | None = None
    unit: str | None = None
    floor: str | None = None
    room: str | None = None
    rest: str = ""
    prefix: tuple[str, ...] = ()

    @property
    def building_key(self) -> str:
        """The canonical building-level address: road + number号 + building栋."""
        text = self.road
        if self.number is not None:
            text += f"{self.number}号"
        if self.building is not None:
            text += f"{self.building}栋"
        return text


def parse_address(text: str, *, strip_prefixes: Iterable[str] = ()) -> ParsedAddress:
    """Split an address as typed into road, number, building, unit, floor, room.

    Numbers lose leading zeros (``012`` -> ``12``); a bare trailing number after the
    building is taken as the room (``2栋501``).
    """
    return _parse(text, _prefix_names(strip_prefixes))


def _parse(text: str, prefixes: Sequence[str], roads: Sequence[str] = ()) -> ParsedAddress:
    """parse_address with prepared prefix names and the known roads to protect."""
    body, removed = _strip_prefixes(_canonical(text), prefixes, roads)
    return _parse_body(body, removed)


def _parse_body(body: str, removed: Sequence[str] = ()) -> ParsedAddress:
    """Split what is left after the place names into road, number, building and below."""
    match = _PARSE.match(body)
    if match is None:
        return ParsedAddress(road=body, prefix=tuple(removed))
    parts = match.groupdict()
    rest = parts["rest"] or ""
    room = parts["room"]
    if room is None and parts["building"] is not None and rest.isdigit():
        room, rest = rest, ""

    def clean(value: str | None) -> str | None:
        if value is None:
            return None
        return (value.lstrip("0") or "0") if value.isdigit() else value.upper()

    return ParsedAddress(
        road=parts["road"],
        number=clean(parts["number"]),
        building=clean(parts["building"]),
        unit=clean(parts["unit"]),
        floor=clean(parts["floor"]),
        room=clean(room),
        rest=rest,
        prefix=tuple(removed),
    )


def normalize_address(text: str, *, strip_prefixes: Iterable[str] = ()) -> str:
    """The building-level form of an address: "中山路一百二十三号二号楼3单元" -> "中山路123号2栋".

    Unit, floor and room are dropped (they do not change the building); anything the
    parser could not place is kept at the end so that nothing silently disappears.
    """
    parsed = parse_address(text, strip_prefixes=strip_prefixes)
    if parsed.number is None:
        return parsed.road
    return parsed.building_key + parsed.rest


# ---------------------------------------------------------------- places

#: The administrative levels a query may name, largest first.
LEVELS = ("city", "district", "street", "community")

# The word that ends a place name, longest first, and the level it names. "" marks words
# that name no administrative unit (a 小区 is a housing estate, a 园区 an industrial park):
# they are stripped from a query like before but restrict nothing.
_LEVEL_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("社区居委会", "community"),
    ("社区", "community"),
    ("居委会", "community"),
    ("村委会", "community"),
    ("街道办事处", "street"),
    ("街道", "street"),
    ("镇", "street"),
    ("乡", "street"),
    ("自治区", ""),
    ("省", ""),
    ("市", "city"),
    *(
        (word, "")
        for word in ("小区", "园区", "校区", "景区", "厂区", "片区", "街区", "院区", "矿区")
    ),
    ("区", "district"),
    ("县", "district"),
)
_LEVEL_WORDS = frozenset(suffix for suffix, _ in _LEVEL_SUFFIXES)
_COLUMN_OF_LEVEL = {
    "city": "city_name",
    "district": "district_name",
    "street": "street_name",
    "community": "community_name",
}
#: A misspelt place name is taken for a known one only if it sounds the same (pinyin) or
#: nearly spells it, and no other name comes close.
_PLACE_MIN_SCORE = 90.0


def _place_key(name: object) -> tuple[str | None, str]:
    """(level, name without its level word): 沙河口区 -> (district, 沙河口), 金鸿 -> (None, 金鸿).

    Comparing keys lets 金鸿社区 in a query find 金鸿社区居委会 in the data.
    """
    text = _plain_name(name)
    for suffix, level in _LEVEL_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return level, text[: -len(suffix)]
    return None, text


@dataclass(frozen=True)
class PlaceUnit:
    """A community or a grid found by its name, with its code (and a community's grids)."""

    level: str  # "community" or "grid"
    code: str
    name: str
    district_code: str | None = None
    street_code: str | None = None
    community_code: str | None = None
    grids: tuple[str, ...] = ()


@dataclass
class _Named:
    """The places a query names: resolved ``(level, key)`` pairs and what is not known.

    ``missing_district`` is a district name no stored district has: nothing can match.
    ``unknown`` are street or community names no building or unit carries: the answer
    may list candidates but never picks one. ``unknown_city`` lets only the buildings of
    districts with no recorded city pass.
    """

    places: list[tuple[str, str]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    missing_district: str | None = None
    unknown_city: bool = False


# ---------------------------------------------------------------- matching


@dataclass(frozen=True)
class Candidate:
    """One building that may be the one meant, with a 0-100 score."""

    building_id: str
    address: str
    grid_code: str | None
    score: float
    district_code: str | None = None


@dataclass(frozen=True)
class AddressAnswer:
    """Ranked candidates and whether the query singles one out.

    ``best`` is set only when one candidate is clearly ahead and good enough; when
    ``ambiguous`` is true the caller must show the candidates and ask, and ``reason``
    says what is missing. A query that is the name of a community or a grid answers
    with ``units`` instead of buildings.
    """

    query: str
    normalized: str
    candidates: list[Candidate] = field(default_factory=list)
    best: Candidate | None = None
    ambiguous: bool = False
    reason: str = ""
    units: list[PlaceUnit] = field(default_factory=list)


# Score weights: the road is fuzzy, number and building are exact.
_W_ROAD = 55.0
_W_NUMBER = 25.0
_W_BUILDING = 20.0
_PARTIAL_FACTOR = 0.95  # a query that omits a part is a little less certain, even if unique


class AddressIndex:
    """Buildings indexed by road, number and building for fast, structured lookups.

    One index may hold several districts. A query that names a district, street or
    community (with or without its city) matches only buildings inside it; only a query
    that names no place can be ambiguous across districts.

    Parameters
    ----------
    buildings
        Columns ``building_id``, ``address`` (road + number + building, e.g.
        "中山路123号2栋") and ``grid_code``; optional ``district_code`` (needed when the
        index holds several districts) and ``community_name``, ``street_name``,
        ``district_name``, ``city_name``, which name the places a query may narrow to.
    units
        Communities and grids to find by name: columns ``level`` ("community" or
        "grid"), ``code``, ``name``, ``district_code``; optional ``street_code``,
        ``community_code``, ``grids`` (a community's grid codes) and the place-name
        columns above (a grid's ``community_name`` is its community's).
    prefixes
        More place names to strip from queries (city, district).
    margin
        Top two scores closer than this make the answer ambiguous.
    min_score
        Below this the top candidate is not offered as ``best``.
    """

    def __init__(
        self,
        buildings: pd.DataFrame,
        *,
        units: pd.DataFrame | None = None,
        prefixes: Iterable[str] = (),
        margin: float = 5.0,
        min_score: float = 70.0,
    ) -> None:
        missing = {"building_id", "address"} - set(buildings.columns)
        if missing:
            raise InvalidInput(
                f"buildings lack column(s) {', '.join(sorted(missing))}",
                field="buildings",
                fix="pass a frame with building_id, address and grid_code",
            )
        self.margin = margin
        self.min_score = min_score
        self._ids = buildings["building_id"].astype(str).to_numpy()
        self._addresses = buildings["address"].astype(str).to_numpy()
        self._grids = _optional_text(buildings, "grid_code")
        self._districts = _optional_text(buildings, "district_code")

        # Place names: level -> key -> id, and per row (and per unit) the id at each level.
        self._keys: dict[str, dict[str, int]] = {level: {} for level in LEVELS}
        self._place_names: dict[str, list[str]] = {level: [] for level in LEVELS}
        self._row_places = {level: self._place_ids(buildings, level) for level in LEVELS}
        unit_frame = units if units is not None else pd.DataFrame(columns=["level", "code"])
        if "name" in unit_frame.columns:  # a community is in itself, as far as places go
            own = unit_frame["level"] == "community"
            unit_frame = unit_frame.assign(
                community_name=unit_frame["name"].where(
                    own, unit_frame.get("community_name", pd.Series(None, index=unit_frame.index))
                )
            )
        self._units = [
            PlaceUnit(
                level=str(u["level"]),
                code=str(u["code"]),
                name=_text_or(u.get("name")) or str(u["code"]),
                district_code=_text_or(u.get("district_code")),
                street_code=_text_or(u.get("street_code")),
                community_code=_text_or(u.get("community_code")),
                grids=tuple(str(g) for g in _listed(u.get("grids"))),
            )
            for u in unit_frame.to_dict(orient="records")
        ]
        self._unit_places = {level: self._place_ids(unit_frame, level) for level in LEVELS}
        self._unit_keys: dict[tuple[str, str], list[int]] = {}
        for i, unit in enumerate(self._units):
            for key in self._unit_lookup_keys(unit, unit_frame.iloc[i]):
                self._unit_keys.setdefault(key, []).append(i)
        self._place_pinyin: dict[str, list[str]] = {}
        places = {name for names in self._place_names.values() for name in names}
        self._prefixes = _prefix_names([*places, *prefixes])

        # road -> number -> building -> rows; number -> rows for road-less queries.
        self._by_road: dict[str, dict[str, dict[str | None, list[int]]]] = {}
        self._by_number: dict[str, list[int]] = {}
        self._parsed: list[ParsedAddress] = []
        for row, address in enumerate(self._addresses):
            parsed = parse_address(address)
            self._parsed.append(parsed)
            numbers = self._by_road.setdefault(parsed.road, {})
            if parsed.number is not None:
                numbers.setdefault(parsed.number, {}).setdefault(parsed.building, []).append(row)
                self._by_number.setdefault(parsed.number, []).append(row)
        self._roads = sorted(self._by_road, key=lambda r: (-len(r), r))
        self._roads = [r for r in self._roads if r]  # buildings with no road: by number only
        self._longest_road = max((len(r) for r in self._roads), default=0)
        self._road_len = np.array([len(r) for r in self._roads])
        self._road_pinyin = [_pinyin(r) for r in self._roads]

    def __len__(self) -> int:
        return len(self._ids)

    # ------------------------------------------------------------ places

    def _place_ids(self, frame: pd.DataFrame, level: str) -> npt.NDArray[np.int32]:
        """Register the frame's place names of ``level``; the id of each row's (-1: none)."""
        column = _COLUMN_OF_LEVEL[level]
        if column not in frame.columns or frame.empty:
            return np.full(len(frame), -1, dtype=np.int32)
        keys, names = self._keys[level], self._place_names[level]
        ids: dict[str, int] = {}
        for value in frame[column].dropna().unique():
            if not str(value).strip():
                continue
            key = _place_key(value)[1]
            if key not in keys:
                keys[key] = len(names)
                names.append(_plain_name(value))
            ids[str(value)] = keys[key]
        mapped = frame[column].map(lambda v: ids.get(str(v), -1) if pd.notna(v) else -1)
        return mapped.to_numpy(dtype=np.int32)

    def _unit_lookup_keys(self, unit: PlaceUnit, row: pd.Series) -> list[tuple[str, str]]:
        """The names a query may give a unit by: a community's key, a grid's name with and
        without its community's name in front (汇泉一网格 is 一网格 of 汇泉社区)."""
        if unit.level == "community":
            return [("community", _place_key(unit.name)[1])]
        name = _canonical(unit.name)
        keys = [("grid", name)]
        community = row.get("community_name")
        if community is not None and pd.notna(community):
            for prefix in (_plain_name(community), _place_key(community)[1]):
                if prefix and name.startswith(prefix) and len(name) > len(prefix):
                    keys.append(("grid", name[len(prefix) :]))
        return keys

    def _resolve(self, level: str, key: str) -> str | None:
        """The known place key of ``level`` a misspelt ``key`` means, if only one comes close."""
        known = list(self._keys[level])
        if not known or len(key) < 2:
            return None
        if level not in self._place_pinyin:
            self._place_pinyin[level] = [_pinyin(k) for k in known]
        chars = process.cdist([key], known, scorer=fuzz.ratio, workers=1)[0]
        sounds = process.cdist(
            [_pinyin(key)], self._place_pinyin[level], scorer=fuzz.ratio, workers=1
        )[0]
        scores = np.maximum(chars, 0.95 * sounds)
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        runner_up = float(scores[order[1]]) if len(order) > 1 else 0.0
        if best >= _PLACE_MIN_SCORE and best - runner_up >= self.margin:
            return known[int(order[0])]
        return None

    def _named_places(self, removed: Sequence[str]) -> _Named:
        """Which known places the stripped prefix names (misspellings resolved if safe)."""
        named = _Named()
        for piece in removed:
            level, key = _place_key(piece)
            if level == "":
                continue  # a province, a housing estate: no unit gridmap holds
            if level is None:  # a known name without a level word: look it up everywhere
                level = next((lv for lv in reversed(LEVELS) if key in self._keys[lv]), None)
                if level is None:
                    continue
            if not self._keys[level]:
                continue  # the index knows no names at this level: nothing to check against
            if key not in self._keys[level]:
                resolved = self._resolve(level, key)
                if resolved is None:
                    if level == "city":
                        named.unknown_city = True
                    elif level == "district":
                        named.missing_district = piece
                    else:
                        named.unknown.append(piece)
                    continue
                proper = self._place_names[level][self._keys[level][resolved]]
                named.corrected.append(f"{piece} → {proper}")
                key = resolved
            named.places.append((level, key))
            if level != "city":  # "in 旅顺口区", not "in 大连市、旅顺口区"
                named.said.append(self._place_names[level][self._keys[level][key]])
        return named

    def _allowed(
        self, places: dict[str, npt.NDArray[np.int32]], named: _Named
    ) -> npt.NDArray[np.bool_] | None:
        """Rows (of buildings or units) inside every named place; None when none is named."""
        n = len(places["city"])
        if named.missing_district:
            return np.zeros(n, dtype=bool)
        mask: npt.NDArray[np.bool_] | None = None
        for level, key in named.places:
            inside = places[level] == self._keys[level][key]
            if level == "city":
                inside |= places[level] == -1  # districts that record no city pass
            mask = inside if mask is None else mask & inside
        if named.unknown_city:
            inside = places["city"] == -1
            mask = inside if mask is None else mask & inside
        return mask

    def _within(
        self,
        places: dict[str, npt.NDArray[np.int32]],
        districts: npt.NDArray[np.object_],
        named: _Named,
        district: str | None,
    ) -> npt.NDArray[np.bool_] | None:
        """The named places and the ``district`` filter together."""
        mask = self._allowed(places, named)
        if district is not None:
            inside = districts == district
            mask = inside if mask is None else mask & inside
        return mask

    def _find_units(
        self, body: str, named: _Named, district: str | None
    ) -> tuple[list[PlaceUnit], str]:
        """Communities and grids whose name is the whole rest of the query, inside its places."""
        if not self._units:
            return [], ""
        level, key = _place_key(body)
        hits = list(self._unit_keys.get(("grid", body), []))
        note = ""
        if level == "community":
            found = self._unit_keys.get(("community", key))
            if found is None and key not in self._keys["community"]:
                resolved = self._resolve("community", key)
                if resolved is not None:
                    found = self._unit_keys.get(("community", resolved))
                    proper = self._place_names["community"][self._keys["community"][resolved]]
                    note = f"{body} → {proper}"
            hits += found or []
        if not hits:
            return [], ""
        districts = np.array([u.district_code for u in self._units], dtype=object)
        mask = self._within(self._unit_places, districts, named, district)
        units = [self._units[i] for i in dict.fromkeys(hits) if mask is None or mask[i]]
        units.sort(key=lambda u: (u.district_code or "", u.level, u.code))
        return units, note

    def _district_name(self, row: int) -> str:
        """The district of a building row as an answer names it: its name, else its code."""
        pid = int(self._row_places["district"][row])
        if pid >= 0:
            return self._place_names["district"][pid]
        return str(self._districts[row] or "?")

    # ------------------------------------------------------------ roads

    def _road_scores(self, road: str) -> dict[str, float]:
        """Score the known roads against the query's road part, 0-100.

        Two views, the better one counts: the characters (``fuzz.ratio``) and their
        pinyin syllables, scaled by 0.95. Pinyin input makes most typos homophones (中山洛 for
        中山路, 庄河接 for 庄河街), which characters alone cannot tell from another road
        (庄河路). The road part may still carry an unknown place name in front, so its
        tails are compared too, but only tails at least as long as the road: a shorter
        tail would reward a road for matching part of a name. A known road that the road
        part ends with scores 100 outright.
        """
        for known in self._roads:  # longest first
            if road.endswith(known):
                return {known: 100.0}
        syllables = _pinyin(road)
        lengths = sorted({len(road), *range(2, min(len(road), self._longest_road) + 1)})
        tails = [road[-k:] for k in lengths]
        if len(syllables) == len(road):
            spoken = [syllables[-k:] for k in lengths]
        else:  # letters or digits in the road part: no per-character pinyin
            spoken = [syllables] * len(lengths)
        chars = process.cdist(tails, self._roads, scorer=fuzz.ratio, workers=1)
        sounds = process.cdist(spoken, self._road_pinyin, scorer=fuzz.ratio, workers=1)
        scores = np.maximum(chars, 0.95 * sounds)
        usable = (np.array(lengths)[:, None] >= self._road_len[None, :]) | (
            np.array(lengths)[:, None] == len(road)
        )
        best = np.where(usable, scores, 0.0).max(axis=0)
        keep = np.flatnonzero(best >= max(40.0, float(best.max()) - 35.0))
        return {self._roads[i]: float(best[i]) for i in keep}

    # ------------------------------------------------------------ search

    def search(self, query: str, limit: int = 5, *, district: str | None = None) -> AddressAnswer:
        """Rank the buildings the query may mean; flag it when it does not single one out.

        ``district`` (a district code) narrows the search as naming the district would.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput(
                "the address is empty",
                field="address",
                fix="give at least a road and house number, e.g. 中山路123号2栋",
            )
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit", fix="use limit=5")
        body, removed = _strip_prefixes(_canonical(query), self._prefixes, self._roads)
        if removed and body in _LEVEL_WORDS:  # 光荣社区 + 居委会: one name, not a place and a rest
            body = removed.pop() + body
        named = self._named_places(removed)
        units, note = self._find_units(body, named, district)
        if units:
            return self._unit_answer(query, body, units[:limit], len(units), note)
        parsed = _parse_body(body, removed)
        normalized = parsed.building_key + parsed.rest if parsed.number is not None else parsed.road
        has_road = re.search(r"[\u4e00-\u9fff]{2}", parsed.road) is not None
        place_level = _place_key(body)[0]
        if parsed.number is None and place_level in ("community", "street", "district", "city"):
            where = f" in {'、'.join(named.said)}" if named.said else ""
            return AddressAnswer(
                query=query,
                normalized=normalized,
                reason=f"no community or grid named {body}{where}; give a road and house "
                "number, or the name of a community or grid",
            )
        if not has_road and (parsed.number is None or parsed.building is None):
            raise InvalidInput(
                f"{query!r} names no road and no building",
                field="address",
                fix="give a road and house number (中山路123号2栋), or a community or grid name",
            )
        allowed = self._within(self._row_places, self._districts, named, district)
        scored = self._score(parsed, allowed)
        scored.sort(key=lambda item: (-item[0], self._districts[item[1]] or "", self._ids[item[1]]))
        candidates = [self._candidate(row, score) for score, row, _ in scored[:limit]]
        best, ambiguous, reason = self._verdict(parsed, scored, candidates)
        if not candidates and allowed is not None:
            reason = self._elsewhere(parsed, named, district)
        elif named.unknown:
            unknown = "、".join(named.unknown)
            reason = f"{unknown} is no street or community gridmap knows; {reason}"
            best = None
        if named.corrected:
            reason = f"read {'、'.join(named.corrected)}; {reason}"
        return AddressAnswer(
            query=query,
            normalized=normalized,
            candidates=candidates,
            best=best,
            ambiguous=ambiguous,
            reason=reason,
        )

    def _candidate(self, row: int, score: float) -> Candidate:
        return Candidate(
            building_id=str(self._ids[row]),
            address=str(self._addresses[row]),
            grid_code=self._grids[row],
            score=round(score, 1),
            district_code=self._districts[row],
        )

    def _unit_answer(
        self, query: str, body: str, units: list[PlaceUnit], total: int, note: str
    ) -> AddressAnswer:
        """A community or grid named by the query: one is the answer, several must be chosen."""
        first = units[0]
        if total == 1:
            grids = f" with {len(first.grids)} grids" if first.level == "community" else ""
            reason = f"{first.name} is {first.level} {first.code}{grids}"
        else:
            districts = sorted({u.district_code or "?" for u in units})
            reason = (
                f"{total} communities or grids are named {body} (districts "
                f"{', '.join(districts)}); name the district, street or community"
            )
        if note:
            reason = f"read {note}; {reason}"
        return AddressAnswer(
            query=query, normalized=body, ambiguous=total > 1, reason=reason, units=units
        )

    def _elsewhere(self, parsed: ParsedAddress, named: _Named, district: str | None) -> str:
        """Nothing inside the named place: say so, and where such a building is instead."""
        if named.missing_district:
            loaded = "、".join(self._place_names["district"]) or "none with names"
            return f"no district named {named.missing_district} is loaded (loaded: {loaded})"
        inside = "、".join([*named.said, *([f"district {district}"] if district else [])])
        exact = [row for _, row, agrees in self._score(parsed, None) if agrees]
        what = parsed.building_key or parsed.road
        if not exact:
            return f"no building matches {what} in {inside}"
        places = sorted({self._district_name(row) for row in exact})
        return f"no building {what} in {inside}; there is one in {'、'.join(places[:3])}"

    def _score(
        self, parsed: ParsedAddress, allowed: npt.NDArray[np.bool_] | None
    ) -> list[tuple[float, int, bool]]:
        """Score the buildings the query may mean: (score, row, number and building agree).

        Buildings on roads far from the query's road are not candidates at all, nor are
        buildings outside the places the query names (``allowed``).
        """
        road_scores = self._road_scores(parsed.road) if parsed.road else {}
        weights = (_W_ROAD if parsed.road else 0.0) + (_W_NUMBER if parsed.number else 0.0)
        weights += _W_BUILDING if parsed.building else 0.0
        partial = 1.0 if parsed.number and parsed.building and parsed.road else _PARTIAL_FACTOR
        if weights == 0:
            return []
        out: list[tuple[float, int, bool]] = []

        def add(rows: Iterable[int], road_score: float | None, number_ok: bool) -> None:
            for row in rows:
                if allowed is not None and not allowed[row]:
                    continue
                points = 0.0
                if road_score is not None:
                    points += _W_ROAD * road_score / 100
                if parsed.number and number_ok:
                    points += _W_NUMBER
                building_ok = not parsed.building or (
                    self._parsed[row].building == parsed.building and number_ok
                )
                if parsed.building and building_ok:
                    points += _W_BUILDING
                score = 100 * points / weights * partial
                out.append((score, row, building_ok and (number_ok or not parsed.number)))

        if not parsed.road:
            if parsed.number:
                add(self._by_number.get(parsed.number, []), None, True)
            return out
        for road, road_score in road_scores.items():
            numbers = self._by_road[road]
            if parsed.number is None:
                rows = (r for by_b in numbers.values() for rs in by_b.values() for r in rs)
                add(rows, road_score, False)
            elif parsed.number in numbers:
                add((r for rows in numbers[parsed.number].values() for r in rows), road_score, True)
            elif road_score >= 80:
                # No such number on a road that is surely meant: offer its nearest numbers,
                # scored without the number, so the caller sees what exists.
                wanted = int(parsed.number)
                near = sorted(numbers, key=lambda n: abs(int(n) - wanted))[:2]
                rows = (r for n in near for by_b in numbers[n].values() for r in by_b)
                add(rows, road_score, False)
        return out

    def _verdict(
        self,
        parsed: ParsedAddress,
        scored: list[tuple[float, int, bool]],
        candidates: list[Candidate],
    ) -> tuple[Candidate | None, bool, str]:
        """Decide between one answer, an ambiguous list and no answer, and say why.

        The top candidate is offered only if its number and building are the ones asked
        for: a different building number is a different building, however close.
        """
        if not candidates:
            what = parsed.building_key or parsed.road
            return None, False, f"no building matches {what}"
        top = candidates[0]
        if not scored[0][2]:
            return None, False, f"no building {parsed.building_key}; closest is {top.address}"
        if top.score < self.min_score:
            return None, False, f"no building matches well; closest is {top.address} ({top.score})"
        close = [c for c in candidates[1:] if top.score - c.score < self.margin]
        if not close:
            return top, False, f"{top.address} matches ({top.score})"
        tied = [top, *close]
        tied_rows = [row for score, row, _ in scored if scored[0][0] - score < self.margin]
        n_tied = len(tied_rows)
        districts = sorted({self._district_name(row) for row in tied_rows})
        if len(districts) > 1 and len({c.address for c in tied}) == 1:
            reason = (
                f"{top.address} is in {len(districts)} districts ({'、'.join(districts)}); "
                "name the district"
            )
        elif parsed.number is None:
            reason = f"{len(scored)} buildings match; add the house number (号)"
        elif parsed.building is None and len({_road_of(c.address) for c in tied}) == 1:
            reason = (
                f"{n_tied} buildings at {_road_of(top.address)}{parsed.number}号 match "
                "equally; add the building number (栋)"
            )
        elif not parsed.road:
            reason = f"{n_tied} buildings have {parsed.building_key}; add the road name"
        else:
            listed = "、".join(c.address for c in tied[:3])
            reason = f"{listed} match almost equally; check the road name"
        return None, True, reason


def _optional_text(frame: pd.DataFrame, column: str) -> npt.NDArray[np.object_]:
    """A column as str-or-None per row (all None when the frame lacks it)."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    return np.array([None if pd.isna(v) else str(v) for v in frame[column]], dtype=object)


def _text_or(value: object, default: str | None = None) -> str | None:
    if value is None or (not isinstance(value, list | tuple | np.ndarray) and pd.isna(value)):
        return default
    return str(value)


def _listed(value: object) -> list[object]:
    """A list-like cell (a list, a tuple, a numpy or PostgreSQL array); anything else: none."""
    if isinstance(value, list | tuple | np.ndarray):
        return list(value)
    return []


_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))
_SYLLABLE_CODES: dict[str, str] = {}


def _pinyin(text: str) -> str:
    """Toneless pinyin as one private-use character per syllable, for ratio by syllable.

    Comparing syllables, not letters, keeps 庄河 (zhuang he) away from 黄河 (huang he),
    which differ by a letter but are different words. zh/z, ch/c, sh/s and -ng/-n are
    merged, the usual "fuzzy pinyin" (模糊音) of input methods.
    """
    from pypinyin import Style, lazy_pinyin  # half a second to import: only when matching

    out = []
    for syllable in lazy_pinyin(text, style=Style.NORMAL):
        for long, short in _FUZZY_INITIALS:
            if syllable.startswith(long):
                syllable = short + syllable[len(long) :]
        syllable = syllable.removesuffix("g") if syllable.endswith("ng") else syllable
        code = _SYLLABLE_CODES.setdefault(syllable, chr(0xE000 + len(_SYLLABLE_CODES) % 6400))
        out.append(code)
    return "".join(out)


def _road_of(address: str) -> str:
    """The road part of a stored building address."""
    return parse_address(address).road


#: (district code, building id) -> (lon, lat) of the building.
Places = dict[tuple[str | None, str], tuple[float, float]]


def answer_fields(query: str, answer: AddressAnswer, where: Places) -> dict[str, Any]:
    """The answer of ``GET /lookup?address=``; its field names are the API's."""

    def shown(c: Candidate) -> dict[str, Any]:
        lon, lat = where[(c.district_code, c.building_id)]
        return {
            "building_id": c.building_id,
            "address": c.address,
            "score": round(float(c.score), 1),
            "grid_code": c.grid_code,
            "district_code": c.district_code,
            "lon": lon,
            "lat": lat,
        }

    return {
        "query": query,
        "normalized": answer.normalized,
        "ambiguous": answer.ambiguous,
        "reason": answer.reason or None,
        "best": shown(answer.best) if answer.best else None,
        "candidates": [shown(c) for c in answer.candidates],
        "units": [
            {
                "level": u.level,
                "code": u.code,
                "name": u.name,
                "district_code": u.district_code,
                "street_code": u.street_code,
                "community_code": u.community_code,
                "grids": list(u.grids) if u.level == "community" else None,
            }
            for u in answer.units
        ],
    }
