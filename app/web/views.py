"""Server-rendered pages: the verifier page (/verify) and the sub-hall dashboard
(/halls/<code>/dashboard, with its own sign-in page).

Pages carry their own strict Content-Security-Policy (scripts, styles and images from this
origin only, no inline script or style), which the app-wide hook leaves alone. The dashboard
signs hall admins in with the identity service's password grant (so the failed-login lock and
the per-IP auth rate limit are the same as for the API) and keeps only the subject id in the
Flask session cookie (HttpOnly, SameSite=Strict, Secure in production); roles are read fresh
on every request. Forms carry a per-session CSRF token.
"""
from __future__ import annotations

import hmac
import secrets

from flask import (Blueprint, current_app, redirect, render_template, request, session,
                   url_for)

from ..catalogue.halls import get_hall
from ..errors import Locked, NotFound, TooManyRequests, Unauthorized
from ..extensions import limiter
from ..identity.grants import check_password
from ..security.pii import mask_name
from ..timeutil import epoch
from . import dashboard, hall_panels

pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                  static_url_path="/web/static")

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
SESSION_MAX_AGE = 8 * 3600  # WEB_SESSION_MAX_AGE overrides
SESSION_SUBJECT, SESSION_AT, SESSION_CSRF = "hall_subject", "hall_login_at", "csrf_token"
MAX_CODE_PARAM = 200


@pages.after_request
def _page_headers(response):
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    if request.endpoint != "pages.static":
        response.headers["Cache-Control"] = "no-store"
    return response


# ---- the verifier page


@pages.get("/verify")
def verify():
    """Paste or type what the holder's QR shows; `?code=` (a verification link) is offered, not used."""
    code = request.args.get("code", "").strip()
    if len(code) > MAX_CODE_PARAM:
        code = ""
    return render_template("web/verify.html", code=code)


# ---- the sub-hall dashboard


def _hall(code: str):
    try:
        return get_hall(code)
    except NotFound:
        return None


def _no_such_hall(code: str):
    return _error_page(404, "大厅不存在", f"没有编码为 {code} 的政务服务大厅。")


def _error_page(status: int, title: str, message: str, *, hall=None, headers=None):
    response = current_app.make_response(
        (render_template("web/error.html", status=status, title=title, message=message, hall=hall), status))
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _csrf_token() -> str:
    token = session.get(SESSION_CSRF)
    if not token:
        token = session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return token


def _csrf_ok() -> bool:
    sent, kept = request.form.get("csrf_token", ""), session.get(SESSION_CSRF, "")
    return bool(sent and kept) and hmac.compare_digest(sent.encode(), kept.encode())


def _signed_in_subject() -> str | None:
    subject, at = session.get(SESSION_SUBJECT), session.get(SESSION_AT)
    max_age = int(current_app.config.get("WEB_SESSION_MAX_AGE", SESSION_MAX_AGE))
    if not subject or not isinstance(at, int) or epoch() - at > max_age:
        return None
    return subject


def _forbidden(hall):
    return _error_page(403, "无权查看", f"您不是{hall.full_name}的管理员，不能查看该大厅的管理看板。", hall=hall)


@pages.get("/halls/<code>/dashboard")
def hall_dashboard(code: str):
    """A hall's coverage, applications, 好差评 and rectifications, for its admins."""
    hall = _hall(code)
    if hall is None:
        return _no_such_hall(code)
    subject = _signed_in_subject()
    if subject is None:
        return redirect(url_for("pages.hall_login", code=hall.code))
    principal = dashboard.staff_principal(subject)
    if principal is None:
        session.clear()
        return redirect(url_for("pages.hall_login", code=hall.code))
    if not dashboard.is_hall_admin(principal, hall):
        return _forbidden(hall)
    board = dashboard.build(hall, principal=principal, period=request.args.get("period", "month"))
    return render_template("web/dashboard.html", board=board, hall=hall, csrf_token=_csrf_token(),
                           admin_name=mask_name(principal.claims.get("name")), panels=hall_panels.build(hall.code))


@pages.route("/halls/<code>/dashboard/login", methods=["GET", "POST"])
def hall_login(code: str):
    """Sign in with ID number (or phone) and password; the same lock and rate limit as the API."""
    hall = _hall(code)
    if hall is None:
        return _no_such_hall(code)
    if request.method == "GET":
        return render_template("web/login.html", hall=hall, csrf_token=_csrf_token(), error=None)

    def again(status: int, error: str, headers=None):
        response = current_app.make_response((render_template(
            "web/login.html", hall=hall, csrf_token=_csrf_token(), error=error), status))
        response.headers.update(headers or {})
        return response

    try:
        limiter.hit(current_app.config["AUTH_RATE_LIMIT"], "auth", request.remote_addr or "unknown",
                    detail="登录请求过于频繁，请稍后再试")
    except TooManyRequests as exc:
        return again(429, exc.detail, exc.headers)
    if not _csrf_ok():
        return again(400, "页面已过期，请重新输入后登录。")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password or len(username) > 64 or len(password) > 256:
        return again(422, "请输入身份证号码（或手机号）和密码。")
    try:
        person = check_password(username=username, password=password, page="dashboard")
    except Locked as exc:
        return again(423, exc.detail, exc.headers)
    except Unauthorized:
        return again(401, "身份证号码（或手机号）或密码错误。")
    principal = dashboard.staff_principal(person.subject_id)
    if not dashboard.is_hall_admin(principal, hall):
        return _forbidden(hall)
    session.clear()  # a fresh session (and CSRF token) on sign-in: no fixation
    session[SESSION_SUBJECT], session[SESSION_AT] = person.subject_id, epoch()
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return redirect(url_for("pages.hall_dashboard", code=hall.code), code=303)


@pages.post("/halls/<code>/dashboard/logout")
def hall_logout(code: str):
    hall = _hall(code)
    if hall is None:
        return _no_such_hall(code)
    if not _csrf_ok():
        return _error_page(400, "请求无效", "页面已过期，请刷新后再退出。", hall=hall)
    session.clear()
    return redirect(url_for("pages.hall_login", code=hall.code), code=303)
