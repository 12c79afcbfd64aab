"""Applications (办件): the application, its materials, its timeline and idempotency keys.

Personal data typed into forms (fields of type `id_number` and `phone`) and the verified
fields of licenses used as materials are stored encrypted (pii_cipher, bound to the
application id); everything else of the form is plain JSON.

`Application.version` is the optimistic lock: every ORM update is
`UPDATE applications ... WHERE id = :id AND version = :v`, and a concurrent change makes it
match no row (StaleDataError), which the service answers with 409.
"""
from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import (JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..timeutil import utcnow

# statuses
SUBMITTED, ACCEPTED, REQUEST_MORE = "submitted", "accepted", "request_more"
APPROVED, REJECTED, WITHDRAWN = "approved", "rejected", "withdrawn"
STATUSES = (SUBMITTED, ACCEPTED, REQUEST_MORE, APPROVED, REJECTED, WITHDRAWN)
FINAL_STATUSES = (APPROVED, REJECTED, WITHDRAWN)
OPEN_STATUSES = (SUBMITTED, ACCEPTED, REQUEST_MORE)
# statuses whose deadline runs (the clock stops while the applicant supplements: 补正)
RUNNING_STATUSES = (SUBMITTED, ACCEPTED)

STATUS_LABELS = {SUBMITTED: "已提交", ACCEPTED: "已受理", REQUEST_MORE: "待补正", APPROVED: "已办结（准予）",
                 REJECTED: "已办结（不予）", WITHDRAWN: "已撤回"}

# how a material is satisfied: a license from the wallet, an uploaded file, a commitment (告知承诺),
# missing (容缺, handed in later) or, inside a bundle, the result of an earlier member (produced)
LICENSE, FILE, COMMITMENT, MISSING, PRODUCED = "license", "file", "commitment", "missing", "produced"
MATERIAL_KINDS = (LICENSE, FILE, COMMITMENT, MISSING, PRODUCED)
# a material's review: machine-checked (verified, committed), waiting for staff (pending), or decided
VERIFIED, COMMITTED, PENDING, ACCEPTED_REVIEW, REJECTED_REVIEW = "verified", "committed", "pending", "accepted", "rejected"
REVIEW_LABELS = {VERIFIED: "已核验", COMMITTED: "已承诺", PENDING: "待审核", ACCEPTED_REVIEW: "审核通过",
                 REJECTED_REVIEW: "审核不通过", MISSING: "容缺待补"}
# 抽查 of an instantly approved application
SPOT_SELECTED, SPOT_PASSED, SPOT_BREACH = "selected", "passed", "breach"


def _seal(value, context: str) -> str | None:
    if value is None:
        return None
    return pii_cipher().encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True), context=context)


def _open(token: str | None, context: str, default):
    if not token:
        return default
    return json.loads(pii_cipher().decrypt(token, context=context))


class Application(db.Model):
    """One application (办件) of a subject (person "p_..." or company "e_...") at a hall.

    A bundle (一件事) is a parent row (`bundle_code` set, no `service_code`) whose children are
    ordinary applications at the halls that run each member service.
    """

    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_hall_code_status", "hall_code", "status"),
        Index("ix_applications_subject_id_created_at", "subject_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(10))  # person | legal
    actor_id: Mapped[str] = mapped_column(String(40))  # the person who submitted (agent for companies)
    applicant_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    service_code: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    base_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    service_name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200), nullable=True)
    bundle_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), nullable=True, index=True)
    hall_code: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(20))
    instant: Mapped[bool] = mapped_column(Boolean, default=False)
    form_data: Mapped[dict] = mapped_column(JSON, default=dict)  # non-sensitive values
    form_pii_enc: Mapped[str | None] = mapped_column(Text, nullable=True)  # {field: value} of id_number/phone fields
    form_types: Mapped[dict] = mapped_column(JSON, default=dict)  # field -> type, to mask on output
    promised_limit_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deadline: Mapped[date | None] = mapped_column(Date, nullable=True, index=True)
    issued_license_id: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # "<subject>|<service or bundle>" while the application is open and its service allows one
    # at a time: the unique constraint refuses a second one (NULL once final)
    open_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    round: Mapped[int] = mapped_column(Integer, default=1)  # 1 + the resubmissions (补正) so far
    spot_check: Mapped[str | None] = mapped_column(String(12), nullable=True)  # selected | passed | breach
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # how it came in (app/applications/window.py): online | window (一窗受理) | assisted (帮办代办), the
    # staff member who took it in or helped, the hall that took it in for another (全省通办), and the
    # result at the pickup window (ready | handed_over)
    channel: Mapped[str] = mapped_column(String(12), default="online", server_default="online")
    intake_staff_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    accepting_hall_code: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    pickup_status: Mapped[str | None] = mapped_column(String(12), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    parent: Mapped["Application | None"] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["Application"]] = relationship(back_populates="parent", order_by="Application.id")
    materials: Mapped[list["ApplicationMaterial"]] = relationship(
        back_populates="application", order_by="ApplicationMaterial.position", cascade="all, delete-orphan")
    events: Mapped[list["ApplicationEvent"]] = relationship(
        back_populates="application", order_by="ApplicationEvent.id", cascade="all, delete-orphan")

    @property
    def is_bundle(self) -> bool:
        return self.bundle_code is not None and self.parent_id is None

    @property
    def parent_application_id(self) -> str | None:
        return self.parent.application_id if self.parent_id else None

    @property
    def halls(self) -> tuple[str, ...]:
        """The halls whose staff see it: where it is handled and, 全省通办, where it was taken in."""
        return (self.hall_code, self.accepting_hall_code) if self.accepting_hall_code else (self.hall_code,)

    def move_to(self, status: str) -> str:
        """Set the status (and what follows from it); returns the status it had."""
        previous, now = self.status, utcnow()
        self.status, self.updated_at = status, now
        if status in FINAL_STATUSES:
            self.completed_at, self.open_key = now, None
        return previous

    @property
    def form_pii(self) -> dict:
        return _open(self.form_pii_enc, f"application:{self.application_id}:form", {})

    @property
    def form(self) -> dict:
        """The whole form as entered, PII decrypted (never hand this out unmasked)."""
        return {**(self.form_data or {}), **self.form_pii}

    def set_form(self, values: dict, types: dict) -> None:
        """Store `values`, encrypting the values of id_number and phone fields."""
        sensitive = {k: v for k, v in values.items() if types.get(k) in ("id_number", "phone")}
        self.form_data = {k: v for k, v in values.items() if k not in sensitive}
        self.form_pii_enc = _seal(sensitive, f"application:{self.application_id}:form") if sensitive else None
        self.form_types = dict(types)

    def __repr__(self) -> str:
        return f"<Application {self.application_id} {self.status}>"


class ApplicationMaterial(db.Model):
    """One material of an application and how it is satisfied: a verified license from the
    wallet (免证办), an uploaded file, a credit commitment (告知承诺), missing (容缺) with a due date,
    or the result of an earlier member of the same bundle; and its review by staff."""

    __tablename__ = "application_materials"
    __table_args__ = (UniqueConstraint("application_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(200))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(20))  # MATERIAL_KINDS
    license_id: Mapped[str | None] = mapped_column(String(60), nullable=True)
    license_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    license_identifier: Mapped[str | None] = mapped_column(String(200), nullable=True)
    verified_fields_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    file_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    produced_by: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the bundle member's application_id
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)  # 容缺: supply by this day
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    round: Mapped[int] = mapped_column(Integer, default=1)  # the submission round that provided it
    review: Mapped[str] = mapped_column(String(12), default=PENDING)  # REVIEW_LABELS
    review_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    requested: Mapped[bool] = mapped_column(Boolean, default=False)  # named by request_more: provide again
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    application: Mapped[Application] = relationship(back_populates="materials")

    def _context(self) -> str:
        return f"application:{self.application.application_id}:material:{self.name}"

    @property
    def verified_fields(self) -> dict:
        return _open(self.verified_fields_enc, self._context(), {})

    @verified_fields.setter
    def verified_fields(self, value: dict | None) -> None:
        self.verified_fields_enc = _seal(value, self._context()) if value else None


class ApplicationEvent(db.Model):
    """One entry of an application's timeline."""

    __tablename__ = "application_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    actor_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    actor_role: Mapped[str] = mapped_column(String(20))  # applicant | staff | system
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    application: Mapped[Application] = relationship(back_populates="events")


class IdempotencyKey(db.Model):
    """An `Idempotency-Key` a subject used for a POST, kept 24 hours.

    The unique (subject_id, key_hash) constraint is the final guard: whatever the shared store
    says, two requests with the same key can never both create an application. `response` is
    the body sent the first time, replayed verbatim.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("subject_id", "key_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40))
    key_hash: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    application_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    response: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
