"""The common token refresh answered before the framework (`page_server.EarlyPost`): a JSON body of exactly
`grant_type` = refresh_token and a refresh token in the form sessions issue gets the view's rate count (in
the store's step of the rotation), rotation and token pair (sent as issued: already in `TokenPairSchema`'s
form) without Flask's request handling. Any other body
goes on to the view; so does a token the rotation refuses or finds reused, after the count (marked, so the
view does not count it again), for the view to say why and to end a session whose token was reused."""
from __future__ import annotations

import re

from flask import current_app

from ..extensions import db, limiter
from ..page_server import NO_STORE, EarlyPost, answer_early
from ..ratelimit import Window, window
from ..json_output import json_bytes
from .grants import continue_rotated, rotate_session
from .sessions import parse_refresh_token

ISSUED_FORM = re.compile(r"rt_[0-9a-f]{32}\.[0-9]{1,9}\.[A-Za-z0-9_-]{32}")  # sessions._refresh_token's
AUTH_COUNTED = "ias.auth_counted"  # WSGI environ key: this request's hit is counted (a client cannot set it)


def count_auth_request(environ) -> None:
    """Count a request to /auth/... against the caller's address (once per request); 429 past the limit."""
    counted = auth_window(environ)
    if counted is not None:
        limiter.count(counted)


def auth_window(environ) -> Window | None:
    """The window this request's hit counts in, for the caller to count it (once: None when counted)."""
    if environ.get(AUTH_COUNTED):
        return None
    environ[AUTH_COUNTED] = True
    return window(current_app.config["AUTH_RATE_LIMIT"], "auth", environ.get("REMOTE_ADDR") or "unknown",
                  detail="认证请求过于频繁，请稍后再试")


def refreshed(environ, document: dict) -> bytes | None:
    """The new token pair for the common refresh; None for the view to answer."""
    presented = document.get("refresh_token")
    if (document.keys() != {"grant_type", "refresh_token"} or document["grant_type"] != "refresh_token"
            or not isinstance(presented, str) or ISSUED_FORM.fullmatch(presented) is None):
        return None
    session_id, generation = parse_refresh_token(presented)
    rotated = rotate_session(session_id, generation=generation, presented=presented, counted=auth_window(environ))
    if not isinstance(rotated, tuple):
        db.session.rollback()
        return None
    return json_bytes(continue_rotated(*rotated))


answer_early(EarlyPost("identity.Token", refreshed, headers=NO_STORE))
