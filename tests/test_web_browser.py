"""Both pages in headless Chromium (Playwright) against the app served on loopback: the
verifier checks online codes, verification links and offline SD-JWTs (valid once, then
已被使用), a verifier client signs in for the disclosed fields, and a hall admin signs in to
the dashboard whose server-drawn SVG charts render. Screenshots go to test-artifacts/."""
from __future__ import annotations

import re

import pytest

from tests.support.browser import (ISSUER_NAME, PHONE, ConsoleWatch, artifact, chromium, hall_admin, issue_id_card,
                           live_server, present, seed_hall_activity, verifier_client)
from tests.support.helpers import register_person

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(app):
    with live_server(app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(15000)
    tab = context.new_page()
    tab.console_watch = ConsoleWatch(tab)
    yield tab
    context.close()


@pytest.fixture
def holder_card(app, client):
    holder = register_person(client, app, name="张三")
    return holder, issue_id_card(app, client, holder)


def check(page, text: str):
    """Clear, type `text`, press 核验 and wait for the answer (no string evaluation: the CSP forbids it)."""
    page.click("#clear-button")
    page.wait_for_selector("#result:empty", state="attached")
    page.fill("#presentation", text)
    page.click("#verify-button")
    page.wait_for_selector("#result.valid, #result.invalid, #result.error")
    page.wait_for_selector("#verify-button:not([disabled])")


def disclosed(page) -> dict[str, str]:
    names = page.locator("#disclosed dt").all_inner_texts()
    values = page.locator("#disclosed dd").all_inner_texts()
    return dict(zip(names, values))


def test_online_code_is_valid_once_then_used(server, page, client, holder_card):
    holder, license_id = holder_card
    code = present(client, holder, license_id)["code"]
    page.goto(f"{server}/verify")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.get_by_label("亮证码、核验链接或离线凭证").is_visible()

    page.get_by_label("亮证码、核验链接或离线凭证").fill(code)
    page.get_by_role("button", name="核验").click()
    page.wait_for_selector("#result.valid")
    result = page.locator("#result")
    assert "有效" in result.locator(".verdict").inner_text()
    text = result.inner_text()
    assert "居民身份证" in text and ISSUER_NAME in text
    assert re.search(r"核验时间\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text)
    assert disclosed(page) == {"姓名": "张*"}  # anonymous: the masked name only
    assert result.get_attribute("aria-live") == "polite"
    page.screenshot(path=artifact("verify-valid-anonymous.png"), full_page=True)

    page.get_by_role("button", name="核验").click()  # the same code again
    page.wait_for_selector("#result.invalid")
    assert "无效" in result.locator(".verdict").inner_text()
    assert page.locator("#reason").inner_text() == "原因：已被使用（一次性核验码只能使用一次）"
    page.screenshot(path=artifact("verify-used.png"), full_page=True)

    check(page, code)  # cleared and re-entered by hand
    assert "已被使用" in page.locator("#reason").inner_text()
    assert page.console_watch.csp_violations() == []


def test_signed_in_verifier_sees_the_disclosed_fields(app, server, page, client, holder_card):
    holder, license_id = holder_card
    client_id, secret = verifier_client(app)
    page.goto(f"{server}/verify")
    page.get_by_label("客户端标识（client_id）").fill(client_id)
    page.get_by_label("客户端密钥（client_secret）").fill(secret)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#verifier-logout:not([hidden])")
    assert "泉城大酒店" in page.locator("#verifier-status").inner_text()
    assert page.evaluate("JSON.parse(sessionStorage.getItem('ias.verifier')).token.length") > 20
    assert page.evaluate("localStorage.length") == 0
    assert page.get_by_label("客户端密钥（client_secret）").input_value() == ""

    # a verification link typed or scanned as a whole
    code = present(client, holder, license_id)["code"]
    check(page, f"{server}/verify?code={code}")
    assert page.locator("#result.valid").is_visible()
    sex = "男" if int(holder["id_number"][16]) % 2 else "女"  # the registry's sex follows the ID number
    assert disclosed(page) == {"姓名": "张三", "性别": sex, "出生日期": f"{holder['id_number'][6:10]}-"
                               f"{holder['id_number'][10:12]}-{holder['id_number'][12:14]}"}
    assert "持证人披露的信息" in page.locator("#result").inner_text()
    page.screenshot(path=artifact("verify-valid-verifier.png"), full_page=True)

    # the page's own link: the code is offered, checked only on 核验
    code = present(client, holder, license_id, disclose=("name", "valid_until"))["code"]
    page.goto(f"{server}/verify?code={code}")
    assert page.locator("#from-link").is_visible()
    assert page.locator("#presentation").input_value() == code
    assert page.locator("#result").inner_text() == ""
    page.get_by_role("button", name="核验").click()
    page.wait_for_selector("#result.valid")
    assert set(disclosed(page)) == {"姓名", "有效期至"}
    assert page.console_watch.csp_violations() == []


def test_offline_sd_jwt_is_verified_once(server, page, client, holder_card):
    holder, license_id = holder_card
    sd_jwt = present(client, holder, license_id, mode="offline")["sd_jwt"]
    page.goto(f"{server}/verify")
    check(page, sd_jwt)
    assert page.locator("#result.valid").is_visible()
    assert "居民身份证" in page.locator("#result").inner_text()
    check(page, sd_jwt)
    assert page.locator("#reason").inner_text() == "原因：已被使用（一次性核验码只能使用一次）"
    tampered = sd_jwt.replace("~", "~x", 1)
    check(page, tampered)
    assert page.locator("#result.invalid").is_visible()
    assert page.locator("#reason").inner_text() in ("原因：签名无效或被篡改", "原因：无法识别")
    check(page, "not a code")
    assert page.locator("#result.invalid").is_visible()
    assert "无法识别" in page.locator("#reason").inner_text()
    page.screenshot(path=artifact("verify-unknown.png"), full_page=True)


def test_hall_admin_signs_in_and_sees_the_charts(app, server, page):
    seed_hall_activity(app, "370100")
    admin = hall_admin(app, "370100")
    page.goto(f"{server}/halls/370100/dashboard")
    assert page.url.endswith("/halls/370100/dashboard/login")
    page.screenshot(path=artifact("dashboard-login.png"), full_page=True)
    page.get_by_label("身份证号码或手机号").fill(admin["id_number"])
    page.get_by_label("密码").fill("Wrong-pass-1")
    page.get_by_role("button", name="登录").click()
    assert "密码错误" in page.get_by_role("alert").inner_text()
    page.get_by_label("身份证号码或手机号").fill(admin["id_number"])
    page.get_by_label("密码").fill(admin["password"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{server}/halls/370100/dashboard")

    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "session")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""

    charts = page.locator("svg.chart")
    assert charts.count() >= 5
    for index in range(charts.count()):
        box = charts.nth(index).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 20, index
    assert page.locator("svg.bars rect.bar").count() == 6  # one bar per status
    assert page.locator("svg.line-chart polyline.line, svg.line-chart circle.dot").count() >= 1
    assert page.locator("#service-count").inner_text().isdigit()
    assert page.locator("#overdue-count").inner_text() == "2"
    assert page.locator("#open-tickets").inner_text() == "2"
    # mobile first: nothing wider than the phone's viewport
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=artifact("dashboard-mobile.png"), full_page=True)
    for section in ("coverage", "applications", "satisfaction", "rectifications"):
        page.locator(f"#{section}").screenshot(path=artifact(f"dashboard-mobile-{section}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=artifact("dashboard-desktop.png"), full_page=True)
    assert page.console_watch.csp_violations() == []

    page.get_by_role("button", name="退出").click()
    page.wait_for_url(f"{server}/halls/370100/dashboard/login")
