"""Booking and cancelling appointments (预约), for persons, on every worker at once.

A place is taken by one conditional UPDATE (`booked = booked + 1 WHERE booked < capacity`, checked
by its rowcount) in the same transaction as the booking row, so concurrent bookings on any number
of workers never overbook (PostgreSQL re-checks the condition on the latest row version; SQLite
serialises writers), and a failure rolls the place back with the row. One active booking per person
per slot is a unique constraint. Cancelling returns the place the same way.
"""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..catalogue.models import Hall
from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db, limiter
from ..halls_access import page_of
from ..identity.actors import actor_of
from ..notifications.models import OutboxMessage
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


def _person(principal: Principal) -> str:
    """The booking person: a personal token of an active account (403 for company and client tokens)."""
    return actor_of(principal).own_person().subject_id


def _no_shows_and_twice(subject_id: str, slot_pk: int) -> tuple[int, bool]:
    """In one statement: the person's no-shows of the last NO_SHOW_WINDOW_DAYS days, and whether they hold an
    active booking of the slot already (each read through its own index)."""
    since = beijing_today() - timedelta(days=NO_SHOW_WINDOW_DAYS)
    no_shows = select(func.count()).select_from(Appointment).where(
        Appointment.subject_id == subject_id, Appointment.status == NO_SHOW, Appointment.day >= since)
    twice = select(Appointment.id).where(Appointment.active_slot_id == slot_pk, Appointment.subject_id == subject_id)
    count, held = db.session.execute(select(no_shows.scalar_subquery(), twice.exists())).one()
    return count or 0, bool(held)


def _slot_for_booking(slot_id: str) -> AppointmentSlot:
    named = slots.day_of(slot_id)
    if named is None:
        raise ValidationFailed.field("slot_id", "预约时段编号格式不正确")
    hall_code, day = named
    slot = db.session.scalar(select(AppointmentSlot).where(AppointmentSlot.slot_id == slot_id))
    if slot is None and day >= beijing_today():
        hall = db.session.get(Hall, hall_code)
        if hall is not None:  # a bookable day nobody listed yet (or a concurrent request is opening it)
            slots.open_day(hall, day)
            slot = db.session.scalar(select(AppointmentSlot).where(AppointmentSlot.slot_id == slot_id))
    if slot is None:
        raise ValidationFailed.field("slot_id", "预约时段不存在")
    if as_aware(slot.start_at) <= utcnow():
        raise ValidationFailed.field("slot_id", "该时段已经开始或已过去，不能预约")
    return slot


def book(*, principal: Principal, slot_id: str, service_code: str) -> Appointment:
    """Take a place in the slot for a service the slot's hall offers (201); see the module docstring."""
    subject_id = _person(principal)
    slot = _slot_for_booking(slot_id)
    service = slots.offered_service(slot.hall_code, service_code)
    limiter.hit(current_app.config.get("APPOINTMENT_RATE_LIMIT") or RATE_LIMIT, "appointments", subject_id,
                detail="预约过于频繁，请稍后再试")
    no_shows, twice = _no_shows_and_twice(subject_id, slot.id)
    if no_shows >= NO_SHOW_LIMIT:
        raise Forbidden(f"您近 {NO_SHOW_WINDOW_DAYS} 天内已爽约 {NO_SHOW_LIMIT} 次，暂不能网上预约，请到大厅现场取号")
    if twice:
        raise Conflict(TWICE)
    issued = db.session.execute(  # the place and the ticket number in one statement
        update(AppointmentSlot).where(AppointmentSlot.id == slot.id, AppointmentSlot.booked < AppointmentSlot.capacity)
        .values(booked=AppointmentSlot.booked + 1, issued=AppointmentSlot.issued + 1)
        .returning(AppointmentSlot.issued).execution_options(synchronize_session=False)).scalar_one_or_none()
    if issued is None:
        db.session.rollback()
        raise Conflict(FULL)
    start = as_aware(slot.start_at).astimezone(BEIJING)
    appointment = Appointment(appointment_id="apt_" + secrets.token_hex(10), slot_pk=slot.id, active_slot_id=slot.id,
                              subject_id=subject_id, hall_code=slot.hall_code, day=slot.day,
                              service_code=service.code, service_name=service.name,
                              ticket=f"{start:%H%M}-{issued:03d}", status=BOOKED, created_at=utcnow())
    db.session.add(appointment)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(TWICE) from None
    notify(subject_id, kind="appointment", title=f"预约成功：{service.name}",
           body=f"您已预约 {service.hall.full_name} {start:%Y-%m-%d %H:%M} 办理「{service.name}」，取号凭证 {appointment.ticket}。",
           data={"appointment_id": appointment.appointment_id, "slot_id": slot.slot_id}, template="appointment_booked")
    notices = any(isinstance(row, OutboxMessage) for row in db.session.new)  # only bound channels get one
    db.session.commit()
    if notices:
        schedule_delivery()
    return appointment


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
