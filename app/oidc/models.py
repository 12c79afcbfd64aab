"""OpenID Connect tables: registered relying parties, authorization codes, issued tokens and the
consents people gave. Codes and tokens are stored only as SHA-256 hashes."""
from __future__ import annotations

import hmac
from datetime import datetime

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..identity.common import sha256_hex
from ..timeutil import utcnow

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = SECRET_METHODS + ("private_key_jwt",)
BASE_SCOPES = ("openid", "profile", "phone")
EXTRA_SCOPES = ("id_number",)  # claims beyond the base set, only for clients registered for them


class OidcClient(db.Model, ClientMixin):
    """A relying party (a department's system, a city hall site, a mini-program backend); the
    methods are what Authlib asks of a client."""

    __tablename__ = "oidc_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), default="client_secret_basic")
    jwks: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    sector_identifier: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acr_minimum: Mapped[int] = mapped_column(Integer, default=1)
    resource_server: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def client_metadata(self) -> dict:
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris or [])}

    @property
    def sector(self) -> str:
        """Clients naming one sector identifier see one pairwise `sub` per person."""
        return self.sector_identifier or self.client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # the redirect URI is always given and matched exactly

    def get_allowed_scope(self, scope) -> str | None:
        """The requested scope when it asks for `openid` and only what the client is registered for."""
        requested = list(dict.fromkeys(scope_to_list(scope) or []))
        if "openid" not in requested or not set(requested) <= set(self.scopes or ()):
            return None
        return list_to_scope(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.redirect_uris or ())

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret_hash) and hmac.compare_digest(self.secret_hash, sha256_hex(client_secret or ""))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.token_endpoint_auth_method == "private_key_jwt":
            return method == "private_key_jwt"
        return method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class OidcAuthorizationCode(db.Model):
    """A one-time code; `family_id` names the tokens it is exchanged for (revoked on reuse)."""

    __tablename__ = "oidc_authorization_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(40), index=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    family_id: Mapped[str] = mapped_column(String(40))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    auth_time: Mapped[int] = mapped_column(Integer)
    acr: Mapped[str] = mapped_column(String(8))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    sid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr or [])


class OidcToken(db.Model):
    """An access token and its refresh token; refreshing rotates to a new row of the same family."""

    __tablename__ = "oidc_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    family_id: Mapped[str] = mapped_column(String(40), index=True)
    client_id: Mapped[str] = mapped_column(String(40), index=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    scope: Mapped[str] = mapped_column(Text)
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    auth_time: Mapped[int] = mapped_column(Integer)
    acr: Mapped[str] = mapped_column(String(8))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    sid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    access_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    refresh_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OidcConsent(db.Model):
    """What a person let a client know about them (scopes), remembered until they revoke it."""

    __tablename__ = "oidc_consents"
    __table_args__ = (UniqueConstraint("subject_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    client_id: Mapped[str] = mapped_column(String(40))
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
