"""Complaints through the API: filing (due date in working days by category), the complainant's
view with replies, the hall's list (overdue filter, reporters hidden), replies by that hall's staff
only (the complainant's inbox gets them), rating once closed; content encrypted at rest."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from app.applications.deadlines import add_working_days
from app.complaints.models import Complaint, ComplaintReply
from app.extensions import db
from app.timeutil import beijing_today
from tests.support.hall import JINAN, LIXIA, SHIZHONG, service_of
from tests.support.helpers import API, create_staff, register_person
from tests.support.applications import apply, hukou_body, person_in

CONTENT = "窗口排队两个小时，叫号系统故障无人处理，联系电话13812345678"


def file(client, headers, **body):
    payload = {"category": "complaint", "content": CONTENT, "hall_code": LIXIA, **body}
    return client.post(f"{API}/complaints", json=payload, headers=headers)


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("category, days", [("consultation", 3), ("complaint", 5), ("suggestion", 10), ("report", 15)])
def test_filing_gives_a_due_date_in_working_days(app, client, category, days):
    alice = register_person(client, app, name="张三")
    response = file(client, alice["headers"], category=category, service_code=service_of(app, LIXIA))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "open" and body["complaint_id"].startswith("cp_")
    assert body["due_date"] == add_working_days(beijing_today(), days).isoformat()
    assert body["content"] == CONTENT and body["replies"] == [] and body["overdue"] is False


def test_content_is_encrypted_at_rest(app, client):
    alice = register_person(client, app, name="张三")
    complaint_id = file(client, alice["headers"]).get_json()["complaint_id"]
    with app.app_context():
        raw = db.session.execute(text("SELECT content_enc FROM complaints WHERE complaint_id = :id"),
                                 {"id": complaint_id}).scalar_one()
    assert raw.startswith("v1.") and "13812345678" not in raw and "叫号" not in raw


def test_a_complaint_about_an_application_that_is_not_yours_is_404_and_writes_nothing(app, client):
    alice = person_in(client, app, name="张三")
    bob = register_person(client, app, name="李四")
    application_id = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    refused = file(client, bob["headers"], application_id=application_id)
    unknown = file(client, bob["headers"], application_id="ap_00000000000000000000")
    assert refused.status_code == unknown.status_code == 404
    assert refused.get_json()["detail"] == unknown.get_json()["detail"]  # nothing tells them apart
    assert _count(app, Complaint) == 0
    own = file(client, alice["headers"], application_id=application_id)
    assert own.status_code == 201 and own.get_json()["application_id"] == application_id
    elsewhere = file(client, alice["headers"], application_id=application_id, hall_code=SHIZHONG)
    assert elsewhere.status_code == 422 and "hall_code" in elsewhere.get_json()["errors"]


@pytest.mark.parametrize("body, field", [
    ({"category": "praise"}, "category"), ({"hall_code": "379999"}, "hall_code"), ({"hall_code": "济南"}, "hall_code"),
    ({"content": "短"}, "content"), ({"content": "含有\x00控制字符的内容"}, "content"), ({"rating": 5}, "rating"),
])
def test_bad_input_is_422_naming_the_field(app, client, body, field):
    alice = register_person(client, app, name="张三")
    response = file(client, alice["headers"], **body)
    assert response.status_code == 422 and field in response.get_json()["errors"], response.get_json()
    assert _count(app, Complaint) == 0


def test_a_service_of_another_hall_is_422(app, client):
    alice = register_person(client, app, name="张三")
    response = file(client, alice["headers"], service_code=service_of(app, SHIZHONG))
    assert response.status_code == 422 and list(response.get_json()["errors"]) == ["service_code"]


def test_only_the_complainant_reads_it(app, client):
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    complaint_id = file(client, alice["headers"]).get_json()["complaint_id"]
    assert client.get(f"{API}/complaints/{complaint_id}", headers=alice["headers"]).status_code == 200
    assert client.get(f"{API}/complaints/{complaint_id}", headers=bob["headers"]).status_code == 404
    assert client.get(f"{API}/complaints/{complaint_id}", headers=create_staff(app, LIXIA)).status_code == 404
    assert client.get(f"{API}/complaints/cp_zzz", headers=alice["headers"]).status_code == 404
    listed = client.get(f"{API}/complaints", headers=alice["headers"]).get_json()
    assert listed["total"] == 1 and listed["items"][0]["complaint_id"] == complaint_id
    assert client.get(f"{API}/complaints", headers=bob["headers"]).get_json()["total"] == 0


def test_replies_by_that_halls_staff_reach_the_inbox_and_close(app, client):
    alice = register_person(client, app, name="张三")
    complaint_id = file(client, alice["headers"]).get_json()["complaint_id"]
    staff, other_hall, city_staff = create_staff(app, LIXIA), create_staff(app, SHIZHONG), create_staff(app, JINAN)
    url = f"{API}/complaints/{complaint_id}/replies"
    for headers, status in ((other_hall, 404), (city_staff, 404), (alice["headers"], 403)):
        response = client.post(url, json={"content": "已转相关科室", "close": False}, headers=headers)
        assert response.status_code == status
    assert _count(app, ComplaintReply) == 0
    city_admin = create_staff(app, JINAN, role="hall_admin")  # a city's admins act for its county halls
    first = client.post(url, json={"content": "已转相关科室核实"}, headers=city_admin)
    assert first.status_code == 201 and first.get_json()["status"] == "open"
    final = client.post(url, json={"content": "已增派窗口人员并修复叫号系统。", "close": True}, headers=staff)
    assert final.status_code == 201 and final.get_json()["status"] == "closed"
    assert client.post(url, json={"content": "补充说明"}, headers=staff).status_code == 409
    mine = client.get(f"{API}/complaints/{complaint_id}", headers=alice["headers"]).get_json()
    assert [r["content"] for r in mine["replies"]] == ["已转相关科室核实", "已增派窗口人员并修复叫号系统。"]
    assert [r["close"] for r in mine["replies"]] == [False, True] and mine["closed_at"]
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any(note["body"] == "已增派窗口人员并修复叫号系统。" and "办结" in note["title"] for note in inbox)


def test_the_hall_list_is_paged_filters_overdue_and_hides_reporters(app, client):
    alice = register_person(client, app, name="张三")
    staff = create_staff(app, LIXIA)
    ids = [file(client, alice["headers"], category=category).get_json()["complaint_id"]
           for category in ("complaint", "report", "suggestion")]
    with app.app_context():
        late = db.session.scalar(select(Complaint).where(Complaint.complaint_id == ids[0]))
        late.due_date = beijing_today() - timedelta(days=1)
        db.session.commit()
    listing = client.get(f"{API}/halls/{LIXIA}/complaints", query_string={"page_size": 2}, headers=staff).get_json()
    assert listing["total"] == 3 and len(listing["items"]) == 2 and listing["items"][0]["complaint_id"] == ids[0]
    overdue = client.get(f"{API}/halls/{LIXIA}/complaints", query_string={"overdue": "true"}, headers=staff).get_json()
    assert [item["complaint_id"] for item in overdue["items"]] == [ids[0]] and overdue["items"][0]["overdue"] is True
    everything = {item["complaint_id"]: item for item in
                  client.get(f"{API}/halls/{LIXIA}/complaints", headers=staff).get_json()["items"]}
    assert everything[ids[0]]["complainant_masked"] == "张*" and everything[ids[0]]["content"] == CONTENT
    assert everything[ids[1]]["complainant_masked"] is None  # 举报: the hall never learns who
    assert client.get(f"{API}/halls/{LIXIA}/complaints", headers=create_staff(app, SHIZHONG)).status_code == 403
    assert client.get(f"{API}/halls/{LIXIA}/complaints", headers=alice["headers"]).status_code == 403
    assert client.get(f"{API}/halls/379999/complaints", headers=staff).status_code == 404


def test_rating_once_after_closing(app, client):
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    complaint_id = file(client, alice["headers"]).get_json()["complaint_id"]
    url = f"{API}/complaints/{complaint_id}/rating"
    assert client.post(url, json={"rating": 5}, headers=alice["headers"]).status_code == 409
    client.post(f"{API}/complaints/{complaint_id}/replies", json={"content": "已处理", "close": True},
                headers=create_staff(app, LIXIA))
    assert client.post(url, json={"rating": 5}, headers=bob["headers"]).status_code == 404
    assert client.post(url, json={"rating": 6}, headers=alice["headers"]).status_code == 422
    rated = client.post(url, json={"rating": 4, "comment": "答复及时"}, headers=alice["headers"])
    assert rated.status_code == 201 and rated.get_json()["rating"] == 4
    assert client.post(url, json={"rating": 1}, headers=alice["headers"]).status_code == 409
