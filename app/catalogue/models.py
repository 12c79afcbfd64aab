"""Catalogue tables: halls (1+16+N), services (实施清单) with their revision history, topics,
一件事 bundles, and the catalogue version every worker's search index follows.

A service is one hall's implementation of a base item (基本目录, `base_code`). The fields that
四级六同 keeps identical across halls (name, item type, legal basis, materials, statutory limit)
live on every row, so a hall's list reads without joins; `publishing.py` enforces that they match.
`catalogue_state` holds one row: `version` grows with every change to a service (each changed
row remembers it in `change_seq`) and `epoch` with every bulk load, so workers can follow.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, false, select)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..timeutil import utcnow
from . import guides

HALL_LEVELS = ("province", "city", "county")
SERVICE_POINT_LEVELS = ("township", "village")  # 便民服务中心/站, created by `catalogue generate` only
SERVICE_STATUSES = ("published", "withdrawn")
ORIGINS = ("seed", "generated", "hall")  # seed data, `catalogue generate`, created by a hall admin
STATE_ID = 1


class Hall(db.Model):
    """A government service hall: 山东省, a city, a county-level division (or a generated service point)."""

    __tablename__ = "halls"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    full_name: Mapped[str] = mapped_column(String(150))
    level: Mapped[str] = mapped_column(String(10), index=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("halls.code"), nullable=True, index=True)
    address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # 就近办 (app/catalogue/points): where the hall is, when it opens, how to call it, how many windows take bookings
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    open_hours: Mapped[str | None] = mapped_column(String(100), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    windows: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ServicePoint(db.Model):
    """A township (乡镇/街道便民服务中心) or village (村/社区便民服务站) service point under a county hall."""

    __tablename__ = "service_points"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(150))
    level: Mapped[str] = mapped_column(String(10))
    county_code: Mapped[str] = mapped_column(ForeignKey("halls.code"), index=True)
    address: Mapped[str] = mapped_column(String(255))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    open_hours: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20))


class Service(db.Model):
    """One hall's implementation of a base item; `version` guards concurrent edits."""

    __tablename__ = "services"
    __table_args__ = (
        Index("ix_services_hall_code_status", "hall_code", "status"),
        Index("ix_services_base_code_status", "base_code", "status"),
    )

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    base_code: Mapped[str] = mapped_column(String(20), index=True)
    hall_code: Mapped[str] = mapped_column(ForeignKey("halls.code"))
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list] = mapped_column(JSON, default=list)
    item_type: Mapped[str] = mapped_column(String(20))
    department: Mapped[str] = mapped_column(String(100))
    department_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    legal_basis: Mapped[list] = mapped_column(JSON, default=list)
    materials: Mapped[list] = mapped_column(JSON, default=list)
    statutory_limit_days: Mapped[int] = mapped_column(Integer)
    promised_limit_days: Mapped[int] = mapped_column(Integer)
    fee: Mapped[str | None] = mapped_column(Text, nullable=True)
    online_depth: Mapped[str] = mapped_column(String(20))
    audience: Mapped[str] = mapped_column(String(10))
    topics: Mapped[list] = mapped_column(JSON, default=list)
    channels: Mapped[list] = mapped_column(JSON, default=list)
    high_frequency_rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    instant_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    produces_license: Mapped[str | None] = mapped_column(String(40), nullable=True)
    grassroots: Mapped[bool] = mapped_column(Boolean, default=False)
    cross_region: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # 全省通办: any hall takes it in
    address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    popularity: Mapped[int] = mapped_column(Integer, default=0)
    form: Mapped[list] = mapped_column(JSON, default=list)
    # 主项 the item belongs to in its source catalogue, and where an imported item comes from ("repo#item code")
    parent_item: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(12), default="published")
    origin: Mapped[str] = mapped_column(String(12), default="hall")
    version: Mapped[int] = mapped_column(Integer, default=1)
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    hall: Mapped[Hall] = relationship(lazy="joined", innerjoin=True)

    __mapper_args__ = {"version_id_col": version}

    @property
    def active(self) -> bool:
        """Published (offered); a withdrawn service keeps its row and history."""
        return self.status == "published"

    @property
    def high_frequency(self) -> bool:
        return self.high_frequency_rank is not None

    @property
    def hall_name(self) -> str:
        return self.hall.full_name

    # ---- 办事指南 sections derived from the row's own fields (guides.py), identical across halls

    @property
    def conditions(self) -> list[str]:
        return guides.conditions(self)

    @property
    def process(self) -> list[dict]:
        return guides.process(self)

    @property
    def phone(self) -> str:
        return guides.HOTLINE

    @property
    def phone_note(self) -> str:
        return guides.HOTLINE_NOTE

    @property
    def legal_basis_note(self) -> str | None:
        return None if self.legal_basis else guides.NO_LEGAL_BASIS

    @property
    def limit_note(self) -> str | None:
        return guides.limit_note(self)

    @property
    def guide_note(self) -> str | None:
        return guides.source_note(self.source_ref)

    @property
    def situations(self) -> list["ServiceSituation"]:
        return list(db.session.scalars(select(ServiceSituation).where(ServiceSituation.base_code == self.base_code)
                                       .order_by(ServiceSituation.sort_order, ServiceSituation.id)))


class ServiceSituation(db.Model):
    """A handling situation (办理项/情形) of a base item, with its own materials (e.g. 居民身份证换领: 有效期满)."""

    __tablename__ = "service_situations"
    __table_args__ = (UniqueConstraint("base_code", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    base_code: Mapped[str] = mapped_column(String(20), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    materials: Mapped[list] = mapped_column(JSON, default=list)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class ServiceRevision(db.Model):
    """Append-only history: one row per change of a service, with who and the state after it."""

    __tablename__ = "service_revisions"
    __table_args__ = (UniqueConstraint("service_code", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_code: Mapped[str] = mapped_column(String(40), index=True)
    hall_code: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(12))  # create | update | withdraw | publish
    actor: Mapped[str | None] = mapped_column(String(40), nullable=True)
    changed_fields: Mapped[list] = mapped_column(JSON, default=list)
    snapshot: Mapped[dict] = mapped_column(JSON)
    catalogue_version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Topic(db.Model):
    """A life event (person-*) or enterprise lifecycle stage (legal-*)."""

    __tablename__ = "topics"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    audience: Mapped[str] = mapped_column(String(10))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class Bundle(db.Model):
    """一件事: several base items applied for together; `members` [{base_code, name, level}]."""

    __tablename__ = "bundles"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    audience: Mapped[str] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    members: Mapped[list] = mapped_column(JSON, default=list)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class CatalogueState(db.Model):
    """The single row workers compare against: `version` per change, `epoch` per bulk load."""

    __tablename__ = "catalogue_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    epoch: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
