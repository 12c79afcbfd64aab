"""The hall's side of appointments: the day's queue and check-in at the window (hall staff of that hall)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update

from ..errors import Conflict, NotFound
from ..extensions import db
from ..halls_access import is_hall_staff, page_of, require_staff_of_hall
from ..identity.persons import person_by_subject_id
from ..security.rbac import Principal
from ..timeutil import beijing_today, utcnow
from .booking import APPOINTMENT_ID
from .models import ATTENDED, BOOKED, Appointment, AppointmentSlot


@dataclass
class QueueEntry:
    """A booking as the window sees it: the person's name and ID number masked."""

    appointment: Appointment
    name_masked: str | None
    id_number_masked: str | None


def _entry(appointment: Appointment) -> QueueEntry:
    from ..security.pii import mask_name
    person = person_by_subject_id(appointment.subject_id)
    return QueueEntry(appointment, mask_name(person.name) if person else None,
                      person.id_number_masked if person else None)


def hall_queue(*, principal: Principal, hall_code: str, day: date | None, status: str | None, page: int,
               page_size: int) -> tuple[list[QueueEntry], int]:
    """The hall's bookings of one day (today by default) in slot order (staff of that hall)."""
    hall = require_staff_of_hall(principal, hall_code, what="查看预约队列")
    query = select(Appointment).join(Appointment.slot).where(Appointment.hall_code == hall.code,
                                                             Appointment.day == (day or beijing_today()))
    if status:
        query = query.where(Appointment.status == status)
    rows, total = page_of(query, AppointmentSlot.start_at, Appointment.ticket, page=page, page_size=page_size)
    return [_entry(row) for row in rows], total


def check_in(*, principal: Principal, appointment_id: str) -> QueueEntry:
    """Mark a booking of today as attended (staff of its hall; anyone else 404)."""
    appointment = db.session.scalar(select(Appointment).where(Appointment.appointment_id == appointment_id)) \
        if isinstance(appointment_id, str) and APPOINTMENT_ID.fullmatch(appointment_id) else None
    if appointment is None or not is_hall_staff(principal, appointment.hall_code):
        raise NotFound("预约不存在")
    if appointment.status != BOOKED:
        raise Conflict("该预约已取消或已结束")
    if appointment.day != beijing_today():
        raise Conflict("只能为当天的预约签到")
    done = db.session.execute(update(Appointment).where(Appointment.id == appointment.id, Appointment.status == BOOKED)
                              .values(status=ATTENDED, closed_at=utcnow()).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        db.session.rollback()
        raise Conflict("该预约已取消或已结束")
    db.session.commit()
    db.session.refresh(appointment)
    return _entry(appointment)
