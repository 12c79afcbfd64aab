"""The 12345 round trip against a local fake platform speaking the documented shape: dispatched work
orders become complaints of their hall (linked to the caller's account by phone), are accepted,
misrouted ones are returned; the hall's replies go back signed, retried when the platform is down."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.complaints import hotline_sync
from app.complaints.models import Complaint, ComplaintReply
from app.extensions import db
from tests.fakes.hotline12345_server import FakeHotline12345Server
from tests.support.hall import LIXIA
from tests.support.helpers import API, create_staff, register_person


@pytest.fixture
def platform(app, monkeypatch):
    with FakeHotline12345Server() as fake:
        monkeypatch.setitem(app.config, "HOTLINE12345_BASE_URL", fake.base_url)
        monkeypatch.setitem(app.config, "HOTLINE12345_APP_ID", fake.app_id)
        monkeypatch.setitem(app.config, "HOTLINE12345_SECRET", fake.secret)
        monkeypatch.setitem(app.config, "JOBS_INLINE", True)  # the reply push runs where RQ would run it
        yield fake


def sync(app):
    result = app.test_cli_runner().invoke(args=["complaints", "sync-12345"])
    return result.exit_code, result.output


def test_orders_in_replies_out(app, client, platform):
    caller = register_person(client, app, name="王五")
    platform.dispatch("SD12345-20261201-000001", kind="投诉", content="大厅空调坏了一周无人修理", unit_code=LIXIA,
                      caller_name="王五", caller_phone=caller["phone"], due_date="2026-12-08")
    platform.dispatch("SD12345-20261201-000002", kind="求助", content="想咨询社保卡补办需要的材料", unit_code=LIXIA,
                      caller_name="赵六", caller_phone="13900001111")
    platform.dispatch("SD12345-20261201-000003", kind="建议", content="建议增加周末延时服务", unit_code="110101")
    code, output = sync(app)
    assert code == 0, output
    assert json.loads(output) == {"in": {"imported": 2, "accepted": 2, "returned": 1, "failed": 0},
                                  "out": {"sent": 0, "retry": 0, "failed": 0}}
    assert platform.orders["SD12345-20261201-000001"]["status"] == "accepted"
    assert platform.orders["SD12345-20261201-000003"]["status"] == "returned"
    assert platform.orders["SD12345-20261201-000003"]["return_reason"] == hotline_sync.NOT_OURS
    assert platform.rejected == []
    assert json.loads(sync(app)[1])["in"] == {"imported": 0, "accepted": 0, "returned": 0, "failed": 0}

    # the caller with an account sees it in the app; the hall sees both, callers masked
    mine = client.get(f"{API}/complaints", headers=caller["headers"]).get_json()["items"]
    assert len(mine) == 1 and mine[0]["source"] == "hotline12345" and mine[0]["due_date"] == "2026-12-08"
    staff = create_staff(app, LIXIA)
    listed = {item["ticket_no"]: item for item in
              client.get(f"{API}/halls/{LIXIA}/complaints", headers=staff).get_json()["items"]}
    assert listed["SD12345-20261201-000002"]["category"] == "consultation"
    assert listed["SD12345-20261201-000002"]["complainant_masked"] == "赵*"
    assert listed["SD12345-20261201-000002"]["contact_phone_masked"] == "139****1111"
    accepted = platform.orders["SD12345-20261201-000001"]["accepted"]
    assert accepted["local_id"] == mine[0]["complaint_id"]

    # a reply goes back to the platform at once, signed; closing it is 办结 there
    reply = client.post(f"{API}/complaints/{mine[0]['complaint_id']}/replies", headers=staff,
                        json={"content": "空调已于今日修复，感谢监督。", "close": True})
    assert reply.status_code == 201
    sent = platform.orders["SD12345-20261201-000001"]["replies"]
    assert len(sent) == 1 and sent[0]["content"] == "空调已于今日修复，感谢监督。" and sent[0]["final"] is True
    assert platform.orders["SD12345-20261201-000001"]["status"] == "closed"
    inbox = client.get(f"{API}/inbox", headers=caller["headers"]).get_json()["items"]
    assert any(note["body"] == "空调已于今日修复，感谢监督。" for note in inbox)
    with app.app_context():
        assert db.session.scalar(select(ComplaintReply.hotline_status)) == "sent"


def test_a_reply_waits_while_the_platform_is_down(app, client, platform):
    platform.dispatch("SD12345-20261201-000010", kind="咨询", content="请问居住证办理需要多久", unit_code=LIXIA)
    sync(app)
    staff = create_staff(app, LIXIA)
    complaint_id = client.get(f"{API}/halls/{LIXIA}/complaints", headers=staff).get_json()["items"][0]["complaint_id"]
    platform.fail_replies = 1
    assert client.post(f"{API}/complaints/{complaint_id}/replies", headers=staff,
                       json={"content": "一般7个工作日。"}).status_code == 201
    with app.app_context():
        pending = db.session.scalar(select(ComplaintReply))
        assert pending.hotline_status == "pending" and pending.hotline_attempts == 1 and "502" in pending.hotline_error
    assert platform.orders["SD12345-20261201-000010"]["replies"] == []
    code, output = sync(app)
    assert json.loads(output)["out"] == {"sent": 1, "retry": 0, "failed": 0}
    assert platform.orders["SD12345-20261201-000010"]["replies"][0]["content"] == "一般7个工作日。"
    assert platform.orders["SD12345-20261201-000010"]["status"] == "replied"


def test_a_wrong_secret_is_refused_and_nothing_is_imported(app, platform, monkeypatch):
    monkeypatch.setitem(app.config, "HOTLINE12345_SECRET", "not-the-secret")
    platform.dispatch("SD12345-20261201-000020", kind="投诉", content="窗口人员态度差", unit_code=LIXIA)
    code, output = sync(app)
    assert code != 0 and "12345" in output
    assert platform.rejected == ["signature"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Complaint)) == 0


def test_not_configured_says_so(app):
    code, output = sync(app)
    assert code != 0 and "HOTLINE12345_BASE_URL" in output
