"""Processing by hall staff: the state machine, optimistic locking, who may act, 补正, withdrawal,
the hall's work lists with overdue and due-soon filters, and the applicant's inbox."""
from __future__ import annotations

import threading
from datetime import timedelta

from app.applications import processing
from app.applications.deadlines import add_working_days
from app.applications.models import Application
from app.extensions import db
from app.identity import persons
from app.identity.models import ChannelBinding
from app.notifications.models import OutboxMessage
from app.timeutil import beijing_today
from tests.support.helpers import API, auth_headers, create_staff, login
from tests.support.applications import (JINAN, JINAN_LIXIA, JINAN_SHIZHONG, QINGDAO_SHINAN, accept_files, apply,
                                             hukou_body, id_card, person_in, upload)


def _act(client, headers, application_id, action, comment=None, **extra):
    body = {"action": action, **({"comment": comment} if comment is not None else {}), **extra}
    return client.post(f"{API}/applications/{application_id}/transitions", json=body, headers=headers)


def _submit(client, app, person=None, **form):
    person = person or person_in(client, app)
    response = apply(client, person["headers"], hukou_body(person, app, **form))
    assert response.status_code == 201, response.get_json()
    return person, response.get_json()["application_id"]


def test_full_staff_cycle_with_supplement_and_a_repeated_approval(client, app):
    alice = person_in(client, app)
    card = id_card(app, alice)
    body = hukou_body(alice, app)
    body["materials"][0] = {"name": "居民身份证", "license_id": card}
    created = apply(client, alice["headers"], body)
    assert created.status_code == 201, created.get_json()
    application_id = created.get_json()["application_id"]
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")

    # staff see the verified fields of the license (ID numbers masked)
    seen = client.get(f"{API}/applications/{application_id}", headers=staff)
    assert seen.status_code == 200
    card_material = next(m for m in seen.get_json()["materials"] if m["name"] == "居民身份证")
    assert card_material["license"]["verified_fields"]["name"] == alice["name"]
    assert alice["id_number"] not in seen.get_data(as_text=True)

    assert _act(client, staff, application_id, "approve").status_code == 409  # not accepted yet
    accepted = _act(client, staff, application_id, "accept", "材料齐全，予以受理")
    assert accepted.status_code == 200 and accepted.get_json()["status"] == "accepted"
    assert _act(client, staff, application_id, "request_more").status_code == 422  # a reason is required
    assert _act(client, staff, application_id, "request_more", "请补充材料").status_code == 422  # and materials
    more = _act(client, staff, application_id, "request_more", "请补充合法稳定住所证明", materials=["合法稳定住所证明"])
    assert more.status_code == 200 and more.get_json()["status"] == "request_more"
    # the applicant hands in the material that was missing (容缺) and corrects a field
    proof_file = upload(client, alice["headers"])
    resubmitted = client.post(f"{API}/applications/{application_id}/resubmissions", headers=alice["headers"], json={
        "form": {"move_to_address": "济南市历下区泉城路2号"},
        "materials": [{"name": "合法稳定住所证明", "file_id": proof_file}]})
    assert resubmitted.status_code == 200, resubmitted.get_json()
    data = resubmitted.get_json()
    assert data["status"] == "submitted" and data["form"]["move_to_address"] == "济南市历下区泉城路2号"
    proof = next(m for m in data["materials"] if m["name"] == "合法稳定住所证明")
    assert proof["missing"] is False and proof["file_id"] == proof_file and proof["round"] == 2
    assert next(m for m in data["materials"] if m["name"] == "居民身份证")["satisfied_by"] == {"license_id": card}
    again = client.post(f"{API}/applications/{application_id}/resubmissions", headers=alice["headers"], json={})
    assert again.status_code == 422  # submitted: only 容缺 materials may be handed in, and there are none

    assert _act(client, staff, application_id, "accept").status_code == 200
    assert _act(client, staff, application_id, "approve", "准予迁移").status_code == 409  # files not reviewed
    accept_files(client, staff, application_id)
    approved = _act(client, staff, application_id, "approve", "准予迁移")
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    repeated = _act(client, staff, application_id, "approve", "准予迁移")
    assert repeated.status_code == 409
    assert repeated.headers["Content-Type"].startswith("application/problem+json")
    assert _act(client, staff, application_id, "reject", "不予").status_code == 409

    detail = client.get(f"{API}/applications/{application_id}", headers=alice["headers"]).get_json()
    assert detail["status"] == "approved" and detail["completed_at"]
    assert [(e["action"], e["to_status"]) for e in detail["timeline"] if e["action"] != "review"] == [
        ("submit", "submitted"), ("accept", "accepted"), ("request_more", "request_more"),
        ("resubmit", "submitted"), ("accept", "accepted"), ("approve", "approved")]
    assert detail["timeline"][2]["comment"] == "请补充合法稳定住所证明"
    inbox = client.get(f"{API}/inbox?page_size=100", headers=alice["headers"]).get_json()["items"]
    statuses = [n["data"]["status"] for n in inbox
                if n["kind"] == "application_status" and n["data"].get("application_id") == application_id]
    assert sorted(statuses) == sorted(["submitted", "accepted", "request_more", "submitted", "accepted", "approved"])


def test_concurrent_approvals_one_wins_the_other_gets_409(client, app):
    staff_a = create_staff(app, JINAN_LIXIA, "hall_staff", name="甲")
    staff_b = create_staff(app, JINAN_LIXIA, "hall_admin", name="乙")
    for _ in range(3):
        _person, application_id = _submit(client, app)
        assert _act(client, staff_a, application_id, "accept").status_code == 200
        accept_files(client, staff_a, application_id)
        barrier, results = threading.Barrier(2), []

        def approve(headers):
            local = app.test_client()
            barrier.wait()
            results.append(_act(local, headers, application_id, "approve", None).status_code)

        threads = [threading.Thread(target=approve, args=(h,)) for h in (staff_a, staff_b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [200, 409]
        detail = client.get(f"{API}/applications/{application_id}", headers=staff_a).get_json()
        assert [e["action"] for e in detail["timeline"]].count("approve") == 1


def test_optimistic_lock_between_read_and_write(client, app, monkeypatch):
    """The UPDATE carries the version read: a change committed in between makes it 409."""
    _person, application_id = _submit(client, app)
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    assert _act(client, staff, application_id, "accept").status_code == 200
    accept_files(client, staff, application_id)
    original = processing.load_application

    def load_then_someone_else_approves(application_id_, fresh=False):
        row = original(application_id_, fresh=fresh)
        with app.app_context():  # another worker's transaction commits meanwhile
            db.session.execute(db.update(Application).where(Application.application_id == application_id_)
                               .values(status="approved", version=Application.version + 1))
            db.session.commit()
        return row

    monkeypatch.setattr(processing, "load_application", load_then_someone_else_approves)
    response = _act(client, staff, application_id, "approve")
    assert response.status_code == 409
    monkeypatch.setattr(processing, "load_application", original)
    detail = client.get(f"{API}/applications/{application_id}", headers=staff).get_json()
    assert [e["action"] for e in detail["timeline"] if e["action"] != "review"] == ["submit", "accept"]


def test_stale_version_in_the_request_is_409(client, app):
    _person, application_id = _submit(client, app)
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    accept_files(client, staff, application_id)
    version = client.get(f"{API}/applications/{application_id}", headers=staff).get_json()["version"]
    assert _act(client, staff, application_id, "accept", version=version).status_code == 200
    assert _act(client, staff, application_id, "approve", version=version).status_code == 409
    assert _act(client, staff, application_id, "approve", version=version + 1).status_code == 200


def test_who_may_act(client, app):
    alice, application_id = _submit(client, app)
    bob = person_in(client, app, name="李四")
    other_hall = create_staff(app, JINAN_SHIZHONG, "hall_staff")
    other_city_admin = create_staff(app, QINGDAO_SHINAN[:4] + "00", "hall_admin")
    city_staff = create_staff(app, JINAN, "hall_staff")
    city_admin = create_staff(app, JINAN, "hall_admin")
    assert _act(client, alice["headers"], application_id, "accept").status_code == 403
    for headers in (bob["headers"], other_hall, other_city_admin, city_staff):
        assert _act(client, headers, application_id, "accept").status_code == 404
        assert client.get(f"{API}/applications/{application_id}", headers=headers).status_code == 404
    assert _act(client, other_hall, "ap_doesnotexist", "accept").status_code == 404
    # the city's hall admin acts for its counties
    assert client.get(f"{API}/applications/{application_id}", headers=city_admin).status_code == 200
    assert _act(client, city_admin, application_id, "accept").status_code == 200
    assert client.get(f"{API}/halls/{JINAN_LIXIA}/applications", headers=city_admin).get_json()["total"] == 1
    assert client.get(f"{API}/halls/{JINAN_LIXIA}/applications", headers=other_hall).status_code == 403
    assert client.get(f"{API}/halls/{JINAN_LIXIA}/applications", headers=alice["headers"]).status_code == 403
    assert client.get(f"{API}/halls/999999/applications", headers=city_admin).status_code == 404
    bad = _act(client, city_admin, application_id, "delete")
    assert bad.status_code == 422 and "action" in bad.get_json()["errors"]


def test_withdraw_before_acceptance_only(client, app):
    alice, first = _submit(client, app)
    second_body = hukou_body(alice, app)
    refused = apply(client, alice["headers"], second_body)  # one open 户口迁移 at a time
    assert refused.status_code == 409 and refused.get_json()["application_id"] == first
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    withdrawn = client.post(f"{API}/applications/{first}/withdraw", headers=alice["headers"])
    assert withdrawn.status_code == 200 and withdrawn.get_json()["status"] == "withdrawn"
    assert client.post(f"{API}/applications/{first}/withdraw", headers=alice["headers"]).status_code == 409
    assert _act(client, staff, first, "accept").status_code == 409
    second = apply(client, alice["headers"], second_body).get_json()["application_id"]
    assert _act(client, staff, second, "accept").status_code == 200
    assert client.post(f"{API}/applications/{second}/withdraw", headers=alice["headers"]).status_code == 409
    assert client.post(f"{API}/applications/{second}/withdraw", headers=staff).status_code == 404


def test_hall_work_lists_overdue_and_due_soon(client, app):
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    ids = [_submit(client, app)[1] for _ in range(4)]
    today = beijing_today()
    with app.app_context():
        deadlines = {ids[0]: today - timedelta(days=3), ids[1]: today, ids[2]: add_working_days(today, 3),
                     ids[3]: add_working_days(today, 10)}
        for application_id, deadline in deadlines.items():
            db.session.execute(db.update(Application).where(Application.application_id == application_id)
                               .values(deadline=deadline))
        db.session.commit()
    url = f"{API}/halls/{JINAN_LIXIA}/applications"
    everything = client.get(url, headers=staff).get_json()
    assert everything["total"] == 4 and everything["items"][0]["application_id"] == ids[0]
    overdue = client.get(url + "?overdue=true", headers=staff).get_json()
    assert [i["application_id"] for i in overdue["items"]] == [ids[0]] and overdue["items"][0]["overdue"] is True
    soon = client.get(url + "?due_within_days=3", headers=staff).get_json()
    assert [i["application_id"] for i in soon["items"]] == [ids[1], ids[2]]
    paged = client.get(url + "?page=2&page_size=3", headers=staff).get_json()
    assert paged["total"] == 4 and len(paged["items"]) == 1 and paged["page"] == 2
    # 补正 stops the clock: an overdue application waiting for the applicant is not overdue
    assert _act(client, staff, ids[0], "request_more", "请补充材料", materials=["户口簿"]).status_code == 200
    assert client.get(url + "?overdue=true", headers=staff).get_json()["total"] == 0
    assert client.get(url + "?status=request_more", headers=staff).get_json()["total"] == 1
    assert client.get(url + "?status=bogus", headers=staff).status_code == 422


def test_channel_notices_go_through_the_outbox(client, app):
    alice = person_in(client, app)
    with app.app_context():
        db.session.add(ChannelBinding(subject_id=alice["subject_id"], channel="wechat", app_id="wx-test",
                                      open_id="o-alice"))
        db.session.commit()
    _alice, application_id = _submit(client, app, alice)
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    assert _act(client, staff, application_id, "accept").status_code == 200
    with app.app_context():
        rows = db.session.scalars(db.select(OutboxMessage).where(OutboxMessage.subject_id == alice["subject_id"])
                                  .order_by(OutboxMessage.id)).all()
        assert [(r.channel, r.open_id, r.template) for r in rows] == [("wechat", "o-alice", "application_status")] * 2
        assert [r.payload["status"] for r in rows] == ["submitted", "accepted"]
        assert all(r.payload["application_id"] == application_id for r in rows)


def test_staff_cannot_process_their_own_application(client, app):
    staff_person = person_in(client, app, name="王员工")
    with app.app_context():
        persons.create_staff(role="hall_staff", hall_code=JINAN_LIXIA, id_number=staff_person["id_number"],
                             name=staff_person["name"], password="unused-Passw0rd")
    headers = auth_headers(login(client, staff_person["id_number"], staff_person["password"])["access_token"])
    response = apply(client, headers, hukou_body(staff_person, app))
    assert response.status_code == 201
    assert _act(client, headers, response.get_json()["application_id"], "accept").status_code == 403
