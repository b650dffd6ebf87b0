"""Reading a district from contract files and validating it: types, codes, hierarchy, tilings.

Validation collects every problem before refusing, so a planner fixes a file once, not
once per error. ``repair=True`` fixes what is safe to fix (invalid rings via make_valid,
slivers below a tolerance) and reports each change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta, timezone
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo.crs import metric_crs_for_bounds
from geo.errors import DataRefused, Problem, where
from geo.io import (
    LAYERS,
    InputLimits,
    format_of,
    layer_from_stem,
    list_layers,
    read_layer,
    reproject_layer,
)
from geo.plans import polygonal

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "district": ("code", "name"),
    "streets": ("code", "name", "district_code"),
    "communities": ("code", "name", "street_code"),
    "grids": ("code", "community_code"),
    "buildings": ("building_id", "address", "households"),
    "reports": ("report_id", "category", "reported_at"),
    "roads": ("name",),
}
GEOMETRY_TYPES: dict[str, tuple[str, ...]] = {
    "district": ("Polygon", "MultiPolygon"),
    "streets": ("Polygon", "MultiPolygon"),
    "communities": ("Polygon", "MultiPolygon"),
    "grids": ("Polygon", "MultiPolygon"),
    "buildings": ("Point",),
    "reports": ("Point",),
    "roads": ("LineString", "MultiLineString"),
}
OPTIONAL_LAYERS = ("reports", "roads")
CODE_COLUMN = {
    "district": "code",
    "streets": "code",
    "communities": "code",
    "grids": "code",
    "buildings": "building_id",
    "reports": "report_id",
}

#: Gaps or overlaps smaller than this are slivers that ``--repair`` may absorb.
SLIVER_M2 = 1.0
#: Below this, differences are floating-point noise, not gaps (about 1 cm²).
NOISE_M2 = 1e-4
#: Times written without an offset are China time. A fixed +08:00, not Asia/Shanghai: China
#: kept summer time in 1986-1991, and the contract says +08:00.
CHINA_TIME = timezone(timedelta(hours=8))
#: Fixes that say more than the generic one, by (layer, column).
FIXES = {
    ("reports", "status"): "use a short status word such as reported, handling or closed; "
    "put prose in description",
}

Progress = Callable[[str], None]


@dataclass
class DistrictData:
    """The seven contract layers of one district, in EPSG:4326."""

    district: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    reports: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return str(self.district["code"].iloc[0])

    @property
    def name(self) -> str:
        return str(self.district["name"].iloc[0])

    def layer(self, name: str) -> gpd.GeoDataFrame:
        frame: gpd.GeoDataFrame = getattr(self, name)
        return frame


@dataclass(frozen=True)
class Repair:
    """One change ``--repair`` made, reported to the planner."""

    layer: str
    feature: str
    action: str

    def __str__(self) -> str:
        return f"layer {self.layer}, feature {self.feature}: {self.action}"


@dataclass(frozen=True)
class ColumnRule:
    """What one stored column accepts (``geo.store.queries.column_rules`` reads the models)."""

    column: str
    kind: str  # "text", "integer", "number" or "time"
    required: bool
    max_chars: int | None = None
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class LayerRules:
    """The stored columns of a layer and the column sets that must be unique within it."""

    columns: tuple[ColumnRule, ...]
    unique: tuple[tuple[str, ...], ...]


@cache
def stored_rules() -> dict[str, LayerRules]:
    """The store's column rules; the checks ask the models so that they cannot drift apart."""
    from geo.store.queries import column_rules

    return column_rules()


def empty_layer(name: str) -> gpd.GeoDataFrame:
    columns = {c: pd.Series(dtype=object) for c in REQUIRED_COLUMNS[name]}
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=4326), crs=4326)


def read_district(paths: Sequence[Path], limits: InputLimits | None = None) -> DistrictData:
    """Read the contract layers from GeoPackages, per-layer files or folders of them."""
    found: dict[str, tuple[Path, str | None]] = {}
    problems: list[Problem] = []
    for path in _expand(paths):
        try:
            fmt = format_of(path)
        except DataRefused as exc:
            problems.extend(exc.problems)
            continue
        if not path.exists():
            problems.append(Problem("file not found", file=str(path), fix="check the path"))
            continue
        if fmt == "gpkg":
            try:
                names = list_layers(path, limits)
            except DataRefused as exc:
                problems.extend(exc.problems)
                continue
            for name in names:
                if name in LAYERS:
                    found.setdefault(name, (path, name))
        else:
            layer = layer_from_stem(path)
            if layer not in LAYERS:
                problems.append(
                    Problem(
                        f"cannot tell which layer {path.name!r} holds",
                        file=str(path),
                        fix="name per-layer files after their layer: "
                        + ", ".join(f"{n}.geojson" for n in LAYERS),
                    )
                )
                continue
            found[layer] = (path, None)
    if problems:  # a missing or unreadable file explains the missing layers: say it alone
        raise DataRefused(problems=problems)
    for name in LAYERS:
        if name not in found and name not in OPTIONAL_LAYERS:
            problems.append(
                Problem(
                    f"required layer {name!r} is missing",
                    layer=name,
                    file=", ".join(str(p) for p in paths),
                    fix=f"add a {name!r} layer (GeoPackage layer or {name}.geojson)",
                )
            )
    if problems:
        raise DataRefused(problems=problems)
    layers: dict[str, gpd.GeoDataFrame] = {}
    for name in LAYERS:
        if name not in found:
            layers[name] = empty_layer(name)
            continue
        source, gpkg_layer = found[name]
        try:  # every layer is read, so that one refusal lists the problems of all of them
            with where(layer=name, file=str(source)):
                frame = read_layer(source, gpkg_layer, limits)
                layers[name] = reproject_layer(frame, file=str(source), layer=name)
        except DataRefused as exc:
            problems.extend(exc.problems)
    if problems:
        raise DataRefused(problems=problems)
    return DistrictData(**layers, sources={k: str(v[0]) for k, v in found.items()})


def _expand(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES))
        else:
            out.append(path)
    return out


_SUFFIXES = {".gpkg", ".geojson", ".json", ".parquet", ".geoparquet", ".csv"}


# --- validation ---------------------------------------------------------------------------


def validate_district(
    data: DistrictData,
    *,
    repair: bool = False,
    sliver_m2: float = SLIVER_M2,
    progress: Progress | None = None,
) -> tuple[DistrictData, list[Repair]]:
    """Check every rule of the contract; return the (repaired) data or refuse with all problems.

    Everything the store would refuse is checked here (``--dry-run`` runs exactly this): the
    columns' NOT NULL, type, length, range and uniqueness rules come from the models.
    """
    known = len(data.district) == 1 and "code" in data.district.columns
    code = str(data.district["code"].iat[0]) if known else None
    with where(district=code):
        return _validate(data, repair, sliver_m2, progress)


def _validate(
    data: DistrictData, repair: bool, sliver_m2: float, progress: Progress | None
) -> tuple[DistrictData, list[Repair]]:
    say = progress or (lambda _msg: None)
    problems: list[Problem] = []
    repairs: list[Repair] = []
    layers: dict[str, gpd.GeoDataFrame] = {}
    say("checking columns, values and geometries")
    complete = True
    for name in LAYERS:
        source = data.sources.get(name)
        with where(layer=name):
            frame = _normalise_columns(data.layer(name), name, source, problems)
            if all(c in frame.columns for c in REQUIRED_COLUMNS[name]):
                _check_values(frame, name, source, problems)
            else:
                complete = False
            frame = _check_geometries(frame, name, source, repair, problems, repairs)
        layers[name] = frame
    data = replace(data, **layers)
    if len(data.district) != 1:
        problems.append(
            Problem(
                f"the district layer has {len(data.district)} features; it must have exactly one",
                layer="district",
                fix="dissolve the district into one (Multi)Polygon feature",
            )
        )
    elif complete:
        say("checking the hierarchy")
        _check_parents(data, problems)
        _check_attributes(data, problems)
    if problems:
        raise DataRefused(problems=problems)
    say("checking that each level tiles its parent")
    metric = metric_crs_for_bounds(tuple(data.district.total_bounds))
    tiled: dict[str, gpd.GeoDataFrame] = {}
    for child, parent, key in (
        ("streets", "district", "district_code"),
        ("communities", "streets", "street_code"),
        ("grids", "communities", "community_code"),
    ):
        children = tiled.get(child, data.layer(child))
        parents = tiled.get(parent, data.layer(parent))
        fixed = check_tiling(
            children,
            parents,
            key,
            child,
            parent,
            metric,
            repair,
            sliver_m2,
            problems,
            repairs,
            source=data.sources.get(child),
        )
        tiled[child] = fixed
    data = replace(data, **tiled)
    say("checking buildings and reports")
    _check_points_inside(data, metric, problems)
    if problems:
        raise DataRefused(problems=problems)
    return data, repairs


def _normalise_columns(
    frame: gpd.GeoDataFrame, name: str, source: str | None, problems: list[Problem]
) -> gpd.GeoDataFrame:
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    for column in missing:
        problems.append(
            Problem(
                f"required column {column!r} is missing",
                file=source,
                layer=name,
                field=column,
                fix=f"add the {column!r} column (columns of {name}: "
                + ", ".join(REQUIRED_COLUMNS[name])
                + ")",
            )
        )
    if missing:
        return frame
    frame = frame.reset_index(drop=True)
    for column in ("code", "district_code", "street_code", "community_code", "building_id"):
        if column in frame.columns:
            frame[column] = _as_code(frame[column])
    if "report_id" in frame.columns:
        frame["report_id"] = _as_code(frame["report_id"])
    return frame


def _check_values(
    frame: gpd.GeoDataFrame, name: str, source: str | None, problems: list[Problem]
) -> None:
    """Every value the store would refuse: the NOT NULL, type, length, range and uniqueness
    rules of its table (``stored_rules``), and text PostgreSQL cannot hold (U+0000)."""
    rules = stored_rules()[name]

    def add(i: int, reason: str, column: str, fix: str) -> None:
        problems.append(
            Problem(
                reason,
                file=source,
                layer=name,
                feature=_feature_label(frame, name, i),
                field=column,
                fix=FIXES.get((name, column), fix),
            )
        )

    texts = {c: _arrow_text(frame[c]) for c in frame.columns if c != frame.geometry.name}
    blanks: dict[str, np.ndarray] = {}
    for rule in rules.columns:
        if rule.column not in frame.columns:
            if rule.required:  # pragma: no cover - required columns are checked first
                raise AssertionError(rule.column)
            continue
        raw = frame[rule.column]
        blank = _blank(raw, texts[rule.column])
        blanks[rule.column] = blank
        column = rule.column
        if rule.required:
            for i in np.flatnonzero(blank).tolist():
                add(
                    i,
                    f"{column} is empty",
                    column,
                    f"fill in the {column} of every {name} feature",
                )
        if rule.kind in ("integer", "number"):
            for i, reason, fix in _number_problems(raw, blank, rule):
                add(i, reason, column, fix)
        elif rule.kind == "time":
            parsed = parse_times(raw)
            for i in np.flatnonzero(parsed.isna().to_numpy() & ~blank).tolist():
                add(
                    i,
                    f"{column} {_shown(raw.iat[i])} is not an ISO 8601 time",
                    column,
                    "write times as ISO 8601, e.g. 2025-03-01T08:30:00+08:00",
                )
        elif rule.max_chars is not None:
            long = ~blank & (raw.astype(str).str.len() > rule.max_chars).to_numpy()
            for i in np.flatnonzero(long).tolist():
                add(
                    i,
                    f"{column} {_shown(raw.iat[i])} is longer than {rule.max_chars} characters",
                    column,
                    f"shorten it to at most {rule.max_chars} characters",
                )
    for key in rules.unique:
        columns = list(key)
        absent = np.logical_or.reduce([blanks[c] for c in columns])
        values = frame[columns].astype(str).agg(" / ".join, axis=1) if len(key) > 1 else None
        series = values if values is not None else frame[columns[0]]
        label = " / ".join(columns)
        dup = series.duplicated(keep=False).to_numpy() & ~absent
        for value in sorted(set(series[dup])):
            rows = np.flatnonzero((series == value).to_numpy() & ~absent).tolist()
            problems.append(
                Problem(
                    f"duplicate {label} {value!r} (features {_sample(rows)})",
                    file=source,
                    layer=name,
                    feature=str(value),
                    field=label,
                    fix=f"make {label} unique within the {name} layer",
                )
            )
    for column, text in texts.items():
        for i in np.flatnonzero(_unstorable(frame[column], text)).tolist():
            add(
                int(i),
                f"{column} {_shown(frame[column].iat[i])} holds a NUL character or broken "
                "Unicode, which PostgreSQL cannot store",
                str(column),
                "remove the control character (U+0000) or re-save the file as UTF-8",
            )


#: Text PostgreSQL refuses: the NUL character, and lone surrogates (not valid UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(values: pd.Series, text: pd.Series | None) -> np.ndarray:
    """Which values hold text PostgreSQL cannot store (in a column or in ``attrs``); ``text``
    is ``_arrow_text(values)``."""
    if text is not None:  # valid UTF-8 by construction: only NUL is left to find
        return text.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)
    if values.dtype != object:
        return np.zeros(len(values), dtype=bool)
    return values.map(lambda v: isinstance(v, str) and _UNSTORABLE.search(v) is not None).to_numpy(
        dtype=bool
    )


def _blank(values: pd.Series, text: pd.Series | None = None) -> np.ndarray:
    """Missing, NaN/NaT or only spaces: what the store would take as NULL (COPY does)."""
    missing = values.isna().to_numpy(dtype=bool)
    text = text if text is not None else _arrow_text(values)
    if text is not None:
        return missing | (text.str.strip() == "").fillna(False).to_numpy(dtype=bool)
    if values.dtype != object:
        return missing
    spaces = values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    return missing | spaces


def _arrow_text(values: pd.Series) -> pd.Series | None:
    """A text column as Arrow strings (vectorised checks on 1M reports take milliseconds, a
    Python loop seconds); None for other columns and for text that is not valid UTF-8."""
    if isinstance(values.dtype, pd.StringDtype):
        return values
    if values.dtype != object:
        return None
    try:
        return values.astype("string")
    except (UnicodeEncodeError, ValueError, TypeError):
        return None


def _number_problems(
    raw: pd.Series, blank: np.ndarray, rule: ColumnRule
) -> list[tuple[int, str, str]]:
    """(row, reason, fix) for values an integer or float column of the store would refuse."""
    column = rule.column
    values = pd.to_numeric(raw.where(~blank), errors="coerce")
    number = values.notna().to_numpy()
    finite = number & np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    checks: list[tuple[np.ndarray, str, str]] = [
        (~blank & ~number, "is not a number", "give a number"),
        (number & ~finite, "is not a finite number", "give a number"),
    ]
    if rule.kind == "integer":
        whole = finite & (values == values.round()).to_numpy()
        checks.append((finite & ~whole, "is not a whole number", "give a whole number"))
    low, high = rule.low, rule.high
    narrow = low is not None and high is not None and high - low < 1000  # a CHECK's range
    fix = f"{column} must be between {low} and {high}" if narrow else None
    if low is not None:
        below = finite & (values < low).to_numpy()
        if low == 0:
            checks.append((below, "is negative", f"{column} must be zero or more"))
        else:
            checks.append((below, f"is under {low:,}", fix or f"check the {column} value"))
    if high is not None:
        above = finite & (values > high).to_numpy()
        checks.append((above, f"is over {high:,}", fix or f"check the {column} value (a typo?)"))
    return [
        (i, f"{column} {_shown_number(raw.iat[i], bool(number[i]))} {reason}", how)
        for mask, reason, how in checks
        for i in np.flatnonzero(mask).tolist()
    ]


def _shown_number(value: object, parsed: bool) -> str:
    """A number read from text (CSV) is shown as the number it is, not as quoted text."""
    return value.strip() if parsed and isinstance(value, str) else _shown(value)


def _sample(rows: list[int], shown: int = 10) -> str:
    """``[0, 1]``, or the first ten rows and how many more."""
    if len(rows) <= shown:
        return str(rows)
    return f"{rows[:shown]} and {len(rows) - shown} more"


def _as_code(values: pd.Series) -> pd.Series:
    """Codes are strings; integers written by careless tools become their decimal text."""

    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return values.map(one).astype(object)


def _feature_label(frame: gpd.GeoDataFrame, name: str, i: int) -> str:
    key = CODE_COLUMN.get(name)
    if key and key in frame.columns and _filled(frame[key].iat[i]):
        return str(frame[key].iat[i])
    if "name" in frame.columns and _filled(frame["name"].iat[i]):
        return f"#{i} ({frame['name'].iat[i]})"
    return f"#{i}"


def _filled(value: object) -> bool:
    return not (value is None or (pd.api.types.is_scalar(value) and pd.isna(value))) and bool(
        str(value).strip()
    )


def _check_geometries(
    frame: gpd.GeoDataFrame,
    name: str,
    source: str | None,
    repair: bool,
    problems: list[Problem],
    repairs: list[Repair],
) -> gpd.GeoDataFrame:
    if frame.empty:
        return frame
    geoms = frame.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for i in np.flatnonzero(missing).tolist():
        problems.append(
            Problem(
                "geometry is missing or empty",
                file=source,
                layer=name,
                feature=_feature_label(frame, name, i),
                fix="give the feature a geometry or remove it",
            )
        )
    allowed = GEOMETRY_TYPES[name]
    types = shapely.get_type_id(geoms)
    type_names = np.array(
        [
            "Missing",
            "Point",
            "LineString",
            "LinearRing",
            "Polygon",
            "MultiPoint",
            "MultiLineString",
            "MultiPolygon",
            "GeometryCollection",
        ]
    )
    wrong = ~missing & ~np.isin(type_names[types + 1], allowed)
    for i in np.flatnonzero(wrong).tolist():
        problems.append(
            Problem(
                f"geometry is a {type_names[types[i] + 1]}, expected {' or '.join(allowed)}",
                file=source,
                layer=name,
                feature=_feature_label(frame, name, i),
                fix=f"the {name} layer holds {' / '.join(allowed)} geometries",
            )
        )
    if shapely.has_z(geoms[~missing]).any():
        geoms = shapely.force_2d(geoms)
    invalid = ~missing & ~wrong & ~shapely.is_valid(geoms)
    polygon_layer = name in ("district", "streets", "communities", "grids")
    for i in np.flatnonzero(invalid).tolist():
        label = _feature_label(frame, name, i)
        reason = shapely.is_valid_reason(geoms[i])
        if repair and polygon_layer:
            fixed = polygonal(shapely.make_valid(geoms[i]))
            if not fixed.is_empty:
                geoms[i] = fixed
                repairs.append(Repair(name, label, f"made valid ({reason})"))
                continue
        problems.append(
            Problem(
                f"invalid geometry: {reason}",
                file=source,
                layer=name,
                feature=label,
                fix="run with --repair to apply make_valid, or fix the geometry in a GIS",
            )
        )
    frame = frame.copy()
    frame[frame.geometry.name] = geoms
    if polygon_layer:
        frame[frame.geometry.name] = [
            shapely.multipolygons([g]) if g is not None and g.geom_type == "Polygon" else g
            for g in frame.geometry.to_numpy()
        ]
    elif name == "roads":
        frame[frame.geometry.name] = [
            shapely.multilinestrings([g]) if g is not None and g.geom_type == "LineString" else g
            for g in frame.geometry.to_numpy()
        ]
    return frame


def _check_parents(data: DistrictData, problems: list[Problem]) -> None:
    district_code = data.code
    for child, parent, key in (
        ("streets", "district", "district_code"),
        ("communities", "streets", "street_code"),
        ("grids", "communities", "community_code"),
    ):
        frame = data.layer(child)
        known = set(data.layer(parent)["code"])
        orphans = ~frame[key].isin(known)
        for i in np.flatnonzero(orphans.to_numpy()).tolist():
            problems.append(
                Problem(
                    f"{key} {frame[key].iat[i]!r} names no feature of the {parent} layer"
                    + (f" (district is {district_code!r})" if parent == "district" else ""),
                    file=data.sources.get(child),
                    layer=child,
                    feature=_feature_label(frame, child, i),
                    field=key,
                    fix=f"use an existing {parent} code or add the missing {parent} feature",
                )
            )


def _check_attributes(data: DistrictData, problems: list[Problem]) -> None:
    """Rules of the contract beyond the store's: each building has its own address.

    Two buildings with one address cannot be told apart by an address lookup.
    """
    buildings = data.buildings
    address = buildings["address"].map(lambda v: v.strip() if isinstance(v, str) else v)
    dup = address.duplicated(keep=False).to_numpy() & ~_blank(buildings["address"])
    for value in sorted(set(address[dup])):
        rows = np.flatnonzero((address == value).to_numpy()).tolist()
        labels = [_feature_label(buildings, "buildings", i) for i in rows]
        problems.append(
            Problem(
                f"duplicate address {value!r} (buildings {', '.join(_sample_labels(labels))})",
                file=data.sources.get("buildings"),
                layer="buildings",
                feature=labels[0],
                field="address",
                fix="give each building its own address (add its 栋 or 单元), "
                "or remove the duplicate",
            )
        )


def _sample_labels(labels: list[str], shown: int = 10) -> list[str]:
    return labels if len(labels) <= shown else [*labels[:shown], f"{len(labels) - shown} more"]


def _shown(value: object) -> str:
    """A value as a planner wrote it: strings quoted, numbers plain (not ``np.int64(5)``)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def parse_times(values: pd.Series) -> pd.Series:
    """ISO 8601 text to UTC timestamps (NaT where empty or not a time).

    A value without an offset is China time (+08:00, ``CHINA_TIME``); values with and without
    offsets may be mixed in one column.
    """
    text = values.astype("string").str.strip()
    text = text.mask(text == "")
    try:  # one pass when the column is uniform (all with an offset, or all without)
        uniform = pd.to_datetime(text, errors="coerce", format="ISO8601")
    except ValueError:  # pandas refuses to mix offsets (or naive and aware) without utc=True
        uniform = None
    if uniform is not None and isinstance(uniform.dtype, pd.DatetimeTZDtype):
        return uniform.dt.tz_convert("UTC")
    if uniform is not None and uniform.dtype.kind == "M":
        return uniform.dt.tz_localize(CHINA_TIME).dt.tz_convert("UTC")
    aware = _has_offset(text)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        out[aware] = pd.to_datetime(text[aware], errors="coerce", utc=True, format="ISO8601")
    naive = text.notna().to_numpy() & ~aware
    if naive.any():
        local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
        out[naive] = local.dt.tz_localize(CHINA_TIME).dt.tz_convert("UTC")
    return out


def naive_times(data: DistrictData) -> int:
    """How many report times had no offset and were taken as +08:00 (the summary says so)."""
    reports = data.reports
    columns = [r.column for r in stored_rules()["reports"].columns if r.kind == "time"]
    total = 0
    for column in columns:
        if column in reports.columns:
            text = reports[column].astype("string").str.strip()
            text = text.mask(text == "")
            total += int((text.notna().to_numpy() & ~_has_offset(text)).sum())
    return total


#: An offset after a time of day: Z, ±hh, ±hhmm or ±hh:mm (a date alone has none). Written
#: with [0-9] and no \s, so that pandas runs it in Arrow (RE2), not value by value in Python.
_OFFSET = r"[T ][0-9]{2}(?::?[0-9]{2}){0,2}(?:[.,][0-9]+)? *(?:[zZ]|[+-][0-9]{2}(?::?[0-9]{2})?)$"


def _has_offset(text: pd.Series) -> np.ndarray:
    return text.str.contains(_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool)


# --- tilings ------------------------------------------------------------------------------


def check_tiling(
    children: gpd.GeoDataFrame,
    parents: gpd.GeoDataFrame,
    key: str,
    child_layer: str,
    parent_layer: str,
    metric: CRS,
    repair: bool,
    sliver_m2: float,
    problems: list[Problem],
    repairs: list[Repair],
    source: str | None = None,
) -> gpd.GeoDataFrame:
    """Each parent's children must cover it exactly: no overlap, no gap, nothing outside.

    Overlay runs in EPSG:4326, where shared edges are stored and therefore exact (projecting
    first would bend long edges away from vertices that lie on them); only the pieces found
    are projected to ``metric`` to measure them in m². With ``repair``, slivers below
    ``sliver_m2`` are absorbed (overlaps go to the smaller code, gaps to the neighbour with
    the longest shared edge, parts outside the parent are clipped).
    """
    area_m2 = _area_measure(metric)
    out_geoms = children.geometry.to_numpy().copy()
    child_geoms = children.geometry.to_numpy()
    child_codes = children["code"].to_numpy()
    changed = False
    for p_idx in range(len(parents)):
        p_code = parents["code"].iat[p_idx]
        parent_geom = parents.geometry.iat[p_idx]
        rows = np.flatnonzero((children[key] == p_code).to_numpy())
        where = f"{parent_layer} {p_code}"
        if len(rows) == 0:
            problems.append(
                Problem(
                    f"{where} has no {child_layer}",
                    file=source,
                    layer=child_layer,
                    feature=str(p_code),
                    fix=f"add {child_layer} that cover {where}",
                )
            )
            continue
        findings = _tiling_findings(child_geoms[rows], child_codes[rows], parent_geom, area_m2)
        fixable = all(area < sliver_m2 for _, _, area, _ in findings)
        if findings and repair and fixable:
            fixed = _repair_tiling(child_geoms[rows], child_codes[rows], parent_geom)
            for j, row in enumerate(rows):
                out_geoms[row] = as_multipolygon(fixed[j])
            for kind, code, area, _point in findings:
                repairs.append(
                    Repair(
                        child_layer,
                        str(code) if code is not None else where,
                        f"absorbed a {area:.3f} m² {kind} in {where}",
                    )
                )
            changed = True
            continue
        for kind, code, area, point in findings:
            hint = (
                "run with --repair to absorb slivers"
                if area < sliver_m2
                else f"redraw the {child_layer} so they tile {where} exactly"
            )
            problems.append(
                Problem(
                    f"{kind} of {area:,.2f} m² in {where} near ({point.x:.6f}, {point.y:.6f})",
                    file=source,
                    layer=child_layer,
                    feature=str(code) if code is not None else where,
                    fix=hint,
                )
            )
    if not changed:
        return children
    out = children.copy()
    out[out.geometry.name] = out_geoms
    return out


def _area_measure(metric: CRS) -> Callable[[shapely.Geometry], float]:
    """Area in m² of a lon/lat geometry, by the ellipsoid's local scale at the piece.

    Edges are straight in lon/lat, so a sliver that is degenerate there (three vertices on
    one parallel, off by 1e-14°) must measure ~0. Projecting only its vertices to UTM
    would bend the parallel and report tens of m² of "gap" after any reprojection.
    ``metric`` is kept for the signature; pieces are small, so the local scale is exact
    to well under 1 %.
    """
    del metric
    a, f = 6378137.0, 1 / 298.257223563  # WGS 84
    e2 = f * (2 - f)
    rad = np.pi / 180.0

    def measure(geom: shapely.Geometry) -> float:
        if geom is None or shapely.is_empty(geom):
            return 0.0
        lat = float(shapely.centroid(geom).y) * rad
        w = 1.0 - e2 * np.sin(lat) ** 2
        m_per_deg_lat = rad * a * (1 - e2) / w**1.5
        m_per_deg_lon = rad * a / np.sqrt(w) * np.cos(lat)
        return float(shapely.area(geom)) * m_per_deg_lat * m_per_deg_lon

    return measure


def as_multipolygon(geom: shapely.Geometry) -> shapely.Geometry:
    """Polygon -> MultiPolygon: the store's geometry columns are MULTIPOLYGON."""
    if geom.geom_type == "Polygon":
        return shapely.multipolygons([geom])
    return geom


def _tiling_findings(
    geoms: np.ndarray,
    codes: np.ndarray,
    parent: shapely.Geometry,
    area_m2: Callable[[shapely.Geometry], float],
) -> list[tuple[str, str | None, float, shapely.Point]]:
    """(kind, child code, area m², location) for overlaps, gaps and parts outside the parent."""
    findings: list[tuple[str, str | None, float, shapely.Point]] = []
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for a, b in zip(left, right, strict=True):
        if a >= b:
            continue
        overlap = polygonal(shapely.intersection(geoms[a], geoms[b]))
        area = area_m2(overlap)
        if area > NOISE_M2:
            findings.append(
                (
                    f"overlap between {codes[a]} and {codes[b]}",
                    codes[a],
                    area,
                    shapely.point_on_surface(overlap),
                )
            )
    outside = shapely.difference(geoms, parent)
    for i, piece in enumerate(outside):
        area = area_m2(piece)
        if area > NOISE_M2:
            findings.append(
                (
                    f"part outside its parent ({codes[i]} is not inside it)",
                    codes[i],
                    area,
                    shapely.point_on_surface(piece),
                )
            )
    gaps = shapely.difference(parent, shapely.union_all(geoms))
    for piece in shapely.get_parts(gaps):
        area = area_m2(piece)
        if area > NOISE_M2:
            near = tree.query(piece, predicate="intersects")
            neighbours = ", ".join(sorted(str(codes[j]) for j in near)) or None
            findings.append(("gap", neighbours, area, shapely.point_on_surface(piece)))
    return findings


def _repair_tiling(
    geoms: np.ndarray, codes: np.ndarray, parent: shapely.Geometry
) -> list[shapely.Geometry]:
    """Clip to the parent, give overlaps to the smaller code, gaps to the longest neighbour."""
    order = np.argsort(codes.astype(str))
    fixed: list[shapely.Geometry] = [shapely.Polygon()] * len(geoms)
    taken: shapely.Geometry = shapely.Polygon()
    for i in order:
        g = shapely.difference(shapely.intersection(geoms[i], parent), taken)
        fixed[i] = polygonal(g)
        taken = shapely.union(taken, fixed[i])
    gaps = shapely.difference(parent, taken)
    for piece in shapely.get_parts(gaps):
        if shapely.area(piece) <= 0:
            continue
        shared = [shapely.length(shapely.intersection(piece.boundary, f.boundary)) for f in fixed]
        best = int(np.argmax(shared))
        fixed[best] = polygonal(shapely.union(fixed[best], piece))
    return fixed


def _check_points_inside(data: DistrictData, metric: CRS, problems: list[Problem]) -> None:
    district = data.district.geometry.iat[0]
    buildings = data.buildings
    if buildings.empty:
        return
    shapely.prepare(district)
    inside = shapely.covers(district, buildings.geometry.to_numpy())
    for i in np.flatnonzero(~inside).tolist():
        pt = buildings.geometry.iat[i]
        problems.append(
            Problem(
                f"building at ({pt.x:.6f}, {pt.y:.6f}) lies outside the district",
                file=data.sources.get("buildings"),
                layer="buildings",
                feature=_feature_label(buildings, "buildings", i),
                fix="correct its coordinates (lon/lat order?) or remove it",
            )
        )


def write_district_layers(data: DistrictData, out: Path) -> list[Path]:
    """Write every non-empty layer in the contract: one GeoPackage, or one file per layer."""
    from geo.io import layer_paths, write_layer

    if out.suffix.lower() == ".gpkg" and out.exists():
        out.unlink()  # a GeoPackage gains layers on write: start from an empty file
    written: list[Path] = []
    for name, path in layer_paths(out, LAYERS).items():
        frame = data.layer(name)
        if frame.empty and name in OPTIONAL_LAYERS:
            continue
        if path.suffix.lower() == ".csv" and name not in ("buildings", "reports"):
            path = path.with_suffix(".geojson")
        write_layer(frame, path, name)
        written.append(path)
    return written
