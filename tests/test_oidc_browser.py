"""Our login and consent pages in headless Chromium (Playwright): a relying party (pyoidc) sends the
browser to the authorization endpoint, the person signs in with ID number and password, consents,
and the browser lands on the relying party with a code pyoidc exchanges and verifies; the second
time the consent page is skipped. The pages raise no CSP violation. Screenshots go to test-artifacts/."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support.browser import PHONE, ConsoleWatch, artifact, chromium
from tests.support.oidc import authorization_request, exchange, new_person, verify_with_jwks

pytestmark = pytest.mark.slow


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


def _code(rp, url: str) -> str:
    from oic.oic.message import AuthorizationResponse
    return rp.parse_response(AuthorizationResponse, info=urlsplit(url).query, sformat="urlencoded")["code"]


def test_login_and_consent_pages_lead_back_to_the_relying_party(provider, relying_party, rp_server, page):
    person = new_person(provider, name="周九")
    rp = relying_party["rp"]
    params, verifier = authorization_request(rp, scope=("openid", "profile", "phone"))
    url = rp.construct_AuthorizationRequest(request_args={**params, "scope": params["scope"].split()}) \
        .request(rp.authorization_endpoint)

    page.goto(url)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "济南市公安局户政系统" in page.locator("h1").inner_text()
    page.get_by_label("身份证号码或手机号").fill(person["id_number"])
    page.get_by_label("密码").fill("wrong-Passw0rd")
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#login-error")
    assert "密码错误" in page.locator("#login-error").inner_text()
    page.screenshot(path=artifact("oidc-login-error.png"), full_page=True)

    page.get_by_label("身份证号码或手机号").fill(person["id_number"])
    page.get_by_label("密码").fill(person["password"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#consent-form")
    scopes = page.locator("#scopes li").all_inner_texts()
    assert any("姓名" in text for text in scopes) and any("手机号码" in text for text in scopes)
    assert page.locator("#account-name").inner_text() == "周*"
    page.screenshot(path=artifact("oidc-consent.png"), full_page=True)

    page.get_by_role("button", name="同意").click()
    page.wait_for_url(rp_server.callback + "?*")
    assert page.locator("#rp").inner_text() == "relying party"
    tokens = exchange(rp, params, verifier, _code(rp, page.url))
    claims = verify_with_jwks(provider, tokens["id_token"].jwt, audience=relying_party["client_id"])
    assert claims["amr"] == ["pwd"] and claims["nonce"] == params["nonce"] and claims["name"] == "周九"
    assert claims["phone_masked"] == person["phone"][:3] + "****" + person["phone"][-4:]

    again, verifier = authorization_request(rp, scope=("openid", "profile"))
    url = rp.construct_AuthorizationRequest(request_args={**again, "scope": again["scope"].split()}) \
        .request(rp.authorization_endpoint)
    page.goto(url)  # signed in and consented: no page of ours at all
    page.wait_for_url(rp_server.callback + "?*")
    assert exchange(rp, again, verifier, _code(rp, page.url))["id_token"]["sub"] == claims["sub"]
    assert page.console_watch.csp_violations() == []


def test_refusing_on_the_consent_page_tells_the_relying_party(provider, relying_party, rp_server, page):
    person = new_person(provider, name="吴十")
    rp = relying_party["rp"]
    params, _ = authorization_request(rp)
    url = rp.construct_AuthorizationRequest(request_args={**params, "scope": params["scope"].split()}) \
        .request(rp.authorization_endpoint)
    page.goto(url)
    page.get_by_label("身份证号码或手机号").fill(person["phone"])
    page.get_by_label("密码").fill(person["password"])
    page.get_by_role("button", name="登录").click()
    page.get_by_role("button", name="拒绝").click()
    page.wait_for_url(rp_server.callback + "?*")
    assert "error=access_denied" in page.url and f"state={params['state']}" in page.url
    assert page.console_watch.csp_violations() == []
