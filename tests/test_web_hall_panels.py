"""The dashboard's hall-service panels in headless Chromium: today's appointment queue and the
complaint backlog with the overdue ones, made through the API and read as an admin sees them."""
from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import select

from app.complaints.models import Complaint
from app.extensions import db
from app.timeutil import beijing_today
from tests.support.browser import PHONE, ConsoleWatch, artifact, chromium, hall_admin, live_server
from tests.support.hall import LIXIA, book, move_slot, service_of, slots, working_day
from tests.support.helpers import API, create_staff, register_person

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(app):
    with live_server(app) as base_url:
        yield base_url


def _activity(app, client) -> dict:
    """Three bookings moved to today (one checked in), four complaints (two overdue, one closed)."""
    alice, bob, carol = (register_person(client, app, name=n) for n in ("张三", "李四", "王五"))
    service = service_of(app, LIXIA)
    listed = slots(client, LIXIA, working_day(2))
    staff = create_staff(app, LIXIA)
    tickets = []
    for index, person in enumerate((alice, bob, carol)):
        body = book(client, person["headers"], listed[index]["slot_id"], service).get_json()
        move_slot(app, listed[index]["slot_id"], beijing_today(), time(9 + index // 2, 30 * (index % 2)))
        tickets.append(body)
    assert client.post(f"{API}/appointments/{tickets[0]['appointment_id']}/check-in", headers=staff).status_code == 200
    ids = []
    for category in ("complaint", "report", "suggestion", "consultation"):
        response = client.post(f"{API}/complaints", headers=alice["headers"],
                               json={"category": category, "content": "大厅叫号系统经常故障", "hall_code": LIXIA})
        ids.append(response.get_json()["complaint_id"])
    client.post(f"{API}/complaints/{ids[3]}/replies", headers=staff, json={"content": "已答复", "close": True})
    with app.app_context():
        for complaint_id, late in ((ids[0], 3), (ids[1], 10)):
            row = db.session.scalar(select(Complaint).where(Complaint.complaint_id == complaint_id))
            row.due_date = beijing_today() - timedelta(days=late)
        db.session.commit()
    return {"tickets": [t["ticket"] for t in tickets], "overdue": [ids[1], ids[0]]}


def test_admin_sees_todays_queue_and_overdue_complaints(app, client, server):
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

        assert page.locator("#appointments-today").inner_text() == "3"
        assert page.locator("#appointments-waiting").inner_text() == "2"
        rows = page.locator("#appointments-queue tbody tr")
        assert rows.count() == 3
        assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(3)] == seeded["tickets"]
        assert rows.nth(0).locator("td").nth(3).inner_text() == "已到场"
        assert rows.nth(0).locator("td").nth(0).inner_text() == "09:00"

        assert page.locator("#complaints-open").inner_text() == "3"
        assert page.locator("#complaints-overdue").inner_text() == "2"
        overdue = page.locator("#complaints-overdue-table tbody tr")
        assert overdue.count() == 2
        assert seeded["overdue"][0] in overdue.nth(0).inner_text()  # the longest overdue first
        assert "举报" in overdue.nth(0).inner_text()
        assert "大厅叫号系统" not in page.content()  # the backlog shows no complaint text
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.locator("#appointments").screenshot(path=artifact("dashboard-mobile-appointments.png"))
        page.locator("#complaints").screenshot(path=artifact("dashboard-mobile-complaints.png"))
        assert watch.csp_violations() == []
        context.close()
