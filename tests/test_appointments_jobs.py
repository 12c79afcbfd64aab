"""The daily jobs: `flask appointments open-slots`, reminders the day before (inbox and the channel
notices outbox, once), and `close-day` marking unattended bookings as no-shows, counted per person;
three no-shows stop online booking."""
from __future__ import annotations

import json
from datetime import time, timedelta

from sqlalchemy import func, select

from app.appointments import daily
from app.appointments.models import AppointmentSlot
from app.extensions import db
from app.notifications.models import Notification, OutboxMessage
from app.timeutil import beijing_today
from tests.support.hall import (LIXIA, SHIZHONG, bind_channel, book, move_slot, service_of, slot_row, slots,
                                working_day)
from tests.support.helpers import API, register_person


def _inbox_titles(app, subject_id) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Notification.title).where(Notification.subject_id == subject_id)))


def test_open_slots_command_opens_every_hall_idempotently(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["appointments", "open-slots", "--hall", LIXIA, "--hall", SHIZHONG])
    assert first.exit_code == 0, first.output
    result = json.loads(first.output)
    assert result["halls"] == 2 and result["days"] in (10, 11)
    assert result["slots_created"] == 2 * 14 * result["days"]  # today too when it is a working day
    again = json.loads(runner.invoke(args=["appointments", "open-slots", "--hall", LIXIA]).output)
    assert again["slots_created"] == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AppointmentSlot)) == result["slots_created"]


def test_reminders_the_day_before_once(app, client):
    alice = register_person(client, app, name="张三")
    bind_channel(app, alice["subject_id"])
    service = service_of(app, LIXIA)
    day = working_day(2)
    slot = slots(client, LIXIA, day)[2]
    ticket = book(client, alice["headers"], slot["slot_id"], service).get_json()["ticket"]
    with app.app_context():
        assert daily.remind_due(today=day - timedelta(days=2)) == {"reminded": 0}  # not yet
        assert daily.remind_due(today=day - timedelta(days=1)) == {"reminded": 1}
        assert daily.remind_due(today=day - timedelta(days=1)) == {"reminded": 0}  # once
        outbox = db.session.scalars(select(OutboxMessage).where(OutboxMessage.subject_id == alice["subject_id"],
                                                                OutboxMessage.template == "appointment_reminder")).all()
        assert len(outbox) == 1 and outbox[0].payload["slot_id"] == slot["slot_id"]
        booked = db.session.scalars(select(OutboxMessage.template).where(
            OutboxMessage.subject_id == alice["subject_id"])).all()
        assert sorted(booked) == ["appointment_booked", "appointment_reminder"]
    reminders = [t for t in _inbox_titles(app, alice["subject_id"]) if t.startswith("预约提醒")]
    assert len(reminders) == 1
    mine = client.get(f"{API}/appointments", headers=alice["headers"]).get_json()["items"][0]
    assert mine["reminded_at"] is not None and mine["ticket"] == ticket


def test_remind_command(app, client):
    alice = register_person(client, app, name="张三")
    slot = slots(client, LIXIA, working_day(2))[0]
    book(client, alice["headers"], slot["slot_id"], service_of(app, LIXIA))
    move_slot(app, slot["slot_id"], beijing_today() + timedelta(days=1), time(9, 0))
    result = app.test_cli_runner().invoke(args=["appointments", "remind"])
    assert result.exit_code == 0 and json.loads(result.output) == {"reminded": 1}


def test_close_day_marks_no_shows_and_counts_them_per_person(app, client):
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    service = service_of(app, LIXIA)
    day = working_day(2)
    listed = slots(client, LIXIA, day)
    yesterday = beijing_today() - timedelta(days=1)
    booked = []
    for index in range(3):
        slot_id = listed[index]["slot_id"]
        booked.append(book(client, alice["headers"], slot_id, service).get_json()["appointment_id"])
        move_slot(app, slot_id, yesterday, time(9 + index, 0))
    future = book(client, bob["headers"], listed[5]["slot_id"], service).get_json()["appointment_id"]
    result = app.test_cli_runner().invoke(args=["appointments", "close-day"])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    assert outcome["no_show"] == 3 and outcome["no_shows_per_person"] == {alice["subject_id"]: 3}
    statuses = {a["appointment_id"]: a["status"] for a in
                client.get(f"{API}/appointments", headers=alice["headers"]).get_json()["items"]}
    assert statuses == {appointment_id: "no_show" for appointment_id in booked}
    assert client.get(f"{API}/appointments/{future}", headers=bob["headers"]).get_json()["status"] == "booked"
    assert all(slot_row(app, listed[i]["slot_id"]).booked == 1 for i in range(3))  # a no-show kept the place

    refused = book(client, alice["headers"], listed[6]["slot_id"], service)
    assert refused.status_code == 403 and "爽约" in refused.get_json()["detail"]
    assert book(client, bob["headers"], listed[6]["slot_id"], service).status_code == 201
    again = json.loads(app.test_cli_runner().invoke(args=["appointments", "close-day"]).output)
    assert again["no_show"] == 0
