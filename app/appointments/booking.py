"""Booking and cancelling appointments (预约), for persons, on every worker at once.

A place is taken by one conditional UPDATE (`booked = booked + 1 WHERE booked < capacity`, checked
by its rowcount) in the same transaction as the booking row, so concurrent bookings on any number
of workers never overbook (PostgreSQL re-checks the condition on the latest row version; SQLite
serialises writers), and a failure rolls the place back with the row. One active booking per person
per slot is a unique constraint. Cancelling returns the place the same way.
"""
from __future__ import annotations

import functools
import re
import secrets
from datetime import timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import and_, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..catalogue.models import Hall, Service
from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db, limiter
from ..halls_access import page_of
from ..identity.models import Person
from ..identity.persons import personal
from ..notifications.service import notify, schedule_delivery
from ..security.rbac import Principal
from ..timeutil import BEIJING, as_aware, beijing_today, utcnow
from . import slots
from .models import BOOKED, CANCELLED, NO_SHOW, Appointment, AppointmentSlot

APPOINTMENT_ID = re.compile(r"apt_[0-9a-f]{20}")
RATE_LIMIT = "30/hour"          # APPOINTMENT_RATE_LIMIT: bookings per person
NO_SHOW_LIMIT, NO_SHOW_WINDOW_DAYS = 3, 90
FULL = "该时段已约满，请选择其他时段"
TWICE = "您已预约该时段"


_SUBJECT = bindparam("subject")
FACTS = (
    select(Person.active, AppointmentSlot.id, AppointmentSlot.slot_id, AppointmentSlot.hall_code, AppointmentSlot.day,
           AppointmentSlot.start_at, AppointmentSlot.end_at, Service.name.label("service_name"),
           Hall.full_name.label("hall_name"),
           select(func.count()).select_from(Appointment).where(
               Appointment.subject_id == _SUBJECT, Appointment.status == NO_SHOW,
               Appointment.day >= bindparam("since")).scalar_subquery().label("no_shows"),
           exists().where(Appointment.active_slot_id == AppointmentSlot.id,
                          Appointment.subject_id == _SUBJECT).label("twice"))
    .select_from(Person)
    .outerjoin(AppointmentSlot, AppointmentSlot.slot_id == bindparam("slot"))
    .outerjoin(Service, and_(Service.code == bindparam("service"), Service.hall_code == AppointmentSlot.hall_code,
                             Service.status == "published"))
    .outerjoin(Hall, Hall.code == AppointmentSlot.hall_code)
    .where(Person.subject_id == _SUBJECT))


def _facts(subject_id: str, slot_id: str, service_code: str):
    """In one statement: whether the person is active, the slot (its columns NULL when it does not exist), the
    service's name when the slot's hall offers it published, the hall's name, the person's no-shows of the
    last NO_SHOW_WINDOW_DAYS days and whether they hold an active booking of the slot already. None when the
    person does not exist."""
    return db.session.execute(FACTS, {"subject": subject_id, "slot": slot_id, "service": service_code,
                                      "since": beijing_today() - timedelta(days=NO_SHOW_WINDOW_DAYS)}).first()


def _booking_facts(principal: Principal, slot_id: str, service_code: str):
    """The facts (`_facts`) of an active person's booking of a slot that exists and has not started: 403 for
    company and client tokens, 401 for an account gone or disabled, 422 for the slot. A bookable day nobody
    listed yet (or that a concurrent request is opening) is opened first."""
    read = functools.partial(_facts, principal.subject_id, slot_id, service_code)
    facts = personal(principal, read)
    named = slots.day_of(slot_id)
    if named is None:
        raise ValidationFailed.field("slot_id", "预约时段编号格式不正确")
    hall_code, day = named
    if facts.id is None and day >= beijing_today():
        hall = db.session.get(Hall, hall_code)
        if hall is not None:
            slots.open_day(hall, day)
            facts = personal(principal, read)
    if facts.id is None:
        raise ValidationFailed.field("slot_id", "预约时段不存在")
    if as_aware(facts.start_at) <= utcnow():
        raise ValidationFailed.field("slot_id", "该时段已经开始或已过去，不能预约")
    return facts


def book(*, principal: Principal, slot_id: str, service_code: str) -> SimpleNamespace:
    """Take a place in the slot for a service the slot's hall offers (201); see the module docstring. Returns
    the booking as written, with its slot, for `AppointmentSchema` (nothing is read back after the commit)."""
    facts = _booking_facts(principal, slot_id, service_code)
    subject_id = principal.subject_id
    if facts.service_name is None:
        raise ValidationFailed.field("service_code", slots.NOT_OFFERED)
    limiter.hit(current_app.config.get("APPOINTMENT_RATE_LIMIT") or RATE_LIMIT, "appointments", subject_id,
                detail="预约过于频繁，请稍后再试")
    if facts.no_shows >= NO_SHOW_LIMIT:
        raise Forbidden(f"您近 {NO_SHOW_WINDOW_DAYS} 天内已爽约 {NO_SHOW_LIMIT} 次，暂不能网上预约，请到大厅现场取号")
    if facts.twice:
        raise Conflict(TWICE)
    issued = db.session.execute(TAKE_PLACE, {"slot": facts.id}).scalar_one_or_none()
    if issued is None:
        db.session.rollback()
        raise Conflict(FULL)
    start = as_aware(facts.start_at).astimezone(BEIJING)
    booked = {"appointment_id": "apt_" + secrets.token_hex(10), "status": BOOKED, "slot_pk": facts.id,
              "active_slot_id": facts.id, "subject_id": subject_id, "hall_code": facts.hall_code, "day": facts.day,
              "service_code": service_code, "service_name": facts.service_name,
              "ticket": f"{start:%H%M}-{issued:03d}", "created_at": utcnow()}
    try:
        db.session.execute(insert(Appointment.__table__), booked)
    except IntegrityError:
        db.session.rollback()
        raise Conflict(TWICE) from None
    notices = notify(subject_id, kind="appointment", title=f"预约成功：{facts.service_name}",
                     body=f"您已预约 {facts.hall_name} {start:%Y-%m-%d %H:%M} 办理「{facts.service_name}」，"
                          f"取号凭证 {booked['ticket']}。",
                     data={"appointment_id": booked["appointment_id"], "slot_id": facts.slot_id},
                     template="appointment_booked")
    db.session.commit()
    if notices:
        schedule_delivery()
    return SimpleNamespace(**booked, slot=facts, reminded_at=None)


TAKE_PLACE = (  # the place and the ticket number in one statement
    update(AppointmentSlot).where(AppointmentSlot.id == bindparam("slot"),
                                  AppointmentSlot.booked < AppointmentSlot.capacity)
    .values(booked=AppointmentSlot.booked + 1, issued=AppointmentSlot.issued + 1)
    .returning(AppointmentSlot.issued).execution_options(synchronize_session=False))


def _own(principal: Principal, appointment_id: str) -> Appointment:
    appointment = db.session.scalar(select(Appointment).where(Appointment.appointment_id == appointment_id)) \
        if isinstance(appointment_id, str) and APPOINTMENT_ID.fullmatch(appointment_id) else None
    if appointment is None or appointment.subject_id != principal.subject_id:
        raise NotFound("预约不存在")
    return appointment


def appointment_detail(*, principal: Principal, appointment_id: str) -> Appointment:
    return _own(principal, appointment_id)


def my_appointments(*, principal: Principal, status: str | None, page: int, page_size: int):
    """The caller's bookings, the latest slot first."""
    query = select(Appointment).join(Appointment.slot).where(Appointment.subject_id == principal.subject_id)
    if status:
        query = query.where(Appointment.status == status)
    return page_of(query, AppointmentSlot.start_at.desc(), Appointment.id.desc(), page=page, page_size=page_size)


def cancel(*, principal: Principal, appointment_id: str) -> None:
    """Cancel one's own booking before its slot starts; the place returns to the slot (204)."""
    appointment = _own(principal, appointment_id)
    if appointment.status != BOOKED:
        raise Conflict("该预约已取消或已结束")
    if as_aware(appointment.slot.start_at) <= utcnow():
        raise Conflict("预约时段已经开始，不能取消")
    if not _release(appointment):
        db.session.rollback()
        raise Conflict("该预约已取消或已结束")
    db.session.commit()


def cancel_future_of(subject_id: str) -> list[str]:
    """Cancel every booking of the person whose slot has not started, their places back to the slots
    (closing the account); the caller commits. Returns the appointment ids cancelled."""
    rows = db.session.scalars(select(Appointment).join(Appointment.slot).where(
        Appointment.subject_id == subject_id, Appointment.status == BOOKED, AppointmentSlot.start_at > utcnow())
        .order_by(Appointment.id)).all()
    return [row.appointment_id for row in rows if _release(row)]


def _release(appointment: Appointment) -> bool:
    """Cancel a booking still active and give its place back (False when someone else ended it first)."""
    released = db.session.execute(
        update(Appointment).where(Appointment.id == appointment.id, Appointment.status == BOOKED)
        .values(status=CANCELLED, active_slot_id=None, closed_at=utcnow()).execution_options(synchronize_session=False))
    if released.rowcount != 1:
        return False
    db.session.execute(update(AppointmentSlot).where(AppointmentSlot.id == appointment.slot_pk,
                                                     AppointmentSlot.booked > 0)
                       .values(booked=AppointmentSlot.booked - 1).execution_options(synchronize_session=False))
    return True
