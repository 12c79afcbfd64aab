"""Rules around review: 容缺 due dates (a reminder, then back to request_more, on an injected
day), handing in a missing material, one open application per service (unless the service
allows several), postal delivery needs an address, and the newborn bundle's form."""
from __future__ import annotations

from datetime import date, timedelta

from app.applications.deadlines import add_working_days
from app.applications.models import Application
from app.timeutil import beijing_today
from tests.support.helpers import API, create_staff
from tests.support.applications import (JINAN_LIXIA, apply, code, count_rows, id_card, person_in,
                                             residence_body, upload)

SOCIAL_SECURITY_CARD = "002011001000"  # 社会保障卡申领: delivery by post or at the window
INSURANCE_RECORD = "002011005000"  # 个人参保证明打印: a certificate of the moment, several at once


def _with_missing_proof(client, app, person):
    body = residence_body(person, id_card(app, person))
    body["materials"][1] = {"name": "居住证明", "missing": True}
    created = apply(client, person["headers"], body)
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def _day_before(due: date) -> date:
    """A day from which `due` is the next working day."""
    day = due - timedelta(days=1)
    while add_working_days(day, 1) < due:
        day -= timedelta(days=1)
    return day


def _overdue_missing(app, today: date):
    result = app.test_cli_runner().invoke(args=["applications", "overdue-missing", "--today", today.isoformat()])
    assert result.exit_code == 0, result.output
    return result.output


def test_missing_materials_get_a_reminder_and_then_return_the_application(client, app):
    alice = person_in(client, app)
    created = _with_missing_proof(client, app, alice)
    application_id = created["application_id"]
    proof = next(m for m in created["materials"] if m["name"] == "居住证明")
    due = date.fromisoformat(proof["due_date"])
    assert due > date.fromisoformat(created["submitted_at"][:10])
    # long before the due date: nothing happens
    assert '"reminded": 0, "returned": 0' in _overdue_missing(app, due - timedelta(days=20))
    # the working day before: one reminder in the inbox, and only one however often the job runs
    assert '"reminded": 1' in _overdue_missing(app, _day_before(due))
    assert '"reminded": 0' in _overdue_missing(app, _day_before(due))
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    reminders = [n for n in inbox if "即将到期" in n["title"]]
    assert len(reminders) == 1 and "居住证明" in reminders[0]["body"] and due.isoformat() in reminders[0]["body"]
    assert client.get(f"{API}/applications/{application_id}", headers=alice["headers"]).get_json()["status"] == "submitted"
    # the day after: back to request_more, asking for that material
    assert '"returned": 1' in _overdue_missing(app, due + timedelta(days=1))
    detail = client.get(f"{API}/applications/{application_id}", headers=alice["headers"]).get_json()
    assert detail["status"] == "request_more"
    last = detail["timeline"][-1]
    assert last["action"] == "request_more" and last["actor_role"] == "system"
    assert last["details"] == {"materials": ["居住证明"], "overdue": True}
    assert next(m for m in detail["materials"] if m["name"] == "居住证明")["requested"] is True
    assert '"returned": 0' in _overdue_missing(app, due + timedelta(days=2))  # already returned
    # the applicant hands it in: a new round
    again = client.post(f"{API}/applications/{application_id}/resubmissions", headers=alice["headers"],
                        json={"materials": [{"name": "居住证明", "file_id": upload(client, alice["headers"])}]})
    assert again.status_code == 200 and again.get_json()["status"] == "submitted" and again.get_json()["round"] == 2


def test_a_missing_material_is_handed_in_while_staff_process_the_application(client, app):
    alice = person_in(client, app)
    created = _with_missing_proof(client, app, alice)
    application_id = created["application_id"]
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    assert client.post(f"{API}/applications/{application_id}/transitions", headers=staff,
                       json={"action": "accept"}).status_code == 200
    url = f"{API}/applications/{application_id}/resubmissions"
    not_missing = client.post(url, headers=alice["headers"], json={
        "materials": [{"name": "居民身份证", "file_id": upload(client, alice["headers"])}]})
    assert not_missing.status_code == 422
    assert not_missing.get_json()["errors"] == {"materials[0].name": ["材料「居民身份证」不是待补交的容缺材料"]}
    changing_form = client.post(url, headers=alice["headers"], json={"form": {"address": "别处"}, "materials": [
        {"name": "居住证明", "file_id": upload(client, alice["headers"])}]})
    assert changing_form.status_code == 422 and "form" in changing_form.get_json()["errors"]
    proof = upload(client, alice["headers"])
    handed_in = client.post(url, headers=alice["headers"], json={"materials": [{"name": "居住证明", "file_id": proof}]})
    assert handed_in.status_code == 200, handed_in.get_json()
    data = handed_in.get_json()
    assert data["status"] == "accepted" and data["round"] == 1
    material = next(m for m in data["materials"] if m["name"] == "居住证明")
    assert material["kind"] == "file" and material["file_id"] == proof and material["due_date"] is None
    assert data["timeline"][-1]["action"] == "supplement"
    assert client.get(f"{API}/files/{proof}", headers=staff).status_code == 200
    # nothing is missing any more: the due date no longer applies
    assert '"returned": 0' in _overdue_missing(app, beijing_today() + timedelta(days=60))


def _card_body(person, card, **form):
    values = {"name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
              "bank_name": "中国银行", "delivery_method": "窗口领取", **form}
    return {"service_code": code(JINAN_LIXIA, SOCIAL_SECURITY_CARD), "form": values,
            "materials": [{"name": "居民身份证", "license_id": card}]}


def test_postal_delivery_needs_an_address(client, app):
    alice = person_in(client, app)
    card = id_card(app, alice)
    response = apply(client, alice["headers"], _card_body(alice, card, delivery_method="邮政寄递"))
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"form.mail_address": ["领取方式为邮政寄递时须填写邮寄地址"]}
    assert count_rows(app, Application) == 0
    posted = apply(client, alice["headers"], _card_body(alice, card, delivery_method="邮政寄递",
                                                        mail_address="济南市历下区泉城路1号"))
    assert posted.status_code == 201, posted.get_json()


def test_one_open_application_per_service_unless_it_allows_several(client, app):
    alice = person_in(client, app)
    card = id_card(app, alice)
    first = apply(client, alice["headers"], _card_body(alice, card))
    assert first.status_code == 201
    first_id = first.get_json()["application_id"]
    second = apply(client, alice["headers"], _card_body(alice, card, bank_name="中国建设银行"))
    assert second.status_code == 409 and second.mimetype == "application/problem+json"
    assert second.get_json()["application_id"] == first_id and first_id in second.get_json()["detail"]
    assert count_rows(app, Application) == 1
    # another person is not held up; the same person again once the first is withdrawn
    bob = person_in(client, app, name="李四")
    assert apply(client, bob["headers"], _card_body(bob, id_card(app, bob))).status_code == 201
    assert client.post(f"{API}/applications/{first_id}/withdraw", headers=alice["headers"]).status_code == 200
    assert apply(client, alice["headers"], _card_body(alice, card)).status_code == 201
    # certificates of the moment: several at once
    record = {"service_code": code(JINAN_LIXIA, INSURANCE_RECORD),
              "form": {"name": alice["name"], "id_number": alice["id_number"], "phone": alice["phone"],
                       "insurance_type": "全部险种", "query_period": "近12个月"},
              "materials": [{"name": "居民身份证", "license_id": card}]}
    form = client.get(f"{API}/services/{record['service_code']}/form", headers=alice["headers"]).get_json()
    assert form["several_allowed"] is True and form["instant_approval"] is False
    assert apply(client, alice["headers"], record).status_code == 201
    assert apply(client, alice["headers"], record).status_code == 201


def test_the_newborn_bundle_form(client, app):
    mother = person_in(client, app, name="王芳", gender="女")
    form = client.get(f"{API}/bundles/newborn/form", headers=mother["headers"]).get_json()
    names = [m["name"] for m in form["materials"]]
    assert "出生医学证明" not in names  # its first member issues it
    labels = {f["name"]: f["label"] for f in form["fields"]}
    assert labels["birth_date"] != labels["child_birth_date"]
    assert labels["birth_date"].startswith("出生日期") and labels["child_birth_date"].startswith("出生日期")
    assert "出生医学证明签发" in labels["birth_date"] and "出生登记" in labels["child_birth_date"]
    assert len(set(labels.values())) == len(labels)
