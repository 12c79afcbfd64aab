"""Result tables: seal certificates (root and per department), decision documents, archive packages."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..timeutil import utcnow


class SealCertificate(db.Model):
    """The platform's seal root or one department's seal certificate; the private key is encrypted.
    `slot` ("root", "department:<name>") is unique among the certificates in use, so that two
    workers can never both create one; a renewed certificate gives its slot up."""

    __tablename__ = "seal_certificates"

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)
    slot: Mapped[str] = mapped_column(String(260), unique=True)
    kind: Mapped[str] = mapped_column(String(12))
    department: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    certificate_pem: Mapped[str] = mapped_column(Text)
    private_key_enc: Mapped[str] = mapped_column(Text)
    issuer_serial: Mapped[str | None] = mapped_column(String(40), nullable=True)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DecisionDocument(db.Model):
    """A sealed decision (PDF) for one application; the bytes are a stored file."""

    __tablename__ = "decision_documents"
    __table_args__ = (UniqueConstraint("application_id", "decision"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(64), index=True)
    decision: Mapped[str] = mapped_column(String(20))
    department: Mapped[str] = mapped_column(String(200))
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    seal_serial: Mapped[str] = mapped_column(ForeignKey("seal_certificates.serial"))
    timestamped: Mapped[bool] = mapped_column(Boolean, default=False)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ArchivePackage(db.Model):
    """The e-archive record of one final application: canonical JSON whose hash the audit chain holds."""

    __tablename__ = "archive_packages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(64), unique=True)
    retention: Mapped[str] = mapped_column(String(8))
    retain_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    manifest: Mapped[str] = mapped_column(Text)
    package_hash: Mapped[str] = mapped_column(String(64))
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
