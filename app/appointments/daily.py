"""The daily jobs of appointments (run by cron through `flask appointments ...`): open the booking
window, remind the day before, and close a day by marking unattended bookings as no-shows."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select, update

from ..extensions import db
from ..notifications.service import notify, schedule_delivery
from ..timeutil import BEIJING, as_aware, beijing_today, utcnow
from .models import BOOKED, NO_SHOW, Appointment, AppointmentSlot

BATCH = 500


def remind_due(*, today: date | None = None) -> dict:
    """Remind every booking of tomorrow (and any later-made one of today still ahead) that was not
    reminded yet: an inbox entry and a channel notice each. Safe to run again or on two machines:
    a booking is claimed by a conditional UPDATE before its reminder is written."""
    tomorrow = (today or beijing_today()) + timedelta(days=1)
    sent = 0
    while True:
        batch = db.session.scalars(
            select(Appointment).join(Appointment.slot)
            .where(Appointment.status == BOOKED, Appointment.reminded_at.is_(None), Appointment.day <= tomorrow,
                   AppointmentSlot.start_at > utcnow())
            .order_by(Appointment.id).limit(BATCH)).all()
        if not batch:
            break
        for appointment in batch:
            claimed = db.session.execute(
                update(Appointment).where(Appointment.id == appointment.id, Appointment.reminded_at.is_(None))
                .values(reminded_at=utcnow()).execution_options(synchronize_session=False))
            if claimed.rowcount != 1:
                continue
            start = as_aware(appointment.slot.start_at).astimezone(BEIJING)
            notify(appointment.subject_id, kind="appointment", title=f"预约提醒：{appointment.service_name}",
                   body=(f"您预约了 {start:%m月%d日 %H:%M} 在大厅办理「{appointment.service_name}」，"
                         f"取号凭证 {appointment.ticket}。请携带身份证件按时到达；不能前往请提前取消。"),
                   data={"appointment_id": appointment.appointment_id, "slot_id": appointment.slot.slot_id},
                   template="appointment_reminder")
            sent += 1
        db.session.commit()
    if sent:
        schedule_delivery()
    return {"reminded": sent}


def close_day(*, day: date | None = None) -> dict:
    """Mark bookings of `day` (today by default) and earlier whose slot has ended unattended as
    no-shows; returns how many, and the no-show count of each person concerned."""
    day = day or beijing_today()
    ended = select(AppointmentSlot.id).where(AppointmentSlot.day <= day, AppointmentSlot.end_at <= utcnow())
    subjects = set(db.session.scalars(select(Appointment.subject_id).where(
        Appointment.status == BOOKED, Appointment.slot_pk.in_(ended))))
    marked = db.session.execute(
        update(Appointment).where(Appointment.status == BOOKED, Appointment.slot_pk.in_(ended))
        .values(status=NO_SHOW, active_slot_id=None, closed_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    counts = dict(db.session.execute(
        select(Appointment.subject_id, func.count()).where(Appointment.subject_id.in_(subjects),
                                                           Appointment.status == NO_SHOW)
        .group_by(Appointment.subject_id)).all()) if subjects else {}
    return {"day": day.isoformat(), "no_show": marked, "no_shows_per_person": counts}
