"""``gridmap regrid`` and ``gridmap plan list | show | compare | publish | export | edit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from api.console import err, out, print_json, reports_errors, runtime, stages
from geo.errors import InvalidInput

plan_app = typer.Typer(
    help="Grid plans: list, inspect, compare, edit, publish, export.", no_args_is_help=True
)


def parse_band(text: str | None) -> tuple[int, int] | None:
    """``300-500`` -> (300, 500); whether the band makes sense is ``check_band``'s to say."""
    if text is None:
        return None
    try:
        low, high = (int(part) for part in text.replace("–", "-").split("-"))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a band", field="households", fix="write it as LOW-HIGH, e.g. 300-500"
        ) from None
    return low, high


def parse_weights(text: str | None) -> dict[str, float]:
    """``households=1,residents=0.5`` -> a weight per load (which loads: the request's rule)."""
    if not text:
        from geo.plans import DEFAULT_WEIGHTS

        return dict(DEFAULT_WEIGHTS)
    weights: dict[str, float] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value or 1)
        except ValueError:
            raise InvalidInput(
                f"weight of {name.strip()} is not a number", field="weights"
            ) from None
    return weights


def _summary_table(title: str, summaries: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for name in summaries:
        table.add_column(name, justify="right")
    rows = [
        ("grids", "grids", "{:,}"),
        ("mean load", "load_mean", "{:.0f}"),
        ("band", "band", "{}"),
        ("max / mean", "max_over_mean", "{:.3f}"),
        ("min / mean", "min_over_mean", "{:.3f}"),
        ("coefficient of variation", "cv", "{:.3f}"),
        ("grids inside the band", "band_share", "{:.1%}"),
        ("Polsby–Popper mean", "polsby_popper_mean", "{:.2f}"),
        ("Polsby–Popper min", "polsby_popper_min", "{:.2f}"),
        ("grids in one piece", "contiguity_share", "{:.1%}"),
        ("old boundary length kept", "boundary_kept_share_all", "{:.1%}"),
        ("in-band old grids kept", "kept_in_band_share", "{:.1%}"),
        ("exact tiling (coverage valid)", "coverage_valid", "{}"),
    ]
    for label, key, fmt in rows:
        cells = []
        for summary in summaries.values():
            value = summary.get(key)
            cells.append("–" if value is None else fmt.format(value))
        table.add_row(label, *cells)
    return table


def regrid_command(
    ctx: typer.Context,
    district: str = typer.Option(..., "--district", help="district code"),
    target: int | None = typer.Option(None, "--target", help="exact number of grids"),
    households: str | None = typer.Option(None, "--households", help="band, e.g. 300-500"),
    weights: str | None = typer.Option(
        None, "--weights", help="load mix, e.g. households=1,residents=0.3,open_reports=2"
    ),
    seed: int = typer.Option(0, "--seed"),
    note: str = typer.Option("", "--note"),
    author: str = typer.Option("gridmap regrid", "--author"),
    json_output: bool = typer.Option(False, "--json", help="print plan_id and metrics as JSON"),
) -> None:
    """Regrid a district's published plan into a draft (--target, a --households band, or both).

    With both, the target fixes the number of grids and the band decides which grids are kept
    and which are reported out of band.
    """
    from geo.regrid import RegridRequest
    from geo.store.plans import regrid_to_draft

    request = RegridRequest(
        target=target,
        households_band=parse_band(households),
        weights=parse_weights(weights),
        seed=seed,
    )
    console = err if json_output else out
    with console.status("regridding") as status:

        def progress(stage: str, share: float) -> None:
            status.update(f"{stage} {share:.0%}")

        with runtime(ctx).transaction() as session:
            plan_id, result = regrid_to_draft(
                session, district, request, author=author, note=note, progress=progress
            )
    if json_output:
        from geo.store.frames import jsonable

        print_json({"plan_id": plan_id, "metrics": jsonable(result.summary)})
        return
    out.print(
        _summary_table(f"Draft plan {plan_id} for district {district}", {"draft": result.summary})
    )
    for warning in result.summary.get("warnings", [])[:20]:
        out.print(f"[yellow]note[/] grid {warning.get('grid_code')}: {warning.get('reason')}")
    out.print(
        f"Compare with `gridmap plan compare {result.summary.get('parent_plan_id', 'PUBLISHED')} "
        f"{plan_id}`, publish with `gridmap plan publish {plan_id}`."
    )


@plan_app.command("list")
@reports_errors
def list_command(
    ctx: typer.Context,
    district: str = typer.Option(..., "--district"),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Every plan of a district: drafts, the published one and retired ones."""
    from geo.store.plans import list_plans

    with runtime(ctx).transaction() as session:
        plans = list_plans(session, district)
    if json_output:
        print_json(plans)
        return
    table = Table(title=f"Plans of district {district}")
    for column in ("id", "status", "parent", "grids", "max/mean", "in band", "author", "created"):
        table.add_column(column)
    for p in plans:
        s = p["summary"]
        table.add_row(
            str(p["plan_id"]),
            p["status"],
            str(p["parent_id"] or "–"),
            str(p["grids"]),
            f"{s['max_over_mean']:.3f}" if s.get("max_over_mean") else "–",
            f"{s['band_share']:.1%}" if s.get("band_share") is not None else "–",
            p["author"],
            f"{p['created_at']:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@plan_app.command("show")
@reports_errors
def show_command(
    ctx: typer.Context, plan_id: int, json_output: bool = typer.Option(False, "--json")
) -> None:
    """A plan's record, summary metrics and guarantee check."""
    from geo.store.plans import check_stored_plan, describe_plan

    with runtime(ctx).transaction() as session:
        info = describe_plan(session, plan_id)
        problems = [str(p) for p in check_stored_plan(session, plan_id)]
    info["guarantee_problems"] = problems
    if json_output:
        from geo.store.frames import jsonable

        print_json(jsonable(info))
        return
    out.print(
        f"Plan {info['plan_id']} of district {info['district_code']}: {info['status']}, "
        f"{info['grids']} grids, parent {info['parent_id']}, by {info['author']}"
    )
    if info["summary"]:
        out.print(_summary_table(f"Plan {plan_id}", {f"plan {plan_id}": info["summary"]}))
    out.print(
        "[green]every guarantee met[/]"
        if not problems
        else "[red]guarantees not met:[/]\n  " + "\n  ".join(problems)
    )


@plan_app.command("compare")
@reports_errors
def compare_command(
    ctx: typer.Context, a: int, b: int, json_output: bool = typer.Option(False, "--json")
) -> None:
    """Per-grid metrics and a summary for two plans of one district."""
    from geo.store.plans import compare

    with runtime(ctx).transaction() as session:
        result = compare(session, a, b)
    if json_output:
        print_json(result)
        return
    summaries = {f"plan {a}": result["a"]["summary"], f"plan {b}": result["b"]["summary"]}
    out.print(_summary_table(f"Plan {a} vs plan {b}", summaries))


@plan_app.command("publish")
@reports_errors
def publish_command(
    ctx: typer.Context, plan_id: int, json_output: bool = typer.Option(False, "--json")
) -> None:
    """Publish a draft atomically: retire the old plan, re-assign, carry teams over."""
    from geo.store.frames import jsonable
    from geo.store.plans import publish

    with stages(json_output) as step, runtime(ctx).transaction() as session:
        result = publish(session, plan_id, progress=step)
    if json_output:
        print_json(jsonable(result))
        return
    out.print(
        f"Published plan {plan_id} (plan {result['retired_plan_id']} retired). Re-assigned "
        f"{result['buildings']:,} buildings and {result['reports']:,} reports. Teams: "
        f"{result['teams_kept']} kept, {len(result['teams_carried'])} carried over, "
        f"{len(result['grids_needing_team'])} new grids need a team."
    )
    if result["grids_needing_team"]:
        out.print(
            "Grids needing a team: "
            + ", ".join(result["grids_needing_team"][:30])
            + (" …" if len(result["grids_needing_team"]) > 30 else "")
        )


@plan_app.command("export")
@reports_errors
def export_command(
    ctx: typer.Context,
    plan_id: int,
    out_path: Path = typer.Option(..., "--out", help=".gpkg, .geojson or .parquet"),
) -> None:
    """Write a plan's grids as the data contract's ``grids`` layer."""
    from geo.io import write_layer
    from geo.store.plans import plan_row
    from geo.store.queries import plan_grids

    with runtime(ctx).transaction() as session:
        plan_row(session, plan_id)
        grids = plan_grids(session, plan_id)
    if out_path.suffix.lower() == ".gpkg" and out_path.exists():
        out_path.unlink()
    write_layer(grids, out_path, "grids")
    out.print(f"Wrote {len(grids)} grids of plan {plan_id} to {out_path}")


#: The options of ``gridmap plan edit`` by the edit fields they give (for refusals).
EDIT_OPTION_NAMES = {
    "op": "OP",
    "grid_code": "--grid",
    "line": "--line",
    "codes": "--codes",
    "building_ids": "--buildings",
    "to_code": "--to",
    "name": "--name",
}


@plan_app.command("edit")
@reports_errors
def edit_command(
    ctx: typer.Context,
    plan_id: int,
    op: str = typer.Argument(..., help="split, merge, move or rename"),
    grid: str | None = typer.Option(None, "--grid", help="grid code (split, rename)"),
    line: str | None = typer.Option(None, "--line", help="split line as WKT LINESTRING (lon lat)"),
    codes: str | None = typer.Option(None, "--codes", help="grid codes to merge, comma-separated"),
    buildings: str | None = typer.Option(None, "--buildings", help="building ids to move"),
    to: str | None = typer.Option(None, "--to", help="grid code the buildings move to"),
    name: str | None = typer.Option(None, "--name", help="new grid name"),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Edit a draft; each edit keeps the guarantees or is refused with the reason."""
    from geo.plans import edit_request
    from geo.store.frames import jsonable
    from geo.store.plans import edit_draft

    given = {
        "grid_code": grid,
        "line": line,
        "codes": codes,
        "building_ids": buildings,
        "to_code": to,
        "name": name,
    }
    edit = edit_request(op, given, spelled=EDIT_OPTION_NAMES)
    with runtime(ctx).transaction() as session:
        info = edit_draft(session, plan_id, edit)
    if json_output:
        print_json(jsonable(info))
    else:
        out.print(f"Edited plan {plan_id} ({op}): {info['grids']} grids.")
