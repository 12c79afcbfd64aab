"""Processing of applications: the state machine, staff transitions, withdrawal and bundle parents.

State machine (illegal transitions are 409):

    submitted --accept--> accepted --approve--> approved --dispatch--> approved (寄出 / 可领取)
    submitted|accepted --reject--> rejected
    submitted|accepted --request_more--> request_more --resubmit (applicant)--> submitted
    submitted|request_more --withdraw (applicant)--> withdrawn

Approval needs every uploaded file reviewed and accepted, nothing rejected and every required
容缺 material handed in (409 naming them); when the service produces a license it is issued in
the same transaction, signed by the service's department (`licenses`), and the sealed decision
and the archive package follow after the commit (`outcomes`). `request_more` names the
materials to provide again (by default the rejected ones).

A bundle parent is `submitted` until every child is final, then `approved` when all
children were approved, `withdrawn` when all were withdrawn, else `rejected`.
Deadlines: `promised_limit_days` working days after the Beijing date of (re)submission, set on
acceptance when missing; the clock stops while the applicant supplements (request_more).
"""
from __future__ import annotations

from sqlalchemy import select

from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..identity.actors import Actor
from ..security import audit
from ..timeutil import beijing_today
from . import crossregion, licenses, outcomes, routing
from .deadlines import add_working_days
from .forms import DELIVERY_FIELD, POSTAL_DELIVERY, service_spec
from .models import (ACCEPTED, ACCEPTED_REVIEW, APPROVED, FILE, FINAL_STATUSES, MISSING, PRODUCED, REJECTED,
                     REJECTED_REVIEW, REQUEST_MORE, STATUS_LABELS, SUBMITTED, WITHDRAWN, Application)
from .service import (CONFLICT_STALE, SUBMIT_SCOPE, ApplicationView, applicant_for, is_applicant, load_application,
                      notify_applicant, record_event, saved, version_checked)

STAFF_ACTIONS = ("accept", "approve", "reject", "request_more", "dispatch")
TRANSITIONS = {
    "accept": {SUBMITTED: ACCEPTED},
    "approve": {ACCEPTED: APPROVED},
    "reject": {SUBMITTED: REJECTED, ACCEPTED: REJECTED},
    "request_more": {SUBMITTED: REQUEST_MORE, ACCEPTED: REQUEST_MORE},
    "resubmit": {REQUEST_MORE: SUBMITTED},
    "withdraw": {SUBMITTED: WITHDRAWN, REQUEST_MORE: WITHDRAWN},
    "dispatch": {APPROVED: APPROVED},
}
ACTION_LABELS = {"accept": "受理", "approve": "办结（准予）", "reject": "不予办理", "request_more": "要求补正",
                 "resubmit": "补正后重新提交", "withdraw": "撤回", "dispatch": "寄出或通知领取办理结果"}


def aggregate(parent: Application, *, actor_id: str | None) -> None:
    """Set a bundle parent's status from its children (the caller holds the parent's lock)."""
    statuses = [child.status for child in parent.children]
    if statuses and all(s in FINAL_STATUSES for s in statuses):
        if all(s == APPROVED for s in statuses):
            target = APPROVED
        elif all(s == WITHDRAWN for s in statuses):
            target = WITHDRAWN
        else:
            target = REJECTED
    else:
        target = SUBMITTED
    if target == parent.status:
        return
    previous = parent.move_to(target)
    if target not in FINAL_STATUSES:
        parent.completed_at = None
    record_event(parent, "children_final" if target in FINAL_STATUSES else "children_changed", from_status=previous,
                 to_status=target, actor_id=actor_id, actor_role="system")
    if target in (APPROVED, REJECTED):
        notify_applicant(parent, "bundle_final", status=STATUS_LABELS[target])


def _sync_parent(child: Application, *, actor_id: str | None) -> None:
    """After a child changed (flushed): lock the parent, re-read its children, aggregate."""
    if child.parent_id is None:
        return
    db.session.flush()
    parent = db.session.scalars(select(Application).where(Application.id == child.parent_id)
                                .with_for_update().execution_options(populate_existing=True)).one()
    db.session.scalars(select(Application).where(Application.parent_id == parent.id)
                       .execution_options(populate_existing=True)).all()
    db.session.refresh(parent, ["children"])
    aggregate(parent, actor_id=actor_id)


def check_allowed(app: Application, action: str) -> str:
    """The status `action` leads to from the application's status; 409 when it is not allowed."""
    target = TRANSITIONS[action].get(app.status)
    if target is None:
        raise Conflict(f"办件当前状态为「{STATUS_LABELS[app.status]}」，不能{ACTION_LABELS[action]}",
                       extra={"application_status": app.status})
    return target


def change(app: Application, action: str, *, actor_id: str | None, actor_role: str, comment: str | None = None,
           data: dict | None = None) -> str:
    """Move the application along TRANSITIONS (409 when its status does not allow `action`);
    returns the status it had."""
    target = check_allowed(app, action)
    previous = app.move_to(target)
    record_event(app, action, from_status=previous, to_status=target, actor_id=actor_id, actor_role=actor_role,
                 comment=comment, data=data)
    return previous


def _approval_blockers(app: Application) -> list[str]:
    """Why the application cannot be approved yet: one line per material that holds it up."""
    problems = []
    siblings = {child.application_id: child for child in (app.parent.children if app.parent else [])}
    for row in app.materials:
        if row.review == REJECTED_REVIEW:
            problems.append(f"材料「{row.name}」审核不通过")
        elif row.kind == FILE and row.review != ACCEPTED_REVIEW:
            problems.append(f"材料「{row.name}」（上传的文件）尚未审核")
        elif row.kind == MISSING and row.required:
            problems.append(f"容缺材料「{row.name}」尚未补齐")
        elif row.kind == PRODUCED and row.required and getattr(siblings.get(row.produced_by), "status", None) != APPROVED:
            problems.append(f"材料「{row.name}」待一件事中的前序事项办结")
    return problems


def _requested_materials(app: Application, names: list[str] | None) -> list[str]:
    """The materials request_more asks for again: those named (each a material of the
    application), else the rejected ones; 422 naming `materials` when there are none."""
    known = {row.name: row for row in app.materials}
    if names:
        unknown = [f"materials[{i}]" for i, name in enumerate(names) if name not in known]
        if unknown:
            raise ValidationFailed("要求补正的材料不是该办件的材料",
                                   errors={key: ["该办件没有此材料"] for key in unknown})
        return list(dict.fromkeys(names))
    rejected = [row.name for row in app.materials if row.review == REJECTED_REVIEW]
    if not rejected:
        raise ValidationFailed.field("materials", "请列出需要申请人重新提供的材料")
    return rejected


def _dispatch_data(app: Application, tracking_number: str | None) -> dict:
    if app.revoked_at is not None:
        raise Conflict("办理结果已被撤销，不能寄出或领取")
    postal = app.form.get(DELIVERY_FIELD) == POSTAL_DELIVERY
    if postal and not tracking_number:
        raise ValidationFailed.field("tracking_number", "申请人选择邮政寄递，请填写邮件单号")
    if not postal and tracking_number:
        raise ValidationFailed.field("tracking_number", "申请人选择窗口领取，无需邮件单号")
    return ({"delivery": POSTAL_DELIVERY, "tracking_number": tracking_number} if postal
            else {"delivery": "窗口领取"})


def transition(*, actor: Actor, application_id: str, action: str, comment: str | None = None,
               version: int | None = None, materials: list[str] | None = None,
               license_fields: dict | None = None, tracking_number: str | None = None) -> ApplicationView:
    """Hall staff accept / approve / reject / request_more / dispatch; 409 when the status does
    not allow it or another change came first (optimistic lock)."""
    app = load_application(application_id, fresh=True)
    if app is not None and is_applicant(actor, app):
        raise Forbidden("仅办理大厅的工作人员可以办理此操作，且不能办理本人的申请")
    if app is None:
        raise NotFound("办件不存在")
    principal = actor.principal
    role = crossregion.handling_role(principal, app, doing=ACTION_LABELS.get(action, action))
    if app.is_bundle:
        raise Conflict("一件事主件的状态由各子项决定，请办理各子项")
    if action in ("reject", "request_more") and not (comment or "").strip():
        raise ValidationFailed.field("comment", "不予办理或要求补正时须说明理由")
    if version is not None and version != app.version:
        raise Conflict(CONFLICT_STALE, extra={"version": app.version})
    routing.check_transition(app, action, principal, role)  # 受审分离
    check_allowed(app, action)
    if license_fields and action != "approve":
        raise ValidationFailed.field("license_fields", "仅在办结（准予）时填写证照字段")
    if materials and action != "request_more":
        raise ValidationFailed.field("materials", "仅在要求补正时列出材料")
    if tracking_number and action != "dispatch":
        raise ValidationFailed.field("tracking_number", "仅在寄出办理结果时填写邮件单号")
    data = {"hall_role": role}
    if action == "approve":
        spec = service_spec(app.service_code)
        licenses.prepare_issuer([spec])  # commits when the department or its key is new: before our writes
        check_allowed(app, action)
        blockers = _approval_blockers(app)
        if blockers:
            raise Conflict("尚不能办结：" + "；".join(blockers), extra={"blocking": blockers})
        with version_checked():
            app.issued_license_id = licenses.issue(app, spec, staff=license_fields)
        if app.issued_license_id:
            data["license_id"] = app.issued_license_id
    elif action == "request_more":
        data["materials"] = _requested_materials(app, materials)
    elif action == "dispatch":
        data.update(_dispatch_data(app, tracking_number))
    previous = change(app, action, actor_id=principal.subject_id, actor_role="staff", comment=comment, data=data)
    routing.after_transition(app, action, actor_id=principal.subject_id)
    if action == "accept" and app.deadline is None:
        app.deadline = add_working_days(beijing_today(), app.promised_limit_days or 0)
    if action == "request_more":
        for row in app.materials:
            row.requested = row.name in data["materials"]
    with version_checked():
        db.session.flush()
        _sync_parent(app, actor_id=principal.subject_id)
        notify_applicant(app, action, comment=comment or "", **_notice_extra(action, data))
        audit.record("application.transition", subject_id=app.subject_id, actor=principal.subject_id,
                     details={"application_id": app.application_id, "action": action, "from": previous,
                              "to": app.status, "hall_code": app.hall_code})
    view = saved(app, "staff")
    if previous not in FINAL_STATUSES:
        outcomes.after_commit(app)
    return view


def _notice_extra(action: str, data: dict) -> dict:
    if action == "request_more":
        return {"materials": "、".join(data["materials"])}
    if action == "dispatch":
        return {"tracking": f"邮件单号 {data['tracking_number']}" if data.get("tracking_number") else "请到窗口领取"}
    return {}


def own_application(actor: Actor, application_id: str) -> tuple[Application, Actor]:
    """The caller's own application, read afresh, and the caller as its applicant (404 otherwise)."""
    app = load_application(application_id, fresh=True)
    if app is None or not is_applicant(actor, app):
        raise NotFound("办件不存在")
    return app, applicant_for(actor, scope=SUBMIT_SCOPE)


def withdraw(*, actor: Actor, application_id: str) -> ApplicationView:
    """The applicant withdraws before acceptance (or while asked to supplement); a bundle is
    withdrawn as a whole."""
    app, applicant = own_application(actor, application_id)
    if app.parent_id is not None:
        raise Conflict("一件事的子项不能单独撤回，请撤回整个一件事")
    with version_checked():
        if app.is_bundle:
            blocking = [c for c in app.children if c.status not in TRANSITIONS["withdraw"]]
            if blocking or app.status != SUBMITTED:
                raise Conflict("一件事中已有子项受理或办结，不能撤回")
            for child in app.children:
                change(child, "withdraw", actor_id=applicant.actor_id, actor_role="applicant")
            db.session.flush()
            aggregate(app, actor_id=applicant.actor_id)
        else:
            change(app, "withdraw", actor_id=applicant.actor_id, actor_role="applicant")
        notify_applicant(app, "withdraw")
        db.session.flush()
    view = saved(app, "applicant")
    outcomes.after_commit(app)
    return view
