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
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from geo.cases import Role
from geo.columns import INT16, INT32, STORED_RULES, check_sql

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


def _bounds(layer: str, column: str, name: str, width: tuple[int, int] = INT32) -> CheckConstraint:
    """The CHECK of a contract column's declared range (``geo.columns``): one declaration."""
    return CheckConstraint(check_sql(STORED_RULES[layer].rule(column), width), name=name)


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
        _bounds("buildings", "households", "households_nonnegative"),
        _bounds("buildings", "residents", "residents_nonnegative"),
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
    status: Mapped[str] = mapped_column(
        String(STORED_RULES["reports"].rule("status").max_chars), server_default="reported"
    )
    description: Mapped[str | None] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grids.id", ondelete="SET NULL"), index=True
    )
    geom: Mapped[Any] = mapped_column(_geometry("POINT"))
    # The closed loop (geo/cases.py): when each step happened, the SLA deadline, who handles.
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    satisfaction: Mapped[int | None] = mapped_column(
        SmallInteger, _bounds("reports", "satisfaction", "satisfaction_1_5", INT16)
    )
    reopened: Mapped[int] = mapped_column(Integer, server_default="0")
    #: A grid code or a department code (responsibility list), set when dispatched.
    assignee: Mapped[str | None] = mapped_column(Text)


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


# --- cases: the closed loop on top of ``reports`` (geo/cases.py) ------------------------------


class ApiKey(Base):
    """An API key: only its sha256 is stored, with the role and the grid or department it acts
    for, so a leaked database does not leak usable keys."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "(role <> 'grid_worker' OR grid_code IS NOT NULL)"
            " AND (role <> 'department' OR department IS NOT NULL)",
            name="scope_present",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    prefix: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="api_key_role", values_callable=lambda e: [m.value for m in e])
    )
    grid_code: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class CaseEvent(Base):
    """One step of a case's history: who moved it from which status to which, when and why."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_id_at", "case_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(Text)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    actor_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    actor_role: Mapped[str] = mapped_column(Text)
    actor_scope: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    comment: Mapped[str] = mapped_column(Text, server_default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class CaseEscalation(Base):
    """A department called in by a whistle (吹哨): it must acknowledge (报到) by ``ack_due_at``
    and report back by ``report_due_at``; lateness is computed, never stored."""

    __tablename__ = "case_escalations"
    __table_args__ = (
        UniqueConstraint("case_id", "department"),
        Index("ix_case_escalations_department_acknowledged_at", "department", "acknowledged_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    department: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    ack_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    report_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reported_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str] = mapped_column(Text, server_default="")
    result: Mapped[str | None] = mapped_column(Text)


class CaseReporter(Base):
    """Who filed a case and how to reach them: personal data (PIPL), kept apart from ``reports``
    so that no public query can join it in by accident."""

    __tablename__ = "case_reporters"

    case_id: Mapped[int] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(Text)
    address_string: Mapped[str | None] = mapped_column(Text)


class ResponsibilityList(Base):
    """A loaded responsibility list (责任清单); the newest row is in force, older ones stay."""

    __tablename__ = "responsibility_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


#: Statistics and case lists filter a district's cases by period and by status.
Index("ix_reports_district_id_reported_at", Report.district_id, Report.reported_at)
Index("ix_reports_district_id_status", Report.district_id, Report.status)
