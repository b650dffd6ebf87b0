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
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from geo.columns import STORED_RULES, ColumnRule
from geo.crs import WGS84, Coordsys, metric_crs_for_bounds
from geo.errors import DataRefused, Problem, where
from geo.io import (
    FORMATS,
    LAYERS,
    conversion_note,
    format_of,
    from_coordsys,
    layer_from_stem,
    list_layers,
    read_layer,
    reproject_layer,
)
from geo.settings import InputLimits
from geo.topology import (
    DEFAULT_REPAIR_WIDTH_M,
    DEFAULT_TOLERANCE_M,
    Finding,
    Level,
    NodingReport,
    drawn_in_candidates,
    node_hierarchy,
    polygonal,
)

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
    #: The CRS each layer's file declared (None: none declared), before reprojection.
    declared_crs: dict[str, CRS | None] = field(default_factory=dict)
    #: What noding did at validation (None until validated).
    noding: NodingReport | None = None
    #: The system the files were drawn in (``--coordsys``), and what converting them did.
    coordsys: Coordsys = Coordsys.WGS84
    converted: str | None = None

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


def empty_layer(name: str) -> gpd.GeoDataFrame:
    columns = {c: pd.Series(dtype=object) for c in REQUIRED_COLUMNS[name]}
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=4326), crs=4326)


def read_district(
    paths: Sequence[Path],
    limits: InputLimits | None = None,
    *,
    coordsys: Coordsys = Coordsys.WGS84,
) -> DistrictData:
    """Read the contract layers from GeoPackages, per-layer files or folders of them.

    Every layer ends in EPSG:4326; layers drawn on AMap (``coordsys=GCJ02``) or Baidu
    (``BD09``) are converted to WGS 84 vertex by vertex, before anything is validated.
    """
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
                    _found(found, name, path, name, problems)
        else:
            layer = layer_from_stem(path)
            if layer not in LAYERS:
                problems.append(
                    Problem(
                        f"cannot tell which layer {path.name!r} holds",
                        file=str(path),
                        fix="name per-layer files after their layer ("
                        + ", ".join(LAYERS)
                        + "), e.g. grids.geojson, grids.shp or shahekou_grids.parquet",
                    )
                )
                continue
            _found(found, layer, path, None, problems)
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
    declared: dict[str, CRS | None] = {}
    vertices = 0
    for name in LAYERS:
        if name not in found:
            layers[name] = empty_layer(name)
            continue
        source, gpkg_layer = found[name]
        try:  # every layer is read, so that one refusal lists the problems of all of them
            with where(layer=name, file=str(source)):
                frame = read_layer(source, gpkg_layer, limits)
                declared[name] = None if frame.crs is None else CRS.from_user_input(frame.crs)
                frame = reproject_layer(frame, file=str(source), layer=name)
                layers[name], moved = from_coordsys(frame, coordsys)
                vertices += moved
        except DataRefused as exc:
            problems.extend(exc.problems)
    if problems:
        raise DataRefused(problems=problems)
    return DistrictData(
        **layers,
        sources={k: str(v[0]) for k, v in found.items()},
        declared_crs=declared,
        coordsys=coordsys,
        converted=conversion_note(coordsys, vertices),
    )


def _found(
    found: dict[str, tuple[Path, str | None]],
    layer: str,
    path: Path,
    gpkg_layer: str | None,
    problems: list[Problem],
) -> None:
    """Record where a layer is; two sources for one layer are refused, never one silently
    preferred to the other."""
    if layer in found and found[layer][0] != path:
        problems.append(
            Problem(
                f"two files hold the {layer!r} layer: {found[layer][0]} and {path}",
                file=str(path),
                layer=layer,
                fix="pass one source per layer (remove one of them, or rename it)",
            )
        )
        return
    found[layer] = (path, gpkg_layer)


def _expand(paths: Iterable[Path]) -> list[Path]:
    """Folders to their files; the name ``gridmap export --out X.parquet`` was given (it
    writes ``X_<layer>.parquet`` beside it) to those files."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS))
        elif not path.exists() and path.suffix and (siblings := _layer_siblings(path)):
            out.extend(siblings)
        else:
            out.append(path)
    return out


def _layer_siblings(path: Path) -> list[Path]:
    return [
        sibling
        for layer in LAYERS
        if (sibling := path.with_name(f"{path.stem}_{layer}{path.suffix}")).exists()
    ]


# --- validation ---------------------------------------------------------------------------


def validate_district(
    data: DistrictData,
    *,
    repair: bool = False,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    repair_width_m: float = DEFAULT_REPAIR_WIDTH_M,
    progress: Progress | None = None,
) -> tuple[DistrictData, list[Repair]]:
    """Check every rule of the contract; return the (repaired) data or refuse with all problems.

    Everything the store would refuse is checked here (``--dry-run`` runs exactly this): the
    columns' NOT NULL, type, length, range and uniqueness rules of ``geo.columns``, from
    which the schema is built.
    """
    known = len(data.district) == 1 and "code" in data.district.columns
    code = str(data.district["code"].iat[0]) if known else None
    with where(district=code):
        return _validate(data, repair, tolerance_m, repair_width_m, progress)


def _validate(
    data: DistrictData,
    repair: bool,
    tolerance_m: float,
    repair_width_m: float,
    progress: Progress | None,
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
    if problems:
        raise DataRefused(problems=problems)
    say("noding the hierarchy: every level an exact tiling of its parent")
    data = node_district(
        data,
        repair=repair,
        tolerance_m=tolerance_m,
        repair_width_m=repair_width_m,
        problems=problems,
        repairs=repairs,
    )
    metric = metric_crs_for_bounds(tuple(data.district.total_bounds))
    say("checking buildings and reports")
    _check_points_inside(data, metric, problems, tolerance_m)
    if problems:
        raise DataRefused(problems=problems)
    return data, repairs


def _normalise_columns(
    frame: gpd.GeoDataFrame, name: str, source: str | None, problems: list[Problem]
) -> gpd.GeoDataFrame:
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if frame.empty:  # an empty layer (no buildings in a port district) has nothing to check
        for column in missing:
            frame[column] = pd.Series(dtype=object)
        missing = []
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
    rules of its table (``geo.columns``), and text PostgreSQL cannot hold (U+0000)."""
    rules = STORED_RULES[name]

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


def shared_addresses(data: DistrictData) -> int:
    """Addresses written on more than one building (a compound, a building and its annexe).

    Not a refusal: real districts have them. An address lookup cannot tell such buildings
    apart, so it answers them as ambiguous; the load summary says how many there are.
    """
    address = data.buildings["address"].map(lambda v: v.strip() if isinstance(v, str) else v)
    shared = address[address.duplicated(keep=False).to_numpy() & ~_blank(data.buildings["address"])]
    return int(shared.nunique())


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
    columns = [r.column for r in STORED_RULES["reports"].columns if r.kind == "time"]
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

#: The four polygon levels, each with the column naming its parent.
HIERARCHY: tuple[tuple[str, str | None], ...] = (
    ("district", None),
    ("streets", "district_code"),
    ("communities", "street_code"),
    ("grids", "community_code"),
)
#: Rounding to the storage grid may move a vertex this much beyond the tolerance.
MOVE_SLACK_M = 0.002
_SINGULAR = {
    "district": "district",
    "streets": "street",
    "communities": "community",
    "grids": "grid",
}


def node_district(
    data: DistrictData,
    *,
    repair: bool,
    tolerance_m: float,
    repair_width_m: float,
    problems: list[Problem],
    repairs: list[Repair],
) -> DistrictData:
    """Node the four polygon levels into an exact hierarchy (see ``geo.topology``).

    Noise (pieces thinner than the tolerance) is absorbed silently and counted; real gaps,
    overlaps and parts outside a parent become problems, or repairs when ``repair`` and the
    piece is at most ``repair_width_m`` wide.
    """
    levels: list[Level] = []
    for name, key in HIERARCHY:
        frame = data.layer(name)
        codes = frame["code"].astype(str).tolist()
        parents = None
        if key is not None:
            above = {c: i for i, c in enumerate(levels[-1].codes)}
            parents = [above[str(c)] for c in frame[key]]
        levels.append(Level(name, codes, parents, frame.geometry.to_numpy()))
    declared = data.declared_crs.get("grids")
    candidates = drawn_in_candidates(declared, tuple(data.district.total_bounds))
    noded = node_hierarchy(levels, candidates, tolerance_m=tolerance_m)
    for finding in noded.real_findings:
        child = finding.level
        fixable = finding.kind != "uncovered" and finding.width_m <= repair_width_m
        if repair and fixable:
            repairs.append(
                Repair(
                    child,
                    finding.codes[0] if finding.codes else str(finding.parent),
                    f"absorbed {_describe(finding)}",
                )
            )
            continue
        problems.append(
            Problem(
                _describe(finding),
                file=data.sources.get(child),
                layer=child,
                feature=", ".join(finding.codes) or finding.parent,
                fix=(
                    f"run with --repair to absorb it (--repair-width-m {repair_width_m:g} "
                    "absorbs pieces up to that width)"
                    if fixable
                    else _redraw_fix(finding, repair_width_m)
                ),
            )
        )
    if not noded.real_findings and noded.max_move_m > tolerance_m + MOVE_SLACK_M:
        # The promise is that noise moves nothing further than the tolerance: files noisier
        # than that (coordinates rounded to 7 decimals are up to 1 cm off) are refused.
        problems.append(
            Problem(
                f"noding would move a boundary {noded.max_move_m * 1000:.1f} mm, more than "
                f"the tolerance of {tolerance_m * 1000:.0f} mm (noded in {noded.crs_used})",
                file=data.sources.get("grids"),
                layer="grids",
                fix="deliver the coordinates with more decimals, or raise GRIDMAP_TOLERANCE_M "
                "to what the data can hold",
            )
        )
    frames = {}
    for (name, _), geoms in zip(HIERARCHY, noded.geoms, strict=True):
        frame = data.layer(name).copy()
        frame[frame.geometry.name] = geoms
        frames[name] = frame
    return replace(data, **frames, noding=noded.report())


def _describe(finding: Finding) -> str:
    """One planner-readable sentence: what, how big, how wide, where."""
    child = _SINGULAR[finding.level]
    parent_level = {"streets": "district", "communities": "street", "grids": "community"}
    parent = f"{parent_level.get(finding.level, 'district')} {finding.parent}"
    size = f"{finding.area_m2:,.2f} m², {_width(finding.width_m)} wide"
    where = f"near ({finding.lon:.6f}, {finding.lat:.6f})"
    if finding.kind == "gap":
        between = f" between {finding.level} {', '.join(finding.codes)}" if finding.codes else ""
        return f"gap of {size}, in {parent}{between} {where}: no {child} covers it"
    if finding.kind == "overlap":
        return f"overlap of {size}, between {finding.level} {' and '.join(finding.codes)} {where}"
    if finding.kind == "outside":
        return f"part of {child} {finding.codes[0]} outside its {parent}: {size}, {where}"
    return f"{parent} has {finding.area_m2:,.2f} m² that no {child} covers or borders {where}"


def _width(metres: float) -> str:
    """A width as a planner reads it: millimetres below a decimetre, else metres."""
    return f"{metres * 1000:.1f} mm" if metres < 0.1 else f"{metres:.2f} m"


def _redraw_fix(finding: Finding, repair_width_m: float) -> str:
    if finding.kind == "uncovered":
        return f"add {finding.level} that cover it"
    return (
        f"redraw the {finding.level} so that they tile their parent exactly (this piece is "
        f"wider than --repair-width-m {repair_width_m:g} m)"
    )


def _check_points_inside(
    data: DistrictData, metric: CRS, problems: list[Problem], tolerance_m: float
) -> None:
    """Buildings must lie in the district: one on its outline (within the tolerance, where
    reprojection may leave it a millimetre outside) is in; one further out is a mistake."""
    district = data.district.geometry.iat[0]
    buildings = data.buildings
    if buildings.empty:
        return
    shapely.prepare(district)
    outside = np.flatnonzero(~shapely.covers(district, buildings.geometry.to_numpy()))
    if len(outside) == 0:
        return
    to_m = Transformer.from_crs(WGS84, metric, always_xy=True)
    outline_m = shapely.transform(district, lambda xy: np.column_stack(to_m.transform(*xy.T)))
    points = buildings.geometry.to_numpy()[outside]
    points_m = shapely.transform(points, lambda xy: np.column_stack(to_m.transform(*xy.T)))
    distance = shapely.distance(outline_m, points_m)
    for i, pt, far in zip(outside.tolist(), points, distance.tolist(), strict=True):
        if far <= tolerance_m:
            continue
        problems.append(
            Problem(
                f"building at ({pt.x:.6f}, {pt.y:.6f}) lies {far:,.2f} m outside the district",
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
