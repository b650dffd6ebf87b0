"""Case statistics per grid, community, street or district, for a period, in one SQL pass.

Aggregates run in PostgreSQL (``count … FILTER``, ``percentile_cont`` for the p90), so
100,000 cases take a fraction of a second and only one row per unit crosses the wire.

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
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.store.queries import district_id

Level = Literal["grid", "community", "street", "district"]
LEVELS: tuple[Level, ...] = ("grid", "community", "street", "district")
_KEY = {"grid": "g.code", "community": "c.code", "street": "s.code", "district": "d.code"}

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

_UNITS = {
    "grid": """SELECT g.code, c.code AS community_code, s.code AS street_code
               FROM grids g JOIN grid_plans p ON p.id = g.plan_id
               JOIN communities c ON c.id = g.community_id JOIN streets s ON s.id = c.street_id
               WHERE p.district_id = :d AND p.status = 'published'""",
    "community": """SELECT c.code, s.code AS street_code FROM communities c
                    JOIN streets s ON s.id = c.street_id WHERE c.district_id = :d""",
    "street": "SELECT s.code FROM streets s WHERE s.district_id = :d",
    "district": "SELECT d.code FROM districts d WHERE d.id = :d",
}

_STATS_SQL = """
SELECT {key} AS code,
       count(*) AS cases,
       count(*) FILTER (WHERE r.status = 'rejected') AS rejected,
       count(*) FILTER (WHERE r.status = 'closed') AS closed,
       count(*) FILTER (WHERE r.status = 'closed' AND r.due_at IS NOT NULL) AS closed_with_due,
       count(*) FILTER (WHERE r.status = 'closed' AND r.closed_at <= r.due_at) AS closed_on_time,
       count(*) FILTER (WHERE r.reopened > 0 AND r.status <> 'rejected') AS reopened,
       avg(extract(epoch FROM r.closed_at - r.reported_at) / 3600.0)
           FILTER (WHERE r.status = 'closed') AS mean_hours_to_close,
       percentile_cont(0.9) WITHIN GROUP (
           ORDER BY extract(epoch FROM r.closed_at - r.reported_at) / 3600.0)
           FILTER (WHERE r.status = 'closed') AS p90_hours_to_close,
       avg(r.satisfaction) AS satisfaction,
       count(r.satisfaction) AS evaluated,
       count(*) FILTER (WHERE r.status NOT IN ('closed', 'rejected')) AS open,
       count(*) FILTER (WHERE r.status NOT IN ('closed', 'rejected') AND r.due_at < :as_of)
           AS overdue
FROM reports r
JOIN districts d ON d.id = r.district_id
{joins}
WHERE r.district_id = :d
  AND r.reported_at >= COALESCE(CAST(:start AS timestamptz), '-infinity')
  AND r.reported_at < COALESCE(CAST(:end AS timestamptz), 'infinity')
  {not_null}
GROUP BY 1
"""

_JOINS = {
    "grid": "JOIN grids g ON g.id = r.grid_id",
    "community": "JOIN grids g ON g.id = r.grid_id JOIN communities c ON c.id = g.community_id",
    "street": """JOIN grids g ON g.id = r.grid_id JOIN communities c ON c.id = g.community_id
                 JOIN streets s ON s.id = c.street_id""",
    "district": "",
}


def case_stats(
    session: Session,
    district_code: str,
    level: str = "grid",
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """One row per unit of ``level`` (every unit, zeros included), indexed by ``code``."""
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
    as_of = as_of or (end if end is not None and end < now else now)
    pk = district_id(session, district_code)
    sql = _STATS_SQL.format(key=_KEY[level], joins=_JOINS[level], not_null="")
    params = {"d": pk, "start": start, "end": end, "as_of": as_of}
    counts = pd.DataFrame(session.execute(text(sql), params).mappings().all())
    units = pd.DataFrame(session.execute(text(_UNITS[level]), {"d": pk}).mappings().all())
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
    frame.attrs.update(level=level, district_code=district_code, start=start, end=end, as_of=as_of)
    return frame[[*parents, *COLUMNS]]
