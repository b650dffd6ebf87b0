"""The responsibility list (责任清单): which subcategory exists, who handles it, by when.

The shipped list (``geo/data/responsibility.json``) is in force until another is loaded with
``geo.store.taxonomy.replace_taxonomy``; the newest stored list wins, older ones stay for the
record. Cases keep the deadline they were given at registration, so replacing the list never
rewrites history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from geo.errors import DataRefused, NotFound, Problem

GRID_HANDLER = "grid"


@dataclass(frozen=True)
class Subcategory:
    code: str
    name_zh: str
    name_en: str
    category: str
    category_name_zh: str
    handler: str
    sla_hours: float

    @property
    def grid_level(self) -> bool:
        """Handled by the grid team of the case's grid (dispatched automatically)."""
        return self.handler == GRID_HANDLER


@dataclass(frozen=True)
class Taxonomy:
    """A validated responsibility list, indexed by subcategory and department code."""

    version: int | None
    description: str
    categories: list[dict[str, Any]]
    departments: dict[str, dict[str, Any]]
    subcategories: dict[str, Subcategory] = field(repr=False)

    def subcategory(self, code: str, *, field_name: str = "subcategory") -> Subcategory:
        found = self.subcategories.get(code)
        if found is None:
            raise NotFound(
                f"no subcategory {code!r} in the responsibility list",
                field=field_name,
                fix="pick a code from GET /open311/v2/services.json",
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "grid_handler": GRID_HANDLER,
            "departments": list(self.departments.values()),
            "categories": self.categories,
        }


def parse_taxonomy(data: Any, source: str = "responsibility list") -> Taxonomy:
    """Check a responsibility list and index it; every problem is reported at once."""
    problems: list[Problem] = []

    def bad(reason: str, feature: str | None = None, fix: str | None = None) -> None:
        problems.append(Problem(reason, file=source, feature=feature, fix=fix))

    if not isinstance(data, dict):
        raise DataRefused(problems=[Problem("not a JSON object", file=source)])
    departments_raw = data.get("departments")
    categories = data.get("categories")
    if not isinstance(departments_raw, list) or not isinstance(categories, list) or not categories:
        raise DataRefused(
            problems=[
                Problem(
                    "needs a 'departments' list and a non-empty 'categories' list",
                    file=source,
                    fix="start from geo/data/responsibility.json",
                )
            ],
        )
    departments: dict[str, dict[str, Any]] = {}
    for dept in departments_raw:
        code = str(dept.get("code", "")) if isinstance(dept, dict) else ""
        if not code or code == GRID_HANDLER or code in departments:
            bad(f"department code {code!r} is empty, reserved or repeated", feature=code or None)
            continue
        departments[code] = dict(dept)
    subs: dict[str, Subcategory] = {}
    for cat in categories:
        ccode = str(cat.get("code", "")) if isinstance(cat, dict) else ""
        if not ccode or not isinstance(cat.get("subcategories"), list) or not cat["subcategories"]:
            bad("a category needs a code and a non-empty 'subcategories' list", feature=ccode)
            continue
        for sub in cat["subcategories"]:
            scode = str(sub.get("code", ""))
            handler = str(sub.get("handler", ""))
            sla = sub.get("sla_hours")
            if not scode or scode in subs:
                bad(f"subcategory code {scode!r} is empty or repeated", feature=scode or ccode)
                continue
            if handler != GRID_HANDLER and handler not in departments:
                bad(
                    f"handler {handler!r} is neither 'grid' nor a listed department",
                    feature=scode,
                    fix="add the department to 'departments' or use 'grid'",
                )
                continue
            if not isinstance(sla, int | float) or isinstance(sla, bool) or sla <= 0:
                bad(f"sla_hours {sla!r} is not a positive number", feature=scode)
                continue
            subs[scode] = Subcategory(
                scode,
                str(sub.get("name_zh", scode)),
                str(sub.get("name_en", scode)),
                ccode,
                str(cat.get("name_zh", ccode)),
                handler,
                float(sla),
            )
    if problems:
        raise DataRefused(problems=problems)
    return Taxonomy(None, str(data.get("description", "")), categories, departments, subs)


def shipped_taxonomy() -> Taxonomy:
    """The list shipped with gridmap (12 categories, 132 subcategories, 17 departments)."""
    raw = resources.files("geo").joinpath("data/responsibility.json").read_text("utf-8")
    return parse_taxonomy(json.loads(raw), "geo/data/responsibility.json")


def read_taxonomy(path: Path) -> Taxonomy:
    """A responsibility list from a JSON file, checked (not yet stored: no version)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DataRefused(problems=[Problem(f"cannot read JSON: {exc}", file=str(path))]) from exc
    return parse_taxonomy(data, str(path))
