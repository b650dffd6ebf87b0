"""Reading and writing districts in PostGIS; every function takes a Session and never commits.

Bulk rows (buildings, reports) go in with COPY after being assigned to grids in Python:
far faster than ORM inserts or an ``UPDATE … ST_Covers`` pass over the table.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import (
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from geo.columns import STORED_RULES
from geo.errors import Conflict, DataRefused, NotFound, where
from geo.grids import (
    REQUIRED_COLUMNS,
    DistrictData,
    Repair,
    naive_times,
    parse_times,
    shared_addresses,
)
from geo.precision import DEFAULT_TOLERANCE_M
from geo.store.frames import as_wkb, finish_frame, jsonable, read_frame
from geo.store.models import (
    SRID,
    Building,
    Community,
    District,
    Grid,
    GridPlan,
    GridTeam,
    PlanStatus,
    Report,
    Road,
    Street,
)

Progress = Callable[[str], None]

#: The layer columns buildings and reports store as columns (``geo.columns``); the others
#: go to ``attrs``.
BUILDING_COLUMNS = STORED_RULES["buildings"].names
REPORT_COLUMNS = STORED_RULES["reports"].names


@dataclass
class LoadSummary:
    """What a load did, for the planner and for ``--json``."""

    district_code: str
    district_name: str
    plan_id: int
    streets: int
    communities: int
    grids: int
    buildings: int
    households: int
    reports: int
    roads: int
    buildings_unassigned: int
    reports_unassigned: int
    replaced: bool
    seconds: float
    repairs: list[str] = field(default_factory=list)
    #: What noding did: CRS it ran in, vertices moved, largest move, noise absorbed.
    noding: dict[str, Any] | None = None
    #: Report times written without an offset, taken as +08:00.
    naive_times: int = 0
    #: Addresses written on more than one building (lookups answer them as ambiguous).
    shared_addresses: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ewkb_hex(geoms: np.ndarray) -> np.ndarray:
    return shapely.to_wkb(shapely.set_srid(geoms, SRID), hex=True, include_srid=True)


def extra_attrs(frame: pd.DataFrame, known: Sequence[str]) -> list[str]:
    """JSON of the columns the schema does not name, one string per row."""
    extra = [c for c in frame.columns if c not in known and c != frame.geometry.name]
    if not extra:
        return ["{}"] * len(frame)
    sub = pd.DataFrame(frame[sorted(extra)]).reset_index(drop=True)
    # One vectorised to_json instead of a json.dumps per row (1M reports: seconds saved).
    lines = sub.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
    return lines.rstrip("\n").split("\n") if len(sub) else []


def district_id(session: Session, code: str) -> int:
    found = session.scalar(select(District.id).where(District.code == code))
    if found is None:
        raise NotFound(f"no district with code {code!r}", field="district")
    return int(found)


def published_plan_id(session: Session, district_pk: int) -> int:
    found = session.scalar(
        select(GridPlan.id).where(
            GridPlan.district_id == district_pk, GridPlan.status == PlanStatus.published
        )
    )
    if found is None:
        raise NotFound("the district has no published plan", field="district")
    return int(found)


def store_district(
    session: Session,
    data: DistrictData,
    *,
    replace: bool = False,
    repairs: Sequence[Repair] = (),
    source: str | None = None,
    author: str = "gridmap load",
    progress: Progress | None = None,
    tolerance_m: float | None = None,
) -> LoadSummary:
    """Insert a validated district; its grids become the first published plan.

    Refuses a district that exists unless ``replace``, and one whose outline overlaps
    another stored district by more than ``tolerance_m`` (the settings' default when
    None); the caller's transaction makes the delete and the new rows land together or
    not at all. A library failure inside names the district and the layer being written
    (``geo.errors.where``).
    """
    with where(district=data.code):
        return _store_district(
            session,
            data,
            replace=replace,
            repairs=repairs,
            source=source,
            author=author,
            progress=progress,
            tolerance_m=_tolerance(tolerance_m),
        )


def _store_district(
    session: Session,
    data: DistrictData,
    *,
    replace: bool,
    repairs: Sequence[Repair],
    source: str | None,
    author: str,
    progress: Progress | None,
    tolerance_m: float,
) -> LoadSummary:
    from geo.assign import GridIndex

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    existing = session.scalar(
        select(District.id).where(District.code == data.code).with_for_update()
    )
    if existing is not None and not replace:
        raise Conflict(
            f"district {data.code} is already loaded",
            field="district",
            fix="pass --replace to replace it (atomically)",
        )
    # Loads of two overlapping districts at once must not both pass the check unseen.
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTLINE_LOCK_KEY})
    refuse_overlaps(session, data, tolerance_m=tolerance_m, source=source)
    if existing is not None:
        say(f"removing the stored district {data.code}")
        session.execute(delete(District).where(District.id == existing))

    say("storing the hierarchy")
    with where(layer="district"):
        district_pk = _insert_district(session, data, source)
    with where(layer="streets"):
        street_ids = _insert_units(
            session,
            Street,
            data.streets,
            {"district_id": district_pk},
            REQUIRED_COLUMNS["streets"],
        )
    communities = data.communities.assign(street_id=data.communities["street_code"].map(street_ids))
    with where(layer="communities"):
        community_ids = _insert_units(
            session,
            Community,
            communities,
            {"district_id": district_pk},
            (*REQUIRED_COLUMNS["communities"], "street_id"),
        )
    plan_id = session.scalar(
        insert(GridPlan)
        .values(
            district_id=district_pk,
            status=PlanStatus.published,
            author=author,
            note=f"loaded from {source}" if source else "loaded",
            effective_from=datetime.now(UTC),
        )
        .returning(GridPlan.id)
    )
    assert plan_id is not None
    grids = data.grids.assign(community_id=data.grids["community_code"].map(community_ids))
    with where(layer="grids", shapes=(data.grids["code"].tolist(), data.grids.geometry.values)):
        grid_ids = _insert_grids(session, plan_id, grids)
        store_teams(session, district_pk, data.grids)
        _store_first_plan_metrics(session, int(plan_id), data)

    say(f"assigning {len(data.buildings):,} buildings and {len(data.reports):,} reports")
    # validate_district has just checked every grid geometry.
    index = GridIndex.from_frame(data.grids, code_column="code", validated=True)
    # A building on the outline may sit a reprojection's millimetre outside every grid:
    # within the tolerance it belongs to the nearest one (validation refused the rest).
    b_codes = _assign_codes(index, data.buildings)
    r_codes = _assign_codes(index, data.reports)

    say(f"writing {len(data.buildings):,} buildings")
    with where(layer="buildings", rows=data.buildings["building_id"].to_numpy()):
        copy_buildings(session, district_pk, data.buildings, b_codes, grid_ids)
    say(f"writing {len(data.reports):,} reports")
    with where(layer="reports", rows=data.reports["report_id"].to_numpy()):
        copy_reports(session, district_pk, data.reports, r_codes, grid_ids)
    if not data.roads.empty:
        with where(layer="roads"):
            session.execute(
                insert(Road),
                [
                    {
                        "district_id": district_pk,
                        "name": str(name),
                        "geom": as_wkb(geom),
                        "attrs": attrs,
                    }
                    for name, geom, attrs in zip(
                        data.roads["name"],
                        data.roads.geometry,
                        map(json.loads, extra_attrs(data.roads, REQUIRED_COLUMNS["roads"])),
                        strict=True,
                    )
                ],
            )
    households = pd.to_numeric(data.buildings["households"]).sum()
    return LoadSummary(
        district_code=data.code,
        district_name=data.name,
        plan_id=int(plan_id),
        streets=len(data.streets),
        communities=len(data.communities),
        grids=len(data.grids),
        buildings=len(data.buildings),
        households=int(households),
        reports=len(data.reports),
        roads=len(data.roads),
        buildings_unassigned=int(sum(c is None for c in b_codes)),
        reports_unassigned=int(sum(c is None for c in r_codes)),
        replaced=existing is not None,
        seconds=round(time.perf_counter() - started, 2),
        repairs=[str(r) for r in repairs],
        naive_times=naive_times(data),
        shared_addresses=shared_addresses(data),
        noding=asdict(data.noding) if data.noding is not None else None,
    )


#: The advisory lock that serialises loads while they check outlines against each other.
OUTLINE_LOCK_KEY = 0x67726964  # "grid"


def refuse_overlaps(
    session: Session,
    data: DistrictData,
    *,
    tolerance_m: float | None = None,
    source: str | None = None,
) -> None:
    """Refuse ``data`` if its outline overlaps a stored district (other than its own code).

    A stored district under the same code is the one a load replaces (or refuses as
    already loaded), so it never counts. PostGIS finds the candidates by index; the
    overlap is measured by ``geo.districts.district_overlaps``.
    """
    from geo.districts import district_overlaps

    tolerance_m = _tolerance(tolerance_m)
    outline = data.district.geometry.iat[0]
    rows = session.execute(
        select(District.code, District.name, func.ST_AsBinary(District.geom))
        .where(District.code != data.code, func.ST_Intersects(District.geom, as_wkb(outline)))
        .order_by(District.code)
    ).all()
    if not rows:
        return
    stored = [(str(code), str(name), shapely.from_wkb(bytes(wkb))) for code, name, wkb in rows]
    overlaps = district_overlaps(data.code, outline, stored, tolerance_m)
    if overlaps:
        raise DataRefused([o.problem(source) for o in overlaps])


def check_district_fits(
    session: Session,
    data: DistrictData,
    *,
    replace: bool,
    tolerance_m: float | None = None,
    source: str | None = None,
) -> None:
    """What ``store_district`` would refuse about the stored districts, read only (--dry-run)."""
    exists = session.scalar(select(District.id).where(District.code == data.code))
    if exists is not None and not replace:
        raise Conflict(
            f"district {data.code} is already loaded",
            field="district",
            fix="pass --replace to replace it (atomically)",
        )
    refuse_overlaps(session, data, tolerance_m=tolerance_m, source=source)


def _insert_district(session: Session, data: DistrictData, source: str | None) -> int:
    district_pk = session.scalar(
        insert(District)
        .values(
            code=data.code,
            name=data.name,
            geom=as_wkb(data.district.geometry.iat[0]),
            source=source,
            attrs=json.loads(extra_attrs(data.district, REQUIRED_COLUMNS["district"])[0]),
        )
        .returning(District.id)
    )
    assert district_pk is not None
    return int(district_pk)


def _store_first_plan_metrics(session: Session, plan_id: int, data: DistrictData) -> None:
    """Balance and compactness of the loaded grids, so the first plan compares like a draft."""
    from geo.plans import plan_metrics

    grid_metrics, summary = plan_metrics(data.communities, data.grids, data.buildings, None)
    session.execute(
        update(GridPlan)
        .where(GridPlan.id == plan_id)
        .values(metrics=jsonable({"summary": summary, "grids": grid_metrics}))
    )


def _tolerance(tolerance_m: float | None) -> float:
    """The tolerance given, else the settings' default."""
    if tolerance_m is None:
        return DEFAULT_TOLERANCE_M
    return tolerance_m


def _assign_codes(index: Any, points: gpd.GeoDataFrame, snap_m: float = 0.0) -> list[str | None]:
    if points.empty:
        return []
    xy = shapely.get_coordinates(points.geometry.to_numpy())
    result = index.assign(xy[:, 0], xy[:, 1], snap_m=snap_m)
    return list(result.grid_code)


def _insert_units(
    session: Session,
    model: type[Street] | type[Community],
    frame: gpd.GeoDataFrame,
    fixed: dict[str, Any],
    known: Sequence[str],
) -> dict[str, int]:
    attrs = extra_attrs(frame, (*known, "district_code", "street_code"))
    rows = [
        {
            **fixed,
            "code": code,
            "name": str(name),
            "geom": as_wkb(geom),
            "attrs": json.loads(a),
            **({"street_id": int(frame["street_id"].iat[i])} if "street_id" in frame else {}),
        }
        for i, (code, name, geom, a) in enumerate(
            zip(frame["code"], frame["name"], frame.geometry, attrs, strict=True)
        )
    ]
    result = session.execute(insert(model).returning(model.id, model.code), rows)
    return {code: pk for pk, code in result.all()}


#: Optional grid columns that describe the grid's "1+1+1+N" team (stored in grid_teams).
TEAM_COLUMNS = ("team_leader", "team_deputy", "team_party_secretary", "team_members")


def store_teams(session: Session, district_pk: int, grids: pd.DataFrame) -> int:
    """Upsert the teams given as ``team_*`` grid columns; members are ";"-separated."""
    if not any(c in grids.columns for c in TEAM_COLUMNS):
        return 0

    def value(row: Any, column: str) -> str | None:
        v = row.get(column)
        return None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v)

    rows = []
    for row in grids.to_dict(orient="records"):
        members = value(row, "team_members")
        rows.append(
            {
                "district_id": district_pk,
                "grid_code": row["code"],
                "leader": value(row, "team_leader"),
                "deputy": value(row, "team_deputy"),
                "party_secretary": value(row, "team_party_secretary"),
                "members": members.split(";") if members else [],
            }
        )
    stmt = pg_insert(GridTeam).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[GridTeam.district_id, GridTeam.grid_code],
        set_={c: stmt.excluded[c] for c in ("leader", "deputy", "party_secretary", "members")},
    )
    session.execute(stmt)
    return len(rows)


def teams_frame(session: Session, district_pk: int) -> pd.DataFrame:
    """Teams as ``team_*`` columns keyed by grid code (for export and maps)."""
    rows = session.execute(
        select(
            GridTeam.grid_code,
            GridTeam.leader,
            GridTeam.deputy,
            GridTeam.party_secretary,
            GridTeam.members,
        ).where(GridTeam.district_id == district_pk)
    ).all()
    return pd.DataFrame(
        [
            {
                "code": r.grid_code,
                "team_leader": r.leader,
                "team_deputy": r.deputy,
                "team_party_secretary": r.party_secretary,
                "team_members": ";".join(r.members or []),
            }
            for r in rows
        ],
        columns=["code", *TEAM_COLUMNS],
    )


def _insert_grids(session: Session, plan_id: int, grids: gpd.GeoDataFrame) -> dict[str, int]:
    attrs = extra_attrs(grids, ("code", "community_code", "name", "community_id", *TEAM_COLUMNS))
    names = grids["name"] if "name" in grids.columns else pd.Series([None] * len(grids))
    rows = [
        {
            "plan_id": plan_id,
            "community_id": int(cid),
            "code": code,
            "name": None if name is None or (isinstance(name, float) and np.isnan(name)) else name,
            "geom": as_wkb(geom),
            "attrs": json.loads(a),
        }
        for code, cid, name, geom, a in zip(
            grids["code"], grids["community_id"], names, grids.geometry, attrs, strict=True
        )
    ]
    if not rows:
        return {}
    result = session.execute(insert(Grid).returning(Grid.id, Grid.code), rows)
    return {code: pk for pk, code in result.all()}


#: Rows per COPY chunk: Python formats the next chunk while the server ingests this one.
COPY_CHUNK_ROWS = 50_000


def _copy(session: Session, table: str, frames: Iterable[pd.DataFrame]) -> None:
    """COPY frames into ``table`` as CSV, one chunk at a time; unquoted empty fields are NULL.

    Chunks overlap the client's formatting with the server's parsing and index updates (two
    processes, two cores) instead of formatting everything first and then waiting.
    """
    chunks = iter(frames)
    first = next(chunks, None)
    if first is None:
        return
    raw = session.connection().connection.driver_connection
    assert raw is not None
    sql = f"COPY {table} ({', '.join(first.columns)}) FROM STDIN WITH (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        for frame in itertools.chain([first], chunks):
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, header=False, quoting=csv.QUOTE_MINIMAL, na_rep="")
            copy.write(buffer.getvalue())


def _chunks(n: int) -> Iterator[slice]:
    return (slice(start, min(n, start + COPY_CHUNK_ROWS)) for start in range(0, n, COPY_CHUNK_ROWS))


def _int_column(values: pd.Series | None, length: int) -> pd.Series:
    if values is None:
        return pd.Series([None] * length, dtype=object)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.astype("Int64")


def copy_buildings(
    session: Session,
    district_pk: int,
    buildings: gpd.GeoDataFrame,
    codes: Sequence[str | None],
    grid_ids: dict[str, int],
) -> None:
    if buildings.empty:
        return
    n = len(buildings)
    frame = pd.DataFrame(
        {
            "district_id": district_pk,
            "building_id": buildings["building_id"].to_numpy(),
            "address": buildings["address"].astype(str).to_numpy(),
            "households": _int_column(buildings["households"], n).to_numpy(),
            "residents": _int_column(buildings.get("residents"), n).to_numpy(),
            "floors": _int_column(buildings.get("floors"), n).to_numpy(),
            "attrs": extra_attrs(buildings, BUILDING_COLUMNS),
            "grid_id": pd.array([grid_ids.get(c) if c else None for c in codes], dtype="Int64"),
            "geom": _ewkb_hex(buildings.geometry.to_numpy()),
        }
    )
    _copy(session, Building.__tablename__, [frame])


def _iso_utc(times: pd.Series) -> np.ndarray:
    """UTC timestamps as ISO 8601 text for COPY, microseconds kept, NaT as NULL.

    numpy formats 1M values in ~0.1 s where ``strftime`` takes seconds.
    """
    values = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.char.add(np.datetime_as_string(values, unit="us"), "Z").astype(object)
    text[np.isnat(values)] = None
    return text


def copy_reports(
    session: Session,
    district_pk: int,
    reports: gpd.GeoDataFrame,
    codes: Sequence[str | None],
    grid_ids: dict[str, int],
) -> None:
    """COPY reports (already assigned to ``codes``) in chunks."""
    if reports.empty:
        return
    code_array = np.asarray(codes, dtype=object)
    _copy(
        session,
        Report.__tablename__,
        (
            _report_rows(district_pk, reports.iloc[part], code_array[part], grid_ids)
            for part in _chunks(len(reports))
        ),
    )


def _report_rows(
    district_pk: int, reports: gpd.GeoDataFrame, code_array: np.ndarray, grid_ids: dict[str, int]
) -> pd.DataFrame:
    n = len(reports)

    def text_column(name: str, default: str | None = None) -> Any:
        if name not in reports.columns:
            return np.full(n, default, dtype=object)
        values = reports[name].astype(object)
        return values.where(values.notna() & (values.astype(str) != ""), default).to_numpy()

    def time_column(name: str) -> Any:
        if name not in reports.columns:
            return [None] * n
        return _iso_utc(parse_times(reports[name]))

    mapped = pd.Series(code_array).map(grid_ids)
    assignee = text_column("assignee")
    return pd.DataFrame(
        {
            "district_id": district_pk,
            "report_id": reports["report_id"].to_numpy(),
            "category": reports["category"].astype(str).to_numpy(),
            "subcategory": text_column("subcategory"),
            "reported_at": time_column("reported_at"),
            "closed_at": time_column("closed_at"),
            "status": text_column("status", "reported"),
            "description": text_column("description"),
            "attrs": extra_attrs(reports, REPORT_COLUMNS),
            "grid_id": pd.array(mapped.to_numpy(), dtype="Int64"),
            "geom": _ewkb_hex(reports.geometry.to_numpy()),
            "registered_at": time_column("registered_at"),
            "due_at": time_column("due_at"),
            "handled_at": time_column("handled_at"),
            "verified_at": time_column("verified_at"),
            "satisfaction": pd.array(_int_column(reports.get("satisfaction"), n), dtype="Int64"),
            "reopened": pd.array(_int_column(reports.get("reopened"), n).fillna(0), dtype="Int64"),
            # "grid" as assignee means the case's own grid
            "assignee": np.where(assignee == "grid", code_array, assignee),
        }
    )


# --- reading back ---------------------------------------------------------------------------


def plan_grids(session: Session, plan_id: int) -> gpd.GeoDataFrame:
    """A plan's grids with their community code, in code order."""
    return finish_frame(
        read_frame(
            session,
            """SELECT g.code, c.code AS community_code, g.name, g.attrs, g.geom
               FROM grids g JOIN communities c ON c.id = g.community_id
               WHERE g.plan_id = :plan ORDER BY g.code""",
            plan=plan_id,
        )
    )


def load_district_data(session: Session, code: str, plan_id: int | None = None) -> DistrictData:
    """The stored district as contract layers (grids of ``plan_id`` or the published plan)."""
    pk = district_id(session, code)
    plan = plan_id if plan_id is not None else published_plan_id(session, pk)
    district = finish_frame(
        read_frame(session, "SELECT code, name, attrs, geom FROM districts WHERE id = :d", d=pk)
    )
    streets = finish_frame(
        read_frame(
            session,
            """SELECT s.code, s.name, :code AS district_code, s.attrs, s.geom
               FROM streets s WHERE s.district_id = :d ORDER BY s.code""",
            d=pk,
            code=code,
        )
    )
    communities = finish_frame(
        read_frame(
            session,
            """SELECT c.code, c.name, s.code AS street_code, c.attrs, c.geom
               FROM communities c JOIN streets s ON s.id = c.street_id
               WHERE c.district_id = :d ORDER BY c.code""",
            d=pk,
        )
    )
    grids = plan_grids(session, plan)
    teams = teams_frame(session, pk)
    if not teams.empty:
        grids = grids.merge(teams, on="code", how="left")
    buildings = finish_frame(
        read_frame(
            session,
            """SELECT building_id, address, households, residents, floors, attrs, geom
               FROM buildings WHERE district_id = :d ORDER BY building_id""",
            d=pk,
        )
    )
    reports = finish_frame(
        read_frame(
            session,
            """SELECT report_id, category, subcategory,
                      to_char(reported_at AT TIME ZONE 'Asia/Shanghai',
                              'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS reported_at,
                      to_char(closed_at AT TIME ZONE 'Asia/Shanghai',
                              'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS closed_at,
                      status, description, attrs, geom,
                      to_char(registered_at AT TIME ZONE 'Asia/Shanghai',
                              'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS registered_at,
                      to_char(due_at AT TIME ZONE 'Asia/Shanghai',
                              'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS due_at,
                      to_char(handled_at AT TIME ZONE 'Asia/Shanghai',
                              'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS handled_at,
                      to_char(verified_at AT TIME ZONE 'Asia/Shanghai',
                              'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') AS verified_at,
                      satisfaction, reopened, assignee
               FROM reports WHERE district_id = :d ORDER BY report_id""",
            d=pk,
        )
    )
    roads = finish_frame(
        read_frame(
            session, "SELECT name, attrs, geom FROM roads WHERE district_id = :d ORDER BY id", d=pk
        )
    )
    return DistrictData(district, streets, communities, grids, buildings, reports, roads)


def district_counts(session: Session, code: str) -> dict[str, Any]:
    """Counts a planner wants at a glance (``GET /districts/{code}``, ``gridmap db status``)."""
    pk = district_id(session, code)
    plan = published_plan_id(session, pk)
    row = (
        session.execute(
            text(
                """SELECT d.code, d.name,
                 (SELECT count(*) FROM streets WHERE district_id = d.id) AS streets,
                 (SELECT count(*) FROM communities WHERE district_id = d.id) AS communities,
                 (SELECT count(*) FROM grids WHERE plan_id = :plan) AS grids,
                 (SELECT count(*) FROM buildings WHERE district_id = d.id) AS buildings,
                 (SELECT coalesce(sum(households), 0) FROM buildings
                   WHERE district_id = d.id) AS households,
                 (SELECT count(*) FROM reports WHERE district_id = d.id) AS reports,
                 (SELECT count(*) FROM roads WHERE district_id = d.id) AS roads,
                 ST_Area(d.geom::geography) / 1e6 AS area_km2
               FROM districts d WHERE d.id = :d"""
            ),
            {"d": pk, "plan": plan},
        )
        .mappings()
        .one()
    )
    out = dict(row)
    out["households"] = int(out["households"])
    out["area_km2"] = round(float(out["area_km2"]), 3)
    out["plan_id"] = plan
    return out


def district_sources(session: Session) -> dict[str, str | None]:
    """district code -> the source it was loaded from (the demo skips a repeated load)."""
    return {str(c): s for c, s in session.execute(select(District.code, District.source))}


def list_district_codes(session: Session) -> list[str]:
    return [str(c) for c in session.scalars(select(District.code).order_by(District.code))]


def count_rows(session: Session, code: str) -> dict[str, int]:
    """Rows per table for one district: used by tests to prove a refused load changed nothing."""
    pk = session.scalar(select(District.id).where(District.code == code))
    if pk is None:
        return {}
    return {
        model.__tablename__: int(
            session.scalar(select(func.count()).select_from(model).where(model.district_id == pk))
            or 0
        )
        for model in (Street, Community, Building, Report, Road)
    }


def reassign_district(
    session: Session, code: str, plan_id: int | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """Re-assign every building and report of a district to the grids of a plan.

    Assignment runs in Python (the plan's GridIndex); the results go back with one COPY into
    a temporary table and one UPDATE per table, so a publish stays a single transaction.
    """
    from geo.assign import GridIndex

    say = progress or (lambda _msg: None)
    pk = district_id(session, code)
    plan = plan_id if plan_id is not None else published_plan_id(session, pk)
    grids = plan_grids(session, plan)
    index = GridIndex.from_frame(grids, code_column="code", validated=True)  # stored: valid
    grid_ids = {
        str(c): int(i)
        for c, i in session.execute(select(Grid.code, Grid.id).where(Grid.plan_id == plan)).all()
    }
    counts: dict[str, int] = {}
    for table in ("buildings", "reports"):
        rows = session.execute(
            text(f"SELECT id, ST_X(geom), ST_Y(geom) FROM {table} WHERE district_id = :d"),
            {"d": pk},
        ).all()
        say(f"assigning {len(rows):,} {table}")
        if not rows:
            counts[table] = counts[f"{table}_unassigned"] = 0
            continue
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        xy = np.array([(r[1], r[2]) for r in rows], dtype=np.float64)
        result = index.assign(xy[:, 0], xy[:, 1])
        mapped = pd.array([grid_ids.get(c) if c else None for c in result.grid_code], "Int64")
        session.execute(text("CREATE TEMP TABLE _assigned (id bigint, grid_id int) ON COMMIT DROP"))
        _copy(session, "_assigned", [pd.DataFrame({"id": ids, "grid_id": mapped})])
        session.execute(
            text(f"UPDATE {table} t SET grid_id = a.grid_id FROM _assigned a WHERE t.id = a.id")
        )
        session.execute(text("DROP TABLE _assigned"))
        counts[table] = len(rows)
        counts[f"{table}_unassigned"] = int(sum(c is None for c in result.grid_code))
    counts["plan_id"] = plan
    return counts
