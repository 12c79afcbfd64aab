"""The hall's side of appointments: the day's queue and check-in at the window (hall staff of that hall)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, update

from ..applications.service import staff_role
from ..errors import Conflict, Forbidden, NotFound
from ..extensions import db
from ..identity.persons import person_by_subject_id
from ..security.rbac import Principal
from ..timeutil import beijing_today, utcnow
from . import slots
from .booking import APPOINTMENT_ID
from .models import ATTENDED, BOOKED, Appointment, AppointmentSlot


@dataclass
class QueueEntry:
    """A booking as the window sees it: the person's name and ID number masked."""

    appointment: Appointment
    name_masked: str | None
    id_number_masked: str | None


def is_hall_staff(principal: Principal, hall_code: str) -> bool:
    return principal.subject_type == "person" and staff_role(principal, hall_code) is not None


def _entry(appointment: Appointment) -> QueueEntry:
    from ..security.pii import mask_name
    person = person_by_subject_id(appointment.subject_id)
    return QueueEntry(appointment, mask_name(person.name) if person else None,
                      person.id_number_masked if person else None)


def hall_queue(*, principal: Principal, hall_code: str, day: date | None, status: str | None, page: int,
               page_size: int) -> tuple[list[QueueEntry], int]:
    """The hall's bookings of one day (today by default) in slot order (staff of that hall)."""
    hall = slots.hall_or_404(hall_code)
    if not is_hall_staff(principal, hall.code):
        raise Forbidden("仅该大厅的工作人员可以查看预约队列")
    query = select(Appointment).where(Appointment.hall_code == hall.code, Appointment.day == (day or beijing_today()))
    if status:
        query = query.where(Appointment.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.join(Appointment.slot).order_by(AppointmentSlot.start_at, Appointment.ticket)
                              .offset((page - 1) * page_size).limit(page_size)).all()
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
