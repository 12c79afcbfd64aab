"""What a final application leaves: the sealed decision document (app/results) and its e-archive
package, made after the decision is committed (a job: sealing takes about a second), and the
`result` the applicant sees. `flask applications settle` redoes what a lost job left undone."""
from __future__ import annotations

import logging

from sqlalchemy import select

from ..extensions import db
from ..jobs import enqueue
from ..results.archive import archive_application
from ..results.documents import decision_for, issue_decision
from ..results.models import ArchivePackage
from .forms import DELIVERY_FIELD, service_spec
from .models import APPROVED, FINAL_STATUSES, REJECTED, Application

logger = logging.getLogger("app.applications")
JOB = "app.applications.outcomes:settle"
DECISIONS = {APPROVED: "approved", REJECTED: "rejected"}
REVOKED = "revoked"


def after_commit(app: Application) -> None:
    """Queue the decision and archive of `app` (and of its bundle children) once final. The decision is
    committed already: a job that cannot be queued, or fails where it runs (no Redis), is logged and left
    to `flask applications settle`, and the request that decided still succeeds."""
    for each in [app, *app.children] if app.is_bundle else [app]:
        if each.status in FINAL_STATUSES and each.service_code:
            try:
                enqueue(JOB, each.application_id)
            except Exception:  # noqa: BLE001 - e.g. no CJK font on a laptop: settle makes it later
                db.session.rollback()
                logger.exception("application %s: decision and archive wait for `flask applications settle`",
                                 each.application_id)


def _comment(app: Application, action: str) -> str | None:
    return next((event.comment for event in reversed(app.events) if event.action == action), None)


def _timeline(app: Application) -> list[dict]:
    return [{"at": event.at, "action": event.action, "from_status": event.from_status, "to_status": event.to_status,
             "actor_id": event.actor_id, "actor_role": event.actor_role, "comment": event.comment,
             "data": event.data or {}} for event in app.events]


def _materials(app: Application) -> list[dict]:
    items = []
    for row in app.materials:
        item = {"name": row.name, "kind": row.kind, "round": row.round, "review": row.review,
                "review_reason": row.review_reason}
        if row.file_id:
            item["file_id"] = row.file_id
        if row.license_id:
            item.update(license_id=row.license_id, license_identifier=row.license_identifier)
        if row.produced_by:
            item["produced_by"] = row.produced_by
        if row.due_date:
            item["due_date"] = row.due_date
        items.append(item)
    return items


def _decide(app: Application, decision: str, comment: str | None):
    return issue_decision(application_id=app.application_id, applicant_subject_id=app.subject_id,
                          department=app.department, applicant_name=app.applicant_name or "",
                          service_name=app.service_name, decision=decision, decided_at=app.completed_at,
                          comment=comment)


def settle(application_id: str) -> dict:
    """Issue the decision of a final application and archive it (each once; safe to repeat)."""
    app = db.session.scalar(select(Application).where(Application.application_id == application_id))
    if app is None or app.status not in FINAL_STATUSES or not app.service_code:
        return {"application_id": application_id, "settled": False}
    decision = None
    if app.status in DECISIONS and app.department:
        decision = _decide(app, DECISIONS[app.status], _comment(app, "reject") if app.status == REJECTED else None)
        app = db.session.scalar(select(Application).where(Application.application_id == application_id))
    spec = service_spec(app.service_code) if app.service_code else None
    archive_application(application_id=app.application_id, applicant_subject_id=app.subject_id,
                        service_code=app.service_code, service_name=app.service_name,
                        department=app.department or "", final_status=app.status, materials=_materials(app),
                        timeline=_timeline(app), decision=decision, item_type=spec.item_type if spec else None,
                        actor=_closing_actor(app))
    db.session.commit()
    return {"application_id": application_id, "settled": True, "decision": decision.id if decision else None}


def _closing_actor(app: Application) -> str | None:
    return next((event.actor_id for event in reversed(app.events) if event.to_status in FINAL_STATUSES), None)


def revoke(application_id: str, comment: str) -> None:
    """The revocation decision of an application whose result a spot check found false."""
    app = db.session.scalar(select(Application).where(Application.application_id == application_id))
    if app is not None and app.department:
        issue_decision(application_id=app.application_id, applicant_subject_id=app.subject_id,
                       department=app.department, applicant_name=app.applicant_name or "",
                       service_name=app.service_name, decision=REVOKED, decided_at=app.revoked_at, comment=comment)


def unsettled(limit: int = 500) -> list[str]:
    """Final applications without their archive package (a job was lost)."""
    archived = select(ArchivePackage.application_id)
    return list(db.session.scalars(select(Application.application_id).where(
        Application.status.in_(FINAL_STATUSES), Application.service_code.is_not(None),
        Application.application_id.not_in(archived)).limit(limit)))


def document_url(file_id: str | None) -> str | None:
    return f"/api/v1/files/{file_id}" if file_id else None


def result_of(app: Application) -> dict | None:
    """`result` of GET /applications/{id}: the decision document and the license, when decided."""
    if app.status not in (APPROVED, REJECTED) or app.is_bundle:
        return None
    document = decision_for(app.application_id, DECISIONS[app.status])
    revocation = decision_for(app.application_id, REVOKED) if app.revoked_at else None
    body = {"decision": DECISIONS[app.status], "document_url": document_url(document.file_id if document else None),
            "license_id": app.issued_license_id, "revoked": app.revoked_at is not None,
            "revocation_document_url": document_url(revocation.file_id if revocation else None)}
    if app.status == APPROVED:
        dispatch = next((event.data for event in reversed(app.events) if event.action == "dispatch"), None)
        body["delivery"] = {"method": app.form_data.get(DELIVERY_FIELD) if app.form_data else None,
                            "tracking_number": (dispatch or {}).get("tracking_number"),
                            "dispatched": dispatch is not None}
    return body

