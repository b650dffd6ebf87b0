"""Case statistics per grid, community, street or district: what they count and the rates.

The counts are aggregated in PostgreSQL (``geo.store.stats``); the rates and the table
are made here from them.

Definitions (the test in ``tests/geo/test_cases.py`` recounts them independently):

- ``cases``: reported in [start, end); ``rejected`` ones (invalid or duplicate) are counted
  but left out of every rate below;
- ``resolution_rate``: closed / (cases - rejected);
- ``on_time_rate``: closed by ``due_at`` / closed with a ``due_at``;
- ``reopened_rate``: reopened at least once / (cases - rejected);
- ``mean_hours_to_close``, ``p90_hours_to_close``: reported → closed, closed cases only
  (the p90 interpolates like ``numpy.percentile``);
- ``satisfaction``: mean of the 1–5 evaluations, ``evaluated`` how many there are;
- ``open``: not closed or rejected; ``overdue``: open and past ``due_at`` at ``as_of``
  (``end`` when it is in the past, else now).

Cases outside every grid count at district level only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from geo.errors import InvalidInput

Level = Literal["grid", "community", "street", "district"]
LEVELS: tuple[Level, ...] = ("grid", "community", "street", "district")

COLUMNS = (
    "cases",
    "rejected",
    "closed",
    "resolution_rate",
    "on_time_rate",
    "reopened_rate",
    "mean_hours_to_close",
    "p90_hours_to_close",
    "satisfaction",
    "evaluated",
    "open",
    "overdue",
)


def check_period(
    level: str, start: datetime | None, end: datetime | None, as_of: datetime | None
) -> datetime:
    """Refuse an unknown level or a period without offsets; the ``as_of`` overdue is judged at.

    ``as_of`` defaults to ``end`` when that is in the past, else now.
    """
    if level not in LEVELS:
        raise InvalidInput(
            f"unknown level {level!r}", field="level", fix=f"one of: {', '.join(LEVELS)}"
        )
    for name, value in (("start", start), ("end", end), ("as_of", as_of)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a UTC offset", field=name)
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end must be after start", field="end")
    now = datetime.now(UTC)
    return as_of or (end if end is not None and end < now else now)


def stats_table(units: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per unit (every unit, zeros included), indexed by ``code``, with the rates.

    ``units`` has the units' ``code`` (and parents' codes); ``counts`` the aggregated
    counts per code, units without cases absent.
    """
    frame = units.merge(counts, on="code", how="outer") if not counts.empty else units
    for column in ("cases", "rejected", "closed", "closed_with_due", "closed_on_time",
                   "reopened", "evaluated", "open", "overdue"):  # fmt: skip
        frame[column] = (
            pd.to_numeric(frame.get(column), errors="coerce").fillna(0).astype("int64")
            if column in frame
            else 0
        )
    for column in ("mean_hours_to_close", "p90_hours_to_close", "satisfaction"):
        frame[column] = (
            pd.to_numeric(frame[column], errors="coerce").astype(float)
            if column in frame
            else np.nan
        )
    valid = (frame["cases"] - frame["rejected"]).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["resolution_rate"] = np.where(valid > 0, frame["closed"] / valid, np.nan)
        frame["on_time_rate"] = np.where(
            frame["closed_with_due"] > 0, frame["closed_on_time"] / frame["closed_with_due"], np.nan
        )
        frame["reopened_rate"] = np.where(valid > 0, frame["reopened"] / valid, np.nan)
    parents = [c for c in ("community_code", "street_code") if c in frame.columns]
    frame = frame.set_index("code").sort_index()
    frame.index.name = "code"
    return frame[[*parents, *COLUMNS]]
