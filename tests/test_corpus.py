"""End to end over the corpus of ``tests/data/districts/``: districts the fixture did not make.

For every district, through the real CLI against the tests' PostGIS: ``gridmap load`` (no
``--repair``) -> ``regrid --households LOW-HIGH`` and ``regrid --target N`` -> ``plan edit``
(a split, then a merge) -> ``map hotspots | workload | compare`` -> ``plan publish`` ->
``export`` -> ``load --replace`` of the export (no ``--repair``). After each step, in PostGIS
and in EPSG:4326:

- every level nests exactly: per parent, ST_Area(ST_Difference(parent, ST_Union(children)))
  and ST_Area(ST_Difference(ST_Union(children), parent)) are 0 (grids of every plan in their
  communities, communities in streets, streets in the district);
- no two grids of a plan (or communities, or streets) share interior;
- a grid whose code its parent plan has is ST_Equals to the parent's grid;
- no command prints a Python traceback;
- every building's and report's stored grid is what an exact point-in-polygon oracle says
  (the closed polygon covers it; on a shared boundary the smallest code; outside: none).

A step that fails is recorded and the run goes on with what can still be checked, so that
one test shows every problem of its district. ``GRIDMAP_TOLERANCE_M`` (default 0.01 m)
bounds how far a stored boundary may move from the delivered one.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.ops
from hypothesis import HealthCheck, Phase, given, settings
from pyproj import CRS
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from api.cli import app
from geo.settings import GridmapSettings
from tests.strategies import DrawnDistrict, projected_districts

DATA = Path(__file__).parent / "data" / "districts"
MANIFEST = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
DISTRICTS = {d["key"]: d for d in MANIFEST["districts"]}
TOLERANCE_M = float(os.environ.get("GRIDMAP_TOLERANCE_M", "0.01"))
#: Problems listed per check before "... and N more".
SHOWN = 6


# --------------------------------------------------------------------------- the CLI


@dataclass
class Ran:
    """One ``gridmap`` command as a user would have seen it."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    traceback: str | None

    def json(self) -> Any:
        return json.loads(self.stdout)

    def shown(self) -> str:
        words = [Path(a).name if os.sep in a else a for a in self.args]
        return "gridmap " + " ".join(words)

    def first_error(self) -> str:
        """The refusal or error as ``--json`` gives it, else the first lines of stderr."""
        try:
            payload = json.loads(self.stdout)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("problems"):
            problems = payload["problems"]
            shown = [
                ", ".join(f"{k} {v}" for k, v in p.items() if v and k != "fix")
                for p in problems[:3]
            ]
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            return " | ".join(shown)[:900] + more
        if isinstance(payload, dict) and payload.get("error"):
            return f"{payload.get('field')}: {payload.get('reason')}"[:900]
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        start = next(
            (i for i, ln in enumerate(lines) if ln.startswith(("refused", "error", "Error"))), 0
        )
        return " ".join(lines[start : start + 6])[:900]


def gridmap(url: str, *args: str) -> Ran:
    """Run the real Typer app in-process (as ``tests/api/test_plan_cli.py`` does).

    An exception that escapes the command is what a user would see as a traceback.
    """
    result = CliRunner().invoke(app, list(args), env={"GRIDMAP_DATABASE_URL": url})
    tb = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        tb = "".join(traceback.format_exception(result.exception))
    elif "Traceback (most recent call last)" in result.output:
        tb = result.output
    return Ran(list(args), result.exit_code, result.stdout, result.stderr, tb)


@contextmanager
def empty_database(config: GridmapSettings, name: str) -> Iterator[str]:
    """A throwaway, migrated database of its own (one district per database)."""
    from api.embedded_postgres import create_database, drop_database
    from geo.store.migrate import upgrade_database
    from geo.store.session import engine_for

    url = create_database(config, name, replace=True)
    upgrade_database(url)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        engine_for.cache_clear()
        drop_database(config, name)


# --------------------------------------------------------------------------- checks in PostGIS


def _listed(title: str, problems: list[str]) -> list[str]:
    if not problems:
        return []
    more = f" ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return [f"{title}: " + "; ".join(problems[:SHOWN]) + more]


def _query(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return list(db.execute(text(sql), params))
    finally:
        engine.dispose()


@dataclass
class Store:
    """Read-only questions about the one district a test database holds."""

    url: str
    code: str

    def rows(self, sql: str, **params: Any) -> list[Any]:
        return _query(self.url, sql, **params)

    def district_id(self) -> int | None:
        found = self.rows("SELECT id FROM districts WHERE code = :c", c=self.code)
        return int(found[0][0]) if found else None

    def plans(self) -> list[tuple[int, str, int | None]]:
        return [
            (int(r[0]), str(r[1]), r[2])
            for r in self.rows(
                """SELECT p.id, p.status, p.parent_id FROM grid_plans p
                   JOIN districts d ON d.id = p.district_id WHERE d.code = :c ORDER BY p.id""",
                c=self.code,
            )
        ]

    def published(self) -> int | None:
        ids = [p for p, status, _ in self.plans() if status == "published"]
        return ids[0] if len(ids) == 1 else None

    def counts(self) -> dict[str, int]:
        d = self.district_id()
        plan = self.published()
        one = lambda sql: int(self.rows(sql, d=d, p=plan)[0][0] or 0)  # noqa: E731
        return {
            "streets": one("SELECT count(*) FROM streets WHERE district_id = :d"),
            "communities": one("SELECT count(*) FROM communities WHERE district_id = :d"),
            "grids": one("SELECT count(*) FROM grids WHERE plan_id = :p"),
            "buildings": one("SELECT count(*) FROM buildings WHERE district_id = :d"),
            "households": one("SELECT sum(households) FROM buildings WHERE district_id = :d"),
            "reports": one("SELECT count(*) FROM reports"),
            "roads": one("SELECT count(*) FROM roads WHERE district_id = :d"),
        }

    def geometries(self, layer: str, plan: int | None = None) -> dict[str, shapely.Geometry]:
        if layer == "grids":
            sql = "SELECT code, ST_AsBinary(geom) FROM grids WHERE plan_id = :p"
        elif layer == "district":
            sql = "SELECT code, ST_AsBinary(geom) FROM districts WHERE code = :c"
        else:
            sql = f"""SELECT t.code, ST_AsBinary(t.geom) FROM {layer} t
                      JOIN districts d ON d.id = t.district_id WHERE d.code = :c"""
        return {str(c): shapely.from_wkb(bytes(w)) for c, w in self.rows(sql, p=plan, c=self.code)}


EMPTY = "'SRID=4326;POLYGON EMPTY'::geometry"
NESTING = {
    # child table, its parent key, parent table, where the parents are, where the children are
    "grids in communities": (
        "grids",
        "community_id",
        "communities",
        "p.district_id = :d",
        "k.plan_id = :p",
    ),
    "communities in streets": (
        "communities",
        "street_id",
        "streets",
        "p.district_id = :d",
        "k.district_id = :d",
    ),
    "streets in the district": (
        "streets",
        "district_id",
        "districts",
        "p.id = :d",
        "k.district_id = :d",
    ),
}


def nesting_problems(store: Store, plans: list[int], hierarchy: bool) -> list[str]:
    """Per parent: the area of parent minus union(children) and of union(children) minus
    parent, exactly 0 (degrees squared, EPSG:4326): grids of ``plans`` in their communities
    and, with ``hierarchy``, communities in streets and streets in the district."""
    d = store.district_id()
    if d is None:
        return [f"district {store.code} is not stored"]
    status_of = {p: s for p, s, _ in store.plans()}
    out: list[str] = []
    for label, (child, fk, parent, where_parent, where_child) in NESTING.items():
        if child == "grids":
            todo = [(p, status_of.get(p, "?")) for p in plans]
        else:
            todo = [(None, "")] if hierarchy else []
        for plan, status in todo:
            sql = f"""
                WITH kids AS (
                    SELECT k.{fk} AS pid, ST_Union(k.geom) AS u FROM {child} k
                    WHERE {where_child} GROUP BY k.{fk}),
                diff AS (
                    SELECT p.code,
                           ST_Difference(p.geom, COALESCE(kids.u, {EMPTY})) AS gap,
                           ST_Difference(COALESCE(kids.u, {EMPTY}), p.geom) AS outside
                    FROM {parent} p LEFT JOIN kids ON kids.pid = p.id WHERE {where_parent})
                SELECT code, ST_Area(gap), ST_Area(outside),
                       ST_Area(ST_CollectionExtract(gap, 3)::geography),
                       ST_Area(ST_CollectionExtract(outside, 3)::geography)
                FROM diff WHERE ST_Area(gap) > 0 OR ST_Area(outside) > 0 ORDER BY code"""
            where = f"plan {plan} ({status})" if plan else ""
            try:
                rows = store.rows(sql, d=d, p=plan)
            except Exception as exc:  # a GEOS error in PostGIS is itself a finding
                out.append(f"{label} {where}: PostGIS cannot compute it: {str(exc)[:300]}")
                continue
            out.extend(
                _listed(
                    f"{label} {where} not exact",
                    [
                        f"{code}: gap {gap:.3g} deg² ({gap_m2:.3g} m²), outside {outside:.3g} deg² "
                        f"({outside_m2:.3g} m²)"
                        for code, gap, outside, gap_m2, outside_m2 in rows
                    ],
                )
            )
    return out


def overlap_problems(store: Store, plans: list[int], hierarchy: bool) -> list[str]:
    """No two grids of a plan (with ``hierarchy``: communities, streets) share interior; each
    is valid."""
    d = store.district_id()
    out: list[str] = []
    levels: list[tuple[str, str, int | None]] = [
        ("grids", "a.plan_id = :p AND b.plan_id = :p", p) for p in plans
    ]
    if hierarchy:
        levels += [
            ("communities", "a.district_id = :d AND b.district_id = :d", None),
            ("streets", "a.district_id = :d AND b.district_id = :d", None),
        ]
    for table, where, plan in levels:
        label = f"{table} of plan {plan}" if plan else table
        try:
            rows = store.rows(
                f"""SELECT a.code, b.code, ST_Area(
                               ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3)::geography)
                    FROM {table} a JOIN {table} b ON a.id < b.id AND a.geom && b.geom
                    WHERE {where} AND ST_Relate(a.geom, b.geom, '2********')""",
                d=d,
                p=plan,
            )
            invalid = store.rows(
                f"""SELECT a.code, ST_IsValidReason(a.geom) FROM {table} a
                    WHERE {where.split(" AND ")[0]} AND NOT ST_IsValid(a.geom)""",
                d=d,
                p=plan,
            )
        except Exception as exc:
            out.append(f"{label}: PostGIS cannot compute overlaps: {str(exc)[:300]}")
            continue
        out.extend(_listed(f"{label} overlap", [f"{a} and {b}: {m2:.3g} m²" for a, b, m2 in rows]))
        out.extend(_listed(f"{label} invalid", [f"{c}: {reason}" for c, reason in invalid]))
    return out


def kept_problems(store: Store, plan: int) -> list[str]:
    """A grid that keeps its code keeps its geometry exactly (ST_Equals the parent's)."""
    rows = store.rows(
        """SELECT g.code,
                  ST_Area(ST_CollectionExtract(ST_SymDifference(g.geom, p.geom), 3)::geography)
           FROM grids g JOIN grid_plans pl ON pl.id = g.plan_id
           JOIN grids p ON p.plan_id = pl.parent_id AND p.code = g.code
           WHERE g.plan_id = :p AND NOT ST_Equals(g.geom, p.geom) ORDER BY g.code""",
        p=plan,
    )
    return _listed(
        f"kept grids of plan {plan} differ from their parent's",
        [f"{c}: symmetric difference {m2:.3g} m²" for c, m2 in rows],
    )


def crosswalk_slivers(store: Store, plan: int) -> list[str]:
    """Crosswalk rows without buildings whose shared piece is under 10 cm wide (2 area /
    perimeter) or has no area: numerical slivers, not history."""
    rows = store.rows(
        """SELECT x.old_code, x.new_code, x.shared_area_m2,
                  ST_Area(s.i::geography), ST_Perimeter(s.i::geography)
           FROM grid_crosswalk x JOIN grid_plans pl ON pl.id = x.plan_id
           JOIN grids o ON o.plan_id = pl.parent_id AND o.code = x.old_code
           JOIN grids n ON n.plan_id = x.plan_id AND n.code = x.new_code
           CROSS JOIN LATERAL (
               SELECT ST_CollectionExtract(ST_Intersection(o.geom, n.geom), 3) AS i) s
           WHERE x.plan_id = :p AND x.buildings = 0 ORDER BY x.old_code, x.new_code""",
        p=plan,
    )
    slivers = [
        f"{old} -> {new}: {area:.3g} m², {2 * area / per if per else 0:.3g} m wide"
        for old, new, _, area, per in rows
        if not per or 2 * area / per < 0.1
    ]
    return _listed(f"crosswalk of plan {plan} has sliver rows", slivers)


# --------------------------------------------------------------------------- the oracle

_SCALE = 2.0**64


def _exact(v: float) -> int:
    """A double as an integer multiple of 2**-64 (exact for |v| >= 2**-11, as lon/lat are)."""
    scaled = v * _SCALE
    if not scaled.is_integer():
        raise ValueError(f"{v!r} is too small for the exact oracle")
    return int(scaled)


class ExactPolygon:
    """A stored grid with its rings in exact integer coordinates."""

    def __init__(self, code: str, geom: shapely.Geometry) -> None:
        self.code = code
        self.bounds = shapely.bounds(geom).tolist()
        self.rings = [
            [(_exact(x), _exact(y)) for x, y in shapely.get_coordinates(ring).tolist()]
            for part in shapely.get_parts(geom)
            for ring in [part.exterior, *part.interiors]
        ]

    def covers(self, x: float, y: float) -> bool:
        """Closed point-in-polygon in exact arithmetic: on an edge or inside (even-odd)."""
        minx, miny, maxx, maxy = self.bounds
        if not (minx <= x <= maxx and miny <= y <= maxy):
            return False
        px, py = _exact(x), _exact(y)
        inside = False
        for ring in self.rings:
            for (x1, y1), (x2, y2) in itertools.pairwise(ring):
                cross = (x2 - x1) * (py - y1) - (px - x1) * (y2 - y1)
                if (
                    cross == 0
                    and min(x1, x2) <= px <= max(x1, x2)
                    and min(y1, y2) <= py <= max(y1, y2)
                ):
                    return True
                if (y1 > py) != (y2 > py) and (cross > 0) == (y2 > y1):
                    inside = not inside
        return inside


def oracle(grids: dict[str, ExactPolygon], x: float, y: float) -> str | None:
    """The grid the assignment rule gives a point: smallest covering code, or none."""
    covering = [code for code, poly in grids.items() if poly.covers(x, y)]
    return min(covering) if covering else None


TOLERANCE_M = 0.01


def metres_to(polygon: shapely.Geometry, x: float, y: float) -> float:
    """Distance in metres from a lon/lat point to a lon/lat polygon (local scale)."""
    kx = np.cos(np.radians(y)) * 111_320.0
    scaled = shapely.transform(polygon, lambda c: (c - [x, y]) * [kx, 111_320.0])
    return float(shapely.distance(scaled, shapely.Point(0.0, 0.0)))


def oracle_problems(store: Store) -> list[str]:
    """Every building and report in the grid of the published plan the oracle gives it."""
    plan = store.published()
    if plan is None:
        return ["no single published plan"]
    shapes = store.geometries("grids", plan)
    grids = {c: ExactPolygon(c, g) for c, g in shapes.items()}
    out: list[str] = []
    for table, key in (("buildings", "building_id"), ("reports", "report_id")):
        rows = store.rows(
            f"""SELECT t.{key}, ST_X(t.geom), ST_Y(t.geom), g.code, g.plan_id
                FROM {table} t LEFT JOIN grids g ON g.id = t.grid_id ORDER BY t.{key}"""
        )
        wrong = []
        for ident, x, y, code, plan_of in rows:
            want = oracle(grids, x, y)
            got = code if plan_of in (None, plan) else f"{code} of plan {plan_of}"
            if want is None and code in shapes:
                # A point on the outline, a reprojection's millimetre outside every grid,
                # lies on the boundary of the grid within the tolerance (the rule says so).
                if metres_to(shapes[code], x, y) <= TOLERANCE_M:
                    continue
            if got != want:
                wrong.append(f"{ident} at ({x!r}, {y!r}): stored {got}, oracle {want}")
        out.extend(_listed(f"{table} not where the rule puts them", wrong))
    return out


# --------------------------------------------------------------------------- delivered files


def delivered_layer(spec: dict[str, Any], layer: str) -> gpd.GeoDataFrame | None:
    """A polygon layer as delivered, read with geopandas, in its own CRS."""
    for entry in spec["load"]:
        path = DATA / entry
        if path.suffix == ".gpkg":
            frame = gpd.read_file(path, layer=layer)
        elif path.is_dir():
            found = [p for p in path.iterdir() if p.stem == layer and p.suffix != ".cpg"]
            found = [p for p in found if p.suffix in (".geojson", ".shp", ".parquet")]
            if not found:
                continue
            frame = (
                gpd.read_parquet(found[0])
                if found[0].suffix == ".parquet"
                else gpd.read_file(found[0])
            )
        elif path.stem == layer:
            frame = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
        else:
            continue
        return frame if frame.crs is not None else frame.set_crs(4326)
    return None


def delivered_points(spec: dict[str, Any], layer: str) -> gpd.GeoDataFrame:
    """Buildings or reports as delivered, in EPSG:4326 (CSV: UTF-8 with or without BOM, else
    GBK)."""
    for entry in spec["load"]:
        path = DATA / entry
        candidates = sorted(path.iterdir()) if path.is_dir() else [path]
        for p in candidates:
            if p.stem != layer or p.suffix == ".cpg":
                continue
            if p.suffix == ".csv":
                raw = p.read_bytes()
                try:
                    raw.decode("utf-8")
                    encoding = "utf-8-sig"
                except UnicodeDecodeError:
                    encoding = "gbk"
                table = pd.read_csv(p, dtype=str, encoding=encoding)
                xy = shapely.points(table["lon"].astype(float), table["lat"].astype(float))
                return gpd.GeoDataFrame(table, geometry=xy, crs=4326)
            if p.suffix in (".geojson", ".shp", ".parquet"):
                frame = gpd.read_parquet(p) if p.suffix == ".parquet" else gpd.read_file(p)
                return frame.to_crs(4326)
    frame = gpd.read_file(DATA / spec["load"][0], layer=layer)
    return frame.to_crs(4326)


def _metric_crs(geoms: list[shapely.Geometry], crs: Any) -> Any:
    """The delivered CRS when it is projected (its straight edges are the truth), else UTM."""
    if crs is not None and CRS(crs).is_projected:
        return crs
    lon, lat = shapely.centroid(shapely.union_all(geoms)).coords[0]
    return f"EPSG:{(32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1}"


def moved_problems(
    before: dict[str, shapely.Geometry],
    after: dict[str, shapely.Geometry],
    label: str,
    crs: Any = "EPSG:4326",
) -> list[str]:
    """Every feature of ``after`` (EPSG:4326) within the tolerance of ``before`` (in ``crs``):
    the discrete Hausdorff distance (each vertex to the other polygon, both ways) in metres,
    measured in ``crs`` when it is projected (so that a vertex inserted on a straight edge of
    the delivered CRS has not moved), else in UTM."""
    if not before:
        return [f"{label}: nothing to compare"]
    out = _listed(f"{label}: codes differ", sorted(set(before) ^ set(after)))
    common = sorted(set(before) & set(after))
    if not common:
        return out
    metric = _metric_crs([after[c] for c in common], crs)
    a = gpd.GeoSeries([before[c] for c in common], crs=crs).to_crs(metric).to_numpy()
    b = gpd.GeoSeries([after[c] for c in common], crs=4326).to_crs(metric).to_numpy()
    moved = shapely.hausdorff_distance(a, b)
    far = [f"{c}: {m:.4f} m" for c, m in zip(common, moved, strict=True) if m > TOLERANCE_M + 1e-9]
    return out + _listed(f"{label} moved more than {TOLERANCE_M} m", far)


# --------------------------------------------------------------------------- the run


@dataclass
class CorpusRun:
    """The whole pipeline over one district, collecting findings instead of stopping."""

    spec: dict[str, Any]
    url: str
    tmp: Path
    findings: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    @property
    def store(self) -> Store:
        return Store(self.url, self.spec["code"])

    def note(self, step: str, problems: list[str]) -> None:
        """Record problems under ``step``; one already recorded at an earlier step is not
        repeated (the oracle of an unchanged published plan, say)."""
        for problem in problems:
            if problem not in self.seen:
                self.seen.add(problem)
                self.findings.append(f"[{step}] {problem}")

    def command(self, step: str, *args: str) -> Ran | None:
        ran = gridmap(self.url, *args)
        if ran.traceback:
            tail = "\n      ".join(ran.traceback.strip().splitlines()[-3:])
            self.note(step, [f"`{ran.shown()}` printed a traceback:\n      {tail}"])
            return None
        if ran.exit_code != 0:
            self.note(step, [f"`{ran.shown()}` exited {ran.exit_code}: {ran.first_error()}"])
            return None
        return ran

    def check(self, step: str, plans: list[int | None], *, hierarchy: bool = False) -> None:
        """Nesting and overlaps of ``plans`` (with ``hierarchy``: of every level), and the
        oracle for every building and report against the published plan."""
        store = self.store
        ids = [p for p in plans if p is not None]
        self.note(step, nesting_problems(store, ids, hierarchy))
        self.note(step, overlap_problems(store, ids, hierarchy))
        self.note(step, oracle_problems(store))

    def check_draft(self, step: str, plan: int) -> None:
        """A draft nests and keeps what it keeps; its crosswalk has no slivers."""
        self.check(step, [plan])
        self.note(step, kept_problems(self.store, plan) + crosswalk_slivers(self.store, plan))

    def run(self) -> None:
        spec = self.spec
        files = [str(DATA / f) for f in spec["load"]]
        if self.command("load", "load", *files, "--json") is None:
            return
        counts = self.store.counts()
        if counts != spec["expected"]:
            self.note("load", [f"stored {counts}, delivered {spec['expected']}"])
        published = self.store.published()
        self.check("load", [published], hierarchy=True)
        for layer in ("grids", "communities", "streets"):
            delivered = delivered_layer(spec, layer)
            if delivered is not None:
                before = dict(zip(delivered["code"].astype(str), delivered.geometry, strict=True))
                stored = self.store.geometries(layer, published)
                self.note("load", moved_problems(before, stored, f"stored {layer}", delivered.crs))

        plans: dict[str, int] = {}
        for how, value in (
            ("--households", spec["regrid"]["households"]),
            ("--target", str(spec["regrid"]["target"])),
        ):
            step = f"regrid {how} {value}"
            ran = self.command(
                step, "regrid", "--district", spec["code"], how, value, "--seed", "1", "--json"
            )
            if ran is not None:
                plans[how] = int(ran.json()["plan_id"])
                self.check_draft(step, plans[how])
        draft = plans.get("--households") or plans.get("--target")

        if draft is not None:
            self.edit(draft)

        self.maps(published, draft)

        if draft is not None:
            if self.command("publish", "plan", "publish", str(draft), "--json") is not None:
                if self.store.published() != draft:
                    self.note("publish", [f"plan {draft} is not the published plan"])
                self.check("publish", [self.store.published()], hierarchy=True)
            published = self.store.published()

        out = (
            self.tmp
            / {"gpkg": "export.gpkg", "folder": "export", "parquet": "export.parquet"}[
                spec["export"]
            ]
        )
        ran = self.command(
            "export", "export", "--district", spec["code"], "--out", str(out), "--json"
        )
        if ran is None:
            return
        exported = ran.json()["files"]
        before = {
            layer: self.store.geometries(layer, published)
            for layer in ("grids", "communities", "streets")
        }
        counts = self.store.counts()
        if self.command("load --replace", "load", *exported, "--replace", "--json") is None:
            return
        after_counts = self.store.counts()
        if after_counts != counts:
            self.note("load --replace", [f"stored {after_counts}, exported {counts}"])
        now = self.store.published()
        self.check("load --replace", [now], hierarchy=True)
        for layer, geoms in before.items():
            self.note(
                "load --replace",
                moved_problems(geoms, self.store.geometries(layer, now), f"reloaded {layer}"),
            )

    def edit(self, plan: int) -> None:
        grids = self.store.geometries("grids", plan)
        buildings = [
            shapely.from_wkb(bytes(w))
            for (w,) in self.store.rows("SELECT ST_AsBinary(geom) FROM buildings")
        ]
        cut = split_line(grids, buildings)
        if cut is None:
            self.note("edit split", ["no grid of the draft can be cut in two clear of buildings"])
        else:
            code, line = cut
            ran = self.command(
                "edit split",
                "plan",
                "edit",
                str(plan),
                "split",
                "--grid",
                code,
                "--line",
                line,
                "--json",
            )
            if ran is not None:
                self.check_draft("edit split", plan)
        grids = self.store.geometries("grids", plan)
        communities = {
            str(c): str(k)
            for c, k in self.store.rows(
                """SELECT g.code, c.code FROM grids g JOIN communities c
                   ON c.id = g.community_id WHERE g.plan_id = :p""",
                p=plan,
            )
        }
        pair = merge_pair(grids, communities)
        if pair is None:
            self.note("edit merge", ["no two adjacent grids of one community in the draft"])
            return
        ran = self.command(
            "edit merge", "plan", "edit", str(plan), "merge", "--codes", ",".join(pair), "--json"
        )
        if ran is not None:
            self.check_draft("edit merge", plan)

    def maps(self, published: int | None, draft: int | None) -> None:
        code = self.spec["code"]
        runs = [("hotspots", ["map", "hotspots", "--district", code])]
        workload = [
            "map",
            "workload",
            "--district",
            code,
            "--households",
            self.spec["regrid"]["households"],
        ]
        runs.append(("workload", workload + (["--plan", str(draft)] if draft else [])))
        if published is not None and draft is not None:
            runs.append(
                (
                    "compare",
                    [
                        "map",
                        "compare",
                        "--district",
                        code,
                        "--a",
                        str(published),
                        "--b",
                        str(draft),
                    ],
                )
            )
        for name, args in runs:
            out = self.tmp / f"{name}.html"
            if self.command(f"map {name}", *args, "--out", str(out)) is None:
                continue
            if not out.exists() or out.stat().st_size < 10_000:
                self.note(f"map {name}", [f"{out.name} is missing or nearly empty"])


def split_line(
    grids: dict[str, shapely.Geometry], buildings: list[shapely.Geometry]
) -> tuple[str, str] | None:
    """A north-south line (WKT, 7 decimals) that cuts the largest possible grid in two,
    passing at least 2 m from every building and 1 m from every vertex."""
    tree = shapely.STRtree(buildings) if buildings else None
    for code in sorted(grids, key=lambda c: -grids[c].area):
        geom = grids[code]
        minx, miny, maxx, maxy = geom.bounds
        verts = shapely.get_coordinates(geom)[:, 0]
        for share in (0.5, 0.42, 0.58, 0.35, 0.65, 0.28, 0.72):
            x = round(minx + share * (maxx - minx), 7)
            line = shapely.LineString([(x, round(miny - 1e-4, 7)), (x, round(maxy + 1e-4, 7))])
            pieces = [p for p in shapely.get_parts(shapely.ops.split(geom, line)) if p.area > 0]
            if len(pieces) != 2 or np.min(np.abs(verts - x)) < 1.2e-5:
                continue
            near = tree.query(line, predicate="dwithin", distance=2.5e-5) if tree else []
            if len(near):
                continue
            return code, shapely.to_wkt(line, rounding_precision=7)
    return None


def merge_pair(
    grids: dict[str, shapely.Geometry], community_of: dict[str, str]
) -> list[str] | None:
    """The two grids of one community sharing the longest boundary."""
    best: tuple[float, list[str]] | None = None
    codes = sorted(grids)
    tree = shapely.STRtree([grids[c] for c in codes])
    for a in codes:
        for j in tree.query(grids[a], predicate="touches"):
            b = codes[int(j)]
            if b <= a or community_of.get(a) != community_of.get(b):
                continue
            shared = shapely.intersection(grids[a].boundary, grids[b].boundary).length
            if best is None or shared > best[0]:
                best = (shared, [a, b])
    return best[1] if best and best[0] > 1e-4 else None


@pytest.mark.parametrize("key", sorted(DISTRICTS))
def test_corpus_district_round_trip(key: str, settings: GridmapSettings, tmp_path: Path) -> None:
    """load -> regrid x2 -> edit -> maps -> publish -> export -> load, exact at every step."""
    spec = DISTRICTS[key]
    with empty_database(settings, f"gridmap_corpus_{key}_{os.getpid()}") as url:
        run = CorpusRun(spec, url, tmp_path)
        run.run()
    assert not run.findings, f"{key} ({spec['format']}):\n  " + "\n  ".join(run.findings)


@pytest.mark.parametrize("key", sorted(DISTRICTS))
def test_the_oracle_agrees_with_geos_on_the_delivered_files(key: str) -> None:
    """The exact oracle says what GEOS's robust covers says, on every delivered building and
    report against the delivered grids; where the grids are exact (lattice, shared vertices)
    some points lie on two or more grids, so the smallest-code rule is exercised."""
    spec = DISTRICTS[key]
    grids = delivered_layer(spec, "grids")
    assert grids is not None
    grids = grids.to_crs(4326)
    exact = {
        str(c): ExactPolygon(str(c), g) for c, g in zip(grids["code"], grids.geometry, strict=True)
    }
    tree = shapely.STRtree(grids.geometry.values)
    ties = 0
    for layer in ("buildings", "reports"):
        points = delivered_points(spec, layer)
        for p in points.geometry:
            near = tree.query(p)
            geos = sorted(
                str(grids["code"].iat[i]) for i in near if grids.geometry.iat[i].covers(p)
            )
            covering = [c for c, poly in exact.items() if poly.covers(p.x, p.y)]
            assert sorted(covering) == geos, (layer, p.wkt)
            ties += len(covering) > 1
    if key in ("d5_csv_gbk", "d1_gk_gpkg", "d2_utm_geojson", "d3_geoparquet", "d6_odd"):
        assert ties > 0


def test_the_manifest_matches_the_files() -> None:
    """Every district's files exist, and the corpus stays small."""
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 3_000_000
    assert len(DISTRICTS) >= 7
    for spec in DISTRICTS.values():
        for entry in spec["load"]:
            assert (DATA / entry).exists(), entry
        assert re.fullmatch(r"\d{6}", spec["code"])


# --------------------------------------------------------------------------- drawn districts


@pytest.fixture(scope="module")
def drawn_db(settings: GridmapSettings) -> Iterator[str]:
    with empty_database(settings, f"gridmap_corpus_drawn_{os.getpid()}") as url:
        yield url


@settings(
    max_examples=4,
    deadline=None,
    # no shrinking: every example is a database load; the failing example is printed as drawn
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(district=projected_districts())
def test_a_district_drawn_in_metres_loads_without_repair(
    drawn_db: str, district: DrawnDistrict
) -> None:
    """A noded tiling drawn in a projected CRS, reprojected vertex by vertex to EPSG:4326
    (T-junctions a few millimetres off), loads without --repair and nests exactly."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "drawn.gpkg"
        for name, frame in district.layers.items():
            frame.to_file(path, layer=name, driver="GPKG")
        ran = gridmap(drawn_db, "load", str(path), "--replace", "--json")
    assert ran.traceback is None, ran.traceback
    assert ran.exit_code == 0, f"{district.drawn_crs}: {ran.first_error()}"
    store = Store(drawn_db, str(district.layers["district"]["code"].iat[0]))
    plan = store.published()
    problems = nesting_problems(store, [plan] if plan else [], True)
    problems += overlap_problems(store, [plan] if plan else [], True) + oracle_problems(store)
    assert not problems, "\n".join(problems)
    assert CRS(district.drawn_crs).is_projected
