"""The provider's browser pages: the authorization endpoint with our login (ID number or phone +
password, the same lock and rate limit as the API) and consent pages, and RP-initiated logout.

Pages carry a strict Content-Security-Policy (no script; forms post to this origin and, after a
redirect, to the client's validated redirect URI only). Errors the client cannot be told about (an
unknown client, an unregistered redirect URI) are pages of ours, never redirects."""
from __future__ import annotations

from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import Blueprint, current_app, g, redirect, render_template, request, url_for

from ..errors import Locked, TooManyRequests, Unauthorized
from ..extensions import db, limiter
from ..identity.enterprises import enterprise_for, enterprises_of
from ..identity.grants import check_password
from ..identity.persons import person_by_subject_id
from ..security.pii import mask_name
from ..security.rbac import Principal
from ..timeutil import epoch
from ..web.views import PERMISSIONS_POLICY
from . import browser
from .authorize import denied_location, issue_code, level_shortfall, person_grantee, refusal_location, validated_grant
from .claims import SCOPE_LABELS
from .consents import covers, remember
from .server import oidc_server

login_pages = Blueprint("oidc_pages", __name__, template_folder="templates")

PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'{targets}; "
            "frame-ancestors 'none'; base-uri 'none'")


@login_pages.after_request
def _page_headers(response):
    target = g.get("oidc_redirect_origin")
    response.headers["Content-Security-Policy"] = PAGE_CSP.format(targets=f" {target}" if target else "")
    response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    response.headers["Cache-Control"] = "no-store"
    return response


def _allow_redirect_to(grant) -> None:
    """Let this page's forms end at the client's (validated) redirect URI."""
    parts = urlsplit(grant.redirect_uri)
    g.oidc_redirect_origin = f"{parts.scheme}://{parts.netloc}"


def _message(status: int, title: str, message: str, *, link=None, link_text=None):
    return render_template("oidc/message.html", title=title, message=message, link=link,
                           link_text=link_text), status


def _expired():
    return _message(400, "页面已过期", "登录页面已过期或不属于此浏览器，请返回原网站重新登录。")


def _oauth_error(error: OAuth2Error):
    """A redirect to the client when it can be told, otherwise a page of ours."""
    if error.redirect_uri:
        return redirect(dict(error()[2])["Location"])
    return _message(400, "无法登录", "该应用发来的登录请求无效，无法继续（" + (error.description or error.error) +
                    "）。请返回原网站重新操作，或联系该应用的管理方。")


def _signed_in():
    """(person, session) of this browser's live login, or (None, None)."""
    session = browser.current_session()
    person = person_by_subject_id(session["subject_id"]) if session else None
    if person is None or not person.active:
        return None, None
    return person, session


def _grantee(person, session, enterprise=None):
    return person_grantee(person, auth_time=session["auth_time"], amr=session["amr"], sid=session["sid"],
                          enterprise=enterprise)


def _companies(person) -> list[dict]:
    principal = Principal(subject_id=person.subject_id, subject_type="person", roles=frozenset({"citizen"}))
    return [{"subject_id": item["enterprise"].subject_id, "name": item["enterprise"].name,
             "role": "法定代表人" if item["role"] == "representative" else "经办人"}
            for item in enterprises_of(principal=principal)]


def _too_old(params: dict, session: dict) -> bool:
    max_age = params.get("max_age")
    return bool(max_age and max_age.isdigit() and epoch() - int(session["auth_time"]) > int(max_age))


def _decide(grant, params: dict, person, session, pending: dict | None = None):
    """Login page, consent page, or the code: what this authorization request needs next."""
    _allow_redirect_to(grant)
    prompts = set((params.get("prompt") or "").split())
    fresh = bool(pending and pending.get("fresh"))
    if person is None or (not fresh and ("login" in prompts or _too_old(params, session))):
        if "none" in prompts:
            return redirect(refusal_location(grant, LoginRequiredError()))
        return _login_page(grant, params, pending)
    shortfall = level_shortfall(grant, person)
    if shortfall:
        return _message(403, "实名认证等级不足", shortfall, link=denied_location(grant, "Real-name level too low."),
                        link_text=f"返回“{grant.request.client.name}”")
    companies = _companies(person)
    choose = "select_account" in prompts and companies
    if covers(person.subject_id, grant.request.client.client_id, grant.request.scope) \
            and "consent" not in prompts and not choose:
        return _finish(grant, _grantee(person, session), pending)
    if "none" in prompts:
        return redirect(refusal_location(grant, ConsentRequiredError()))
    pending = pending or browser.save_interaction(params, browser.browser_id())
    return render_template("oidc/consent.html", client=grant.request.client, interaction=pending["id"],
                           csrf_token=pending["csrf"], person_name=mask_name(person.name),
                           scope_labels=[SCOPE_LABELS[s] for s in grant.request.scope.split() if s in SCOPE_LABELS],
                           companies=companies)


def _login_page(grant, params: dict, pending: dict | None, *, error: str | None = None, status: int = 200):
    cookie = None if browser.browser_id() else browser.new_browser_id()
    pending = pending or browser.save_interaction(params, browser.browser_id() or cookie)
    response = current_app.make_response((render_template(
        "oidc/login.html", client=grant.request.client, interaction=pending["id"], csrf_token=pending["csrf"],
        error=error), status))
    if cookie:
        browser.set_cookie(response, cookie)
    return response


def _finish(grant, user, pending: dict | None):
    location = issue_code(grant, user)
    db.session.commit()
    browser.finish_interaction(pending)
    return redirect(location, code=303 if request.method == "POST" else 302)


@login_pages.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    """The authorization endpoint (standard parameters, code flow, PKCE S256)."""
    person, session = _signed_in()
    try:
        grant = validated_grant(None, _grantee(person, session) if person else None)
    except OAuth2Error as error:
        return _oauth_error(error)
    return _decide(grant, request.values.to_dict(), person, session)


def _pending(*, csrf: bool) -> dict | None:
    return browser.interaction(request.values.get("interaction", ""),
                               csrf=request.form.get("csrf_token", "") if csrf else None)


@login_pages.get("/oauth/authorize/resume")
def resume():
    """Where the login form leads: the same request, now signed in."""
    pending = _pending(csrf=False)
    if pending is None:
        return _expired()
    person, session = _signed_in()
    try:
        grant = validated_grant(pending["params"], _grantee(person, session) if person else None)
    except OAuth2Error as error:
        return _oauth_error(error)
    return _decide(grant, pending["params"], person, session, pending)


@login_pages.post("/oauth/authorize/login")
def login():
    """ID number or phone + password, with the API's failed-login lock and per-address rate limit."""
    pending = _pending(csrf=True)
    if pending is None:
        return _expired()
    try:
        grant = validated_grant(pending["params"])
    except OAuth2Error as error:
        return _oauth_error(error)
    _allow_redirect_to(grant)

    def again(status: int, error: str, headers=None):
        response = _login_page(grant, pending["params"], pending, error=error, status=status)
        response.headers.update(headers or {})
        return response

    try:
        limiter.hit(current_app.config["AUTH_RATE_LIMIT"], "auth", request.remote_addr or "unknown",
                    detail="登录请求过于频繁，请稍后再试")
    except TooManyRequests as exc:
        return again(429, exc.detail, exc.headers)
    username, password = request.form.get("username", "").strip(), request.form.get("password", "")
    if not username or not password or len(username) > 64 or len(password) > 256:
        return again(422, "请输入身份证号码（或手机号）和密码。")
    try:
        person = check_password(username=username, password=password, page="oidc")
    except Locked as exc:
        return again(423, exc.detail, exc.headers)
    except Unauthorized:
        return again(401, "身份证号码（或手机号）或密码错误。")
    cookie, _ = browser.start_session(person.subject_id, amr=["pwd"])
    browser.after_login(pending, cookie)
    response = redirect(url_for("oidc_pages.resume", interaction=pending["id"]), code=303)
    browser.set_cookie(response, cookie)
    return response


@login_pages.post("/oauth/authorize/consent")
def consent():
    """同意 or 拒绝, and for whom (the person, or a company they represent or act for)."""
    pending = _pending(csrf=True)
    person, session = _signed_in()
    if pending is None or person is None:
        return _expired()
    try:
        grant = validated_grant(pending["params"], _grantee(person, session))
    except OAuth2Error as error:
        return _oauth_error(error)
    _allow_redirect_to(grant)
    if request.form.get("decision") != "allow":
        browser.finish_interaction(pending)
        return redirect(denied_location(grant, "The user denied the request."), code=303)
    identity, enterprise = request.form.get("identity", "self"), None
    if identity != "self":
        if identity not in {item["subject_id"] for item in _companies(person)}:
            return _expired()
        enterprise = enterprise_for(identity)
    shortfall = level_shortfall(grant, person)
    if shortfall:
        return _message(403, "实名认证等级不足", shortfall)
    remember(person.subject_id, grant.request.client, grant.request.scope, via="web")
    return _finish(grant, _grantee(person, session, enterprise), pending)


@login_pages.route("/oauth/logout", methods=["GET", "POST"])
def end_session():
    """RP-initiated logout: with a valid id_token_hint at once, otherwise after the person confirms."""
    server = oidc_server()
    try:
        end_request = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return _message(400, "无法退出", "退出请求无效（" + (error.description or error.error) + "）。")
    if end_request.needs_confirmation and request.method == "GET":
        params = {key: value for key, value in request.args.items()
                  if key in ("client_id", "post_logout_redirect_uri", "state", "ui_locales")}
        return render_template("oidc/logout.html", client=end_request.client, params=params)
    response = server.create_endpoint_response("end_session", end_request)
    if response is None:
        response = current_app.make_response(_message(200, "已退出", "您已退出爱山东账号。"))
    browser.clear_cookie(response)
    return response
