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

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from geo.errors import InvalidInput

__all__ = [
    "AddressAnswer",
    "AddressIndex",
    "Candidate",
    "ParsedAddress",
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
_NUMBER_ENDS = "号|栋|幢|座|楼|单元|门|室|层|户|-|#"
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

    Stops at a known road: the generic rules would cut "西市街" to "街" otherwise.
    """
    removed: list[str] = []
    changed = True
    while changed and text:
        if any(text.startswith(road) for road in roads):
            break
        changed = False
        for name in names:
            if name and text.startswith(name) and len(text) > len(name):
                removed.append(name)
                text, changed = text[len(name) :], True
                break
        if changed:
            continue
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
    out = {_JUNK.sub("", unicodedata.normalize("NFKC", str(name))) for name in names}
    return sorted(out - {""}, key=len, reverse=True)


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
    canonical = _canonical(text)
    body, removed = _strip_prefixes(canonical, prefixes, roads)
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


# ---------------------------------------------------------------- matching


@dataclass(frozen=True)
class Candidate:
    """One building that may be the one meant, with a 0-100 score."""

    building_id: str
    address: str
    grid_code: str | None
    score: float


@dataclass(frozen=True)
class AddressAnswer:
    """Ranked candidates and whether the query singles one out.

    ``best`` is set only when one candidate is clearly ahead and good enough; when
    ``ambiguous`` is true the caller must show the candidates and ask, and ``reason``
    says what is missing.
    """

    query: str
    normalized: str
    candidates: list[Candidate] = field(default_factory=list)
    best: Candidate | None = None
    ambiguous: bool = False
    reason: str = ""


# Score weights: the road is fuzzy, number and building are exact.
_W_ROAD = 55.0
_W_NUMBER = 25.0
_W_BUILDING = 20.0
_PARTIAL_FACTOR = 0.95  # a query that omits a part is a little less certain, even if unique


class AddressIndex:
    """Buildings indexed by road, number and building for fast, structured lookups.

    Parameters
    ----------
    buildings
        Columns ``building_id``, ``address`` (road + number + building, e.g.
        "中山路123号2栋") and ``grid_code``; optional ``community_name``,
        ``street_name``, ``district_name``, ``city_name`` feed prefix stripping and let
        a query naming a community prefer that community's buildings.
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
        n = len(buildings)
        self._ids = buildings["building_id"].astype(str).to_numpy()
        self._addresses = buildings["address"].astype(str).to_numpy()
        grid = buildings["grid_code"] if "grid_code" in buildings else pd.Series([None] * n)
        self._grids = np.array([None if pd.isna(g) else str(g) for g in grid], dtype=object)
        self._areas: list[frozenset[str]] = [frozenset()] * n
        area_cols = [c for c in ("community_name", "street_name") if c in buildings]
        if area_cols:
            values = buildings[area_cols].astype("string").fillna("").to_numpy()
            self._areas = [frozenset(_prefix_names(v)) for v in values]
        place_cols = [
            c
            for c in ("community_name", "street_name", "district_name", "city_name")
            if c in buildings
        ]
        places = {str(v) for c in place_cols for v in buildings[c].dropna().unique()}
        self._area_names = frozenset(_prefix_names(places))
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

    def search(self, query: str, limit: int = 5) -> AddressAnswer:
        """Rank the buildings the query may mean; flag it when it does not single one out."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput(
                "the address is empty",
                field="address",
                fix="give at least a road and house number, e.g. 中山路123号2栋",
            )
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit", fix="use limit=5")
        parsed = _parse(query, self._prefixes, self._roads)
        normalized = parsed.building_key + parsed.rest if parsed.number is not None else parsed.road
        has_road = re.search(r"[\u4e00-\u9fff]{2}", parsed.road) is not None
        if not has_road and (parsed.number is None or parsed.building is None):
            raise InvalidInput(
                f"{query!r} names no road and no building",
                field="address",
                fix="give a road and house number, e.g. 中山路123号2栋",
            )
        named_areas = self._area_names.intersection(parsed.prefix)
        scored = self._score(parsed, named_areas)
        scored.sort(key=lambda item: (-item[0], self._ids[item[1]]))
        candidates = [
            Candidate(
                building_id=str(self._ids[row]),
                address=str(self._addresses[row]),
                grid_code=self._grids[row],
                score=round(score, 1),
            )
            for score, row, _ in scored[:limit]
        ]
        best, ambiguous, reason = self._verdict(parsed, scored, candidates)
        return AddressAnswer(
            query=query,
            normalized=normalized,
            candidates=candidates,
            best=best,
            ambiguous=ambiguous,
            reason=reason,
        )

    def _score(
        self, parsed: ParsedAddress, named_areas: frozenset[str]
    ) -> list[tuple[float, int, bool]]:
        """Score the buildings the query may mean: (score, row, number and building agree).

        Buildings on roads far from the query's road are not candidates at all.
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
                if named_areas and not named_areas & self._areas[row]:
                    score -= 10.0  # the query names another community or street
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
        n_tied = sum(1 for score, _, _ in scored if scored[0][0] - score < self.margin)
        if parsed.number is None:
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
