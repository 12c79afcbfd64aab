"""Identity tables: persons, companies and their agents, staff, API clients (and their signing
secrets), sign-in sessions and their refresh tokens, face checks, channel bindings, and the
development registries and SMS outbox;
with the vocabularies (channels, roles, client kinds, agent scopes) that schemas share.

ID numbers and phone numbers are never stored in plaintext: `*_enc` holds the
authenticated ciphertext (pii_cipher, bound to a context) and `*_index` an HMAC blind
index for equality look-ups.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..security.pii import mask_id_number, mask_phone
from ..timeutil import utcnow

ID_DOMAIN = "id_number"
PHONE_DOMAIN = "phone"

CHANNELS = ("app", "wechat", "alipay")
BINDING_CHANNELS = ("wechat", "alipay")
CLIENT_KINDS = ("issuer", "verifier", "third_party")
SIGNING_KINDS = ("third_party",)  # client kinds that sign open-API requests with their secret
STAFF_ROLES = ("hall_admin", "hall_staff", "platform_admin")
HALL_ROLES = ("hall_admin", "hall_staff")
# What a representative may delegate to an agent; the representative holds all of them.
AGENT_SCOPES = ("applications:submit", "applications:read", "licenses:read", "licenses:present",
                "evaluations:write")
MAX_AGENT_GRANT_DAYS = 366


def id_index(id_number: str) -> str:
    """Blind index of a normalised ID number."""
    return pii_cipher().blind_index(id_number, domain=ID_DOMAIN)


def phone_index(phone: str) -> str:
    """Blind index of a normalised phone number."""
    return pii_cipher().blind_index(phone, domain=PHONE_DOMAIN)


def _encrypt(value: str, context: str) -> str:
    return pii_cipher().encrypt(value, context=context)


def _decrypt(token: str | None, context: str) -> str | None:
    return pii_cipher().decrypt(token, context=context) if token else None


class Person(db.Model):
    """A natural person known to the platform (subject id "p_...")."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    id_number_enc: Mapped[str] = mapped_column(Text)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    phone_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    phone_index: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    real_name_level: Mapped[int] = mapped_column(Integer, default=2)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # raised by a password reset or change and a phone change: sessions and tokens of an older
    # version are dead (app/identity/sessions.py)
    credentials_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def id_number(self) -> str:
        return _decrypt(self.id_number_enc, f"person:{self.subject_id}:id_number")

    @id_number.setter
    def id_number(self, value: str) -> None:
        self.id_number_enc = _encrypt(value, f"person:{self.subject_id}:id_number")
        self.id_number_index = id_index(value)

    @property
    def phone(self) -> str | None:
        return _decrypt(self.phone_enc, f"person:{self.subject_id}:phone")

    @phone.setter
    def phone(self, value: str | None) -> None:
        self.phone_enc = _encrypt(value, f"person:{self.subject_id}:phone") if value else None
        self.phone_index = phone_index(value) if value else None

    @property
    def id_number_masked(self) -> str:
        return mask_id_number(self.id_number)

    @property
    def phone_masked(self) -> str | None:
        return mask_phone(self.phone)

    def __repr__(self) -> str:
        return f"<Person {self.subject_id}>"


class Enterprise(db.Model):
    """A legal entity claimed on the platform by its representative (subject id "e_...")."""

    __tablename__ = "enterprises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), unique=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    representative_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    representative: Mapped[Person] = relationship()


class AgentGrant(db.Model):
    """The representative lets a person (by ID number) act for the company within scopes."""

    __tablename__ = "agent_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(40), unique=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    agent_id_number_enc: Mapped[str] = mapped_column(Text)
    agent_id_number_index: Mapped[str] = mapped_column(String(64), index=True)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    granted_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    enterprise: Mapped[Enterprise] = relationship()

    @property
    def agent_id_number(self) -> str:
        return _decrypt(self.agent_id_number_enc, f"agent:{self.agent_id}:id_number")

    @agent_id_number.setter
    def agent_id_number(self, value: str) -> None:
        self.agent_id_number_enc = _encrypt(value, f"agent:{self.agent_id}:id_number")
        self.agent_id_number_index = id_index(value)

    @property
    def id_number_masked(self) -> str:
        return mask_id_number(self.agent_id_number)


class StaffAssignment(db.Model):
    """A person's staff role: hall_admin / hall_staff of a hall, or platform_admin (no hall)."""

    __tablename__ = "staff_assignments"
    __table_args__ = (UniqueConstraint("subject_id", "hall_code", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    hall_code: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(32))
    # 受审分离: the department whose applications this staff member decides (None: the front desk)
    department: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiClient(db.Model):
    """An issuer, verifier or third-party system using the client_credentials grant ("c_...")."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    license_types: Mapped[list] = mapped_column(JSON, default=list)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    credit_code: Mapped[str | None] = mapped_column(String(18), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClientSigningSecret(db.Model):
    """An API client's secret, encrypted, kept so that request HMACs can be recomputed."""

    __tablename__ = "api_client_signing_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_clients.client_id", ondelete="CASCADE"),
                                           unique=True)
    secret_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RefreshToken(db.Model):
    """A refresh token issued before sessions held their own (only its SHA-256 stored): still honoured, once,
    until it expires (REFRESH_TOKEN_TTL after it was issued); new tokens live in `AuthSession`."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    access_jti: Mapped[str] = mapped_column(String(64))
    access_exp: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuthSession(db.Model):
    """One sign-in, listed by GET /me/sessions and ended as a whole; it holds the SHA-256 of its one live
    refresh token and that token's generation (app/identity/sessions.py)."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    credentials_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)  # the live token's
    refresh_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class FaceVerification(db.Model):
    """One face check (real-name level 3) at the face-check provider, by its provider token."""

    __tablename__ = "face_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    verification_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_token: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ChannelBinding(db.Model):
    """A mini-program account (WeChat / Alipay openid) bound to a subject."""

    __tablename__ = "channel_bindings"
    __table_args__ = (UniqueConstraint("channel", "app_id", "open_id"),
                      Index("ix_channel_bindings_channel_union_id", "channel", "union_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    app_id: Mapped[str] = mapped_column(String(64))
    open_id: Mapped[str] = mapped_column(String(128))
    union_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---- development registries (stand-ins for the population, legal-entity and credit systems)


class RegistryPerson(db.Model):
    """Development population registry: a resident's name and ID number (phone optional)."""

    __tablename__ = "registry_persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_enc: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(64))
    phone_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    phone_index: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RegistryGuardian(db.Model):
    """Development population registry: parent -> child guardianship."""

    __tablename__ = "registry_guardians"
    __table_args__ = (UniqueConstraint("parent_index", "child_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_index: Mapped[str] = mapped_column(String(64), index=True)
    child_index: Mapped[str] = mapped_column(String(64), index=True)
    child_id_number_enc: Mapped[str] = mapped_column(Text)


class RegistryEntity(db.Model):
    """Development legal-entity registry: credit code, name and the representative's ID."""

    __tablename__ = "registry_entities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    representative_index: Mapped[str] = mapped_column(String(64), index=True)
    representative_enc: Mapped[str] = mapped_column(Text)


class RegistryCredit(db.Model):
    """Development credit registry: the credit class of a person or legal entity."""

    __tablename__ = "registry_credit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_index: Mapped[str] = mapped_column(String(64), unique=True)
    credit_class: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class SmsOutbox(db.Model):
    """Development SMS sender's outbox: what would have been sent."""

    __tablename__ = "sms_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_index: Mapped[str] = mapped_column(String(64), index=True)
    phone_enc: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
