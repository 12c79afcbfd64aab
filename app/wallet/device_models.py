"""Wallet tables for holder devices and their bindings, verifier-initiated requests and the
development license library (归集).

A device is a phone's public P-256 key registered by a person; a binding records that a license
was re-issued to that key (`cnf.jwk`). Verification requests hold the verifier's query, its nonce
and, once answered, the encrypted answer. Library records are the licenses the built-in
development library (`collection.DatabaseLicenseLibrary`) serves, encrypted like licenses.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..timeutil import utcnow
from .models import License

DEVICE_STATUSES = ("active", "removed", "lost")
REQUEST_STATUSES = ("pending", "answered")


class Device(db.Model):
    """A holder's phone key: the public half only; the private key never leaves the phone."""

    __tablename__ = "wallet_devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(40), unique=True)
    owner_subject_id: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(100))
    public_jwk: Mapped[dict] = mapped_column(JSON)
    jkt: Mapped[str] = mapped_column(String(64), unique=True)  # RFC 7638 thumbprint
    status: Mapped[str] = mapped_column(String(12), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LicenseBinding(db.Model):
    """A license re-issued to a device key: what a device presentation is checked against."""

    __tablename__ = "license_bindings"
    __table_args__ = (UniqueConstraint("license_id", "device_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("wallet_devices.id", ondelete="CASCADE"), index=True)
    jkt: Mapped[str] = mapped_column(String(64), index=True)
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    device: Mapped[Device] = relationship(lazy="joined")


class VerificationRequest(db.Model):
    """A verifier-initiated check (OpenID4VP-style): the query, nonce and audience, answered once."""

    __tablename__ = "verification_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(40), unique=True)
    verifier_client_id: Mapped[str] = mapped_column(String(40), index=True)
    license_type_code: Mapped[str] = mapped_column(String(32))
    fields: Mapped[list] = mapped_column(JSON, default=list)
    purpose: Mapped[str] = mapped_column(String(200))
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    require_device_binding: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.id", ondelete="SET NULL"), nullable=True)
    result_enc: Mapped[str | None] = mapped_column(Text, nullable=True)

    license: Mapped[License | None] = relationship()

    @property
    def result(self) -> dict | None:
        """The verification answer given to the verifier (disclosed values included)."""
        if self.result_enc is None:
            return None
        return json.loads(pii_cipher().decrypt(self.result_enc, context=f"verification-request:{self.request_id}"))

    @result.setter
    def result(self, value: dict) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        self.result_enc = pii_cipher().encrypt(text, context=f"verification-request:{self.request_id}")


class LibraryRecord(db.Model):
    """One license held by the development license library, in the library's own JSON shape."""

    __tablename__ = "license_library_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(120), unique=True)
    holder_index: Mapped[str] = mapped_column(String(64), index=True)
    record_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def record(self) -> dict:
        return json.loads(pii_cipher().decrypt(self.record_enc, context=f"library:{self.identifier}"))

    @record.setter
    def record(self, value: dict) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        self.record_enc = pii_cipher().encrypt(text, context=f"library:{self.identifier}")
