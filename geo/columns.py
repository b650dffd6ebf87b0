"""What each stored column of a contract layer accepts: NOT NULL, type, length, range, unique.

Declared here, in the domain, so that validation (``geo.grids``, which ``--dry-run`` runs)
can refuse everything the store would refuse without asking the store. The schema is built
from the same declaration (``geo.store.models`` takes its bounds and lengths from here), and
``tests/geo/test_inputs.py`` probes the migrated tables against every rule.
"""

from __future__ import annotations

from dataclasses import dataclass

INT32 = (-(2**31), 2**31 - 1)
INT16 = (-(2**15), 2**15 - 1)


@dataclass(frozen=True)
class ColumnRule:
    """What one stored column accepts; ``low``/``high`` are the tighter of type and CHECK."""

    column: str
    kind: str  # "text", "integer", "number" or "time"
    required: bool
    max_chars: int | None = None
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class LayerRules:
    """The stored columns of a layer and the column sets that must be unique within it."""

    columns: tuple[ColumnRule, ...]
    unique: tuple[tuple[str, ...], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(rule.column for rule in self.columns)

    def rule(self, column: str) -> ColumnRule:
        return next(rule for rule in self.columns if rule.column == column)


def _text(column: str, *, required: bool = False, max_chars: int | None = None) -> ColumnRule:
    return ColumnRule(column, "text", required, max_chars=max_chars)


def _integer(
    column: str,
    *,
    required: bool = False,
    low: int | None = None,
    high: int | None = None,
    width: tuple[int, int] = INT32,
) -> ColumnRule:
    """An integer column of a type ``width`` (int32 unless said), narrowed by a CHECK."""
    return ColumnRule(
        column,
        "integer",
        required,
        low=width[0] if low is None else max(low, width[0]),
        high=width[1] if high is None else min(high, width[1]),
    )


def _time(column: str, *, required: bool = False) -> ColumnRule:
    return ColumnRule(column, "time", required)


_UNITS = LayerRules((_text("code", required=True), _text("name", required=True)), (("code",),))

#: Per contract layer, in load order. ``required`` means NOT NULL without a default: a
#: column the store fills itself when empty (a report's ``status``) is not required.
STORED_RULES: dict[str, LayerRules] = {
    "district": _UNITS,
    "streets": _UNITS,
    "communities": _UNITS,
    "grids": LayerRules((_text("code", required=True), _text("name")), (("code",),)),
    "buildings": LayerRules(
        (
            _text("building_id", required=True),
            _text("address", required=True),
            _integer("households", required=True, low=0),
            _integer("residents", low=0),
            _integer("floors"),
        ),
        (("building_id",),),
    ),
    "reports": LayerRules(
        (
            _text("report_id", required=True),
            _text("category", required=True),
            _text("subcategory"),
            _time("reported_at", required=True),
            _time("closed_at"),
            _text("status", max_chars=32),
            _text("description"),
            # the closed loop (geo/cases.py); "grid" as assignee means the case's own grid
            _time("registered_at"),
            _time("due_at"),
            _time("handled_at"),
            _time("verified_at"),
            _integer("satisfaction", low=1, high=5, width=INT16),
            _integer("reopened"),
            _text("assignee"),
        ),
        (("report_id",),),
    ),
    "roads": LayerRules((_text("name", required=True),), ()),
}


def check_sql(rule: ColumnRule, width: tuple[int, int] = INT32) -> str:
    """The CHECK that narrows an integer column of type ``width`` to the rule (NULL passes)."""
    low = rule.low if rule.low is not None and rule.low > width[0] else None
    high = rule.high if rule.high is not None and rule.high < width[1] else None
    if low is not None and high is not None:
        return f"{rule.column} BETWEEN {low} AND {high}"
    if low is not None:
        return f"{rule.column} >= {low}"
    if high is not None:
        return f"{rule.column} <= {high}"
    raise ValueError(f"{rule.column} has no bound narrower than its type")
