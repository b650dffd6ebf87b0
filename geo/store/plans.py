"""Grid plans in the store: drafts from a regrid, edits, crosswalks, compare and publish.

The pure work (partitioning, metrics, guarantees, edits) lives in ``geo.regrid`` and
``geo.plans``; this module reads their inputs from PostGIS and writes their results back,
always inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from geo.cases import FINAL
from geo.errors import Conflict, InvalidInput, NotFound, PlanNotDraft, where
from geo.plans import Edit, MergeEdit, MoveEdit, SplitEdit
from geo.store.frames import as_wkb, finish_frame, jsonable, read_frame
from geo.store.models import CrosswalkRow, District, Grid, GridPlan, GridTeam, PlanStatus
from geo.store.queries import district_id, plan_grids, published_plan_id, reassign_district
from geo.topology import as_multipolygon

if TYPE_CHECKING:
    from geo.regrid import RegridRequest

Progress = Callable[[str], None]


@dataclass
class PlanInputs:
    """What a regrid or an edit needs from the store, for one district."""

    district_pk: int
    district_code: str
    parent_plan_id: int
    communities: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    used_codes: set[str]


def plan_inputs(
    session: Session, district_code: str, plan_id: int | None = None, *, open_reports: bool = False
) -> PlanInputs:
    """Communities, the plan's grids (default: published), buildings with loads, roads."""
    pk = district_id(session, district_code)
    plan = plan_id if plan_id is not None else published_plan_id(session, pk)
    communities = finish_frame(
        read_frame(
            session,
            """SELECT c.code, c.name, s.code AS street_code, c.geom
               FROM communities c JOIN streets s ON s.id = c.street_id
               WHERE c.district_id = :d ORDER BY c.code""",
            d=pk,
        )
    )
    buildings = finish_frame(
        read_frame(
            session,
            """SELECT building_id, address, households, coalesce(residents, 0) AS residents,
                      coalesce((attrs->>'elderly_care')::numeric, 0) AS elderly_care, geom
               FROM buildings WHERE district_id = :d ORDER BY building_id""",
            d=pk,
        )
    )
    if open_reports:
        buildings["open_reports"] = _open_reports_per_building(session, pk, buildings)
    roads = finish_frame(
        read_frame(session, "SELECT name, geom FROM roads WHERE district_id = :d", d=pk)
    )
    used = {
        str(c)
        for c in session.scalars(
            text(
                """SELECT DISTINCT g.code FROM grids g JOIN grid_plans p ON p.id = g.plan_id
                   WHERE p.district_id = :d"""
            ),
            {"d": pk},
        )
    }
    return PlanInputs(
        pk, district_code, plan, communities, plan_grids(session, plan), buildings, roads, used
    )


def _open_reports_per_building(
    session: Session, district_pk: int, buildings: gpd.GeoDataFrame
) -> np.ndarray:
    """Open reports of the last year, each counted at its nearest building."""
    import shapely

    reports = read_frame(
        session,
        """SELECT geom FROM reports WHERE district_id = :d
             AND status <> ALL(:final)
             AND reported_at > now() - interval '1 year'""",
        d=district_pk,
        final=[s.value for s in FINAL],
    )
    counts = np.zeros(len(buildings))
    if reports.empty or buildings.empty:
        return counts
    tree = shapely.STRtree(buildings.geometry.to_numpy())
    _, nearest = tree.query_nearest(reports.geometry.to_numpy(), all_matches=False)
    np.add.at(counts, nearest, 1)
    return counts


def save_draft(
    session: Session,
    inputs: PlanInputs,
    grids: gpd.GeoDataFrame,
    *,
    params: Mapping[str, Any],
    summary: Mapping[str, Any],
    grid_metrics: pd.DataFrame,
    crosswalk: pd.DataFrame,
    author: str,
    note: str = "",
) -> int:
    """Store a draft plan (its grids, metrics and crosswalk from the parent plan)."""
    plan_id = session.scalar(
        insert(GridPlan)
        .values(
            district_id=inputs.district_pk,
            status=PlanStatus.draft,
            parent_id=inputs.parent_plan_id,
            author=author,
            note=note,
            params=jsonable(params),
            metrics=jsonable({"summary": summary, "grids": grid_metrics.to_dict("records")}),
        )
        .returning(GridPlan.id)
    )
    assert plan_id is not None
    _write_grids(session, inputs.district_pk, int(plan_id), grids)
    _write_crosswalk(session, int(plan_id), crosswalk)
    return int(plan_id)


def _write_grids(session: Session, district_pk: int, plan_id: int, grids: gpd.GeoDataFrame) -> None:
    """Insert a plan's grids; their load columns are metrics, stored with the plan instead."""
    community_ids: dict[str, int] = dict(
        session.execute(
            text("SELECT code, id FROM communities WHERE district_id = :d"),
            {"d": district_pk},
        ).all()
    )
    grids = grids.to_crs(4326) if grids.crs is not None else grids
    rows = []
    for code, community, name, geom in zip(
        grids["code"],
        grids["community_code"],
        grids.get("name", [None] * len(grids)),
        grids.geometry,
        strict=True,
    ):
        if community not in community_ids:
            raise InvalidInput(
                f"grid {code} names unknown community {community}", field="community_code"
            )
        rows.append(
            {
                "plan_id": plan_id,
                "community_id": community_ids[community],
                "code": str(code),
                "name": None
                if name is None or (isinstance(name, float) and np.isnan(name))
                else str(name),
                "geom": as_wkb(as_multipolygon(geom)),
                "attrs": {},
            }
        )
    session.execute(insert(Grid), rows)


#: Crosswalk rows below this shared area with no building are numerical slivers.
SLIVER_SHARE_M2 = 1.0


def _write_crosswalk(session: Session, plan_id: int, crosswalk: pd.DataFrame) -> None:
    session.execute(delete(CrosswalkRow).where(CrosswalkRow.plan_id == plan_id))
    if crosswalk.empty:
        return
    # Centimetre snapping leaves slivers between an old grid and new neighbours; they carry
    # no building and no household, so they would only bury the real successors. An old
    # grid keeps at least its largest row.
    sliver = (crosswalk["shared_area_m2"] < SLIVER_SHARE_M2) & (crosswalk["buildings"] == 0)
    largest = crosswalk["shared_area_m2"] == crosswalk.groupby("old_code")[
        "shared_area_m2"
    ].transform("max")
    crosswalk = crosswalk[~sliver | largest]
    session.execute(
        insert(CrosswalkRow),
        [
            {
                "plan_id": plan_id,
                "old_code": str(r["old_code"]),
                "new_code": str(r["new_code"]),
                "shared_area_m2": float(r["shared_area_m2"]),
                "buildings": int(r["buildings"]),
                "households": int(r["households"]),
            }
            for r in crosswalk.to_dict("records")
        ],
    )


def plan_row(session: Session, plan_id: int, field: str = "plan_id") -> GridPlan:
    plan = session.get(GridPlan, plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", field=field)
    return plan


def plan_district_code(session: Session, plan: GridPlan) -> str:
    return str(session.scalar(select(District.code).where(District.id == plan.district_id)))


def describe_plan(session: Session, plan_id: int) -> dict[str, Any]:
    """A plan's record and summary metrics (``gridmap plan show``, ``GET /plans/{id}``)."""
    plan = plan_row(session, plan_id)
    grids = session.scalar(
        select(text("count(*)")).select_from(Grid).where(Grid.plan_id == plan_id)
    )
    return {
        "plan_id": plan.id,
        "district_code": plan_district_code(session, plan),
        "status": plan.status.value,
        "parent_id": plan.parent_id,
        "author": plan.author,
        "note": plan.note,
        "created_at": plan.created_at,
        "effective_from": plan.effective_from,
        "effective_to": plan.effective_to,
        "grids": int(grids or 0),
        "params": plan.params,
        "summary": (plan.metrics or {}).get("summary", {}),
    }


def list_plans(session: Session, district_code: str) -> list[dict[str, Any]]:
    pk = district_id(session, district_code)
    ids = session.scalars(
        select(GridPlan.id).where(GridPlan.district_id == pk).order_by(GridPlan.id)
    ).all()
    return [describe_plan(session, int(i)) for i in ids]


def plan_grid_metrics(session: Session, plan_id: int) -> list[dict[str, Any]]:
    plan = plan_row(session, plan_id)
    return list((plan.metrics or {}).get("grids", []))


def plan_crosswalk(session: Session, plan_id: int) -> list[dict[str, Any]]:
    plan_row(session, plan_id)
    rows = session.execute(
        select(
            CrosswalkRow.old_code,
            CrosswalkRow.new_code,
            CrosswalkRow.shared_area_m2,
            CrosswalkRow.buildings,
            CrosswalkRow.households,
        )
        .where(CrosswalkRow.plan_id == plan_id)
        .order_by(CrosswalkRow.old_code, CrosswalkRow.new_code)
    ).all()
    return [dict(r._mapping) for r in rows]


def replace_draft_grids(
    session: Session,
    plan_id: int,
    grids: gpd.GeoDataFrame,
    *,
    summary: Mapping[str, Any],
    grid_metrics: pd.DataFrame,
    crosswalk: pd.DataFrame,
    edit: Mapping[str, Any],
) -> None:
    """Swap a draft's grids after an edit, keeping its metrics, crosswalk and edit log."""
    plan = plan_row(session, plan_id)
    if plan.status != PlanStatus.draft:
        raise PlanNotDraft(
            f"plan {plan_id} is {plan.status.value}; only drafts can be edited", field="plan_id"
        )
    session.execute(delete(Grid).where(Grid.plan_id == plan_id))
    _write_grids(session, plan.district_id, plan_id, grids)
    _write_crosswalk(session, plan_id, crosswalk)
    params = dict(plan.params or {})
    params["edits"] = [*params.get("edits", []), jsonable(edit)]
    session.execute(
        update(GridPlan)
        .where(GridPlan.id == plan_id)
        .values(
            params=params,
            metrics=jsonable({"summary": summary, "grids": grid_metrics.to_dict("records")}),
        )
    )


def publish_plan(
    session: Session,
    plan_id: int,
    *,
    problems: list[Any],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Publish a checked draft: retire the parent, re-assign everything, carry teams over.

    ``problems`` are the guarantee failures the caller found (``geo.plans.check_plan``);
    any one refuses the publish. All of it runs in the caller's one transaction.
    """
    say = progress or (lambda _msg: None)
    plan = plan_row(session, plan_id)
    if plan.status != PlanStatus.draft:
        raise PlanNotDraft(f"plan {plan_id} is {plan.status.value}, not a draft", field="plan_id")
    current = session.scalar(
        select(GridPlan.id)
        .where(GridPlan.district_id == plan.district_id, GridPlan.status == PlanStatus.published)
        .with_for_update()
    )
    if current != plan.parent_id:
        raise Conflict(
            f"plan {plan_id} was drawn from plan {plan.parent_id}, but plan {current} is "
            "published now",
            field="plan_id",
            fix="regrid again from the published plan",
        )
    if problems:
        raise InvalidInput(
            f"plan {plan_id} fails {len(problems)} guarantee(s): "
            + "; ".join(str(p) for p in problems[:5]),
            field="plan_id",
            fix="edit the draft until `gridmap plan show` reports every guarantee met",
        )
    now = datetime.now(UTC)
    say(f"retiring plan {current} and publishing plan {plan_id}")
    session.execute(
        update(GridPlan)
        .where(GridPlan.id == current)
        .values(status=PlanStatus.retired, effective_to=now)
    )
    session.execute(
        update(GridPlan)
        .where(GridPlan.id == plan_id)
        .values(status=PlanStatus.published, effective_from=now)
    )
    district_code = plan_district_code(session, plan)
    counts = reassign_district(session, district_code, plan_id, progress=say)
    say("carrying grid teams over through the crosswalk")
    teams = carry_teams(session, plan.district_id, plan_id)
    return {
        "plan_id": plan_id,
        "retired_plan_id": current,
        "effective_from": now,
        **counts,
        **teams,
    }


def carry_teams(session: Session, district_pk: int, plan_id: int) -> dict[str, Any]:
    """Kept codes keep their team; each old grid's team follows its largest successor.

    A successor takes the team of the old grid that gave it most households (when that team
    is not already taken); every other new grid is listed as needing a team.
    """
    new_codes = [
        str(c)
        for c in session.scalars(
            select(Grid.code).where(Grid.plan_id == plan_id).order_by(Grid.code)
        )
    ]
    teams = {
        t.grid_code: t
        for t in session.scalars(select(GridTeam).where(GridTeam.district_id == district_pk))
    }
    crosswalk = pd.DataFrame(plan_crosswalk(session, plan_id))
    staffed = {c for c in new_codes if c in teams}
    carried: list[dict[str, str]] = []
    if not crosswalk.empty:
        moved = crosswalk[crosswalk["old_code"] != crosswalk["new_code"]]
        moved = moved.sort_values(
            ["households", "shared_area_m2", "old_code", "new_code"],
            ascending=[False, False, True, True],
        )
        used_old: set[str] = {c for c in new_codes if c in teams}
        for row in moved.to_dict("records"):
            old, new = str(row["old_code"]), str(row["new_code"])
            if new in staffed or old in used_old or old not in teams:
                continue
            source = teams[old]
            session.add(
                GridTeam(
                    district_id=district_pk,
                    grid_code=new,
                    leader=source.leader,
                    deputy=source.deputy,
                    party_secretary=source.party_secretary,
                    members=list(source.members or []),
                )
            )
            staffed.add(new)
            used_old.add(old)
            carried.append({"from": old, "to": new})
    session.flush()
    needing = [c for c in new_codes if c not in staffed]
    return {
        "teams_kept": len([c for c in new_codes if c in teams]),
        "teams_carried": carried,
        "grids_needing_team": needing,
    }


# --- workflows: pure geo functions around the store ------------------------------------------


def regrid_to_draft(
    session: Session,
    district_code: str,
    request: Any,
    *,
    author: str = "gridmap",
    note: str = "",
    progress: Callable[[str, float], None] | None = None,
) -> tuple[int, Any]:
    """Regrid the published plan of a district into a new draft; returns (plan id, result).

    A library failure inside names the district and, where GEOS says where, the grid.
    """
    with where(district=district_code):
        return _regrid_to_draft(
            session, district_code, request, author=author, note=note, progress=progress
        )


def _regrid_to_draft(
    session: Session,
    district_code: str,
    request: Any,
    *,
    author: str,
    note: str,
    progress: Callable[[str, float], None] | None,
) -> tuple[int, Any]:
    from geo.regrid import regrid

    inputs = plan_inputs(
        session, district_code, open_reports="open_reports" in dict(request.weights)
    )
    shapes = (inputs.grids["code"].tolist(), inputs.grids.geometry.values)
    with where(layer="grids", shapes=shapes):
        result = regrid(
            inputs.communities,
            inputs.grids,
            inputs.buildings,
            request,
            roads=inputs.roads,
            used_codes=inputs.used_codes,
            progress=progress,
        )
    params = {
        "target": request.target,
        "households_band": list(request.households_band) if request.households_band else None,
        "weights": dict(request.weights),
        "seed": request.seed,
    }
    plan_id = save_draft(
        session,
        inputs,
        result.grids,
        params=params,
        summary=result.summary,
        grid_metrics=result.grid_metrics,
        crosswalk=result.crosswalk,
        author=author,
        note=note,
    )
    return plan_id, result


def _band(plan: GridPlan) -> tuple[float, float] | None:
    band = (plan.params or {}).get("households_band")
    if band:
        return (float(band[0]), float(band[1]))
    summary = (plan.metrics or {}).get("summary", {})
    found = summary.get("band")
    return (float(found[0]), float(found[1])) if found else None


def edit_draft(session: Session, plan_id: int, edit: Edit) -> dict[str, Any]:
    """Apply one manual edit (a ``geo.plans.Edit``: split, merge, move, rename) to a draft, or
    refuse with the reason; ``geo.plans.edit_request`` has checked its options."""
    from geo import plans as pure

    plan = plan_row(session, plan_id)
    if plan.status != PlanStatus.draft:
        raise PlanNotDraft(
            f"plan {plan_id} is {plan.status.value}; only drafts can be edited", field="plan_id"
        )
    district_code = plan_district_code(session, plan)
    inputs = plan_inputs(session, district_code, plan_id)
    grids = inputs.grids
    shapes = (grids["code"].tolist(), grids.geometry.values)
    with where(district=district_code, layer="grids", shapes=shapes):
        if isinstance(edit, SplitEdit):
            edited = pure.split_grid(
                grids,
                edit.grid_code,
                edit.line,
                inputs.communities,
                inputs.buildings,
                inputs.used_codes,
            )
        elif isinstance(edit, MergeEdit):
            edited = pure.merge_grids(
                grids, list(edit.codes), inputs.communities, inputs.buildings, inputs.used_codes
            )
        elif isinstance(edit, MoveEdit):
            edited = pure.move_buildings(
                grids, list(edit.building_ids), edit.to_code, inputs.communities, inputs.buildings
            )
        else:
            edited = pure.rename_grid(grids, edit.grid_code, edit.name)
        parent = plan_grids(session, plan.parent_id) if plan.parent_id else grids
        metrics, summary = pure.plan_metrics(
            inputs.communities, edited, inputs.buildings, _band(plan), parent_grids=parent
        )
        crosswalk = pure.crosswalk(parent, edited, inputs.buildings)
        replace_draft_grids(
            session,
            plan_id,
            edited,
            summary=summary,
            grid_metrics=metrics,
            crosswalk=crosswalk,
            edit=edit.record(),
        )
    return describe_plan(session, plan_id)


def check_stored_plan(session: Session, plan_id: int) -> list[Any]:
    """The guarantees of a stored plan (``geo.plans.check_plan`` on its grids)."""
    from geo.plans import check_plan

    plan = plan_row(session, plan_id)
    inputs = plan_inputs(session, plan_district_code(session, plan), plan_id)
    return check_plan(inputs.communities, inputs.grids, inputs.buildings)


def publish(session: Session, plan_id: int, progress: Progress | None = None) -> dict[str, Any]:
    """Check the guarantees, then publish (one transaction: the caller's)."""
    return publish_plan(
        session, plan_id, problems=check_stored_plan(session, plan_id), progress=progress
    )


def compare(session: Session, plan_a: int, plan_b: int) -> dict[str, Any]:
    """Per-grid metrics and a summary for two plans of one district."""
    from geo.plans import compare_plans

    a, b = plan_row(session, plan_a, "a"), plan_row(session, plan_b, "b")
    if a.district_id != b.district_id:
        raise InvalidInput("the two plans belong to different districts", field="b")
    inputs = plan_inputs(session, plan_district_code(session, a), plan_a)
    band = _band(b) or _band(a)
    result = compare_plans(
        inputs.grids, plan_grids(session, plan_b), inputs.communities, inputs.buildings, band
    )
    return {"a": plan_a, "b": plan_b, **jsonable(result)}


def precheck_regrid(session: Session, district_code: str, request: RegridRequest) -> None:
    """Refuse a request the district cannot meet before any work starts (API: 422 at once)."""
    pk = district_id(session, district_code)
    communities = session.scalar(
        text("SELECT count(*) FROM communities WHERE district_id = :d"), {"d": pk}
    )
    buildings = session.scalar(
        text("SELECT count(*) FROM buildings WHERE district_id = :d"), {"d": pk}
    )
    request.check_fits(int(communities or 0), int(buildings or 0))
