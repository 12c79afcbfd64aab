"""一窗受理: hall staff submit for a walk-in applicant (POST /applications with `applicant`), who owns
the application: their list, their inbox, their rating; the staff member is on the timeline. The
hall's own lists (queues, pickups, appointments, complaints) answer outsiders and page alike."""
from __future__ import annotations

from sqlalchemy import select

from app.applications.models import Application, ApplicationEvent
from app.extensions import db
from app.identity.models import Person
from app.security.audit import AuditEvent
from tests.support.helpers import API, issue_sms_code, register_person, valid_phone
from tests.support.applications import accept_files, apply, new_key, person_in, upload
from tests.support.hall import book, service_of, slots, working_day
from tests.support.window import (HUKOU_MOVE, LIXIA, SHIZHONG, act, card_request, count, department_of, service_code,
                                  staff_member, take_in, walk_in)
from tests.support.world import is_problem


def test_a_walk_in_without_an_account_owns_what_the_window_took_in(client, app):
    visitor = walk_in(app)
    staff = staff_member(app, LIXIA, name="孙窗口")
    code = service_code(app, LIXIA)
    created = take_in(client, staff["headers"], visitor, code, upload(client, staff["headers"]))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    application_id = body["application_id"]
    assert body["channel"] == "window" and body["status"] == "submitted" and body["hall_code"] == LIXIA
    assert body["intake"]["staff"] == {"subject_id": staff["subject_id"], "name": "孙窗口", "hall_code": LIXIA}
    assert body["intake"]["identity_check"] == "id_card_reader"
    assert [e["action"] for e in body["timeline"]] == ["window_intake", "submit"]
    intake_event = body["timeline"][0]
    assert intake_event["actor_role"] == "staff"
    assert intake_event["details"]["staff"]["name"] == "孙窗口"
    assert intake_event["details"]["identity_check"] == "id_card_reader"
    assert visitor["id_number"] not in created.get_data(as_text=True)  # masked, even for the staff

    with app.app_context():
        person = db.session.scalar(select(Person).where(Person.subject_id == body["applicant"]["subject_id"]))
        assert person.id_number == visitor["id_number"] and person.name == visitor["name"]
        assert person.password_hash is None and person.phone_enc is None  # no account yet
        row = db.session.scalar(select(Application).where(Application.application_id == application_id))
        assert row.subject_id == person.subject_id and row.intake_staff_id == staff["subject_id"]
        assert row.actor_id == person.subject_id and row.accepting_hall_code is None
        events = {e.event: e for e in db.session.scalars(select(AuditEvent))}
        assert events["person.created_at_window"].actor == staff["subject_id"]
        assert events["application.window_intake"].details["identity_check"] == "id_card_reader"

    # the staff member's own list stays theirs; the hall's work list has it
    assert client.get(f"{API}/applications", headers=staff["headers"]).get_json()["total"] == 0
    hall_list = client.get(f"{API}/halls/{LIXIA}/applications", headers=staff["headers"]).get_json()
    assert [item["application_id"] for item in hall_list["items"]] == [application_id]
    assert hall_list["items"][0]["channel"] == "window"

    # registering later takes the record over: the application is in their list and inbox
    account = register_person(client, app, name=visitor["name"], id_number=visitor["id_number"])
    assert account["subject_id"] == body["applicant"]["subject_id"]
    mine = client.get(f"{API}/applications", headers=account["headers"]).get_json()
    assert [item["application_id"] for item in mine["items"]] == [application_id]
    assert mine["items"][0]["channel"] == "window"
    inbox = client.get(f"{API}/inbox", headers=account["headers"]).get_json()["items"]
    assert any(note["data"].get("application_id") == application_id for note in inbox)
    phone = valid_phone()
    again = client.post(f"{API}/auth/register", json={"id_number": visitor["id_number"], "name": visitor["name"],
                                                      "phone": phone, "sms_code": issue_sms_code(app, phone, "register"),
                                                      "password": "Passw0rd2025"})
    assert again.status_code == 409  # the account exists now: the window record is taken over once

    # decided by the hall, then rated by the applicant
    assert act(client, staff["headers"], application_id, "accept").status_code == 200
    accept_files(client, staff["headers"], application_id)
    assert act(client, staff["headers"], application_id, "approve").status_code == 200
    rated = client.post(f"{API}/applications/{application_id}/evaluation", headers=account["headers"],
                        json={"rating": 5, "comment": "窗口服务很好"})
    assert rated.status_code == 201, rated.get_json()
    assert client.post(f"{API}/applications/{application_id}/evaluation", headers=staff["headers"],
                       json={"rating": 1}).status_code == 404  # the staff member cannot rate it


def test_a_registered_applicant_is_matched_not_created_again(client, app):
    alice = person_in(client, app, region=LIXIA)
    staff = staff_member(app, LIXIA)
    persons_before = count(app, Person)
    created = take_in(client, staff["headers"], alice, service_code(app, LIXIA), upload(client, staff["headers"]),
                      identity_check="face")
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["applicant"]["subject_id"] == alice["subject_id"]
    assert created.get_json()["intake"]["identity_check"] == "face"
    assert count(app, Person) == persons_before
    mine = client.get(f"{API}/applications/{created.get_json()['application_id']}", headers=alice["headers"])
    assert mine.status_code == 200 and mine.get_json()["channel"] == "window"


def test_the_same_key_replays_and_another_applicant_under_it_is_refused(client, app):
    visitor, other = walk_in(app), walk_in(app, name="钱七")
    staff = staff_member(app, LIXIA)
    code, key = service_code(app, LIXIA), new_key()
    scan = upload(client, staff["headers"])
    first = take_in(client, staff["headers"], visitor, code, scan, key=key)
    replay = take_in(client, staff["headers"], visitor, code, scan, key=key)
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json()["application_id"] == first.get_json()["application_id"]
    assert take_in(client, staff["headers"], other, code, scan, key=key).status_code == 422
    assert count(app, Application) == 1


def _nothing_written(app, persons_before: int) -> None:
    assert count(app, Application) == 0
    assert count(app, ApplicationEvent) == 0
    assert count(app, Person) == persons_before


def test_bad_window_input_each_its_answer_and_nothing_half_written(client, app):
    visitor = walk_in(app)
    staff = staff_member(app, LIXIA)
    elsewhere = staff_member(app, SHIZHONG)
    citizen = person_in(client, app, name="周八")
    code = service_code(app, LIXIA)
    scan = upload(client, staff["headers"])
    persons_before = count(app, Person)

    # a citizen naming someone else as the applicant
    own_scan = upload(client, citizen["headers"])
    refused = take_in(client, citizen["headers"], visitor, code, own_scan)
    assert refused.status_code == 403 and refused.headers["Content-Type"].startswith("application/problem+json")
    # window fields without an applicant
    plain = card_request(citizen, code, own_scan)
    stray = apply(client, citizen["headers"], {**plain, "identity_check": "face"})
    assert stray.status_code == 422 and "identity_check" in stray.get_json()["errors"]
    # how the identity was checked is required, and one of the three
    body = {**card_request(visitor, code, scan), "applicant": {"id_number": visitor["id_number"], "name": visitor["name"]}}
    missing = apply(client, staff["headers"], body)
    assert missing.status_code == 422 and "identity_check" in missing.get_json()["errors"]
    wrong = apply(client, staff["headers"], {**body, "identity_check": "trust_me"})
    assert wrong.status_code == 422 and "identity_check" in wrong.get_json()["errors"]
    # another hall's staff, for a service of this hall that is not 全省通办
    hukou = service_code(app, LIXIA, HUKOU_MOVE)
    foreign = take_in(client, elsewhere["headers"], visitor, hukou, upload(client, elsewhere["headers"]))
    assert foreign.status_code == 422 and list(foreign.get_json()["errors"]) == ["service_code"]
    # an applicant the population registry does not know (or under another name)
    stranger = {**visitor, "name": "查无此人"}
    unknown = take_in(client, staff["headers"], stranger, code, scan)
    assert unknown.status_code == 422
    assert set(unknown.get_json()["errors"]) == {"applicant.id_number", "applicant.name"}
    bad_number = take_in(client, staff["headers"], {**visitor, "id_number": "370102199001011234"}, code, scan)
    assert bad_number.status_code == 422 and "applicant.id_number" in bad_number.get_json()["errors"]
    # a form in another person's number: refused after the applicant was looked up, and the new
    # person the window would have created is not left behind
    other_name = apply(client, staff["headers"], {**card_request(visitor, code, scan, id_number=citizen["id_number"]),
                                                  "applicant": {"id_number": visitor["id_number"], "name": visitor["name"]},
                                                  "identity_check": "documents"})
    assert other_name.status_code == 422 and list(other_name.get_json()["errors"]) == ["form.id_number"]
    # a scan that is not the staff member's
    not_theirs = take_in(client, staff["headers"], visitor, code, own_scan)
    assert not_theirs.status_code == 422 and "materials[0].file_id" in not_theirs.get_json()["errors"]
    # an unknown service
    assert take_in(client, staff["headers"], visitor, "370102-999999999999", scan).status_code == 404
    _nothing_written(app, persons_before)


def test_staff_working_at_two_halls_name_where_they_take_it_in(client, app):
    visitor = walk_in(app)
    staff = staff_member(app, LIXIA)
    with app.app_context():
        from app.identity import persons
        persons.create_staff(role="hall_staff", hall_code=SHIZHONG, id_number=_id_of(app, staff), name="李工作")
    from tests.support.helpers import auth_headers, login
    headers = auth_headers(login(client, _id_of(app, staff))["access_token"])
    code = service_code(app, LIXIA)
    created = take_in(client, headers, visitor, code, upload(client, headers))
    assert created.status_code == 201 and created.get_json()["hall_code"] == LIXIA
    assert created.get_json()["accepting_hall_code"] is None


def _id_of(app, staff) -> str:
    with app.app_context():
        return db.session.scalar(select(Person).where(Person.subject_id == staff["subject_id"])).id_number


def test_the_halls_own_lists_answer_alike_and_page_alike(client, app):
    desk = staff_member(app, LIXIA)
    city_admin = staff_member(app, "370100", role="hall_admin")  # acts for the county halls of 济南
    elsewhere = staff_member(app, SHIZHONG)
    alice, bob = person_in(client, app, name="张三"), person_in(client, app, name="李四")
    code = service_code(app, LIXIA)
    department = department_of(app, code)
    taken = [take_in(client, desk["headers"], walk_in(app, name=name), code, upload(client, desk["headers"]))
             .get_json()["application_id"] for name in ("赵六", "钱七")]
    day = working_day(2)
    slot = slots(client, LIXIA, day)[0]
    for person in (alice, bob):
        assert book(client, person["headers"], slot["slot_id"], service_of(app, LIXIA)).status_code == 201
        assert client.post(f"{API}/complaints", headers=person["headers"], json={
            "category": "suggestion", "content": "建议增加自助终端", "hall_code": LIXIA}).status_code == 201
    lists = {  # path below the hall -> (what the 403 names, query of a two-row list)
        f"queues/{department}": ("查看审批队列", {"status": "submitted"}),
        "pickups": ("查看待领取的办理结果", {}),
        "appointments": ("查看预约队列", {"date": day.isoformat()}),
        "complaints": ("查看诉求", {}),
    }
    for path, (what, query) in lists.items():
        for hall in ("379999", "abc"):
            unknown = client.get(f"{API}/halls/{hall}/{path}", headers=desk["headers"], query_string=query)
            assert unknown.status_code == 404 and unknown.get_json()["detail"] == "大厅不存在", (path, hall)
        for headers in (elsewhere["headers"], alice["headers"]):
            refused = client.get(f"{API}/halls/{LIXIA}/{path}", headers=headers, query_string=query)
            assert refused.status_code == 403 and is_problem(refused, 403), path
            assert refused.get_json()["detail"] == f"仅该大厅的工作人员可以{what}"
        pages = [client.get(f"{API}/halls/{LIXIA}/{path}", headers=headers,
                            query_string={**query, "page": page, "page_size": 1})
                 for page, headers in ((1, desk["headers"]), (2, city_admin["headers"]))]
        assert all(page.status_code == 200 for page in pages), path
        bodies = [page.get_json() for page in pages]
        if path == "pickups":
            assert [b["total"] for b in bodies] == [0, 0] and [b["items"] for b in bodies] == [[], []]
            continue
        assert [(b["total"], b["page"], b["page_size"], len(b["items"])) for b in bodies] == [(2, 1, 1, 1),
                                                                                              (2, 2, 1, 1)]
        assert bodies[0]["items"][0] != bodies[1]["items"][0], path
    queue = client.get(f"{API}/halls/{LIXIA}/queues/{department}", headers=desk["headers"],
                       query_string={"status": "submitted"}).get_json()
    assert {item["application_id"] for item in queue["items"]} == set(taken)
