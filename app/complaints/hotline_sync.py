"""Work orders in and replies out between the complaints and the 12345 platform (`flask complaints
sync-12345`, by cron; replies are also pushed right after they are written).

In: each dispatched order becomes a complaint of its hall (unique per ticket number, so a second
pull or a second machine adds nothing), linked to the caller's account when the phone belongs to
one (the reply then reaches their inbox too), then accepted at the platform; an order naming no
hall of ours is returned. Out: replies to hotline complaints wait in `complaint_replies` with
`hotline_status` pending until the platform took them (retried up to MAX_ATTEMPTS).
"""
from __future__ import annotations

import logging
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..catalogue.models import Hall, Service
from ..errors import ApiError
from ..extensions import db
from ..identity.common import new_id
from ..notifications.service import notify
from ..timeutil import BEIJING, as_aware, beijing_today, utcnow
from .hotline import HotlineAdapter, HotlineTicket, hotline_adapter
from .models import CATEGORY_LABELS, FAILED, OPEN, PENDING, SENT, Complaint, ComplaintReply
from .service import due_date_for

logger = logging.getLogger("app.complaints.hotline")
MAX_ATTEMPTS = 5
NOT_OURS = "该工单所涉单位不在本平台承办范围内，请重新派单"


def _account_of(phone: str | None) -> str | None:
    from ..identity.models import Person, phone_index
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) != 11:
        return None
    person = db.session.scalar(select(Person).where(Person.phone_index == phone_index(digits), Person.active.is_(True)))
    return person.subject_id if person else None


def _import(ticket: HotlineTicket) -> Complaint | None:
    """The complaint for this order (created when new); None when the order names no hall of ours."""
    existing = db.session.scalar(select(Complaint).where(Complaint.external_id == ticket.ticket_no))
    if existing is not None:
        return existing
    if db.session.get(Hall, ticket.hall_code) is None:
        return None
    service = db.session.get(Service, ticket.service_code) if ticket.service_code else None
    received = as_aware(ticket.received_at).astimezone(BEIJING).date() if ticket.received_at else beijing_today()
    complaint = Complaint(complaint_id=new_id("cp"), subject_id=_account_of(ticket.caller_phone), source="hotline12345",
                          external_id=ticket.ticket_no, category=ticket.category, hall_code=ticket.hall_code,
                          service_code=service.code if service and service.hall_code == ticket.hall_code else None,
                          status=OPEN, due_date=ticket.due_date or due_date_for(ticket.category, received),
                          created_at=utcnow())
    complaint.content = ticket.content.strip()
    complaint.set_contact(ticket.caller_name, ticket.caller_phone)
    db.session.add(complaint)
    if complaint.subject_id:
        notify(complaint.subject_id, kind="complaint", title=f"您通过 12345 提出的{CATEGORY_LABELS[ticket.category]}已转办",
               body=f"工单 {ticket.ticket_no} 已由承办大厅受理，将于 {complaint.due_date.isoformat()} 前答复。",
               data={"complaint_id": complaint.complaint_id, "ticket_no": ticket.ticket_no})
    try:
        db.session.commit()
    except IntegrityError:  # imported meanwhile by another run
        db.session.rollback()
        return db.session.scalar(select(Complaint).where(Complaint.external_id == ticket.ticket_no))
    return complaint


def pull_tickets(adapter: HotlineAdapter | None = None) -> dict:
    """Import and accept the orders dispatched to us; return the others."""
    adapter = adapter or hotline_adapter()
    if adapter is None:
        return {"configured": False}
    counts = {"imported": 0, "accepted": 0, "returned": 0, "failed": 0}
    for ticket in adapter.dispatched():
        known = db.session.scalar(select(Complaint.id).where(Complaint.external_id == ticket.ticket_no)) is not None
        complaint = _import(ticket)
        try:
            if complaint is None:
                adapter.give_back(ticket.ticket_no, reason=NOT_OURS)
                counts["returned"] += 1
                continue
            counts["imported"] += not known
            adapter.accept(ticket.ticket_no, local_id=complaint.complaint_id)
            counts["accepted"] += 1
        except ApiError as exc:  # the next run tries again; the import itself is done
            logger.warning("12345: order %s not acknowledged: %s", ticket.ticket_no, exc.detail)
            counts["failed"] += 1
    return counts


def push_replies(adapter: HotlineAdapter | None = None, limit: int = 100) -> dict:
    """Send the replies still pending to the platform, oldest first."""
    adapter = adapter or hotline_adapter()
    if adapter is None:
        return {"configured": False}
    query = (select(ComplaintReply).where(ComplaintReply.hotline_status == PENDING)
             .order_by(ComplaintReply.id).limit(limit))
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for answer in db.session.scalars(query).all():
        answer.hotline_attempts += 1
        try:
            adapter.reply(answer.complaint.external_id, reply_id=answer.reply_id, content=answer.content,
                          final=answer.closes, replied_at=as_aware(answer.created_at).astimezone(BEIJING))
        except ApiError as exc:
            answer.hotline_error = f"{exc.status}: {exc.detail}"[:300]
            final = exc.status < 500 or answer.hotline_attempts >= MAX_ATTEMPTS
            answer.hotline_status = FAILED if final else PENDING
            counts["failed" if final else "retry"] += 1
            continue
        answer.hotline_status, answer.hotline_error = SENT, None
        counts["sent"] += 1
    db.session.commit()
    return counts


def sync(adapter: HotlineAdapter | None = None) -> dict:
    """Both directions (the cron job)."""
    adapter = adapter or hotline_adapter()
    if adapter is None:
        return {"configured": False}
    return {"in": pull_tickets(adapter), "out": push_replies(adapter)}
