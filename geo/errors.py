"""The gridmap error family: each carries the field (or file/layer/feature) and the reason.

No HTTP status here: ``api/problems.py`` maps classes to statuses, the CLI prints them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

#: A refusal prints at most this many problems of one kind, then says how many more there are.
SHOWN_PER_KIND = 50


@dataclass
class Problem:
    """One thing wrong with the input: where it is, what is wrong and how to fix it."""

    reason: str
    layer: str | None = None
    feature: str | None = None
    field: str | None = None
    fix: str | None = None
    file: str | None = None
    district: str | None = None

    def __str__(self) -> str:
        where = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("district", self.district),
                ("file", self.file),
                ("layer", self.layer),
                ("feature", self.feature),
                ("field", self.field),
            )
            if v
        )
        text = f"{where}: {self.reason}" if where else self.reason
        return f"{text} (fix: {self.fix})" if self.fix else text

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @property
    def kind(self) -> str:
        """The check that found it: layer, field and reason with the values left out.

        ``households -5 is negative`` and ``households -1 is negative`` are one kind, so a
        file with 10,000 of them prints a sample and a count, not 10,000 lines.
        """
        shape = _VALUES.sub("…", self.reason)
        where = ", ".join(
            f"{k} {v}" for k, v in (("layer", self.layer), ("field", self.field)) if v
        )
        return f"{where}: {shape}" if where else shape


#: Quoted text, bracketed lists and numbers: the parts of a reason that differ per feature.
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\([^()]*\)|\[[^\[\]]*\]|[-+]?\d[\d.,:]*(?:e[-+]?\d+)?")


def problem_lines(problems: Sequence[Problem], per_kind: int = SHOWN_PER_KIND) -> list[str]:
    """Every problem, grouped by kind in the order found: at most ``per_kind`` of each, then
    one line saying how many more of that kind were left out."""
    groups: dict[str, list[Problem]] = {}
    for p in problems:
        groups.setdefault(p.kind, []).append(p)
    lines: list[str] = []
    for kind, group in groups.items():
        lines.extend(str(p) for p in group[:per_kind])
        if len(group) > per_kind:
            lines.append(f"… and {len(group) - per_kind:,} more of this kind ({kind})")
    return lines


class GridmapError(Exception):
    """Base of every error gridmap raises on purpose."""

    #: Where the error names several things (a refused file, a failed step): one per thing.
    problems: Sequence[Problem] = ()

    def __init__(self, reason: str, *, field: str | None = None, fix: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.fix = fix

    def details(self) -> dict[str, Any]:
        """Field, reason, fix and the problems: what ``--json`` and a failed job show."""
        out: dict[str, Any] = {"field": self.field, "reason": self.reason, "fix": self.fix}
        if self.problems:
            out["problems"] = [p.as_dict() for p in self.problems]
        return out

    def __str__(self) -> str:
        text = f"{self.field}: {self.reason}" if self.field else self.reason
        return f"{text} (fix: {self.fix})" if self.fix else text


class InvalidInput(GridmapError):
    """A parameter or request body that cannot be used as given."""


class NotFound(GridmapError):
    """A district, plan, grid, building or case that does not exist."""


class UnknownGridCode(NotFound):
    """A grid code that no plan of the district holds."""


class Conflict(GridmapError):
    """The request is valid but contradicts the stored state (exists already, wrong status)."""


class PlanNotDraft(Conflict):
    """Only a draft plan can be edited or published."""


class InvalidGeometry(InvalidInput):
    """A geometry that is invalid, of the wrong type or hostile."""


class NotATiling(InvalidInput):
    """Polygons that should tile their parent leave gaps or overlap."""


@dataclass
class DataRefused(GridmapError):
    """A load refused as a whole, with every problem found (not just the first)."""

    problems: list[Problem] = field(default_factory=list)
    #: What the refusal means for the store (a load's: "nothing was loaded").
    outcome: str = "nothing was loaded"

    def __post_init__(self) -> None:
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} found; {self.outcome}")

    def __str__(self) -> str:
        lines = [self.reason, *(f"  - {line}" for line in problem_lines(self.problems))]
        return "\n".join(lines)


class DatabaseUnavailable(GridmapError):
    """The database cannot be reached or the embedded cluster cannot start."""


class Unauthenticated(GridmapError):
    """No API key, or one that is unknown or revoked."""


class Forbidden(GridmapError):
    """The key is valid but its role, grid or department may not do or see this."""


class NotAllowed(Conflict):
    """A workflow step that is not valid from the case's current status.

    ``allowed`` lists the steps that are, so a client can show or pick the right one.
    """

    def __init__(
        self,
        reason: str,
        *,
        allowed: list[str] | None = None,
        field: str | None = "action",
        fix: str | None = None,
    ) -> None:
        self.allowed = list(allowed or [])
        fix = fix or (
            f"allowed next steps: {', '.join(self.allowed)}" if self.allowed else "none from here"
        )
        super().__init__(reason, field=field, fix=fix)


class RateLimited(GridmapError):
    """Too many requests from one key or one address; retry after ``retry_after_s``."""

    def __init__(self, reason: str, *, retry_after_s: float, field: str | None = None) -> None:
        super().__init__(reason, field=field, fix=f"retry after {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


# --- failures of the libraries underneath ----------------------------------------------------


class ProcessingFailed(InvalidInput):
    """GEOS, GDAL or the database failed inside a step, on data that had passed the checks.

    Only ``translate`` makes one, at the edge (CLI, HTTP, a job), after the step's transaction
    has rolled back: it always means that nothing was stored. ``problems`` holds one Problem
    naming the district, layer and feature where they are known.
    """

    def __init__(self, problem: Problem, *, library: str) -> None:
        super().__init__(problem.reason, field=problem.field, fix=problem.fix)
        self.problems = [problem]
        self.library = library

    def __str__(self) -> str:
        problem = self.problems[0]
        return str(replace(problem, reason=f"{problem.reason}; nothing was stored"))


_WHERE = "gridmap_where"


@contextmanager
def where(
    *,
    district: str | None = None,
    layer: str | None = None,
    feature: str | None = None,
    file: str | None = None,
    rows: Sequence[Any] | None = None,
    shapes: tuple[Sequence[Any], Sequence[Any]] | None = None,
) -> Iterator[None]:
    """Say what a step works on, so that a library failure inside it can name it.

    Nothing is swallowed: an exception leaving the block carries the context on its way out
    (the innermost block's values win) and ``translate`` reads it at the edge. ``rows`` are
    the labels of rows in the order a COPY sends them (its error says "line N"); ``shapes``
    are (labels, geometries) in which to find the feature at a GEOS error's location.
    """
    try:
        yield
    except Exception as exc:
        found: dict[str, Any] = getattr(exc, _WHERE, {})
        given = {
            "district": district,
            "layer": layer,
            "feature": feature,
            "file": file,
            "rows": rows,
        }
        for key, value in (*given.items(), ("shapes", shapes)):
            if value is not None:
                found.setdefault(key, value)
        try:
            setattr(exc, _WHERE, found)
        except AttributeError:  # pragma: no cover - an exception type without __dict__
            pass
        raise


def translate(exc: BaseException) -> GridmapError | None:
    """The GridmapError to show for an exception, or None for a bug (left to propagate).

    GEOS (``shapely.errors.GEOSException``), pyogrio/GDAL and the database
    (``sqlalchemy.exc.DBAPIError``, and psycopg's own errors from COPY) become one
    ProcessingFailed naming what ``where`` recorded; lost connections become
    DatabaseUnavailable.
    """
    if isinstance(exc, GridmapError):
        return exc
    context: dict[str, Any] = getattr(exc, _WHERE, {})
    found = _geos_failure(exc, context) or _gdal_failure(exc) or _database_failure(exc, context)
    if found is None or isinstance(found, GridmapError):
        return found
    library, problem = found
    problem.district = problem.district or context.get("district")
    problem.layer = context.get("layer") or problem.layer
    problem.feature = problem.feature or context.get("feature")
    problem.file = problem.file or context.get("file")
    return ProcessingFailed(problem, library=library)


def _geos_failure(exc: BaseException, context: dict[str, Any]) -> tuple[str, Problem] | None:
    from shapely.errors import GEOSException

    if not isinstance(exc, GEOSException):
        return None
    message = str(exc).replace(" This can occur if the input geometry is invalid.", "").strip()
    number = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    at = re.search(rf" at {number} {number}\.?", message)
    feature = None
    near = ""
    if at:
        x, y = float(at.group(1)), float(at.group(2))
        message = message[: at.start()] + message[at.end() :]
        x, y, feature = _locate(context.get("shapes"), x, y)
        near = f" near ({x:.6f}, {y:.6f})" if abs(x) <= 360 else f" near ({x:.2f}, {y:.2f})"
    return "GEOS", Problem(
        f"GEOS could not process the geometry{near}: {message}",
        feature=feature,
        fix="make the geometries there valid (ST_IsValid in PostGIS or a GIS's validity "
        "check finds them; `gridmap load --repair` fixes invalid rings of a file) and retry",
    )


def _locate(
    shapes: tuple[Sequence[Any], Sequence[Any]] | None, x: float, y: float
) -> tuple[float, float, str | None]:
    """The lon/lat of a GEOS error's location and the labels of the features there.

    ``shapes`` are in lon/lat; a location that is not lon/lat comes from a measurement in
    the data's UTM zone (``geo.crs.metric_crs_for_bounds``), so it is projected back first.
    """
    if shapes is None or not len(shapes[0]):
        return x, y, None
    import numpy as np
    import pyproj
    import shapely

    from geo.crs import metric_crs_for_bounds

    labels, geoms = shapes
    array = np.asarray(geoms, dtype=object)
    if abs(x) > 180 or abs(y) > 90:
        bounds = shapely.total_bounds(array)
        utm = metric_crs_for_bounds((bounds[0], bounds[1], bounds[2], bounds[3]))
        x, y = pyproj.Transformer.from_crs(utm, 4326, always_xy=True).transform(x, y)
    near = shapely.dwithin(array, shapely.Point(x, y), 1e-6)  # about 10 cm
    hits = sorted({str(labels[i]) for i in np.flatnonzero(near).tolist()})
    shown = ", ".join(hits[:5]) + (f" and {len(hits) - 5} more" if len(hits) > 5 else "")
    return x, y, shown or None


def _gdal_failure(exc: BaseException) -> tuple[str, Problem] | None:
    if not isinstance(exc, _gdal_errors()):
        return None
    # GDAL says "sqlite3_prepare_v2(SELECT …) failed: file is not a database; file is not a
    # database": the last clause is the sentence a planner can act on.
    clauses = [c.strip() for c in str(exc).split(";") if c.strip()] or [type(exc).__name__]
    sentence = clauses[-1].rsplit(": ", 1)[-1].rstrip(".")
    return "GDAL", Problem(
        f"GDAL cannot read or write it: {sentence}",
        fix="check that the file opens in a GIS and that its folder is writable; "
        "re-export it as a GeoPackage if it does not",
    )


def _gdal_errors() -> tuple[type[Exception], ...]:
    import pyogrio.errors as ogr

    return (
        ogr.DataSourceError,
        ogr.DataLayerError,
        ogr.CRSError,
        ogr.FeatureError,
        ogr.FieldError,
        ogr.GeometryError,
    )


def library_errors() -> tuple[type[Exception], ...]:
    """The exception classes ``translate`` knows (for handlers that dispatch on class)."""
    import psycopg
    from shapely.errors import GEOSException
    from sqlalchemy.exc import DBAPIError

    return (GEOSException, *_gdal_errors(), DBAPIError, psycopg.Error)


#: Tables the load writes, by the contract layer they come from.
_LAYER_OF_TABLE = {"districts": "district"}


def _database_failure(
    exc: BaseException, context: dict[str, Any]
) -> tuple[str, Problem] | GridmapError | None:
    import psycopg
    from sqlalchemy.exc import DBAPIError

    orig: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    if not isinstance(orig, psycopg.Error):
        return None
    if isinstance(orig, psycopg.errors.ProgrammingError):
        return None  # wrong SQL is gridmap's bug, not the data's
    if isinstance(orig, psycopg.OperationalError) and _lost_connection(orig):
        return DatabaseUnavailable(
            f"lost the database connection: {_first_line(orig)}", fix="run `gridmap db up`"
        )
    diag = orig.diag
    feature = None
    field_name = diag.column_name
    copied = re.match(r"COPY (\w+), line (\d+)(?:, column (\w+))?", diag.context or "")
    table = diag.table_name or (copied.group(1) if copied else None)
    if copied:
        field_name = field_name or copied.group(3)
        rows = context.get("rows")
        line = int(copied.group(2))
        if rows is not None and 0 < line <= len(rows):
            feature = str(rows[line - 1])
        else:
            feature = f"row {line}"
    reason = diag.message_primary or _first_line(orig)
    if diag.message_detail and not diag.message_detail.startswith("Failing row contains"):
        reason += f" ({diag.message_detail.rstrip('.')})"
    return "PostgreSQL", Problem(
        f"the database refused it: {reason}",
        layer=_LAYER_OF_TABLE.get(table, table) if table else None,
        feature=feature,
        field=field_name,
        fix="correct that value (`gridmap load --dry-run` checks a file for what the "
        "database refuses: if this one passed it, please report it)",
    )


def _lost_connection(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(
        s in text for s in ("connection", "server closed", "terminating", "could not connect")
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
