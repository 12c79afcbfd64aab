"""Appointment slots: opened from a hall's opening hours and window count on working days of the
official calendar, for today and the next APPOINTMENT_WORKING_DAYS (10) working days.

Slots are the hall's general windows (一窗受理: any window takes any service the hall offers), so a
slot belongs to a hall and a booking names the service. A day's slots are created on first read (or
by `flask appointments open-slots`), idempotently: INSERT ... ON CONFLICT DO NOTHING on the
deterministic `slot_id` "{hall}-{YYYYMMDD}-{HHMM}", so concurrent readers on any worker agree.
Capacity per slot = windows x APPOINTMENT_PER_WINDOW (the rest of the windows' time is for walk-ins).
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from flask import current_app
from sqlalchemy import Row, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from ..applications.deadlines import is_working_day
from ..catalogue.models import Hall, Service
from ..errors import NotFound, ValidationFailed
from ..extensions import db
from ..timeutil import BEIJING, as_aware, beijing_today, isoformat_beijing, utcnow
from .models import AppointmentSlot

SLOT_ID = re.compile(r"(\d{6,12})-(\d{8})-(\d{4})")
HOURS = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
DEFAULTS = {"APPOINTMENT_WORKING_DAYS": 10, "APPOINTMENT_SLOT_MINUTES": 30, "APPOINTMENT_PER_WINDOW": 1}


def setting(name: str) -> int:
    return int(current_app.config.get(name, DEFAULTS[name]))


def parse_hours(text: str | None) -> list[tuple[time, time]]:
    """Opening hours as periods: "09:00-12:00,13:00-17:00" gives (09:00, 12:00) and (13:00, 17:00);
    malformed parts are ignored."""
    periods = []
    for part in (text or "").split(","):
        match = HOURS.fullmatch(part.strip())
        if match:
            h1, m1, h2, m2 = map(int, match.groups())
            if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60 and (h1, m1) < (h2, m2):
                periods.append((time(h1, m1), time(h2, m2)))
    return periods


def bookable_days(today: date | None = None) -> tuple[date, ...]:
    """Today when it is a working day, then the next N working days."""
    return _window(today or beijing_today(), setting("APPOINTMENT_WORKING_DAYS"))


@lru_cache(maxsize=8)
def _window(today: date, working_days: int) -> tuple[date, ...]:
    days, day, found = [today] if is_working_day(today) else [], today, 0
    while found < working_days:
        day += timedelta(days=1)
        if is_working_day(day):
            days.append(day)
            found += 1
    return tuple(days)


def slot_code(hall_code: str, start: datetime) -> str:
    local = start.astimezone(BEIJING)
    return f"{hall_code}-{local:%Y%m%d}-{local:%H%M}"


def day_of(slot_id: str) -> tuple[str, date] | None:
    """(hall code, day) named by a well-formed slot id, else None."""
    match = SLOT_ID.fullmatch(slot_id) if isinstance(slot_id, str) else None
    if not match:
        return None
    try:
        return match.group(1), datetime.strptime(match.group(2), "%Y%m%d").date()
    except ValueError:
        return None


def _day_rows(hall: Hall, day: date) -> list[dict]:
    step = timedelta(minutes=setting("APPOINTMENT_SLOT_MINUTES"))
    capacity = (hall.windows or 0) * setting("APPOINTMENT_PER_WINDOW")
    rows = []
    for opens, closes in parse_hours(hall.open_hours):
        start = datetime.combine(day, opens, BEIJING)
        end_of_period = datetime.combine(day, closes, BEIJING)
        while start + step <= end_of_period:
            rows.append({"slot_id": slot_code(hall.code, start), "hall_code": hall.code, "day": day,
                         "start_at": start.astimezone(timezone.utc), "end_at": (start + step).astimezone(timezone.utc),
                         "capacity": capacity, "booked": 0, "issued": 0})
            start += step
    return rows


def _insert_missing(rows: list[dict]) -> None:
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(insert(AppointmentSlot).on_conflict_do_nothing(index_elements=["slot_id"]), rows)


def open_day(hall: Hall, day: date, days: tuple[date, ...] | None = None) -> int:
    """Create the hall's slots of `day` when it is bookable (one of `days`, by default today's window)
    and they do not exist yet (commits); returns how many were created."""
    if not hall.windows or day not in (days if days is not None else bookable_days()):
        return 0
    if db.session.scalar(select(AppointmentSlot.id).where(AppointmentSlot.hall_code == hall.code,
                                                          AppointmentSlot.day == day).limit(1)) is not None:
        return 0
    rows = _day_rows(hall, day)
    if rows:
        _insert_missing(rows)
        db.session.commit()
    return len(rows)


def open_window(hall_codes: list[str] | None = None) -> dict:
    """Open every bookable day of every hall with windows (the job behind `flask appointments open-slots`)."""
    query = select(Hall).where(Hall.windows > 0)
    if hall_codes:
        query = query.where(Hall.code.in_(hall_codes))
    halls = db.session.scalars(query.order_by(Hall.code)).all()
    days = bookable_days()
    created = sum(open_day(hall, day, days) for hall in halls for day in days)
    return {"halls": len(halls), "days": len(days), "slots_created": created}


def hall_or_404(code: str) -> Hall:
    hall = db.session.get(Hall, code) if isinstance(code, str) and code.isdigit() else None
    if hall is None:
        raise NotFound("大厅不存在")
    return hall


NOT_OFFERED = "该大厅不办理此事项（或事项不存在、已停办）"


def offered_service(hall_code: str, service_code: str) -> Service:
    """The published service of this hall, or 422 naming `service_code`."""
    service = db.session.get(Service, service_code) if service_code else None
    if service is None or service.status != "published" or service.hall_code != hall_code:
        raise ValidationFailed.field("service_code", NOT_OFFERED)
    return service


def list_slots(*, hall_code: str, day: date | None, service_code: str | None = None) -> dict:
    """The hall's slots of `day` that have not started yet, with what is left of each, times as text. A day
    already opened costs one query (its slots name their hall, so the hall exists); otherwise the hall is
    looked up (404), the day checked (422) and opened."""
    today = beijing_today()
    day = day or today
    rows = _day_slots(hall_code, day) if day >= today and hall_code.isdigit() else []
    hall = None if rows else hall_or_404(hall_code)
    if service_code:
        offered_service(hall_code, service_code)
    if hall is not None:
        if day < today:
            raise ValidationFailed.field("date", "不能查询已经过去的日期")
        open_day(hall, day)
        rows = _day_slots(hall_code, day)
    now = utcnow()
    days = bookable_days(today)
    return {"hall_code": hall_code, "date": day.isoformat(), "bookable_until": days[-1].isoformat() if days else None,
            "items": [slot_view(row) for row in rows if as_aware(row.start_at) > now]}


SLOT_FIELDS = (AppointmentSlot.slot_id, AppointmentSlot.start_at, AppointmentSlot.end_at, AppointmentSlot.capacity,
               AppointmentSlot.booked)
DAY_SLOTS = select(*SLOT_FIELDS).where(AppointmentSlot.hall_code == bindparam("hall"),
                                       AppointmentSlot.day == bindparam("day")).order_by(AppointmentSlot.start_at)


def _day_slots(hall_code: str, day: date) -> list:
    return db.session.execute(DAY_SLOTS, {"hall": hall_code, "day": day}).all()


def slot_view(slot: Row) -> dict:
    """A row of SLOT_FIELDS as listed: its times in Beijing time with their offset."""
    return {"slot_id": slot.slot_id, "start": isoformat_beijing(slot.start_at), "end": isoformat_beijing(slot.end_at),
            "capacity": slot.capacity,
            "remaining": max(0, slot.capacity - slot.booked)}
