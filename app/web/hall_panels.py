"""The dashboard's hall-service panels: today's appointments and the complaint backlog with what is overdue."""
from __future__ import annotations

from sqlalchemy import func, select

from ..applications.deadlines import working_days_between
from ..appointments.models import STATUS_LABELS, STATUSES, Appointment, AppointmentSlot
from ..complaints.models import CATEGORIES, CATEGORY_LABELS, OPEN, Complaint
from ..extensions import db
from ..timeutil import BEIJING, as_aware, beijing_today
from . import desk_panels

QUEUE_SHOWN = 20
OVERDUE_SHOWN = 20
SOURCE_LABELS = {"app": "爱山东", "hotline12345": "12345"}


def build(hall_code: str) -> dict:
    return {"appointments": appointments_panel(hall_code), "complaints": complaints_panel(hall_code),
            "desk": desk_panels.build(hall_code)}


def appointments_panel(hall_code: str) -> dict:
    """Today's bookings by status, and the queue in slot order."""
    today = beijing_today()
    mine = (Appointment.hall_code == hall_code, Appointment.day == today)
    counts = dict(db.session.execute(select(Appointment.status, func.count()).where(*mine)
                                     .group_by(Appointment.status)).all())
    queue = db.session.execute(
        select(Appointment, AppointmentSlot.start_at).join(Appointment.slot).where(*mine, Appointment.status != "cancelled")
        .order_by(AppointmentSlot.start_at, Appointment.ticket).limit(QUEUE_SHOWN)).all()
    return {"day": today, "total": sum(counts.get(s, 0) for s in STATUSES if s != "cancelled"),
            "by_status": [(STATUS_LABELS[s], counts.get(s, 0)) for s in STATUSES],
            "waiting": counts.get("booked", 0),
            "queue": [{"time": as_aware(start).astimezone(BEIJING).strftime("%H:%M"), "ticket": a.ticket,
                       "service_name": a.service_name, "status": STATUS_LABELS[a.status], "state": a.status}
                      for a, start in queue]}


def complaints_panel(hall_code: str) -> dict:
    """Open complaints by category, and the overdue ones (earliest due first) with how late they are."""
    today = beijing_today()
    open_ = (Complaint.hall_code == hall_code, Complaint.status == OPEN)
    by_category = dict(db.session.execute(select(Complaint.category, func.count()).where(*open_)
                                          .group_by(Complaint.category)).all())
    overdue_query = select(Complaint).where(*open_, Complaint.due_date < today)
    overdue_total = db.session.scalar(select(func.count()).select_from(overdue_query.subquery())) or 0
    overdue = [{"complaint_id": c.complaint_id, "category": CATEGORY_LABELS[c.category],
                "source": SOURCE_LABELS.get(c.source, c.source), "due_date": c.due_date,
                "late_days": working_days_between(c.due_date, today)}
               for c in db.session.scalars(overdue_query.order_by(Complaint.due_date, Complaint.id).limit(OVERDUE_SHOWN))]
    return {"open_total": sum(by_category.values()), "overdue_total": overdue_total, "overdue": overdue,
            "by_category": [(CATEGORY_LABELS[c], by_category.get(c, 0)) for c in CATEGORIES]}
