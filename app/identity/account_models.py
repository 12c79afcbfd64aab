"""Account tables: personal-data exports, closed accounts and family proxy grants (亲友代办)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..security.pii import mask_id_number
from ..timeutil import utcnow
from .models import id_index

PROXY_SCOPES = ("applications:submit", "applications:read", "licenses:read", "licenses:present")
MAX_PROXY_DAYS = 366


class DataExport(db.Model):
    """A copy of everything kept about a person, built by a job, encrypted at rest, kept a few days."""

    __tablename__ = "data_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | ready
    payload_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def seal(self, document: str) -> None:
        self.payload_enc = pii_cipher().encrypt(document, context=f"data-export:{self.export_id}")

    def opened(self) -> str | None:
        return pii_cipher().decrypt(self.payload_enc, context=f"data-export:{self.export_id}") \
            if self.payload_enc else None


class AccountClosure(db.Model):
    """A person's account closed at their request (the person row stays, without contact data)."""

    __tablename__ = "account_closures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), unique=True)
    method: Mapped[str] = mapped_column(String(16))  # password | sms
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProxyGrant(db.Model):
    """A person lets a relative (by ID number and name, matched in the population registry)
    apply and show licenses for them within scopes until an end date (亲友代办)."""

    __tablename__ = "proxy_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proxy_id: Mapped[str] = mapped_column(String(40), unique=True)
    grantor_subject_id: Mapped[str] = mapped_column(String(40), index=True)
    grantee_id_number_enc: Mapped[str] = mapped_column(Text)
    grantee_id_number_index: Mapped[str] = mapped_column(String(64), index=True)
    grantee_name: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def grantee_id_number(self) -> str:
        return pii_cipher().decrypt(self.grantee_id_number_enc, context=f"proxy:{self.proxy_id}:id_number")

    @grantee_id_number.setter
    def grantee_id_number(self, value: str) -> None:
        self.grantee_id_number_enc = pii_cipher().encrypt(value, context=f"proxy:{self.proxy_id}:id_number")
        self.grantee_id_number_index = id_index(value)

    @property
    def grantee_id_number_masked(self) -> str:
        return mask_id_number(self.grantee_id_number)
