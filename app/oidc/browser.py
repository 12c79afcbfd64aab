"""The provider's own browser state, in the shared store: a login session per browser (cookie
`oidc_session`, SameSite=Lax so a relying party's redirect carries it) and pending authorization
requests ("interactions") bound to that browser with a CSRF token for the login and consent forms."""
from __future__ import annotations

import hmac
import json
import secrets

from flask import current_app, request

from ..extensions import store
from ..timeutil import epoch

COOKIE = "oidc_session"
COOKIE_PATH = "/oauth"
SESSION_TTL = 8 * 3600  # OIDC_SESSION_TTL overrides
INTERACTION_TTL = 600


def browser_id() -> str | None:
    value = request.cookies.get(COOKIE, "")
    return value if 20 <= len(value) <= 100 else None


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(response, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=session_ttl(), path=COOKIE_PATH, httponly=True, samesite="Lax",
                        secure=current_app.config.get("APP_ENV") == "production")


def clear_cookie(response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH)


def session_ttl() -> int:
    return int(current_app.config.get("OIDC_SESSION_TTL", SESSION_TTL))


def _load(key: str) -> dict | None:
    raw = store.get(key)
    return json.loads(raw) if raw else None


# ---- the login session


def current_session() -> dict | None:
    """{"subject_id","auth_time","amr","sid"} of this browser's login, or None."""
    browser = browser_id()
    return _load(f"oidc:session:{browser}") if browser else None


def start_session(subject_id: str, *, amr: list[str]) -> tuple[str, dict]:
    """A fresh login for a new browser id (no fixation); returns (browser id for the cookie, session)."""
    end_session()
    browser = new_browser_id()
    data = {"subject_id": subject_id, "auth_time": epoch(), "amr": amr, "sid": secrets.token_urlsafe(16)}
    store.set(f"oidc:session:{browser}", json.dumps(data), ttl=session_ttl())
    return browser, data


def end_session() -> dict | None:
    """Forget this browser's login; returns what it was."""
    browser = browser_id()
    if not browser:
        return None
    raw = store.pop(f"oidc:session:{browser}")
    return json.loads(raw) if raw else None


# ---- pending authorization requests


def save_interaction(params: dict, browser: str) -> dict:
    """Keep a validated authorization request for the login and consent forms; returns it with
    its `id` and `csrf` token."""
    data = {"id": secrets.token_urlsafe(24), "params": params, "browser": browser,
            "csrf": secrets.token_urlsafe(24)}
    store.set(f"oidc:interaction:{data['id']}", json.dumps(data), ttl=INTERACTION_TTL)
    return data


def interaction(interaction_id: str, *, csrf: str | None = None) -> dict | None:
    """The pending request, when it belongs to this browser (and the form's CSRF token matches)."""
    if not interaction_id or len(interaction_id) > 64:
        return None
    data = _load(f"oidc:interaction:{interaction_id}")
    browser = browser_id()
    if data is None or not browser or not hmac.compare_digest(data["browser"].encode(), browser.encode()):
        return None
    if csrf is not None and not hmac.compare_digest(data["csrf"].encode(), (csrf or "").encode()):
        return None
    return data


def after_login(data: dict, browser: str) -> None:
    """Move a pending request to the browser id a login just issued, marked as freshly signed in."""
    data.update(browser=browser, fresh=True)
    store.set(f"oidc:interaction:{data['id']}", json.dumps(data), ttl=INTERACTION_TTL)


def finish_interaction(data: dict | None) -> None:
    if data:
        store.delete(f"oidc:interaction:{data['id']}")
