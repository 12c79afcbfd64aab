"""好差评: ratings of completed applications, hall summaries, and rectification of bad ratings.

- One rating per application, by its applicant (company tokens need `evaluations:write`),
  once the application is final (approved or rejected: 409 before, and 409 a second time),
  within RATING_WINDOW_DAYS working days of completion (422 after).
- The comment must pass `miniprograms.content.check_published_text(subject_id, text)`, the
  content check of the channels the author signs in with (WeChat's msgSecCheck); False is 422.
- Ratings 1 and 2 open a rectification ticket for the application's hall, due in
  RECTIFICATION_DAYS working days; the hall's admins (and the admins of its city) list them,
  add follow-ups and close them with a resolution, which the applicant receives in the inbox.
"""
from __future__ import annotations

import logging
import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from miniprograms import content

from ..applications import service as applications
from ..applications.bundles import hall_exists
from ..applications.deadlines import add_working_days
from ..applications.models import APPROVED, REJECTED
from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..notifications.service import notify, schedule_delivery
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import beijing_today, utcnow
from .models import (CLOSED, OPEN, RATING_LABELS, SATISFIED_RATINGS, Evaluation, RectificationFollowUp,
                     RectificationTicket)

logger = logging.getLogger("app.evaluations")

RATING_WINDOW_DAYS = 5
RECTIFICATION_DAYS = 5
BAD_RATINGS = (1, 2)
WRITE_SCOPE = "evaluations:write"
TICKET_ID = re.compile(r"rt_[0-9a-f]{20}")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def rate(*, principal: Principal, application_id: str, rating: int, dimensions: dict | None = None,
         comment: str | None = None) -> Evaluation:
    """Rate one's own completed application (201); see the module docstring for the rules."""
    applicant = applications.applicant_for(principal, scope=WRITE_SCOPE)
    app = applications.completed_application_for_rating(principal=principal, application_id=application_id)
    if app.is_bundle:
        raise ValidationFailed.field("application_id", "一件事请对各子项分别评价")
    if app.status not in (APPROVED, REJECTED):
        raise Conflict("办件尚未办结，办结后才能评价")
    if db.session.scalar(select(Evaluation.id).where(Evaluation.application_id == app.id)) is not None:
        raise Conflict("该办件已评价，每件只能评价一次")
    completed = applications.completion_date(app)
    last_day = add_working_days(completed, RATING_WINDOW_DAYS)
    if beijing_today() > last_day:
        raise ValidationFailed.field("application_id",
                                     f"评价须在办结后{RATING_WINDOW_DAYS}个工作日内提交（已于 {last_day.isoformat()} 截止）")
    comment = (comment or "").strip() or None
    if comment and content.check_published_text(applicant.subject_id, comment) is False:
        raise ValidationFailed.field("comment", "评价内容未通过内容安全审核，请修改后再提交")
    evaluation = Evaluation(evaluation_id=_new_id("ev"), application_id=app.id, subject_id=applicant.subject_id,
                            actor_id=applicant.actor_id, hall_code=app.hall_code, service_code=app.service_code,
                            service_name=app.service_name, rating=rating, dimensions=dict(dimensions or {}),
                            comment=comment, created_at=utcnow())
    db.session.add(evaluation)
    ticket = None
    if rating in BAD_RATINGS:
        db.session.flush()
        ticket = RectificationTicket(ticket_id=_new_id("rt"), evaluation=evaluation,
                                     application_id=app.application_id, subject_id=app.subject_id,
                                     hall_code=app.hall_code, service_code=app.service_code, rating=rating,
                                     status=OPEN, due_date=add_working_days(beijing_today(), RECTIFICATION_DAYS),
                                     created_at=utcnow())
        db.session.add(ticket)
        notify(app.subject_id, kind="evaluation", title=f"您的评价已收到：{app.service_name}",
               body=f"您给出了「{RATING_LABELS[rating]}」的评价，办理大厅将于 {ticket.due_date.isoformat()} 前整改并反馈。",
               data={"application_id": app.application_id, "ticket_id": ticket.ticket_id})
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("该办件已评价，每件只能评价一次") from None
    return evaluation


def evaluation_of(*, principal: Principal, application_id: str) -> Evaluation:
    """The caller's rating of their application (404 when not rated or not theirs)."""
    app = applications.completed_application_for_rating(principal=principal, application_id=application_id)
    evaluation = db.session.scalar(select(Evaluation).where(Evaluation.application_id == app.id))
    if evaluation is None:
        raise NotFound("该办件尚未评价")
    return evaluation


def _counts(rows) -> dict:
    counts = {str(level): 0 for level in range(1, 6)}
    for rating, count in rows:
        counts[str(rating)] += int(count)
    return counts


def _rate(counts: dict) -> float:
    total = sum(counts.values())
    satisfied = sum(counts[str(level)] for level in SATISFIED_RATINGS)
    return round(satisfied / total, 4) if total else 0.0


def hall_summary(*, hall_code: str, service_code: str | None = None) -> dict:
    """Counts per rating and the satisfaction rate (share of 4-5 among all ratings, 0 when
    there are none) of a hall, overall and per service (or of one service)."""
    if not hall_exists(hall_code):
        raise NotFound("大厅不存在")
    query = (select(Evaluation.service_code, Evaluation.service_name, Evaluation.rating, func.count())
             .where(Evaluation.hall_code == hall_code)
             .group_by(Evaluation.service_code, Evaluation.service_name, Evaluation.rating))
    if service_code:
        query = query.where(Evaluation.service_code == service_code)
    per_service: dict[str, dict] = {}
    for code, name, rating, count in db.session.execute(query):
        entry = per_service.setdefault(code, {"service_code": code, "service_name": name, "rows": []})
        entry["rows"].append((rating, count))
    by_service = []
    overall = {str(level): 0 for level in range(1, 6)}
    for code in sorted(per_service):
        counts = _counts(per_service[code]["rows"])
        for level, count in counts.items():
            overall[level] += count
        by_service.append({"service_code": code, "service_name": per_service[code]["service_name"],
                           "total": sum(counts.values()), "counts": counts, "satisfaction_rate": _rate(counts)})
    return {"hall_code": hall_code, "service_code": service_code, "total": sum(overall.values()), "counts": overall,
            "satisfaction_rate": _rate(overall), "by_service": by_service}


# ---- rectification


def _require_admin(principal: Principal, hall_code: str, *, hide: bool) -> None:
    role = applications.staff_role(principal, hall_code) if principal.subject_type == "person" else None
    if role == "hall_admin":
        return
    if role is None and hide:
        raise NotFound("整改工单不存在")
    raise Forbidden("仅该大厅的管理员可以处理差评整改")


def rectifications(*, principal: Principal, hall_code: str, status: str | None, page: int, page_size: int):
    """A hall's rectification tickets, open ones and the earliest due first (hall admins)."""
    if not hall_exists(hall_code):
        raise NotFound("大厅不存在")
    _require_admin(principal, hall_code, hide=False)
    query = select(RectificationTicket).where(RectificationTicket.hall_code == hall_code)
    if status:
        query = query.where(RectificationTicket.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(RectificationTicket.status.desc(), RectificationTicket.due_date,
                                             RectificationTicket.id)
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total


def _ticket(principal: Principal, ticket_id: str) -> RectificationTicket:
    ticket = db.session.scalar(select(RectificationTicket).where(RectificationTicket.ticket_id == ticket_id)) \
        if isinstance(ticket_id, str) and TICKET_ID.fullmatch(ticket_id) else None
    if ticket is None:
        raise NotFound("整改工单不存在")
    _require_admin(principal, ticket.hall_code, hide=True)
    return ticket


def ticket_detail(*, principal: Principal, ticket_id: str) -> RectificationTicket:
    return _ticket(principal, ticket_id)


def add_follow_up(*, principal: Principal, ticket_id: str, note: str) -> RectificationTicket:
    """Record what was done so far (409 once the ticket is closed)."""
    ticket = _ticket(principal, ticket_id)
    if ticket.status != OPEN:
        raise Conflict("整改工单已关闭")
    ticket.follow_ups.append(RectificationFollowUp(note=note.strip(), author_id=principal.subject_id,
                                                   created_at=utcnow()))
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict("整改工单已被他人更新，请刷新后重试") from None
    return ticket


def close_ticket(*, principal: Principal, ticket_id: str, resolution: str) -> RectificationTicket:
    """Close with the resolution; the applicant is told in the inbox (409 when already closed)."""
    ticket = _ticket(principal, ticket_id)
    if ticket.status != OPEN:
        raise Conflict("整改工单已关闭")
    ticket.status, ticket.resolution = CLOSED, resolution.strip()
    ticket.closed_at, ticket.closed_by = utcnow(), principal.subject_id
    try:
        notify(ticket.subject_id, kind="evaluation", title=f"差评整改反馈：{ticket.evaluation.service_name}",
               body=f"针对您的评价，办理大厅已完成整改：{ticket.resolution}",
               data={"application_id": ticket.application_id, "ticket_id": ticket.ticket_id},
               template="application_status")
        audit.record("rectification.closed", subject_id=ticket.subject_id, actor=principal.subject_id,
                     details={"ticket_id": ticket.ticket_id, "hall_code": ticket.hall_code})
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict("整改工单已被他人更新，请刷新后重试") from None
    schedule_delivery()
    return ticket
