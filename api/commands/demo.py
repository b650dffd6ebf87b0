"""``gridmap demo``: README command 1's pipeline on the embedded default, then serve.

Each step is skipped when its result is already there (same fixture file, district loaded
from it), so a second run goes straight to serving.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _generator_version() -> str:
    """A hash of the generator's sources: a changed generator means a new fixture file."""
    import fixtures.district

    root = Path(fixtures.district.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), root.parent / "geo" / "data" / "responsibility.json"]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _demo_draft(session: Session, district: str, seed: int) -> int | None:
    """The demo's 1014-grid draft from an earlier run, if it is still a draft."""
    from geo.store.plans import list_plans

    for plan in list_plans(session, district):
        params = plan["params"] or {}
        if (
            plan["status"] == "draft"
            and params.get("target") == 1014
            and params.get("seed") == seed
        ):
            return int(plan["plan_id"])
    return None


def demo_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    seed: int = typer.Option(7, "--seed", help="fixture seed"),
    no_serve: bool = typer.Option(False, "--no-serve", help="run the pipeline, do not serve"),
) -> None:
    """Generate and load the fixture district, run the pipeline, serve the API and maps."""
    from api.console import out, runtime, stages
    from fixtures.district import generate_district, write_district
    from geo.grids import read_district, validate_district
    from geo.store.queries import district_counts, district_sources, store_district

    rt = runtime(ctx)
    home = rt.settings.embedded.home
    fixture = home / "fixtures" / f"shahekou-seed{seed}-{_generator_version()}.gpkg"
    with stages(False) as step:
        step(f"database ready at {rt.url.split('@')[-1]}")
        if not fixture.exists():
            step("generating the fixture district (Shahekou-like, seeded)")
            started = time.perf_counter()
            fixture.parent.mkdir(parents=True, exist_ok=True)
            write_district(generate_district("full", seed=seed), fixture)
            step(f"fixture written to {fixture} in {time.perf_counter() - started:.1f} s")
        source = f"{fixture.name} sha256:{_sha256(fixture)}"
        with rt.transaction() as session:
            loaded = district_sources(session)
        data = read_district([fixture])
        if loaded.get(data.code) == source:
            step(f"district {data.code} already loaded from this fixture: skipping the load")
        else:
            step(f"loading district {data.code} {data.name}")
            data, repairs = validate_district(data, progress=step)
            with rt.transaction() as session:
                summary = store_district(
                    session,
                    data,
                    replace=data.code in loaded,
                    repairs=repairs,
                    source=source,
                    progress=step,
                )
            step(
                f"loaded {summary.grids} grids, {summary.buildings:,} buildings, "
                f"{summary.reports:,} reports in {summary.seconds:.1f} s"
            )
        with rt.transaction() as session:
            counts = district_counts(session, data.code)
            draft = _demo_draft(session, data.code, seed)
        if draft is None:
            step("regridding 630 grids into 1014 (a draft plan; the published plan is untouched)")
            from geo.regrid import RegridRequest
            from geo.store.plans import regrid_to_draft

            with rt.transaction() as session:
                draft, result = regrid_to_draft(
                    session,
                    data.code,
                    RegridRequest(target=1014, seed=seed),
                    author="gridmap demo",
                    note="README command 1: 630 -> 1014",
                )
            s = result.summary
            step(
                f"draft plan {draft}: {s['grids']} grids, max/mean {s['max_over_mean']:.3f}, "
                f"{s['band_share']:.1%} in band, {s['boundary_kept_share_all']:.0%} of old "
                f"boundary kept, in {s['seconds']:.1f} s"
            )
        else:
            step(f"draft plan {draft} (1014 grids) already there: skipping the regrid")
    out.print(
        f"District {counts['code']} {counts['name']}: {counts['streets']} streets, "
        f"{counts['communities']} communities, {counts['grids']} grids, "
        f"{counts['buildings']:,} buildings, {counts['households']:,} households, "
        f"{counts['reports']:,} reports."
    )
    if no_serve:
        return
    import uvicorn

    base = f"http://{host}:{port}"
    out.print(f"\n[bold green]gridmap is serving at {base}/[/]")
    out.print(f"  API docs      {base}/docs")
    out.print(f"  districts     {base}/districts")
    out.print(f"  lookup        {base}/lookup?lon=121.60&lat=38.90")
    code = counts["code"]
    out.print(f"  hotspots map  {base}/maps/hotspots?district={code}")
    out.print(f"  workload map  {base}/maps/workload?district={code}")
    out.print(f"  draft plan    {base}/plans/{draft}/metrics")
    out.print(
        f"  compare map   {base}/maps/compare?district={code}&a={counts['plan_id']}&b={draft}"
    )
    out.print(f"  publish it    .venv/bin/gridmap plan publish {draft}")
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="warning")
