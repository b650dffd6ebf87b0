"""``/plans``: regrid as a background job, inspect, edit, compare and publish plans."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from api.deps import LookupDep, SessionDep
from api.problems import PROBLEM_RESPONSES
from api.schemas import Feature, FeatureCollection
from geo.errors import NotFound, translate
from geo.plans import DEFAULT_WEIGHTS, LOAD_COLUMNS, edit_request
from geo.regrid import RegridRequest
from geo.store import plans as store
from geo.store.frames import jsonable
from geo.store.queries import plan_grids
from geo.store.session import transaction

router = APIRouter(tags=["plans"], responses=PROBLEM_RESPONSES)

#: Database ids are 32-bit: larger numbers are refused as input, not left to overflow.
PlanId = Annotated[int, Path(ge=1, le=2_147_483_647, description="plan id")]
PlanQuery = Annotated[int, Query(ge=1, le=2_147_483_647)]


class RegridIn(BaseModel):
    """A regrid request: an exact ``target``, a ``households`` band [low, high], or both (the
    target fixes the count, the band which grids are kept). ``RegridRequest`` checks them."""

    model_config = ConfigDict(extra="forbid")
    district: str = Field(min_length=1)
    target: int | None = Field(None, description="exact number of grids")
    households: tuple[int, int] | None = Field(
        None, description="band [low, high] of households per grid, 0 < low < high"
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description=f"load mix over {', '.join(LOAD_COLUMNS)}; weights at least 0",
    )
    seed: int = 0
    author: str = Field("api", max_length=100)
    note: str = Field("", max_length=2000)

    def regrid_request(self) -> RegridRequest:
        """The goal of this body, checked (a refusal names the body's field)."""
        return RegridRequest(
            target=self.target,
            households_band=self.households,
            weights=self.weights,
            seed=self.seed,
        )


class Job(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    stage: str | None = None
    progress: float = 0.0
    plan_id: int | None = None
    error: dict[str, Any] | None = None
    started_at: datetime
    finished_at: datetime | None = None


class EditIn(BaseModel):
    """One manual edit of a draft."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["split", "merge", "move", "rename"]
    grid_code: str | None = None
    line: dict[str, Any] | str | None = Field(None, description="GeoJSON LineString or WKT")
    codes: list[str] | None = None
    building_ids: list[str] | None = None
    to_code: str | None = None
    name: str | None = Field(None, max_length=200)


def _jobs(request: Request) -> dict[str, Job]:
    jobs: dict[str, Job] = request.app.state.jobs
    return jobs


def _run_regrid(
    sessions: sessionmaker[Session], job: Job, body: RegridIn, request: RegridRequest
) -> None:
    job.status = "running"

    def progress(stage: str, share: float) -> None:
        job.stage, job.progress = stage, round(float(share), 3)

    try:
        with transaction(sessions) as session:
            plan_id, _ = store.regrid_to_draft(
                session,
                body.district,
                request,
                author=body.author,
                note=body.note,
                progress=progress,
            )
        job.plan_id, job.status, job.progress = plan_id, "done", 1.0
    except Exception as exc:  # a job must always end in a readable state
        job.status = "failed"
        error = translate(exc)
        job.error = (
            error.details()
            if error is not None
            else {"reason": f"internal error: {type(exc).__name__}"}
        )
    job.finished_at = datetime.now(UTC)


@router.post("/plans", response_model=Job, status_code=status.HTTP_202_ACCEPTED)
def start_regrid(body: RegridIn, request: Request, session: SessionDep) -> Job:
    """Start regridding the published plan into a draft; poll ``GET /jobs/{job_id}``."""
    goal = body.regrid_request()
    store.precheck_regrid(session, body.district, goal)
    job = Job(job_id=uuid.uuid4().hex, status="queued", started_at=datetime.now(UTC))
    _jobs(request)[job.job_id] = job
    threading.Thread(
        target=_run_regrid, args=(request.app.state.sessions, job, body, goal), daemon=True
    ).start()
    return job


@router.get("/jobs/{job_id}", response_model=Job)
def get_job(job_id: str, request: Request) -> Job:
    """A regrid job's status, stage and progress (0-1); ``plan_id`` once done."""
    job = _jobs(request).get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}", field="job_id")
    return job


@router.get("/plans")
def list_plans(
    session: SessionDep, district: Annotated[str, Query(min_length=1)]
) -> list[dict[str, Any]]:
    """Every plan of a district."""
    return jsonable(store.list_plans(session, district))


@router.get("/plans/compare")
def compare_plans(session: SessionDep, a: PlanQuery, b: PlanQuery) -> dict[str, Any]:
    """Per-grid metrics and a summary (balance, compactness, disruption) for both plans."""
    return store.compare(session, a, b)


@router.get("/plans/{plan_id}")
def get_plan(plan_id: PlanId, session: SessionDep) -> dict[str, Any]:
    """A plan's record and summary metrics."""
    return jsonable(store.describe_plan(session, plan_id))


@router.get("/plans/{plan_id}/metrics")
def get_metrics(plan_id: PlanId, session: SessionDep) -> dict[str, Any]:
    """Summary and per-grid metrics, and the guarantees' check."""
    info = store.describe_plan(session, plan_id)
    return jsonable(
        {
            "plan_id": plan_id,
            "summary": info["summary"],
            "grids": store.plan_grid_metrics(session, plan_id),
            "guarantee_problems": [str(p) for p in store.check_stored_plan(session, plan_id)],
        }
    )


@router.get("/plans/{plan_id}/crosswalk")
def get_crosswalk(plan_id: PlanId, session: SessionDep) -> list[dict[str, Any]]:
    """Old code -> new code with shared area, buildings and households."""
    return store.plan_crosswalk(session, plan_id)


@router.get("/plans/{plan_id}/grids", response_model=FeatureCollection)
def get_plan_grids(plan_id: PlanId, session: SessionDep) -> FeatureCollection:
    """A plan's grids as GeoJSON."""
    import json

    store.plan_row(session, plan_id)
    grids = plan_grids(session, plan_id)
    collection = json.loads(grids[["code", "community_code", "name", "geometry"]].to_json())
    return FeatureCollection(
        features=[
            Feature(id=f["properties"]["code"], geometry=f["geometry"], properties=f["properties"])
            for f in collection["features"]
        ]
    )


@router.post("/plans/{plan_id}/edits")
def edit_plan(plan_id: PlanId, body: EditIn, session: SessionDep) -> dict[str, Any]:
    """Apply one edit to a draft (split, merge, move, rename) or refuse with the reason."""
    edit = edit_request(body.op, body.model_dump(exclude={"op"}))
    return jsonable(store.edit_draft(session, plan_id, edit))


@router.post("/plans/{plan_id}/publish")
def publish_plan(plan_id: PlanId, session: SessionDep, grids: LookupDep) -> dict[str, Any]:
    """Publish atomically: retire the parent, re-assign everything, carry teams over."""
    result = store.publish(session, plan_id)
    grids.invalidate()
    return jsonable(result)
