"""``gridmap demo``: README command 1's pipeline on the embedded default, then serve.

Each step is skipped when its result is already there (same fixture file, district loaded
from it), so a second run goes straight to serving.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import typer


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def demo_command(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    seed: int = typer.Option(7, "--seed", help="fixture seed"),
    no_serve: bool = typer.Option(False, "--no-serve", help="run the pipeline, do not serve"),
) -> None:
    """Generate and load the fixture district, run the pipeline, serve the API and maps."""
    from api.console import database_url, out, settings, stages
    from fixtures.district import generate_district, write_district
    from geo.grids import read_district, validate_district
    from geo.store.queries import district_counts, district_sources, store_district
    from geo.store.session import transaction

    config = settings()
    home = config.embedded.home
    fixture = home / "fixtures" / f"shahekou-seed{seed}.gpkg"
    with stages(False) as step:
        url = database_url(config)
        step(f"database ready at {url.split('@')[-1]}")
        if not fixture.exists():
            step("generating the fixture district (Shahekou-like, seeded)")
            started = time.perf_counter()
            fixture.parent.mkdir(parents=True, exist_ok=True)
            write_district(generate_district("full", seed=seed), fixture)
            step(f"fixture written to {fixture} in {time.perf_counter() - started:.1f} s")
        source = f"{fixture.name} sha256:{_sha256(fixture)}"
        with transaction(url) as session:
            loaded = district_sources(session)
        data = read_district([fixture])
        if loaded.get(data.code) == source:
            step(f"district {data.code} already loaded from this fixture: skipping the load")
        else:
            step(f"loading district {data.code} {data.name}")
            data, repairs = validate_district(data, progress=step)
            with transaction(url) as session:
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
        with transaction(url) as session:
            counts = district_counts(session, data.code)
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
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="warning")
