"""Wallet tables: license types (reference data), licenses, presentations, the access log and
status lists.

A license names its holder by a blind index of the holder's ID number (the same index as
`persons.id_number_index`) or credit code, never by a subject foreign key: a license issued
to someone not yet registered shows up in their wallet the moment they register. Holder
identifiers, field values, the issued SD-JWT and the per-license holder key are stored
encrypted (authenticated, bound to the license id).
"""
from __future__ import annotations

import json
from datetime import date, datetime

from cryptography.hazmat.primitives import serialization
from sqlalchemy import (JSON, Date, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..security.keys import key_cipher
from ..timeutil import beijing_today, utcnow

LICENSE_STATUSES = ("valid", "suspended", "revoked")
WALLET_STATUSES = (*LICENSE_STATUSES, "expired")  # what a holder sees: expired once the validity is over
MODES = ("online", "offline")  # of a presentation (亮证)
DEFAULT_TTL = 180  # seconds a presentation lives, between MIN_TTL and MAX_TTL
MAX_TTL = 300
MIN_TTL = 10


class LicenseType(db.Model):
    """One entry of the electronic license catalogue (电子证照目录), seeded from license_types.json."""

    __tablename__ = "license_types"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    issuer_department: Mapped[str] = mapped_column(String(200))
    holder_type: Mapped[str] = mapped_column(String(10))
    defined_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    fields: Mapped[list] = mapped_column(JSON, default=list)
    default_disclose: Mapped[list] = mapped_column(JSON, default=list)
    validity_years: Mapped[int | None] = mapped_column(Integer, nullable=True)

    @property
    def field_names(self) -> list[str]:
        return [field["name"] for field in self.fields]

    def field(self, name: str) -> dict | None:
        return next((field for field in self.fields if field["name"] == name), None)


class StatusListRecord(db.Model):
    """One IETF Token Status List; licenses take the next free index on issuance.

    Statuses themselves live on the licenses (one source of truth, no read-modify-write of a
    shared bit string); `version` moves on every change so published tokens can be cached.
    """

    __tablename__ = "status_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[str] = mapped_column(String(32), unique=True)
    bits: Mapped[int] = mapped_column(Integer, default=2)
    size: Mapped[int] = mapped_column(Integer)
    next_idx: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class License(db.Model):
    """An issued electronic license (SD-JWT VC) and its lifecycle status."""

    __tablename__ = "licenses"
    __table_args__ = (
        UniqueConstraint("status_list_id", "status_idx"),
        Index("ix_licenses_holder_index_type", "holder_index", "license_type_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[str] = mapped_column(String(40), unique=True)
    license_type_code: Mapped[str] = mapped_column(ForeignKey("license_types.code"), index=True)
    identifier: Mapped[str] = mapped_column(String(120), unique=True)
    serial: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(3), default="001")
    issuer_client_id: Mapped[str] = mapped_column(String(40), index=True)
    issuer_name: Mapped[str] = mapped_column(String(200))
    issuer_credit_code: Mapped[str] = mapped_column(String(18))
    holder_type: Mapped[str] = mapped_column(String(10))
    holder_index: Mapped[str] = mapped_column(String(64))
    holder_ref_enc: Mapped[str] = mapped_column(Text)
    fields_enc: Mapped[str] = mapped_column(Text)
    credential_enc: Mapped[str] = mapped_column(Text)
    holder_key_enc: Mapped[str] = mapped_column(Text)
    issuer_kid: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(12), default="valid")
    status_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status_list_id: Mapped[str] = mapped_column(String(32))
    status_idx: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    license_type: Mapped[LicenseType] = relationship(lazy="joined")

    # Encrypted parts, bound to the license id (set `license_id` first).

    def _context(self, part: str) -> str:
        return f"license:{self.license_id}:{part}"

    @property
    def holder_ref(self) -> str:
        """The holder's ID number or credit code."""
        return pii_cipher().decrypt(self.holder_ref_enc, context=self._context("holder"))

    @holder_ref.setter
    def holder_ref(self, value: str) -> None:
        self.holder_ref_enc = pii_cipher().encrypt(value, context=self._context("holder"))

    @property
    def field_values(self) -> dict:
        """The license's field values, in the type's field order."""
        return json.loads(pii_cipher().decrypt(self.fields_enc, context=self._context("fields")))

    @field_values.setter
    def field_values(self, value: dict) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        self.fields_enc = pii_cipher().encrypt(text, context=self._context("fields"))

    @property
    def credential(self) -> str:
        """The issued SD-JWT VC with every disclosure (`<jwt>~<d1>~...~`)."""
        return pii_cipher().decrypt(self.credential_enc, context=self._context("credential"))

    @credential.setter
    def credential(self, value: str) -> None:
        self.credential_enc = pii_cipher().encrypt(value, context=self._context("credential"))

    @property
    def holder_key(self):
        """The holder's private key (`cnf`), which the platform wallet keeps for the holder."""
        pem = key_cipher().decrypt(self.holder_key_enc, context=self._context("holder-key"))
        return serialization.load_pem_private_key(pem.encode(), password=None)

    @holder_key.setter
    def holder_key(self, private_key) -> None:
        pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        self.holder_key_enc = key_cipher().encrypt(pem, context=self._context("holder-key"))

    def __repr__(self) -> str:
        return f"<License {self.license_id} {self.license_type_code} {self.status}>"


class Presentation(db.Model):
    """One 亮证: the chosen disclosures, purpose and lifetime; online codes are kept (hashed)
    in the shared store, the holder-signed SD-JWT encrypted here."""

    __tablename__ = "license_presentations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    presentation_id: Mapped[str] = mapped_column(String(40), unique=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(10))
    purpose: Mapped[str] = mapped_column(String(200))
    disclose: Mapped[list] = mapped_column(JSON, default=list)
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    sd_jwt_enc: Mapped[str] = mapped_column(Text)
    shown_by: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    license: Mapped[License] = relationship()

    @property
    def sd_jwt(self) -> str:
        """The holder-signed presentation (selected disclosures + KB-JWT)."""
        return pii_cipher().decrypt(self.sd_jwt_enc, context=f"presentation:{self.presentation_id}")

    @sd_jwt.setter
    def sd_jwt(self, value: str) -> None:
        self.sd_jwt_enc = pii_cipher().encrypt(value, context=f"presentation:{self.presentation_id}")


class AccessLogEntry(db.Model):
    """Who looked at a license: every verification that names it (failed ones included) and
    every use as material of an application."""

    __tablename__ = "license_access_log"
    # partitioned by month on PostgreSQL (migration b22pa47e0007): a unique key includes `at`;
    # a replayed journal entry carries the same time, so it is still written once
    __table_args__ = (Index("ix_license_access_log_license_at", "license_id", "at"),
                      UniqueConstraint("event_id", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="verification")
    verifier: Mapped[str] = mapped_column(String(200))
    verifier_client_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(200), nullable=True)
    disclosed: Mapped[list] = mapped_column(JSON, default=list)
    result: Mapped[str] = mapped_column(String(32))
    shown_by: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    presentation_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # journal entry id


def effective_status(license: License) -> str:
    """valid / suspended / revoked, or expired once the validity period is over."""
    if license.status == "valid" and license.valid_until < beijing_today():
        return "expired"
    return license.status
