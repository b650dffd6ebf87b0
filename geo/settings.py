"""One settings object for the whole service, read from ``GRIDMAP_*`` variables."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from geo.precision import DEFAULT_TOLERANCE_M

#: The repository root: the embedded cluster lives under ``<root>/.gridmap`` by default.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class InputLimits:
    """Caps applied to raw input before any geometry is parsed: files for ``gridmap load`` and
    ``gridmap assign``, request bodies for the API. Each is a ``GRIDMAP_*`` setting of the
    same name (``GridmapSettings.input_limits``); these are the defaults."""

    max_file_bytes: int = 2 * 1024**3
    max_vertices_per_feature: int = 1_000_000
    max_nesting_depth: int = 8
    lookup_batch_limit: int = 10_000


class EmbeddedDatabase(BaseModel):
    """The private PostgreSQL + PostGIS cluster gridmap runs when no URL is given."""

    home: Path = PROJECT_ROOT / ".gridmap"
    port: int | None = Field(default=None, ge=1024, le=65535)
    database: str = "gridmap"
    #: The unprivileged system account that runs the server when gridmap runs as root.
    os_user: str = "gridmap"


class MapSettings(BaseModel):
    """Basemap for served and exported maps; ``none`` draws only the district's own layers."""

    basemap: Literal["none", "local", "tianditu", "amap"] = "none"
    tile_url: str | None = None
    tianditu_key: str | None = None


class CaseLimits(BaseModel):
    """Filing limits: a burst, then a steady rate (per minute), per key and per address."""

    per_key_burst: int = Field(default=20, gt=0)
    per_key_per_minute: float = Field(default=30.0, gt=0)
    per_address_burst: int = Field(default=60, gt=0)
    per_address_per_minute: float = Field(default=120.0, gt=0)


class CaseSettings(BaseModel):
    """The closed loop of cases (``GRIDMAP_CASES__LIMITS__PER_KEY_BURST`` and so on)."""

    limits: CaseLimits = CaseLimits()


class GridmapSettings(BaseSettings):
    """Everything configurable, from ``GRIDMAP_*`` variables (nested with ``__``)."""

    model_config = SettingsConfigDict(
        env_prefix="GRIDMAP_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    database_url: str | None = None
    embedded: EmbeddedDatabase = EmbeddedDatabase()
    maps: MapSettings = MapSettings()
    cases: CaseSettings = CaseSettings()
    #: Largest file ``gridmap load`` accepts, a guard against hostile input.
    max_file_bytes: int = Field(default=InputLimits.max_file_bytes, gt=0)
    #: Caps checked on raw GeoJSON/WKB before shapely parses a geometry.
    max_vertices_per_feature: int = Field(default=InputLimits.max_vertices_per_feature, gt=0)
    max_nesting_depth: int = Field(default=InputLimits.max_nesting_depth, gt=0)
    #: Most points one ``POST /lookup`` takes.
    lookup_batch_limit: int = Field(default=InputLimits.lookup_batch_limit, gt=0, le=1_000_000)
    #: Topology tolerance in metres: a sliver or an overlap nowhere wider than this is noise
    #: (see geo/topology.py).
    tolerance_m: float = DEFAULT_TOLERANCE_M

    @property
    def input_limits(self) -> InputLimits:
        """The hostile-input caps of these settings, for every path that reads input."""
        return InputLimits(**{cap.name: getattr(self, cap.name) for cap in fields(InputLimits)})

    @field_validator("tolerance_m")
    @classmethod
    def _sane_tolerance(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(
                "GRIDMAP_TOLERANCE_M must be above 0 and at most 1 (metres); the default is 0.01"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError(
                "GRIDMAP_DATABASE_URL must be a postgresql:// URL (PostGIS is required)"
            )
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value
