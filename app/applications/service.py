"""Applications (办件), read side: who may see one, its detail, the lists, and helpers the write side shares.

The domain's write side lives in `submission` (forms, submit, 一件事, 补正), `instant` (秒批) and
`processing` (the state machine). Every change is one transaction: the application row
(optimistic lock on `version`), a timeline event, an inbox entry and channel notices in the
outbox; notices are delivered after the commit. Functions are keyword-only, take the request's
`Actor` (app.identity.actors), raise app.errors exceptions and own their transactions.
"""
from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from .. import personal_pages
from ..errors import Conflict, Forbidden, NotFound
from ..extensions import db
from ..identity import proxies
from ..identity.actors import Actor, actor_of
from ..identity.models import Person
from ..notifications.service import notify, schedule_delivery
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import BEIJING, as_aware, beijing_today, utcnow
from ..halls_access import page_of, require_staff_of_hall, staff_role
from .deadlines import add_working_days
from .models import RUNNING_STATUSES, Application, ApplicationEvent

SUBMIT_SCOPE, READ_SCOPE = "applications:submit", "applications:read"
NOTICES = {
    "submit": ("申请已提交", "您的「{name}」申请已提交，办件编号 {id}，承诺办结日期 {deadline}。"),
    "instant": ("申请已秒批办结", "您的「{name}」申请材料齐全、核验通过，已即时办结。"),
    "accept": ("申请已受理", "您的「{name}」申请已受理，承诺办结日期 {deadline}。"),
    "approve": ("申请已办结", "您的「{name}」申请已办结（准予）。"),
    "reject": ("申请未通过", "您的「{name}」申请未予通过：{comment}"),
    "request_more": ("申请需要补正", "您的「{name}」申请需要补正：{comment}。请重新提供：{materials}。"),
    "resubmit": ("补正材料已提交", "您的「{name}」补正材料已提交，承诺办结日期 {deadline}。"),
    "supplement": ("容缺材料已补齐", "您的「{name}」容缺材料已提交。"),
    "missing_due": ("容缺材料即将到期", "您的「{name}」申请中容缺后补的材料「{materials}」须在 {due} 前补齐，逾期将退回补正。"),
    "missing_overdue": ("容缺材料逾期未补", "您的「{name}」申请中容缺后补的材料「{materials}」已逾期，申请已退回补正。"),
    "dispatch": ("办理结果已寄出或可领取", "您的「{name}」办理结果：{tracking}。"),
    "revoke": ("办理结果已撤销", "经抽查核实，您的「{name}」申请中所作承诺与事实不符，办理结果已撤销：{comment}"),
    "withdraw": ("申请已撤回", "您的「{name}」申请已撤回。"),
    "bundle": ("一件事申请已提交", "您的「{name}」申请已提交，共 {count} 个子项，办件编号 {id}。"),
    "bundle_final": ("一件事已办结", "您的「{name}」各子项均已办结，结果：{status}。"),
}
CONFLICT_STALE = "办件已被他人更新，请刷新后重试"
APPLICATION_ID = re.compile(r"ap_[0-9a-f]{20}")


@dataclass
class ApplicationView:
    """One application as a caller may see it (`viewer` applicant or staff), for ApplicationSchema."""

    application: Application
    viewer: str = "applicant"
    reveal: bool = False
    children: list = field(default_factory=list)


def view_of(app: Application, viewer: str, *, reveal: bool = False) -> ApplicationView:
    children = [view_of(child, viewer, reveal=reveal) for child in app.children] if app.is_bundle else []
    return ApplicationView(application=app, viewer=viewer, reveal=reveal, children=children)


# ---- shared by submission and processing


def load_application(application_id: str, *, fresh: bool = False) -> Application | None:
    if not isinstance(application_id, str) or not APPLICATION_ID.fullmatch(application_id):
        return None
    query = select(Application).where(Application.application_id == application_id)
    if fresh:
        query = query.execution_options(populate_existing=True)
    return db.session.scalar(query)


@contextmanager
def version_checked():
    """A concurrent change of the same application (its version moved on) is 409."""
    try:
        yield
    except StaleDataError:
        db.session.rollback()
        raise Conflict(CONFLICT_STALE) from None


def saved(app: Application, role: str) -> ApplicationView:
    """Commit a change, deliver its notices and answer as `role` sees the application."""
    with version_checked():
        db.session.commit()
    schedule_delivery()
    return view_of(app, role)


def record_event(app: Application, action: str, *, from_status: str | None, to_status: str | None,
                 actor_id: str | None, actor_role: str, comment: str | None = None, data: dict | None = None) -> None:
    data = dict(data or {})
    shown_by = proxies.acted_by(subject_id=app.subject_id, actor_id=actor_id) if actor_role == "applicant" else None
    if shown_by:  # a relative acting for the applicant (亲友代办)
        data["shown_by"] = shown_by
    db.session.add(ApplicationEvent(application=app, at=utcnow(), action=action, from_status=from_status,
                                    to_status=to_status, actor_id=actor_id, actor_role=actor_role,
                                    comment=comment, data=data))


def notify_applicant(app: Application, notice: str, **extra) -> None:
    title, template = NOTICES[notice]
    values = {"name": app.service_name, "id": app.application_id,
              "deadline": app.deadline.isoformat() if app.deadline else "—", "comment": "", "materials": "",
              **extra}
    notify(app.subject_id, kind="application_status", title=f"{title}：{app.service_name}",
           body=template.format(**values),
           data={"application_id": app.application_id, "status": app.status, "service_name": app.service_name},
           template="application_status")


def audit_reveal(applicant: Actor, what: str) -> None:
    """Full ID and phone numbers are shown to the person themself only (audited, committed)."""
    if applicant.subject_type != "person" or applicant.is_proxy:
        raise Forbidden("完整的证件号码和手机号码仅向本人显示")
    audit.record("pii.revealed", subject_id=applicant.subject_id, actor=applicant.actor_id,
                 details={"fields": ["id_number", "phone"], "where": what})
    db.session.commit()


# ---- who is asking


def applicant_for(who: Actor | Principal, *, scope: str = SUBMIT_SCOPE) -> Actor:
    """The applicant acting: the person, or the company with the person acting for it.

    Company tokens need `scope` (`applications:submit` to apply, `applications:read` or
    `applications:submit` to read) in the token and in the person's live grant; client tokens
    cannot apply (403).
    """
    actor = actor_of(who)
    if actor.is_client:
        raise Forbidden("办件须以个人或企业身份办理")
    if actor.is_company:
        wanted = {scope} if scope != READ_SCOPE else {READ_SCOPE, SUBMIT_SCOPE}
        refused = Forbidden(f"您没有代表该企业办理此操作的授权（{scope}）")
        if not wanted & actor.principal.scopes:
            raise refused
        actor.company()
        if actor.company_scopes is None or not wanted & actor.company_scopes:
            raise refused
        return actor
    if actor.is_proxy:
        wanted = {scope} if scope != READ_SCOPE else {READ_SCOPE, SUBMIT_SCOPE}
        actor.proxied_person(wanted, f"您没有代亲友办理此操作的授权（{scope}）")
        return actor
    actor.own_person()
    return actor


def is_applicant(who: Actor | Principal, app: Application) -> bool:
    return who.subject_id == app.subject_id


def _readable(actor: Actor, app: Application | None) -> str:
    """'applicant' or 'staff'; 404 for anyone else (existence is not revealed)."""
    if app is not None:
        if is_applicant(actor, app):
            applicant_for(actor, scope=READ_SCOPE)
            return "applicant"
        if actor.subject_type == "person" and any(staff_role(actor.principal, hall) for hall in app.halls):
            return "staff"
    raise NotFound("办件不存在")


# ---- reading


def application_detail(*, actor: Actor, application_id: str, reveal: bool = False) -> ApplicationView:
    """The application with its form, materials (verified references) and timeline; 404 for
    anyone but the applicant and the staff of its hall (and of the hall's city)."""
    app = load_application(application_id)
    viewer = _readable(actor, app)
    if reveal:
        if viewer != "applicant":
            raise Forbidden("完整的证件号码和手机号码仅向本人显示")
        audit_reveal(applicant_for(actor, scope=READ_SCOPE), "application")
    return view_of(app, viewer, reveal=reveal)


_APPS, _PERSONS = Application.__table__, Person.__table__
_PARENTS = _APPS.alias("parent")
LIST_COLUMNS = tuple(_APPS.c[name] for name in (
    "application_id", "service_code", "service_name", "hall_code", "bundle_code", "applicant_name",
    "status", "deadline", "submitted_at", "updated_at", "completed_at", "version", "channel", "department",
    "accepting_hall_code", "pickup_status"))


@functools.cache
def _own_list(by_status: bool):
    """A person's own applications page as one Core statement, built once per filter: the rows with
    their parent's id, the count of all that match, joined to the active person the token names."""
    query = (select(*LIST_COLUMNS, _PARENTS.c.application_id.label("parent_application_id"),
                    func.count().over().label("total"))
             .select_from(_APPS.join(_PERSONS, and_(_PERSONS.c.subject_id == _APPS.c.subject_id,
                                                    _PERSONS.c.active.is_(True)))
                          .outerjoin(_PARENTS, _PARENTS.c.id == _APPS.c.parent_id))
             .where(_APPS.c.subject_id == bindparam("subject")))
    if by_status:
        query = query.where(_APPS.c.status == bindparam("status"))
    return query.order_by(_APPS.c.created_at.desc(), _APPS.c.id.desc()).offset(bindparam("offset")).limit(
        bindparam("limit"))


def list_applications(*, actor: Actor, status: str | None, page: int, page_size: int):
    """The caller's applications (bundle parents and children included), newest first. A person's
    own page with rows is one read; the rest (companies, proxies, an empty page) the general way."""
    if actor.subject_type == "person" and not actor.is_proxy:
        rows = db.session.execute(_own_list(bool(status)), {
            "subject": actor.subject_id, "status": status, "offset": (page - 1) * page_size,
            "limit": page_size}).all()
        if rows:  # else the general path, which also answers 401 for an account that is gone
            return rows, rows[0].total
    applicant = applicant_for(actor, scope=READ_SCOPE)
    query = select(Application).where(Application.subject_id == applicant.subject_id)
    if status:
        query = query.where(Application.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.options(selectinload(Application.parent))
                              .order_by(Application.created_at.desc(), Application.id.desc())
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total


personal_pages.watch(Application, ("applications",), personal_pages.subjects_in("subject_id"))


def hall_applications(*, actor: Actor, hall_code: str, status: str | None = None, overdue: bool = False,
                      due_within_days: int | None = None, page: int = 1, page_size: int = 20):
    """A hall's work list for its staff: by status, overdue (deadline passed while the clock
    runs), or due within N working days (today included), earliest deadline first."""
    require_staff_of_hall(actor.principal, hall_code, what="查看办件")
    today = beijing_today()
    query = select(Application).where(or_(Application.hall_code == hall_code, Application.accepting_hall_code == hall_code),
                                      Application.service_code.is_not(None))
    if status:
        query = query.where(Application.status == status)
    if overdue:
        query = query.where(Application.status.in_(RUNNING_STATUSES), Application.deadline < today)
    if due_within_days is not None:
        query = query.where(Application.status.in_(RUNNING_STATUSES), Application.deadline >= today,
                            Application.deadline <= add_working_days(today, due_within_days))
    return page_of(query, Application.deadline.asc(), Application.id.asc(), page=page, page_size=page_size)


# ---- used by evaluations


def completed_application_for_rating(*, principal: Actor | Principal, application_id: str) -> Application:
    """The caller's own application to rate (404 for anyone else's)."""
    app = load_application(application_id)
    if app is None or not is_applicant(principal, app):
        raise NotFound("办件不存在")
    return app


def completion_date(app: Application) -> date | None:
    completed = as_aware(app.completed_at)
    return completed.astimezone(BEIJING).date() if completed else None
