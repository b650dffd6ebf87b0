"""The gridmap error family: each carries the field (or file/layer/feature) and the reason.

No HTTP status here: ``api/problems.py`` maps classes to statuses, the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    """One thing wrong with the input: where it is, what is wrong and how to fix it."""

    reason: str
    layer: str | None = None
    feature: str | None = None
    field: str | None = None
    fix: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = ", ".join(
            f"{k} {v}"
            for k, v in (
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


class GridmapError(Exception):
    """Base of every error gridmap raises on purpose."""

    def __init__(self, reason: str, *, field: str | None = None, fix: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.fix = fix

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

    def __post_init__(self) -> None:
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} found; nothing was loaded")

    def __str__(self) -> str:
        lines = [self.reason, *(f"  - {p}" for p in self.problems)]
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
