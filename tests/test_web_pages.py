"""The verifier page and the sub-hall dashboard through the Flask test client: headers, assets,
accessibility hooks, sign-in (CSRF, lock, rate limit), who may see which hall, and content."""
from __future__ import annotations

import re

from sqlalchemy import delete, select

from app.catalogue import halls as catalogue
from app.extensions import db
from app.identity.models import AuthSession, StaffAssignment
from app.security.models import AuditEvent
from app.web import charts
from tests.support.browser import (hall_admin, issue_id_card, login_form, present, seed_hall_activity)
from tests.support.helpers import API, DEFAULT_PASSWORD, create_staff, register_person, valid_id_number
from tests.support.pages import Page, assert_self_contained, assert_strict_csp

JINAN, LIXIA, QINGDAO = "370100", "370102", "370200"
def assert_labelled(html: str):
    page = Page(html)
    labels = {a.get("for") for a in page.find("label")}
    controls = [a for t, a in page.tags if t in ("input", "textarea", "select") and a.get("type") != "hidden"]
    assert controls
    for attrs in controls:
        assert attrs.get("id") in labels, attrs


# ---- the verifier page


def test_verify_page_headers_and_csp(client):
    response = client.get("/verify")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert_strict_csp(response)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_verify_page_has_no_external_urls_and_no_inline_code(client):
    assert_self_contained(client, client.get("/verify"))


def test_verify_page_is_accessible_and_mobile_ready(client):
    html = client.get("/verify").get_data(as_text=True)
    page = Page(html)
    assert page.find("html")[0]["lang"] == "zh-CN"
    assert any(m.get("name") == "viewport" and "width=device-width" in m.get("content", "")
               for m in page.find("meta"))
    assert_labelled(html)
    result = page.by_id("result")
    assert result and result[1]["aria-live"] == "polite"
    button = page.by_id("verify-button")
    assert button and button[1]["type"] == "submit"
    assert "核验" in html and "亮证码" in html


def test_static_assets_are_served_by_the_app(client):
    js = client.get("/web/static/verify.js")
    css = client.get("/web/static/web.css")
    assert js.status_code == css.status_code == 200
    assert "javascript" in js.mimetype and css.mimetype == "text/css"
    text = js.get_data(as_text=True)
    for reason, words in (("expired", "已过期"), ("used", "已被使用（一次性核验码只能使用一次）"),
                          ("revoked", "已吊销"), ("suspended", "已暂停"), ("bad_signature", "签名无效或被篡改"),
                          ("unknown", "无法识别")):
        assert f'{reason}: "{words}"' in text
    assert ".innerHTML" not in text and "eval(" not in text
    assert "sessionStorage" in text and "localStorage" not in text
    js.close()
    css.close()


def test_verify_page_offers_the_code_from_its_url_without_using_it(app, client):
    holder = register_person(client, app, name="张三")
    license_id = issue_id_card(app, client, holder)
    code = present(client, holder, license_id)["code"]
    html = client.get("/verify", query_string={"code": code}).get_data(as_text=True)
    page = Page(html)
    assert page.by_id("from-link")
    assert re.search(r'<textarea id="presentation"[^>]*>' + re.escape(code) + "</textarea>", html)
    # only pressing 核验 checks it: the code still works once
    answer = client.post(f"{API}/verifications", json={"code": code}).get_json()
    assert answer["valid"] is True
    again = client.post(f"{API}/verifications", json={"code": code}).get_json()
    assert again["valid"] is False and again["reason"] == "used"


def test_code_from_the_url_is_escaped(client):
    html = client.get("/verify", query_string={"code": '"><script>alert(1)</script>'}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert client.get("/verify", query_string={"code": "x" * 500}).get_data(as_text=True).count("x" * 500) == 0


# ---- the dashboard: access


def test_dashboard_redirects_to_sign_in_without_a_session(client):
    response = client.get(f"/halls/{JINAN}/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/halls/{JINAN}/dashboard/login")


def test_login_page_has_csrf_labels_and_strict_csp(client):
    response = client.get(f"/halls/{JINAN}/dashboard/login")
    assert response.status_code == 200
    assert_strict_csp(response)
    assert_self_contained(client, response)
    html = response.get_data(as_text=True)
    assert_labelled(html)
    page = Page(html)
    assert page.find("html")[0]["lang"] == "zh-CN"
    csrf = [a for a in page.find("input") if a.get("name") == "csrf_token"]
    assert csrf and len(csrf[0]["value"]) >= 32
    assert page.find("form")[0]["method"] == "post"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_unknown_hall_is_a_404_page(client):
    response = client.get("/halls/999999/dashboard")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "大厅不存在" in response.get_data(as_text=True)
    assert client.get("/halls/999999/dashboard/login").status_code == 404


def test_login_needs_the_csrf_token(app, client):
    admin = hall_admin(app, JINAN)
    client.get(f"/halls/{JINAN}/dashboard/login")
    response = client.post(f"/halls/{JINAN}/dashboard/login",
                           data={"username": admin["id_number"], "password": admin["password"]})
    assert response.status_code == 400
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 302
    response = client.post(f"/halls/{JINAN}/dashboard/login",
                           data={"csrf_token": "forged" * 8, "username": admin["id_number"],
                                 "password": admin["password"]})
    assert response.status_code == 400


def test_hall_admin_signs_in_and_api_tokens_are_not_left_behind(app, client):
    admin = hall_admin(app, JINAN)
    response = login_form(client, JINAN, admin["id_number"], admin["password"])
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/halls/{JINAN}/dashboard")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    dashboard = client.get(f"/halls/{JINAN}/dashboard")
    assert dashboard.status_code == 200
    assert_strict_csp(dashboard)
    assert dashboard.headers["Cache-Control"] == "no-store"
    with app.app_context():
        assert db.session.scalars(select(AuthSession)).all() == []  # no API session is ever minted
        signed_in = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "auth.login_succeeded")).all()
        assert [row.details for row in signed_in] == [{"method": "password", "page": "dashboard"}]


def test_wrong_password_is_401_and_five_failures_lock_the_account(app, client):
    admin = hall_admin(app, JINAN)
    for _ in range(4):
        response = login_form(client, JINAN, admin["id_number"], "Wrong-pass-1")
        assert response.status_code == 401
        assert "密码错误" in response.get_data(as_text=True)
    response = login_form(client, JINAN, admin["id_number"], "Wrong-pass-1")
    assert response.status_code == 423
    assert int(response.headers["Retry-After"]) > 0
    # the right password is refused too until the lock ends, exactly as for the API
    response = login_form(client, JINAN, admin["id_number"], admin["password"])
    assert response.status_code == 423
    assert "锁定" in response.get_data(as_text=True)
    api = client.post(f"{API}/auth/token", json={"grant_type": "password", "username": admin["id_number"],
                                                 "password": admin["password"]})
    assert api.status_code == 423


def test_login_is_rate_limited_per_client_ip(app, app_factory):
    limited = app_factory(AUTH_RATE_LIMIT="2/minute")
    admin = hall_admin(app, JINAN)
    browser = limited.test_client()
    statuses = [login_form(browser, JINAN, admin["id_number"], "Wrong-pass-1").status_code for _ in range(3)]
    assert statuses[:2] == [401, 401] and statuses[2] == 429


def test_admin_of_another_hall_gets_403(app, client):
    admin = hall_admin(app, QINGDAO)
    response = login_form(client, JINAN, admin["id_number"], admin["password"])
    assert response.status_code == 403
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 302  # no session was made
    assert login_form(client, QINGDAO, admin["id_number"], admin["password"]).status_code == 303
    assert client.get(f"/halls/{QINGDAO}/dashboard").status_code == 200
    response = client.get(f"/halls/{JINAN}/dashboard")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "无权查看" in response.get_data(as_text=True)
    assert client.get(f"/halls/{LIXIA}/dashboard").status_code == 403  # another city's county


def test_staff_and_citizens_are_not_admins(app, client):
    staff_id = valid_id_number()
    create_staff(app, JINAN, "hall_staff", id_number=staff_id)
    assert login_form(client, JINAN, staff_id, DEFAULT_PASSWORD).status_code == 403
    citizen = register_person(client, app)
    assert login_form(client, JINAN, citizen["id_number"], citizen["password"]).status_code == 403


def test_city_admin_sees_its_county_halls(app, client):
    admin = hall_admin(app, JINAN)
    assert login_form(client, LIXIA, admin["id_number"], admin["password"]).status_code == 303
    assert client.get(f"/halls/{LIXIA}/dashboard").status_code == 200


def test_role_taken_away_stops_access_at_once(app, client):
    admin = hall_admin(app, JINAN)
    assert login_form(client, JINAN, admin["id_number"], admin["password"]).status_code == 303
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 200
    with app.app_context():
        db.session.execute(delete(StaffAssignment))
        db.session.commit()
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 403


def test_logout_needs_csrf_and_ends_the_session(app, client):
    admin = hall_admin(app, JINAN)
    login_form(client, JINAN, admin["id_number"], admin["password"])
    html = client.get(f"/halls/{JINAN}/dashboard").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post(f"/halls/{JINAN}/dashboard/logout").status_code == 400
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 200
    response = client.post(f"/halls/{JINAN}/dashboard/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 302


def test_session_expires(app, client, monkeypatch):
    from app.web import views
    admin = hall_admin(app, JINAN)
    login_form(client, JINAN, admin["id_number"], admin["password"])
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 200
    later = views.epoch() + views.SESSION_MAX_AGE + 1
    monkeypatch.setattr(views, "epoch", lambda: later)
    assert client.get(f"/halls/{JINAN}/dashboard").status_code == 302


def test_session_cookie_is_secure_in_production(app_factory):
    production = app_factory(APP_ENV="production")
    assert production.config["SESSION_COOKIE_SECURE"] is True
    assert production.config["SESSION_COOKIE_HTTPONLY"] is True
    assert production.config["SESSION_COOKIE_SAMESITE"] == "Strict"


# ---- the dashboard: content


def _signed_in(app, client, hall_code):
    admin = hall_admin(app, hall_code)
    assert login_form(client, hall_code, admin["id_number"], admin["password"]).status_code == 303
    response = client.get(f"/halls/{hall_code}/dashboard")
    assert response.status_code == 200
    return response


def _text_of(html: str, ident: str) -> str:
    match = re.search(rf'id="{ident}"[^>]*>([^<]*)<', html)
    assert match, ident
    return match.group(1).strip()


def test_dashboard_shows_coverage_of_a_seeded_hall(app, client):
    response = _signed_in(app, client, LIXIA)
    html = response.get_data(as_text=True)
    with app.app_context():
        expected = catalogue.coverage(LIXIA)
    assert expected["service_count"] > 0
    assert _text_of(html, "service-count") == str(expected["service_count"])
    assert _text_of(html, "high-frequency-present") == str(expected["high_frequency_present"])
    assert "目标 200" in html
    assert _text_of(html, "meets-target") == ("已达标" if expected["meets_target"] else "未达标")
    for name in expected["high_frequency_missing"]:
        assert f"<li>{name}</li>" in html
    assert html.count("<svg") >= 2  # the two coverage gauges
    assert_self_contained(client, response)


def test_dashboard_without_activity_shows_empty_states(app, client):
    html = _signed_in(app, client, JINAN).get_data(as_text=True)
    assert "本大厅暂无办件" in html
    assert "本大厅暂无评价" in html
    assert "没有待整改的差评" in html


def test_dashboard_shows_applications_satisfaction_and_tickets(app, client):
    seeded = seed_hall_activity(app, JINAN)
    response = _signed_in(app, client, JINAN)
    html = response.get_data(as_text=True)
    page = Page(html)
    assert _text_of(html, "overdue-count") == str(seeded["overdue"])
    assert "办件按状态分布" in html and "已受理" in html and "待补正" in html
    overdue_table = re.search(r'id="overdue-table">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    assert overdue_table.count("<tr>") == seeded["overdue"]
    # 7 ratings, 5 of them 4-5 stars
    assert _text_of(html, "satisfaction-rate") == "71.4%"
    assert "满意度变化" in html and "class=\"line\"" in html
    assert "各事项满意度" in html
    for name in seeded["services"]:
        assert name in html
    assert _text_of(html, "open-tickets") == str(seeded["tickets"])
    assert 'class="tag overdue">已逾期<' in html
    svgs = [a for a in page.find("svg")]
    assert len(svgs) >= 5 and all(a.get("role") == "img" for a in svgs)
    week = client.get(f"/halls/{JINAN}/dashboard", query_string={"period": "week"}).get_data(as_text=True)
    assert 'aria-current="page">近 12 周' in week


def test_dashboard_never_shows_unmasked_people(app, client):
    seed_hall_activity(app, JINAN)
    html = _signed_in(app, client, JINAN).get_data(as_text=True)
    assert not re.search(r"\d{17}[\dXx]", html)
    assert "王管理" not in html and "王**" in html


# ---- charts


def test_charts_escape_labels_and_scale():
    svg = charts.bar_chart([("<b>x</b>", 3), ("已受理", 0)], title="t<")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "t&lt;" in svg
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    gauge = charts.progress_bar(300, 200, title="g")
    assert 'class="fill met"' in gauge
    line = charts.line_chart([charts.Point("1月", None), charts.Point("2月", 50.0), charts.Point("3月", 100.0)],
                             title="l")
    assert line.count("<circle") == 2 and "<polyline" in line
    assert "http" not in svg + gauge + line
