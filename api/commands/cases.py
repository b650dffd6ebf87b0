"""``gridmap cases list | show | advance | stats | taxonomy`` and ``gridmap keys create``.

The CLI runs on the server with database access, so it acts as an admin unless ``--key``
names an API key, in which case that key's role and scope apply exactly as over HTTP.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from api.console import out, print_json, reports_errors, runtime
from geo.errors import InvalidInput

cases_app = typer.Typer(
    help="Cases: the closed loop, whistles and statistics.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys with roles (stored hashed).", no_args_is_help=True)

KEY_OPTION = typer.Option(None, "--key", help="act as this API key (default: admin)")


def _actor(session: Any, key: str | None) -> Any:
    from geo.cases import Actor, Role
    from geo.store.cases import actor_for_key

    return actor_for_key(session, key) if key else Actor(None, Role.admin)


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not an ISO 8601 time", field=name) from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} needs a UTC offset, e.g. +08:00", field=name)
    return parsed


def _show_case(case: dict[str, Any]) -> None:
    out.print(
        f"[bold]{case['case_id']}[/] {case['status']}  {case['category']}/{case['subcategory']}"
        f"  grid {case['grid_code']}  assignee {case['assignee']}  due {case['due_at']}"
        + ("  [red]overdue[/]" if case["overdue"] else "")
    )
    for event in case.get("history", []):
        actor = event["actor"]
        out.print(
            f"  {event['at']:%Y-%m-%d %H:%M} {event['action']:<12} "
            f"{event['from_status'] or '-'} → {event['to_status']}  "
            f"{actor['role']} {actor['scope'] or ''}  {event['comment']}"
        )
    for esc in case.get("escalations", []):
        late = " [red]late[/]" if esc["ack_overdue"] or esc["report_overdue"] else ""
        out.print(
            f"  whistle → {esc['department']}: ack by {esc['ack_due_at']:%m-%d %H:%M} "
            f"({esc['acknowledged_at'] or 'not yet'}), report back "
            f"({esc['reported_back_at'] or 'not yet'}){late}"
        )
    if case.get("allowed") is not None:
        out.print(f"  next: {', '.join(case['allowed']) or 'nothing'}")


@cases_app.command("list")
@reports_errors
def list_command(
    ctx: typer.Context,
    district: str | None = typer.Option(None, "--district"),
    status: list[str] = typer.Option([], "--status", help="repeatable"),
    grid: str | None = typer.Option(None, "--grid"),
    assignee: str | None = typer.Option(None, "--assignee"),
    overdue: bool = typer.Option(False, "--overdue", help="open cases past their deadline"),
    limit: int = typer.Option(50, "--limit"),
    key: str | None = KEY_OPTION,
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Cases, newest first (the filters of GET /cases)."""
    from geo.store.cases import list_cases

    with runtime(ctx).transaction() as session:
        found = list_cases(
            session,
            _actor(session, key),
            district=district,
            statuses=status,
            grid=grid,
            assignee=assignee,
            overdue=True if overdue else None,
            limit=limit,
        )
    if json_output:
        print_json(found)
        return
    table = Table(title=f"{len(found)} cases")
    for column in ("case", "status", "subcategory", "grid", "assignee", "reported", "due"):
        table.add_column(column)
    for c in found:
        table.add_row(
            c["case_id"],
            c["status"] + (" ⚠" if c["overdue"] else ""),
            c["subcategory"],
            c["grid_code"] or "-",
            c["assignee"] or "-",
            f"{c['reported_at']:%Y-%m-%d %H:%M}",
            f"{c['due_at']:%Y-%m-%d %H:%M}" if c["due_at"] else "-",
        )
    out.print(table)


@cases_app.command("show")
@reports_errors
def show_command(
    ctx: typer.Context,
    case_id: str = typer.Argument(...),
    district: str | None = typer.Option(None, "--district"),
    key: str | None = KEY_OPTION,
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """One case with its history and escalations."""
    from geo.store.cases import get_case

    with runtime(ctx).transaction() as session:
        case = get_case(session, case_id, _actor(session, key), district=district)
    if json_output:
        print_json(case)
    else:
        _show_case(case)


@cases_app.command("advance")
@reports_errors
def advance_command(
    ctx: typer.Context,
    case_id: str = typer.Argument(...),
    action: str = typer.Argument(..., help="register, reject, dispatch, start, whistle, …"),
    comment: str = typer.Option("", "--comment"),
    subcategory: str | None = typer.Option(None, "--subcategory"),
    assignee: str | None = typer.Option(None, "--assignee"),
    reason: str | None = typer.Option(None, "--reason", help="reject: invalid or duplicate"),
    duplicate_of: str | None = typer.Option(None, "--duplicate-of"),
    satisfaction: int | None = typer.Option(None, "--satisfaction", min=1, max=5),
    departments: list[str] = typer.Option([], "--department", help="whistle: repeatable"),
    district: str | None = typer.Option(None, "--district"),
    key: str | None = KEY_OPTION,
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Take one step of a case's loop (the rules of POST /cases/{id}/transitions)."""
    from geo.store.cases import advance_case
    from geo.store.taxonomy import load_taxonomy

    with runtime(ctx).transaction() as session:
        actor = _actor(session, key)
        taxonomy = load_taxonomy(session)
        case = advance_case(
            session,
            case_id,
            actor,
            action,
            taxonomy=taxonomy,
            comment=comment,
            district=district,
            subcategory=subcategory,
            assignee=assignee,
            reason=reason,
            duplicate_of=duplicate_of,
            satisfaction=satisfaction,
            departments=departments,
        )
    if json_output:
        print_json(case)
    else:
        _show_case(case)


@cases_app.command("stats")
@reports_errors
def stats_command(
    ctx: typer.Context,
    district: str = typer.Option(..., "--district"),
    level: str = typer.Option("grid", "--level", help="grid, community, street or district"),
    start: str | None = typer.Option(None, "--start", help="ISO time with offset"),
    end: str | None = typer.Option(None, "--end", help="ISO time with offset"),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Cases, rates, time to close, satisfaction, open and overdue per unit (GET /stats)."""
    from geo.store.stats import case_stats

    with runtime(ctx).transaction() as session:
        frame = case_stats(session, district, level, _when(start, "start"), _when(end, "end"))
    if json_output:
        records = frame.reset_index().astype(object).where(frame.reset_index().notna(), None)
        print_json(records.to_dict(orient="records"))
        return
    table = Table(title=f"Cases of district {district} by {level}")
    columns = (
        "cases",
        "resolution_rate",
        "on_time_rate",
        "reopened_rate",
        "mean_hours_to_close",
        "p90_hours_to_close",
        "satisfaction",
        "open",
        "overdue",
    )
    table.add_column("code")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for code, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if value != value:  # NaN
                cells.append("-")
            elif column.endswith("_rate"):
                cells.append(f"{value:.1%}")
            elif isinstance(value, float):
                cells.append(f"{value:.1f}")
            else:
                cells.append(f"{int(value):,}")
        table.add_row(str(code), *cells)
    out.print(table)


@cases_app.command("taxonomy")
@reports_errors
def taxonomy_command(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, help="a responsibility list (JSON)"),
    replace: bool = typer.Option(False, "--replace", help="put FILE in force"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check FILE only"),
) -> None:
    """Show the responsibility list in force, or check / replace it from FILE."""
    import json as _json

    from geo.store.taxonomy import load_taxonomy, replace_taxonomy
    from geo.taxonomy import parse_taxonomy

    with runtime(ctx).transaction() as session:
        current = load_taxonomy(session)
        if file is None:
            out.print(
                f"In force: {'shipped list' if current.version is None else current.version} — "
                f"{len(current.categories)} categories, {len(current.subcategories)} "
                f"subcategories, {len(current.departments)} departments"
            )
            return
        parsed = parse_taxonomy(_json.loads(file.read_text("utf-8")), str(file))
        summary = (
            f"{file}: {len(parsed.categories)} categories, {len(parsed.subcategories)} "
            f"subcategories, {len(parsed.departments)} departments"
        )
        gone = sorted(set(current.subcategories) - set(parsed.subcategories))
        if dry_run or not replace:
            out.print(f"{summary}; valid. Would drop {len(gone)} subcategories {gone[:10]}.")
            if not replace:
                out.print("Nothing changed (add --replace to put it in force).")
            return
        stored = replace_taxonomy(session, file)
    out.print(f"{summary}; in force as version {stored.version} (dropped {len(gone)}).")


@keys_app.command("create")
@reports_errors
def create_key_command(
    ctx: typer.Context,
    role: str = typer.Option(..., "--role", help="reporter, grid_worker, dispatcher, …"),
    grid: str | None = typer.Option(None, "--grid", help="grid_worker: its grid code"),
    department: str | None = typer.Option(None, "--department", help="department: its code"),
    label: str = typer.Option("", "--label", help="who holds it"),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Print a new API key (shown once; only its hash is stored)."""
    from geo.store.cases import create_api_key
    from geo.store.taxonomy import load_taxonomy

    with runtime(ctx).transaction() as session:
        new = create_api_key(
            session,
            role,
            taxonomy=load_taxonomy(session),
            grid_code=grid,
            department=department,
            label=label,
        )
    if json_output:
        print_json(
            {
                "key": new.key,
                "key_id": new.key_id,
                "role": new.role,
                "grid_code": new.grid_code,
                "department": new.department,
            }
        )
    else:
        print(new.key)


@keys_app.command("revoke")
@reports_errors
def revoke_key_command(ctx: typer.Context, key_id: int = typer.Argument(...)) -> None:
    """Revoke a key by its id; it stops working at once."""
    from geo.store.cases import revoke_api_key

    with runtime(ctx).transaction() as session:
        revoke_api_key(session, key_id)
    out.print(f"Revoked key {key_id}.")
