"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0): a signed `logout_token` POSTed to
each client's registered `backchannel_logout_uri`, delivered by the job queue with retries."""
from __future__ import annotations

import logging
import secrets
import time

import jwt

from ..extensions import db
from ..jobs import enqueue, runs_inline
from ..security import audit, keys
from ..security.tokens import issuer
from .browser import end_session
from .claims import pairwise_sub
from .clients import client_by_id
from .models import OidcClient, OidcToken
from .settings import OIDC_KEY_PURPOSE
from .tokens import revoke_session

logger = logging.getLogger("app.oidc")

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = 120
DELIVERY_TIMEOUT = 5


def logout_token(client: OidcClient, *, subject_id: str | None, sid: str | None) -> str:
    """A logout token for `client` naming the person (pairwise `sub`) and/or the session (`sid`)."""
    now = int(time.time())
    claims = {"iss": issuer(), "aud": client.client_id, "iat": now, "exp": now + LOGOUT_TOKEN_TTL,
              "jti": secrets.token_urlsafe(16), "events": {LOGOUT_EVENT: {}}}
    if subject_id:
        claims["sub"] = pairwise_sub(subject_id, client)
    if sid:
        claims["sid"] = sid
    kid, private = keys.active_key(OIDC_KEY_PURPOSE)
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid, "typ": "logout+jwt"})


def notify_logout(rows: list[OidcToken]) -> int:
    """Queue one logout token per (client, subject, session) among revoked tokens whose client
    registered a back-channel logout URI; returns how many were queued."""
    seen, queued = set(), 0
    for row in rows:
        key = (row.client_id, row.subject_id, row.sid)
        if key in seen:
            continue
        seen.add(key)
        client = client_by_id(row.client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        token = logout_token(client, subject_id=row.subject_id, sid=row.sid)
        enqueue("app.oidc.logout:deliver", client.client_id, token)
        queued += 1
    return queued


def deliver(client_id: str, token: str) -> None:
    """POST the logout token (a queued job: raises on failure so the queue retries; when jobs run
    inline in the request, a failure is logged and the request goes on)."""
    import requests  # only this job posts: `flask --help` and requests skip loading it
    client = client_by_id(client_id)
    if client is None or not client.backchannel_logout_uri:
        return
    try:
        response = requests.post(client.backchannel_logout_uri, data={"logout_token": token},
                                 timeout=DELIVERY_TIMEOUT, allow_redirects=False,
                                 headers={"Cache-Control": "no-store"})
        response.raise_for_status()
    except requests.RequestException as exc:
        logger.warning("back-channel logout to %s failed: %s", client_id, exc.__class__.__name__)
        if not runs_inline():
            raise


def sign_out_browser(*, reason: str) -> dict | None:
    """End this browser's login at the provider: its tokens are revoked and every client that
    received tokens in it is told through back-channel logout. Returns the ended session."""
    session = end_session()
    if session is None:
        return None
    revoked = revoke_session(session["sid"])
    audit.record("oidc.signed_out", subject_id=session["subject_id"], actor=session["subject_id"],
                 details={"reason": reason, "tokens_revoked": len(revoked)})
    db.session.commit()
    notify_logout(revoked)
    return session
