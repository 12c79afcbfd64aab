"""Complaints (找茬吐槽): consultations, complaints, suggestions and reports about a hall, routed to
that hall with a due date in working days; the hall's staff reply (the complainant's inbox gets each
reply, and a reply to a 12345 ticket goes back to the hotline), close, and the complainant rates
the handling once.

Visibility: a complaint is the complainant's and its hall's (the hall's staff, and the admins of the
city above a county hall); anyone else gets 404, never a hint that it exists. A report (举报) never
shows the complainant to the hall; other categories show the name masked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from ..applications.deadlines import add_working_days
from ..catalogue.models import Hall, Service
from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db, limiter
from ..halls_access import is_hall_staff, page_of, require_staff_of_hall
from ..identity.actors import actor_of
from ..identity.common import new_id
from ..notifications.service import notify, schedule_delivery
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import beijing_today, utcnow
from .models import CATEGORY_LABELS, CLOSED, OPEN, PENDING, Complaint, ComplaintReply

COMPLAINT_ID = re.compile(r"cp_[0-9a-f]{20}")
DUE_WORKING_DAYS = {"consultation": 3, "complaint": 5, "suggestion": 10, "report": 15}
RATE_LIMIT = "10/hour"  # COMPLAINT_RATE_LIMIT: complaints per person


@dataclass
class ComplaintView:
    """A complaint as one viewer may see it: the complainant ("owner") or the hall's staff ("staff")."""

    complaint: Complaint
    viewer: str

    @property
    def complainant_masked(self) -> str | None:
        from ..identity.persons import person_by_subject_id
        from ..security.pii import mask_name
        item = self.complaint
        if self.viewer != "staff" or item.category == "report":
            return None
        if item.subject_id:
            person = person_by_subject_id(item.subject_id)
            return mask_name(person.name) if person else None
        return mask_name(item.contact[0])

    @property
    def contact_phone_masked(self) -> str | None:
        from ..security.pii import mask_phone
        if self.viewer != "staff" or self.complaint.category == "report":
            return None
        return mask_phone(self.complaint.contact[1])


def due_date_for(category: str, start=None):
    return add_working_days(start or beijing_today(), DUE_WORKING_DAYS[category])


def _complainant(principal: Principal) -> str:
    """A person (personal token of an active account) or a company someone may still act for."""
    actor = actor_of(principal)
    if actor.is_client:
        raise Forbidden("请以个人或企业身份提出诉求")
    return actor.company().subject_id if actor.is_company else actor.own_person().subject_id


def _check_subject(principal: Principal, subject_id: str, hall_code: str, service_code: str | None,
                   application_id: str | None) -> None:
    """What the complaint is about must exist: the hall and its service (422 naming the field); the
    application must be the caller's own (404 otherwise, saying nothing about whether it exists)."""
    if db.session.get(Hall, hall_code) is None:
        raise ValidationFailed.field("hall_code", "大厅不存在")
    if service_code:
        service = db.session.get(Service, service_code)
        if service is None or service.hall_code != hall_code:
            raise ValidationFailed.field("service_code", "该大厅没有这个事项")
    if application_id:
        from ..applications.models import Application
        app = db.session.scalar(select(Application).where(Application.application_id == application_id))
        if app is None or app.subject_id != subject_id:
            raise NotFound("办件不存在")
        if app.hall_code != hall_code:
            raise ValidationFailed.field("hall_code", "该办件不由这个大厅办理")


def create_complaint(*, principal: Principal, category: str, content: str, hall_code: str,
                     service_code: str | None = None, application_id: str | None = None) -> ComplaintView:
    """File a complaint with the hall (201); due in DUE_WORKING_DAYS[category] working days."""
    subject_id = _complainant(principal)
    _check_subject(principal, subject_id, hall_code, service_code, application_id)
    limiter.hit(current_app.config.get("COMPLAINT_RATE_LIMIT") or RATE_LIMIT, "complaints", subject_id,
                detail="提交过于频繁，请稍后再试")
    complaint = Complaint(complaint_id=new_id("cp"), subject_id=subject_id, source="app", category=category,
                          hall_code=hall_code, service_code=service_code or None, application_id=application_id or None,
                          status=OPEN, due_date=due_date_for(category), created_at=utcnow())
    complaint.content = content.strip()
    db.session.add(complaint)
    label = CATEGORY_LABELS[category]
    notify(subject_id, kind="complaint", title=f"您的{label}已受理",
           body=f"编号 {complaint.complaint_id}，办理大厅将于 {complaint.due_date.isoformat()} 前答复。",
           data={"complaint_id": complaint.complaint_id})
    db.session.commit()
    return ComplaintView(complaint, "owner")


def _load(complaint_id: str) -> Complaint | None:
    if not isinstance(complaint_id, str) or not COMPLAINT_ID.fullmatch(complaint_id):
        return None
    return db.session.scalar(select(Complaint).where(Complaint.complaint_id == complaint_id)
                             .options(selectinload(Complaint.replies)))


def _own(principal: Principal, complaint_id: str) -> Complaint:
    complaint = _load(complaint_id)
    if complaint is None or complaint.subject_id is None or complaint.subject_id != principal.subject_id:
        raise NotFound("诉求不存在")
    return complaint


def complaint_detail(*, principal: Principal, complaint_id: str) -> ComplaintView:
    return ComplaintView(_own(principal, complaint_id), "owner")


def my_complaints(*, principal: Principal, status: str | None, page: int, page_size: int):
    query = select(Complaint).where(Complaint.subject_id == principal.subject_id)
    if status:
        query = query.where(Complaint.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.options(selectinload(Complaint.replies))
                              .order_by(Complaint.created_at.desc(), Complaint.id.desc())
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return [ComplaintView(row, "owner") for row in rows], total


def hall_complaints(*, principal: Principal, hall_code: str, status: str | None = None, overdue: bool = False,
                    category: str | None = None, page: int = 1, page_size: int = 20):
    """A hall's complaints for its staff, the earliest due first; `overdue`: open past the due date."""
    require_staff_of_hall(principal, hall_code, what="查看诉求")
    query = select(Complaint).where(Complaint.hall_code == hall_code)
    if status:
        query = query.where(Complaint.status == status)
    if overdue:
        query = query.where(Complaint.status == OPEN, Complaint.due_date < beijing_today())
    if category:
        query = query.where(Complaint.category == category)
    rows, total = page_of(query, Complaint.status.desc(), Complaint.due_date, Complaint.id, page=page,
                          page_size=page_size, options=(selectinload(Complaint.replies),))
    return [ComplaintView(row, "staff") for row in rows], total


def reply(*, principal: Principal, complaint_id: str, content: str, close: bool = False) -> ComplaintView:
    """A reply by the staff of the complaint's hall (201); `close` ends it. Anyone else: 404 (the
    complainant, who may see it, 403)."""
    complaint = _load(complaint_id)
    if complaint is None:
        raise NotFound("诉求不存在")
    if not is_hall_staff(principal, complaint.hall_code):
        if complaint.subject_id and complaint.subject_id == principal.subject_id:
            raise Forbidden("只有承办大厅的工作人员可以答复")
        raise NotFound("诉求不存在")
    if complaint.status != OPEN:
        raise Conflict("该诉求已办结")
    answer = ComplaintReply(reply_id=new_id("cr"), closes=bool(close), author_id=principal.subject_id,
                            created_at=utcnow(), hotline_status=PENDING if complaint.external_id else None)
    answer.content = content.strip()
    complaint.replies.append(answer)
    complaint.replied_at = answer.created_at  # the complaint row changes too: its version serialises replies
    label = CATEGORY_LABELS[complaint.category]
    if close:
        complaint.status, complaint.closed_at = CLOSED, utcnow()
    if complaint.subject_id:
        notify(complaint.subject_id, kind="complaint",
               title=f"您的{label}已{'办结' if close else '收到答复'}（{complaint.complaint_id}）", body=answer.content,
               data={"complaint_id": complaint.complaint_id, "status": complaint.status}, template="complaint_reply")
    try:
        if close:
            audit.record("complaint.closed", subject_id=complaint.subject_id, actor=principal.subject_id,
                         details={"complaint_id": complaint.complaint_id, "hall_code": complaint.hall_code})
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict("诉求已被他人更新，请刷新后重试") from None
    schedule_delivery()
    if answer.hotline_status == PENDING:
        from ..jobs import enqueue
        enqueue("app.complaints.hotline_sync:push_replies")
    return ComplaintView(complaint, "staff")


def rate(*, principal: Principal, complaint_id: str, rating: int, comment: str | None = None) -> ComplaintView:
    """The complainant rates the handling once it is closed (409 before, and a second time)."""
    complaint = _own(principal, complaint_id)
    if complaint.status != CLOSED:
        raise Conflict("诉求办结后才能评价")
    if complaint.rating is not None:
        raise Conflict("该诉求已评价")
    complaint.rating, complaint.rating_comment = rating, (comment or "").strip() or None
    complaint.rated_at = utcnow()
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict("该诉求已评价") from None
    return ComplaintView(complaint, "owner")
