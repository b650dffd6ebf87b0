"""Reading a district from contract files and validating it: types, codes, hierarchy, tilings.

Validation collects every problem before refusing, so a planner fixes a file once, not
once per error. ``repair=True`` fixes what is safe to fix (invalid rings via make_valid,
slivers below a tolerance) and reports each change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from geo.crs import WGS84, Coordsys, metric_crs_for_bounds
from geo.errors import DataRefused, Problem
from geo.io import (
    FORMATS,
    LAYERS,
    InputLimits,
    conversion_note,
    format_of,
    from_coordsys,
    layer_from_stem,
    list_layers,
    read_layer,
    reproject_layer,
)
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

#: Integer columns are PostgreSQL ``integer``; larger values would fail only inside COPY.
MAX_INT = 2**31 - 1
#: ``reports.status`` is ``varchar(32)``.
MAX_STATUS_CHARS = 32

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
                    found.setdefault(name, (path, name))
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
    declared: dict[str, CRS | None] = {}
    vertices = 0
    for name in LAYERS:
        if name not in found:
            layers[name] = empty_layer(name)
            continue
        source, gpkg_layer = found[name]
        frame = read_layer(source, gpkg_layer, limits)
        declared[name] = None if frame.crs is None else CRS.from_user_input(frame.crs)
        frame = reproject_layer(frame, file=str(source), layer=name)
        layers[name], moved = from_coordsys(frame, coordsys)
        vertices += moved
    return DistrictData(
        **layers,
        sources={k: str(v[0]) for k, v in found.items()},
        declared_crs=declared,
        coordsys=coordsys,
        converted=conversion_note(coordsys, vertices),
    )


def _expand(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS))
        else:
            out.append(path)
    return out


# --- validation ---------------------------------------------------------------------------


def validate_district(
    data: DistrictData,
    *,
    repair: bool = False,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    repair_width_m: float = DEFAULT_REPAIR_WIDTH_M,
    progress: Progress | None = None,
) -> tuple[DistrictData, list[Repair]]:
    """Check every rule of the contract; return the (repaired) data or refuse with all problems."""
    say = progress or (lambda _msg: None)
    problems: list[Problem] = []
    repairs: list[Repair] = []
    layers: dict[str, gpd.GeoDataFrame] = {}
    say("checking columns, codes and geometries")
    for name in LAYERS:
        frame = _normalise_columns(data.layer(name), name, data.sources.get(name), problems)
        frame = _check_geometries(frame, name, data.sources.get(name), repair, problems, repairs)
        layers[name] = frame
    data = replace(data, **layers)
    if problems:
        raise DataRefused(problems=problems)
    if len(data.district) != 1:
        problems.append(
            Problem(
                f"the district layer has {len(data.district)} features; it must have exactly one",
                layer="district",
                fix="dissolve the district into one (Multi)Polygon feature",
            )
        )
        raise DataRefused(problems=problems)
    say("checking the hierarchy")
    _check_parents(data, problems)
    _check_attributes(data, problems)
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
    key = CODE_COLUMN.get(name)
    if key:
        blank = frame[key].isna() | (frame[key].astype(str).str.strip() == "")
        for i in np.flatnonzero(blank.to_numpy())[:20]:
            problems.append(
                Problem(
                    f"missing {key}",
                    file=source,
                    layer=name,
                    feature=f"#{i}",
                    field=key,
                    fix=f"give every feature of {name} a {key}",
                )
            )
        dup = frame[key].duplicated(keep=False) & ~blank
        for value in sorted(set(frame.loc[dup, key]))[:20]:
            rows = np.flatnonzero((frame[key] == value).to_numpy()).tolist()
            problems.append(
                Problem(
                    f"duplicate {key} {value!r} (features {rows})",
                    file=source,
                    layer=name,
                    feature=str(value),
                    field=key,
                    fix=f"make {key} unique within the {name} layer",
                )
            )
    return frame


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
    if key and key in frame.columns and frame[key].iat[i] is not None:
        return str(frame[key].iat[i])
    if "name" in frame.columns:
        return f"#{i} ({frame['name'].iat[i]})"
    return f"#{i}"


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
    for i in np.flatnonzero(missing)[:20]:
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
    for i in np.flatnonzero(wrong)[:20]:
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
        for i in np.flatnonzero(orphans.to_numpy())[:50]:
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
    buildings = data.buildings
    for column, required in (("households", True), ("residents", False), ("floors", False)):
        if column not in buildings.columns:
            continue
        raw = buildings[column]
        values = pd.to_numeric(raw, errors="coerce")
        bad_number = values.isna() & (raw.notna() if not required else True)
        not_integer = values.notna() & (values != values.round())
        negative = values < 0
        too_big = values > MAX_INT
        for mask, reason, fix in (
            (bad_number, "is not a number", "give a whole number"),
            (not_integer, "is not a whole number", "give a whole number"),
            (negative, "is negative", f"{column} must be zero or more"),
            (too_big, f"is over {MAX_INT:,}", f"check the {column} value (a typo?)"),
        ):
            for i in np.flatnonzero(mask.to_numpy())[:20]:
                problems.append(
                    Problem(
                        f"{column} {_shown(raw.iat[i])} {reason}",
                        file=data.sources.get("buildings"),
                        layer="buildings",
                        feature=_feature_label(buildings, "buildings", i),
                        field=column,
                        fix=fix,
                    )
                )
    reports = data.reports
    for column in ("reported_at", "closed_at"):
        if column not in reports.columns or reports.empty:
            continue
        parsed = parse_times(reports[column])
        bad = parsed.isna() & reports[column].notna() & (reports[column].astype(str) != "")
        if column == "reported_at":
            bad = bad | reports[column].isna()
        for i in np.flatnonzero(bad.to_numpy())[:20]:
            problems.append(
                Problem(
                    f"{column} {reports[column].iat[i]!r} is not an ISO 8601 time",
                    file=data.sources.get("reports"),
                    layer="reports",
                    feature=_feature_label(reports, "reports", i),
                    field=column,
                    fix="write times as ISO 8601, e.g. 2025-03-01T08:30:00+08:00",
                )
            )
    if "status" in reports.columns and not reports.empty:
        long_status = reports["status"].notna() & (
            reports["status"].astype(str).str.len() > MAX_STATUS_CHARS
        )
        for i in np.flatnonzero(long_status.to_numpy())[:20]:
            problems.append(
                Problem(
                    f"status {reports['status'].iat[i]!r} is longer than "
                    f"{MAX_STATUS_CHARS} characters",
                    file=data.sources.get("reports"),
                    layer="reports",
                    feature=_feature_label(reports, "reports", i),
                    field="status",
                    fix="use a short status word such as reported, handling or closed; "
                    "put prose in description",
                )
            )
    blank_category = reports["category"].isna() | (reports["category"].astype(str) == "")
    for i in np.flatnonzero(blank_category.to_numpy())[:20]:
        problems.append(
            Problem(
                "category is empty",
                file=data.sources.get("reports"),
                layer="reports",
                feature=_feature_label(reports, "reports", i),
                field="category",
                fix="give every report a category",
            )
        )


def _shown(value: object) -> str:
    """A value as a planner wrote it: strings quoted, numbers plain (not ``np.int64(5)``)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def parse_times(values: pd.Series) -> pd.Series:
    """ISO 8601 strings to UTC timestamps; times without an offset are China time (+08:00)."""
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", utc=False, format="ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        return parsed.dt.tz_convert("UTC")
    # Mixed or naive input: parse one by one so each value keeps its own offset.
    out = [_one_time(v) if isinstance(v, str) and v else pd.NaT for v in text.fillna("").tolist()]
    return pd.Series(pd.to_datetime(out, utc=True), index=values.index)


def _one_time(value: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return pd.NaT
    if ts is pd.NaT:
        return pd.NaT
    if ts.tzinfo is None:
        ts = ts.tz_localize("Asia/Shanghai")
    return ts.tz_convert("UTC")


# --- tilings ------------------------------------------------------------------------------

#: The four polygon levels, each with the column naming its parent.
HIERARCHY: tuple[tuple[str, str | None], ...] = (
    ("district", None),
    ("streets", "district_code"),
    ("communities", "street_code"),
    ("grids", "community_code"),
)
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
    size = f"{finding.area_m2:,.2f} m², {finding.width_m:.2f} m wide"
    where = f"near ({finding.lon:.6f}, {finding.lat:.6f})"
    if finding.kind == "gap":
        between = f" between {finding.level} {', '.join(finding.codes)}" if finding.codes else ""
        return f"gap of {size}, in {parent}{between} {where}: no {child} covers it"
    if finding.kind == "overlap":
        return f"overlap of {size}, between {finding.level} {' and '.join(finding.codes)} {where}"
    if finding.kind == "outside":
        return f"part of {child} {finding.codes[0]} outside its {parent}: {size}, {where}"
    return f"{parent} has {finding.area_m2:,.2f} m² that no {child} covers or borders {where}"


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
