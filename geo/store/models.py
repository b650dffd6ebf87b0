"""The PostGIS schema: several districts, each with its hierarchy and versioned grid plans.

Every geometry is EPSG:4326 (CGCS2000 is treated as equal) and has exactly one GiST index,
declared here by name, never by GeoAlchemy2's ``spatial_index`` flag, so that Alembic's
autogenerate and GeoAlchemy2 cannot each create one.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SRID = 4326

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _geometry(kind: str) -> Geometry:
    return Geometry(kind, srid=SRID, spatial_index=False)


def _gist(table: str, column: str = "geom") -> Index:
    return Index(f"ix_{table}_{column}_gist", column, postgresql_using="gist")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PlanStatus(enum.StrEnum):
    draft = "draft"
    published = "published"
    retired = "retired"


class District(Base):
    """A district (区): the unit that is loaded, exported and regridded as a whole."""

    __tablename__ = "districts"
    __table_args__ = (_gist("districts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(_geometry("MULTIPOLYGON"))


class Street(Base):
    """A street / sub-district (街道); streets tile their district."""

    __tablename__ = "streets"
    __table_args__ = (UniqueConstraint("district_id", "code"), _gist("streets"))

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(_geometry("MULTIPOLYGON"))


class Community(Base):
    """A community (社区); communities tile their street, grids tile their community."""

    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("district_id", "code"), _gist("communities"))

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"))
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(_geometry("MULTIPOLYGON"))


class GridPlan(Base):
    """One version of a district's grid layer, like MapIt's Generation.

    Exactly one plan per district is published at a time (a partial unique index says so);
    drafts are edited and compared, retired plans stay for history and ``as_of`` lookups.
    """

    __tablename__ = "grid_plans"
    __table_args__ = (
        Index(
            "uq_grid_plans_one_published",
            "district_id",
            unique=True,
            postgresql_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(
        ForeignKey("districts.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[PlanStatus] = mapped_column(
        Enum(PlanStatus, name="plan_status", values_callable=lambda e: [m.value for m in e])
    )
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("grid_plans.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(Text, server_default="gridmap")
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    effective_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    effective_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class Grid(Base):
    """A management grid (网格) of one plan; ``code`` is its public identity."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("plan_id", "code"), _gist("grids"))

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("grid_plans.id", ondelete="CASCADE"))
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(_geometry("MULTIPOLYGON"))


class GridTeam(Base):
    """The "1+1+1+N" team of a grid code: leader, deputy, party secretary and members."""

    __tablename__ = "grid_teams"
    __table_args__ = (UniqueConstraint("district_id", "grid_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"))
    grid_code: Mapped[str] = mapped_column(Text)
    leader: Mapped[str | None] = mapped_column(Text)
    deputy: Mapped[str | None] = mapped_column(Text)
    party_secretary: Mapped[str | None] = mapped_column(Text)
    members: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))


class CrosswalkRow(Base):
    """What became of each parent grid in a plan: old code -> new code with shared load."""

    __tablename__ = "grid_crosswalk"
    __table_args__ = (UniqueConstraint("plan_id", "old_code", "new_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("grid_plans.id", ondelete="CASCADE"))
    old_code: Mapped[str] = mapped_column(Text)
    new_code: Mapped[str] = mapped_column(Text)
    shared_area_m2: Mapped[float] = mapped_column(Float)
    buildings: Mapped[int] = mapped_column(Integer)
    households: Mapped[int] = mapped_column(Integer)


class Building(Base):
    """A building point with its load; ``grid_id`` is its grid in the published plan."""

    __tablename__ = "buildings"
    __table_args__ = (
        UniqueConstraint("district_id", "building_id"),
        CheckConstraint("households >= 0", name="households_nonnegative"),
        CheckConstraint("residents IS NULL OR residents >= 0", name="residents_nonnegative"),
        _gist("buildings"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"))
    building_id: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(Text)
    households: Mapped[int] = mapped_column(Integer)
    residents: Mapped[int | None] = mapped_column(Integer)
    floors: Mapped[int | None] = mapped_column(Integer)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grids.id", ondelete="SET NULL"), index=True
    )
    geom: Mapped[Any] = mapped_column(_geometry("POINT"))


class Report(Base):
    """A resident's report (a case), assigned on arrival to a grid of the published plan."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("district_id", "report_id"), _gist("reports"))

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"))
    report_id: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    subcategory: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), server_default="reported")
    description: Mapped[str | None] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grids.id", ondelete="SET NULL"), index=True
    )
    geom: Mapped[Any] = mapped_column(_geometry("POINT"))


class Road(Base):
    """A road centre line; regridding prefers boundaries along roads."""

    __tablename__ = "roads"
    __table_args__ = (_gist("roads"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(
        ForeignKey("districts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(_geometry("MULTILINESTRING"))
