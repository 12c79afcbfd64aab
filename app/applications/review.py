"""Staff review of materials (材料审核): each material accepted, or rejected with a reason, by the
staff of the hall handling the application, while it is submitted or accepted; under 受审分离 only the
deciding department's staff review once it is accepted (`routing.check_review`), and the hall that
only took it in (全省通办) does not review (403). An uploaded file must be accepted before the
application can be approved; a rejected material is what `request_more` asks for again by default."""
from __future__ import annotations

from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..identity.actors import Actor
from ..security import audit
from ..timeutil import utcnow
from . import crossregion, routing
from .models import (ACCEPTED, ACCEPTED_REVIEW, MISSING, PRODUCED, REJECTED_REVIEW, REVIEW_LABELS, STATUS_LABELS,
                     SUBMITTED)
from .service import (CONFLICT_STALE, ApplicationView, is_applicant, load_application, record_event, saved,
                      version_checked)

REVIEWABLE_STATUSES = (SUBMITTED, ACCEPTED)
DECISIONS = (ACCEPTED_REVIEW, REJECTED_REVIEW)


def review_material(*, actor: Actor, application_id: str, name: str, decision: str, reason: str | None = None,
                    version: int | None = None) -> ApplicationView:
    """Record one material's review; 404 for anyone who cannot see the application, 403 for staff
    who see it but do not review it (受审分离, 全省通办), 409 when the application is not being
    processed or the material is not there to look at (容缺)."""
    app = load_application(application_id, fresh=True)
    if app is not None and is_applicant(actor, app):
        raise Forbidden("仅办理大厅的工作人员可以审核材料，且不能审核本人的申请")
    if app is None or app.is_bundle:
        raise NotFound("办件不存在")
    principal = actor.principal
    role = crossregion.handling_role(principal, app, doing="材料审核")
    routing.check_review(app, principal, role)  # 受审分离
    row = next((row for row in app.materials if row.name == name), None)
    if row is None:
        raise NotFound("该办件没有此材料")
    if decision == REJECTED_REVIEW and not (reason or "").strip():
        raise ValidationFailed.field("reason", "审核不通过时须说明理由")
    if app.status not in REVIEWABLE_STATUSES:
        raise Conflict(f"办件当前状态为「{STATUS_LABELS[app.status]}」，不能审核材料",
                       extra={"application_status": app.status})
    if row.kind in (MISSING, PRODUCED):
        raise Conflict(f"材料「{name}」尚未提交，暂不能审核")
    if version is not None and version != app.version:
        raise Conflict(CONFLICT_STALE, extra={"version": app.version})
    row.review, row.review_reason = decision, (reason or "").strip() or None
    row.reviewed_by, row.reviewed_at = principal.subject_id, utcnow()
    app.updated_at = utcnow()  # the row's version moves on: a transition decided on the old reviews is 409
    record_event(app, "review", from_status=app.status, to_status=app.status, actor_id=principal.subject_id,
                 actor_role="staff", comment=row.review_reason,
                 data={"material": name, "review": decision, "round": row.round})
    with version_checked():
        db.session.flush()
        audit.record("application.material_reviewed", subject_id=app.subject_id, actor=principal.subject_id,
                     details={"application_id": app.application_id, "material": name, "review": decision,
                              "label": REVIEW_LABELS[decision], "hall_code": app.hall_code})
    return saved(app, "staff")
