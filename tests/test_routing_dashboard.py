"""The dashboard's desk panel in headless Chromium: the department queues (受审分离) with what is
overdue, and the 全省通办 items taken in here for another hall or handed to this one."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.applications.models import Application
from app.extensions import db
from app.timeutil import beijing_today
from tests.support.browser import PHONE, ConsoleWatch, artifact, chromium, hall_admin, live_server
from tests.support.applications import upload
from tests.support.window import (LIXIA, QINGDAO_SHINAN, SHIZHONG, act, department_of, service_code, staff_member,
                                  take_in, walk_in)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(app):
    with live_server(app) as base_url:
        yield base_url


def _taken_in(client, staff, app, code) -> str:
    response = take_in(client, staff["headers"], walk_in(app), code, upload(client, staff["headers"]))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["application_id"]


def _activity(app, client) -> dict:
    """At 历下: one local and one 全省通办 item (from 青岛) accepted for 人社, the latter overdue, and one
    item 历下 took in for 市中."""
    code = service_code(app, LIXIA)
    desk = staff_member(app, LIXIA, name="前台")
    qingdao = staff_member(app, QINGDAO_SHINAN, name="青岛窗口")
    local = _taken_in(client, desk, app, code)
    received = _taken_in(client, qingdao, app, code)
    sent = _taken_in(client, desk, app, service_code(app, SHIZHONG))
    for application_id in (local, received):
        assert act(client, desk["headers"], application_id, "accept").status_code == 200
    with app.app_context():
        row = db.session.scalar(select(Application).where(Application.application_id == received))
        row.deadline = beijing_today() - timedelta(days=3)
        db.session.commit()
    return {"department": department_of(app, code), "received": received, "sent": sent}


def test_admin_sees_department_queues_and_cross_region_items(app, client, server):
    seeded = _activity(app, client)
    admin = hall_admin(app, LIXIA)
    with chromium() as browser:
        context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                      locale="zh-CN", timezone_id="Asia/Shanghai")
        page = context.new_page()
        watch = ConsoleWatch(page)
        page.goto(f"{server}/halls/{LIXIA}/dashboard")
        page.get_by_label("身份证号码或手机号").fill(admin["id_number"])
        page.get_by_label("密码").fill(admin["password"])
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(f"{server}/halls/{LIXIA}/dashboard")

        assert page.locator("#desk-waiting").inner_text() == "2"
        queues = page.locator("#desk-queues tbody tr")
        assert queues.count() == 1
        cells = [queues.nth(0).locator("td").nth(i).inner_text() for i in range(3)]
        assert cells == [seeded["department"], "2", "1"]

        assert page.locator("#cross-region-sent").inner_text() == "1"
        assert page.locator("#cross-region-received").inner_text() == "1"
        rows = page.locator("#cross-region-table tbody tr")
        assert rows.count() == 2
        newest, older = rows.nth(0).inner_text(), rows.nth(1).inner_text()
        assert seeded["sent"] in newest and "代收转出" in newest and "市中区" in newest
        assert seeded["received"] in older and "转入办理" in older and "市南区" in older and "已受理" in older
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.locator("#desk").screenshot(path=artifact("dashboard-mobile-desk.png"))
        assert watch.csp_violations() == []
        context.close()
