"""Support for the appointment and complaint tests (no tests here): days, slots, bookings, time travel.

Time passing is simulated by moving rows into the past (`move_slot`), since the code under test
reads the real clock.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select

from app.applications.deadlines import add_working_days, is_working_day
from app.appointments.models import Appointment, AppointmentSlot
from app.catalogue.models import Hall, Service
from app.extensions import db
from app.identity.models import ChannelBinding
from app.timeutil import BEIJING, beijing_today
from tests.support.helpers import API

LIXIA = "370102"       # 济南市历下区 (a county hall: 8-12 windows)
SHIZHONG = "370103"    # 济南市市中区
JINAN = "370100"
HUKOU_MOVE = "000705006000"


def working_day(n: int = 2) -> date:
    """The n-th working day after today (Beijing)."""
    return add_working_days(beijing_today(), n)


def non_working_day() -> date:
    day = beijing_today() + timedelta(days=1)
    while is_working_day(day):
        day += timedelta(days=1)
    return day


def service_of(app, hall_code: str, base_code: str = HUKOU_MOVE) -> str:
    with app.app_context():
        return db.session.scalar(select(Service.code).where(Service.hall_code == hall_code,
                                                            Service.base_code == base_code,
                                                            Service.status == "published"))


def windows(app, hall_code: str) -> int:
    with app.app_context():
        return db.session.get(Hall, hall_code).windows


def slots(client, hall_code: str, day: date, **params) -> list[dict]:
    response = client.get(f"{API}/halls/{hall_code}/appointment-slots", query_string={"date": day.isoformat(), **params})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def book(client, headers, slot_id: str, service_code: str):
    return client.post(f"{API}/appointments", json={"slot_id": slot_id, "service_code": service_code}, headers=headers)


def bind_channel(app, subject_id: str, channel: str = "wechat") -> None:
    """The person logged in through a mini-program channel, so that notices reach them there too."""
    with app.app_context():
        db.session.add(ChannelBinding(subject_id=subject_id, channel=channel, app_id="wx0123456789abcdef",
                                      open_id=f"o-{channel}-{subject_id}"))
        db.session.commit()


def slot_row(app, slot_id: str) -> AppointmentSlot:
    with app.app_context():
        row = db.session.scalar(select(AppointmentSlot).where(AppointmentSlot.slot_id == slot_id))
        db.session.expunge(row)
        return row


def active_bookings(app, slot_id: str) -> int:
    with app.app_context():
        slot = db.session.scalar(select(AppointmentSlot).where(AppointmentSlot.slot_id == slot_id))
        return db.session.scalar(select(db.func.count()).select_from(Appointment).where(
            Appointment.slot_pk == slot.id, Appointment.active_slot_id.is_not(None)))


def move_slot(app, slot_id: str, day: date, at: time) -> None:
    """Pretend the clock moved: the slot (and its bookings) now lie on `day` at `at` (Beijing)."""
    start = datetime.combine(day, at, BEIJING).astimezone(timezone.utc)
    with app.app_context():
        slot = db.session.scalar(select(AppointmentSlot).where(AppointmentSlot.slot_id == slot_id))
        slot.day, slot.start_at, slot.end_at = day, start, start + timedelta(minutes=30)
        for appointment in db.session.scalars(select(Appointment).where(Appointment.slot_pk == slot.id)):
            appointment.day = day
        db.session.commit()
