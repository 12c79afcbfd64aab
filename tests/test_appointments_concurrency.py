"""No overbooking under concurrency: 20 people booking one slot at once get exactly `capacity`
places (the rest 409, nothing half-written), in one app instance (threads) and across two instances
sharing the database; one person booking one slot 20 times at once gets exactly one."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app.appointments.models import Appointment, AppointmentSlot
from app.extensions import db
from tests.support.hall import LIXIA, book, service_of, slot_row, slots, working_day
from tests.support.helpers import another_worker, register_person

REQUESTS = 20


def storm(clients, send):
    barrier = threading.Barrier(REQUESTS)

    def one(index):
        barrier.wait(30)
        return send(clients[index % len(clients)], index)

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return list(pool.map(one, range(REQUESTS)))


SURNAMES, GIVEN = "赵钱孙李周吴郑王冯陈", "明芳"


def _people(client, app, count=REQUESTS):
    return [register_person(client, app, name=SURNAMES[i % 10] + GIVEN[i // 10]) for i in range(count)]


def _assert_consistent(app, slot_id, capacity, responses):
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: capacity, 409: REQUESTS - capacity}, statuses
    assert all("约满" in r.get_json()["detail"] for r in responses if r.status_code == 409)
    tickets = [r.get_json()["ticket"] for r in responses if r.status_code == 201]
    assert len(set(tickets)) == capacity
    with app.app_context():
        slot = db.session.scalar(select(AppointmentSlot).where(AppointmentSlot.slot_id == slot_id))
        rows = db.session.scalars(select(Appointment).where(Appointment.slot_pk == slot.id)).all()
        assert slot.booked == capacity == len(rows)
        assert {row.appointment_id for row in rows} == {r.get_json()["appointment_id"] for r in responses
                                                        if r.status_code == 201}


def _small_slot(app, client):
    slot = slots(client, LIXIA, working_day(4))[0]
    assert slot["capacity"] < REQUESTS, "the test needs a slot smaller than the crowd"
    return slot


def test_twenty_people_one_slot_exactly_capacity_places(app, client):
    service = service_of(app, LIXIA)
    slot = _small_slot(app, client)
    people = _people(client, app)
    clients = [app.test_client() for _ in range(REQUESTS)]
    responses = storm(clients, lambda c, i: book(c, people[i]["headers"], slot["slot_id"], service))
    _assert_consistent(app, slot["slot_id"], slot["capacity"], responses)


def test_two_app_instances_share_the_places(app, client):
    service = service_of(app, LIXIA)
    slot = _small_slot(app, client)
    people = _people(client, app)
    with another_worker(app) as worker:
        clients = [app.test_client() for _ in range(REQUESTS // 2)] + [worker.test_client() for _ in range(REQUESTS // 2)]
        responses = storm(clients, lambda c, i: book(c, people[i]["headers"], slot["slot_id"], service))
    _assert_consistent(app, slot["slot_id"], slot["capacity"], responses)


def test_one_person_twenty_times_gets_one_place(app, client):
    service = service_of(app, LIXIA)
    slot = _small_slot(app, client)
    alice = register_person(client, app, name="张三")
    clients = [app.test_client() for _ in range(REQUESTS)]
    responses = storm(clients, lambda c, i: book(c, alice["headers"], slot["slot_id"], service))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: REQUESTS - 1}, statuses
    assert all("已预约" in r.get_json()["detail"] for r in responses if r.status_code == 409)
    assert slot_row(app, slot["slot_id"]).booked == 1


def test_concurrent_cancels_return_the_place_once(app, client):
    service = service_of(app, LIXIA)
    slot = _small_slot(app, client)
    alice = register_person(client, app, name="张三")
    appointment_id = book(client, alice["headers"], slot["slot_id"], service).get_json()["appointment_id"]
    clients = [app.test_client() for _ in range(REQUESTS)]
    responses = storm(clients, lambda c, i: c.delete(f"/api/v1/appointments/{appointment_id}",
                                                      headers=alice["headers"]))
    assert Counter(r.status_code for r in responses) == {204: 1, 409: REQUESTS - 1}
    assert slot_row(app, slot["slot_id"]).booked == 0
