"""The start page (/) and the problem-type pages (/problems) through the test client and in headless
Chromium: strict CSP, links that all answer, the dashboards of the province and its cities, every
problem `type` the API answers with documented, and the "try it" block's URLs served."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from app.catalogue.models import Hall
from app.devtools.accounts import DEMO_ACCOUNTS, demo_password
from app.devtools.tryit import try_it_text
from app.errors import HTTP_SLUGS
from app.extensions import db
from app.web.problem_docs import BY_SLUG, PROBLEM_DOCS
from tests.support.browser import PHONE, ConsoleWatch, artifact, chromium, live_server
from tests.support.pages import Page, assert_self_contained, assert_strict_csp

ROOT = Path(__file__).resolve().parent.parent


def links(html: str) -> list[str]:
    return [attrs["href"] for attrs in Page(html).find("a")]


def test_start_page_links_docs_verifier_dashboards_and_they_answer(app, client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert_strict_csp(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert_self_contained(client, response)
    html = response.get_data(as_text=True)
    assert Page(html).find("html")[0]["lang"] == "zh-CN"
    hrefs = links(html)
    for path in ("/docs", "/openapi.json", "/verify", "/problems", "/healthz", "/.well-known/jwks.json"):
        assert path in hrefs, path
    with app.app_context():
        expected = db.session.scalars(select(Hall.code).where(Hall.level.in_(("province", "city")))).all()
    assert len(expected) == 17
    for code in expected:
        assert f"/halls/{code}/dashboard" in hrefs, code
    for href in set(hrefs) - {"#main"}:
        answer = client.get(href)
        assert answer.status_code in (200, 302), (href, answer.status_code)
        answer.close()
    assert "演示账号" not in html  # the demo table is for development only


def test_start_page_in_development_lists_demo_logins_but_never_the_password(app_factory):
    dev = app_factory(APP_ENV="development")
    html = dev.test_client().get("/").get_data(as_text=True)
    assert "演示账号（仅开发环境）" in html
    for account in DEMO_ACCOUNTS:
        assert account.id_number in html and account.name in html
    assert demo_password(dev.config["SECRET_KEY"]) not in html


def _slugs_raised_in_code() -> set[str]:
    found = set()
    for path in list((ROOT / "app").rglob("*.py")) + list((ROOT / "miniprograms").rglob("*.py")):
        found.update(re.findall(r"""\bslug\s*=\s*["']([a-z0-9-]+)["']""", path.read_text(encoding="utf-8")))
    return found


def test_every_problem_type_has_a_page(client):
    slugs = set(HTTP_SLUGS.values()) | _slugs_raised_in_code() | {"error"}
    assert {"invalid-signature", "precondition-failed"} <= slugs
    assert slugs <= set(BY_SLUG), slugs - set(BY_SLUG)
    index = client.get("/problems")
    assert index.status_code == 200
    assert_strict_csp(index)
    for doc in PROBLEM_DOCS:
        page = client.get(f"/problems/{doc.slug}")
        assert page.status_code == 200, doc.slug
        html = page.get_data(as_text=True)
        assert doc.title in html and doc.cause in html and doc.action in html
        assert f"/problems/{doc.slug}" in index.get_data(as_text=True)
    unknown = client.get("/problems/no-such-problem")
    assert unknown.status_code == 404 and unknown.mimetype == "text/html"
    assert_strict_csp(unknown)


def test_a_problem_type_leads_to_its_page(client):
    problem = client.get("/api/v1/no-such-thing").get_json()
    assert problem["status"] == 404
    slug = problem["type"].rstrip("/").rsplit("/", 1)[1]
    page = client.get(f"/problems/{slug}")
    assert page.status_code == 200 and BY_SLUG[slug].title in page.get_data(as_text=True)


def test_try_it_block_points_at_served_pages(client):
    text = try_it_text("http://localhost", demo_password="sdexample12")
    urls = re.findall(r"http://localhost(/[^\s)]*)", text)
    assert {"/", "/docs", "/openapi.json", "/verify", "/halls/370102/dashboard", "/problems"} <= set(urls)
    for path in urls:
        answer = client.get(path)
        assert answer.status_code in (200, 302), (path, answer.status_code)
        answer.close()
    assert "password sdexample12" in text
    assert "password" not in try_it_text("http://localhost", demo_password=None)


@pytest.mark.slow
def test_start_page_in_chromium_on_a_phone(app):
    with live_server(app) as base_url, chromium() as browser:
        context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                      locale="zh-CN", timezone_id="Asia/Shanghai")
        page = context.new_page()
        watch = ConsoleWatch(page)
        page.goto(f"{base_url}/")
        assert page.get_by_role("heading", level=1).inner_text() == "爱山东 政务服务 API"
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        hall = page.get_by_role("link", name="济南市").bounding_box()
        assert hall and hall["height"] >= 44 and hall["x"] + hall["width"] <= PHONE["width"]
        page.screenshot(path=artifact("landing-mobile.png"), full_page=True)
        page.get_by_role("link", name="亮证核验").click()
        page.wait_for_url(f"{base_url}/verify")
        page.goto(f"{base_url}/problems/validation-failed")
        assert "请求参数校验失败" in page.get_by_role("heading", level=1).inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=artifact("problems-mobile.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{base_url}/")
        page.screenshot(path=artifact("landing-desktop.png"), full_page=True)
        assert watch.csp_violations() == [] and watch.errors == []
        context.close()
