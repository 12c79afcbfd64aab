"""Issued tokens: storing what Authlib generates (hashes only), looking tokens up for introspection,
userinfo and revocation, and revoking them by family, client, session or subject."""
from __future__ import annotations

import secrets
from datetime import timedelta

from authlib.oauth2.rfc6749 import TokenMixin
from flask import current_app
from sqlalchemy import or_, select

from ..extensions import db
from ..identity.common import sha256_hex
from ..timeutil import as_aware, utcnow
from .claims import Grantee, live_parties
from .clients import client_by_id
from .models import OidcToken

ACCESS_TOKEN_TTL = 900
REFRESH_TOKEN_TTL = 30 * 24 * 3600


def access_ttl(*_args) -> int:
    return int(current_app.config.get("OIDC_ACCESS_TOKEN_TTL", ACCESS_TOKEN_TTL))


def new_access_token(**_kwargs) -> str:
    return "oat_" + secrets.token_urlsafe(32)


def new_refresh_token(**_kwargs) -> str:
    return "ort_" + secrets.token_urlsafe(32)


def grantee_of(row, client=None) -> Grantee:
    """The Grantee a code or token row stands for."""
    return Grantee(subject_id=row.subject_id, actor_id=row.actor_id, auth_time=row.auth_time, acr=row.acr,
                   amr=list(row.amr or []), sid=row.sid, client=client or client_by_id(row.client_id))


def save_token(token: dict, request) -> OidcToken:
    """Store a token Authlib generated for `request.user` (a Grantee); the family is the code's
    or the rotated refresh token's, and a refresh token keeps its family's absolute lifetime."""
    user, now = request.user, utcnow()
    previous = request.refresh_token.row if request.refresh_token is not None else None
    family = previous.family_id if previous is not None else request.authorization_code.family_id
    refresh = token.get("refresh_token")
    refresh_expires = None
    if refresh:
        refresh_expires = as_aware(previous.refresh_expires_at) if previous is not None else now + timedelta(
            seconds=int(current_app.config.get("OIDC_REFRESH_TOKEN_TTL", REFRESH_TOKEN_TTL)))
    row = OidcToken(family_id=family, client_id=request.client.client_id, subject_id=user.subject_id,
                    actor_id=user.actor_id, scope=token["scope"], access_token_hash=sha256_hex(token["access_token"]),
                    refresh_token_hash=sha256_hex(refresh) if refresh else None, auth_time=user.auth_time,
                    acr=user.acr, amr=list(user.amr), sid=user.sid, issued_at=now,
                    access_expires_at=now + timedelta(seconds=int(token["expires_in"])),
                    refresh_expires_at=refresh_expires)
    db.session.add(row)
    db.session.flush()
    return row


class IssuedToken(TokenMixin):
    """One stored token as Authlib's endpoints see it: `kind` is access_token or refresh_token."""

    def __init__(self, row: OidcToken, kind: str):
        self.row, self.kind = row, kind

    @property
    def scope(self) -> str:
        return self.row.scope

    def check_client(self, client) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def expires_at(self):
        return as_aware(self.row.access_expires_at if self.kind == "access_token" else self.row.refresh_expires_at)

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at() - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return self.expires_at() is None or self.expires_at() <= utcnow()

    def is_revoked(self) -> bool:
        if self.row.revoked_at is not None or (self.kind == "refresh_token" and self.row.refresh_used_at):
            return True
        return live_parties(self.get_user()) is None

    def get_client(self):
        return client_by_id(self.row.client_id)

    def get_user(self) -> Grantee:
        return grantee_of(self.row)


def find_token(raw: str, hint: str | None = None) -> IssuedToken | None:
    """The stored token `raw` is (access or refresh), whatever its state, or None."""
    digest = sha256_hex(raw or "")
    kinds = ("refresh_token", "access_token") if hint == "refresh_token" else ("access_token", "refresh_token")
    for kind in kinds:
        column = OidcToken.access_token_hash if kind == "access_token" else OidcToken.refresh_token_hash
        row = db.session.scalar(select(OidcToken).where(column == digest))
        if row is not None:
            return IssuedToken(row, kind)
    return None


def revoke_rows(query) -> list[OidcToken]:
    """Revoke the tokens a select() names that are still live; returns them."""
    now, revoked = utcnow(), []
    for row in db.session.scalars(query.where(OidcToken.revoked_at.is_(None))):
        row.revoked_at = now
        revoked.append(row)
    return revoked


def revoke_family(family_id: str) -> list[OidcToken]:
    return revoke_rows(select(OidcToken).where(OidcToken.family_id == family_id))


def revoke_for_person(person_id: str, *, client_id: str | None = None) -> list[OidcToken]:
    """Every live token of a person, theirs or a company's they acted for (of one client when given)."""
    query = select(OidcToken).where(or_(OidcToken.subject_id == person_id, OidcToken.actor_id == person_id))
    if client_id is not None:
        query = query.where(OidcToken.client_id == client_id)
    return revoke_rows(query)


def revoke_session(sid: str) -> list[OidcToken]:
    return revoke_rows(select(OidcToken).where(OidcToken.sid == sid))
