"""Appointments through the API: slots on the next 10 working days, booking, cancelling, the hall's
queue and check-in; bad input gets its exact answer and writes nothing."""
from __future__ import annotations

from datetime import time, timedelta

from sqlalchemy import select

from app.applications.deadlines import add_working_days
from app.appointments.models import Appointment
from app.catalogue.models import Hall
from app.extensions import db
from app.identity.models import Person
from app.jobs import runs_inline
from app.notifications.models import OutboxMessage
from app.timeutil import beijing_today
from tests.support.hall import (JINAN, LIXIA, SHIZHONG, active_bookings, bind_channel, book, move_slot,
                                non_working_day, service_of, slot_row, slots, windows, working_day)
from tests.support.helpers import API, client_token, create_client, create_staff, register_person
from tests.support.statements import statements
from schemas.appointments import AppointmentSchema, SlotListSchema, SlotSchema


def test_every_city_hall_has_slots_on_each_of_the_next_ten_working_days(app, client):
    with app.app_context():
        cities = [h.code for h in db.session.scalars(select(Hall).where(Hall.level == "city"))]
    assert len(cities) == 16
    today = beijing_today()
    for n in (1, 5, 10):
        day = add_working_days(today, n)
        for city in cities:
            items = slots(client, city, day)
            assert len(items) == 14, (city, day)  # 09:00-12:00 and 13:00-17:00 in half hours
            assert items[0]["start"] == f"{day.isoformat()}T09:00:00+08:00"
            assert items[-1]["end"] == f"{day.isoformat()}T17:00:00+08:00"
            assert all(item["capacity"] == windows(app, city) == item["remaining"] for item in items)
    beyond = add_working_days(today, 11)
    assert client.get(f"{API}/halls/370100/appointment-slots", query_string={"date": beyond.isoformat()}
                      ).get_json()["items"] == []
    assert slots(client, JINAN, non_working_day()) == []


def test_listing_twice_creates_the_slots_once(app, client):
    day = working_day(3)
    first = slots(client, LIXIA, day)
    again = slots(client, LIXIA, day)
    assert [s["slot_id"] for s in first] == [s["slot_id"] for s in again]
    assert first[0]["slot_id"] == f"{LIXIA}-{day:%Y%m%d}-0900"


def test_an_opened_day_is_listed_with_one_statement_in_the_documented_shape_without_started_slots(app, client):
    day = working_day(3)
    first = slots(client, LIXIA, day)  # opens the day
    with statements(app) as seen:
        again = client.get(f"{API}/halls/{LIXIA}/appointment-slots", query_string={"date": day.isoformat()})
    assert len(seen) == 1 and "appointment_slots" in seen[0]  # no hall look-up, no check that the day is open
    body = again.get_json()
    assert again.status_code == 200 and body["items"] == first and body["date"] == day.isoformat()
    assert list(body) == list(SlotListSchema().fields) and list(first[0]) == list(SlotSchema().fields)
    today = beijing_today()
    move_slot(app, first[0]["slot_id"], today, time(0, 0))  # it started today at midnight
    assert first[0]["slot_id"] not in [item["slot_id"] for item in slots(client, LIXIA, today)]
    assert client.get(f"{API}/halls/379999/appointment-slots", query_string={"date": day.isoformat()}
                      ).status_code == 404


def test_slot_listing_refusals(client, app):
    day = working_day(2)
    past = client.get(f"{API}/halls/{LIXIA}/appointment-slots", query_string={"date": (beijing_today() - timedelta(days=1)).isoformat()})
    assert past.status_code == 422 and "date" in past.get_json()["errors"]
    other = client.get(f"{API}/halls/{LIXIA}/appointment-slots",
                       query_string={"date": day.isoformat(), "service_code": service_of(app, SHIZHONG)})
    assert other.status_code == 422 and "service_code" in other.get_json()["errors"]
    assert client.get(f"{API}/halls/379999/appointment-slots").status_code == 404
    bad = client.get(f"{API}/halls/{LIXIA}/appointment-slots", query_string={"date": "next tuesday"})
    assert bad.status_code == 422 and "date" in bad.get_json()["errors"]


def test_book_list_and_cancel(app, client):
    alice = register_person(client, app, name="张三")
    service = service_of(app, LIXIA)
    slot = slots(client, LIXIA, working_day(2), service_code=service)[3]
    response = book(client, alice["headers"], slot["slot_id"], service)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "booked" and body["slot_id"] == slot["slot_id"]
    assert body["appointment_id"].startswith("apt_") and body["ticket"] == "1030-001"
    assert body["service_code"] == service and body["start"] == slot["start"]
    after = {s["slot_id"]: s for s in slots(client, LIXIA, working_day(2))}[slot["slot_id"]]
    assert after["remaining"] == slot["remaining"] - 1

    mine = client.get(f"{API}/appointments", headers=alice["headers"]).get_json()
    assert mine["total"] == 1 and mine["items"][0]["appointment_id"] == body["appointment_id"]
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any(note["title"].startswith("预约成功") and body["ticket"] in note["body"] for note in inbox)

    twice = book(client, alice["headers"], slot["slot_id"], service)
    assert twice.status_code == 409 and twice.get_json()["detail"] == "您已预约该时段"
    still = {s["slot_id"]: s for s in slots(client, LIXIA, working_day(2))}[slot["slot_id"]]
    assert still["remaining"] == slot["remaining"] - 1  # the refused second booking took no place
    assert client.delete(f"{API}/appointments/{body['appointment_id']}", headers=alice["headers"]).status_code == 204
    back = {s["slot_id"]: s for s in slots(client, LIXIA, working_day(2))}[slot["slot_id"]]
    assert back["remaining"] == slot["remaining"]
    assert client.delete(f"{API}/appointments/{body['appointment_id']}", headers=alice["headers"]).status_code == 409
    assert client.get(f"{API}/appointments/{body['appointment_id']}", headers=alice["headers"]).get_json()["status"] == "cancelled"
    again = book(client, alice["headers"], slot["slot_id"], service)  # a cancelled booking frees the person too
    assert again.status_code == 201 and again.get_json()["ticket"] == "1030-002"


def test_a_booking_is_five_statements_answered_as_its_detail_with_its_notices(app, client):
    alice = register_person(client, app, name="张三")
    bind_channel(app, alice["subject_id"], "wechat")
    bind_channel(app, alice["subject_id"], "alipay")
    service = service_of(app, LIXIA)
    slot = slots(client, LIXIA, working_day(2), service_code=service)[5]
    assert client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["total"] == 0  # the page is kept
    assert client.get(f"{API}/appointments", headers=alice["headers"]).status_code == 200  # the token's key read
    with statements(app) as seen:
        response = book(client, alice["headers"], slot["slot_id"], service)
    assert response.status_code == 201
    tables = [next((word for word in ("persons", "UPDATE appointment_slots", "INSERT INTO appointments",
                                      "INSERT INTO notifications", "INSERT INTO outbox_messages") if word in sql), sql)
              for sql in seen]
    assert tables[:5] == ["persons", "UPDATE appointment_slots", "INSERT INTO appointments",
                          "INSERT INTO notifications", "INSERT INTO outbox_messages"]  # the first reads all the rest
    with app.app_context():
        inline = runs_inline()  # without Redis the notices are delivered inside the request, after its commit
    assert all("outbox_messages" in sql for sql in seen[5:]) and bool(seen[5:]) == inline
    body = response.get_json()
    detail = client.get(f"{API}/appointments/{body['appointment_id']}", headers=alice["headers"])
    assert body == detail.get_json() and list(body) == list(AppointmentSchema().fields)
    assert body["ticket"] == "1130-001" and body["status_label"] == "已预约" and body["reminded_at"] is None
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()
    assert inbox["total"] == 1 and inbox["items"][0]["title"].startswith("预约成功")
    assert body["ticket"] in inbox["items"][0]["body"] and "历下区" in inbox["items"][0]["body"]
    with app.app_context():
        notices = db.session.scalars(select(OutboxMessage).where(OutboxMessage.subject_id == alice["subject_id"])
                                     .order_by(OutboxMessage.channel)).all()
        status = "skipped" if inline else "pending"  # (no channel is configured in the tests)
        assert [(n.channel, n.template, n.status) for n in notices] == [
            ("alipay", "appointment_booked", status), ("wechat", "appointment_booked", status)]
        assert notices[0].payload["slot_id"] == slot["slot_id"] and notices[0].open_id.startswith("o-alipay-")
        assert notices[0].created_at is not None


def test_a_disabled_account_books_nothing(app, client):
    alice = register_person(client, app, name="张三")
    slot = slots(client, LIXIA, working_day(2))[0]
    with app.app_context():
        db.session.scalar(select(Person).where(Person.subject_id == alice["subject_id"])).active = False
        db.session.commit()
    assert book(client, alice["headers"], slot["slot_id"], service_of(app, LIXIA)).status_code == 401
    unknown = f"{LIXIA}-{working_day(2):%Y%m%d}-0915"  # well formed, not a slot
    assert book(client, alice["headers"], unknown, "x").status_code == 401  # the account before the input
    assert slot_row(app, slot["slot_id"]).booked == 0 and active_bookings(app, slot["slot_id"]) == 0


def test_someone_elses_appointment_is_not_found(app, client):
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    service = service_of(app, LIXIA)
    slot = slots(client, LIXIA, working_day(2))[0]
    appointment_id = book(client, alice["headers"], slot["slot_id"], service).get_json()["appointment_id"]
    assert client.get(f"{API}/appointments/{appointment_id}", headers=bob["headers"]).status_code == 404
    assert client.delete(f"{API}/appointments/{appointment_id}", headers=bob["headers"]).status_code == 404
    assert client.get(f"{API}/appointments/apt_00000000000000000000", headers=alice["headers"]).status_code == 404
    assert active_bookings(app, slot["slot_id"]) == 1


def test_a_service_the_hall_does_not_offer_is_422_and_writes_nothing(app, client):
    alice = register_person(client, app, name="张三")
    slot = slots(client, LIXIA, working_day(2))[0]
    for service in (service_of(app, SHIZHONG), "370102-999999999999", service_of(app, JINAN)):
        response = book(client, alice["headers"], slot["slot_id"], service)
        assert response.status_code == 422, service
        assert list(response.get_json()["errors"]) == ["service_code"]
    assert slot_row(app, slot["slot_id"]).booked == 0 and active_bookings(app, slot["slot_id"]) == 0


def test_a_slot_in_the_past_is_422_and_writes_nothing(app, client):
    alice = register_person(client, app, name="张三")
    service = service_of(app, LIXIA)
    slot = slots(client, LIXIA, working_day(2))[0]
    move_slot(app, slot["slot_id"], beijing_today() - timedelta(days=1), time(9, 0))
    response = book(client, alice["headers"], slot["slot_id"], service)
    assert response.status_code == 422 and list(response.get_json()["errors"]) == ["slot_id"]
    assert "过去" in response.get_json()["errors"]["slot_id"][0]
    assert slot_row(app, slot["slot_id"]).booked == 0
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Appointment)) == 0


def test_unknown_and_malformed_slots_and_unknown_fields(app, client):
    alice = register_person(client, app, name="张三")
    service = service_of(app, LIXIA)
    day = working_day(2)
    cases = [({"slot_id": f"{LIXIA}-{day:%Y%m%d}-0915", "service_code": service}, "slot_id"),  # not a slot start
             ({"slot_id": f"{LIXIA}-{day:%Y%m%d}-2000", "service_code": service}, "slot_id"),
             ({"slot_id": "370102-2026-0900", "service_code": service}, "slot_id"),
             ({"slot_id": f"{LIXIA}-{day:%Y%m%d}-0900"}, "service_code"),
             ({"slot_id": f"{LIXIA}-{day:%Y%m%d}-0900", "service_code": service, "capacity": 99}, "capacity")]
    for body, field in cases:
        response = client.post(f"{API}/appointments", json=body, headers=alice["headers"])
        assert response.status_code == 422 and field in response.get_json()["errors"], (body, response.get_json())
    # a well-formed slot of a bookable day is opened on demand
    response = book(client, alice["headers"], f"{LIXIA}-{day:%Y%m%d}-1630", service)
    assert response.status_code == 201


def test_only_persons_book(app, client):
    service = service_of(app, LIXIA)
    slot = slots(client, LIXIA, working_day(2))[0]
    verifier = client_token(client, *create_client(app, "verifier"))
    response = book(client, {"Authorization": f"Bearer {verifier}"}, slot["slot_id"], service)
    assert response.status_code == 403
    assert client.post(f"{API}/appointments", json={"slot_id": slot["slot_id"], "service_code": service}).status_code == 401


def test_hall_staff_see_the_days_queue_masked_and_check_in(app, client):
    alice = register_person(client, app, name="张三丰")
    service = service_of(app, LIXIA)
    slot = slots(client, LIXIA, working_day(2))[1]
    appointment = book(client, alice["headers"], slot["slot_id"], service).get_json()
    staff = create_staff(app, LIXIA)
    other_hall = create_staff(app, SHIZHONG)
    queue = client.get(f"{API}/halls/{LIXIA}/appointments", query_string={"date": working_day(2).isoformat()},
                       headers=staff)
    assert queue.status_code == 200, queue.get_json()
    entry = queue.get_json()["items"][0]
    assert entry["appointment_id"] == appointment["appointment_id"] and entry["ticket"] == appointment["ticket"]
    assert entry["name_masked"] == "张**"
    assert entry["id_number_masked"] == alice["id_number"][:6] + "********" + alice["id_number"][-4:]
    assert alice["id_number"] not in queue.get_data(as_text=True)
    assert client.get(f"{API}/halls/{LIXIA}/appointments", headers=other_hall).status_code == 403
    assert client.get(f"{API}/halls/{LIXIA}/appointments", headers=alice["headers"]).status_code == 403
    assert client.get(f"{API}/halls/379999/appointments", headers=staff).status_code == 404

    check_in = f"{API}/appointments/{appointment['appointment_id']}/check-in"
    assert client.post(check_in, headers=staff).status_code == 409  # not today
    move_slot(app, slot["slot_id"], beijing_today(), time(23, 30))
    assert client.post(check_in, headers=other_hall).status_code == 404
    assert client.post(check_in, headers=alice["headers"]).status_code == 404
    done = client.post(check_in, headers=staff)
    assert done.status_code == 200 and done.get_json()["status"] == "attended"
    assert client.post(check_in, headers=staff).status_code == 409
    today = client.get(f"{API}/halls/{LIXIA}/appointments", headers=staff).get_json()
    assert [item["status"] for item in today["items"]] == ["attended"]
