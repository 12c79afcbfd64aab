"""帮办代办: a staff helper fills in an application with the applicant (on the phone or at the desk);
the applicant confirms it in the app, and only then is it submitted, as theirs.

The helper's request is checked as a submission would be (the service their hall offers or a
全省通办 item, the applicant in the population registry, the form in the applicant's own name, the
materials the service takes, files the helper uploaded and nobody used yet), sealed, and the
applicant's inbox asks them to confirm. Licenses from the applicant's wallet are theirs to add when
they confirm (`materials`, replacing the helper's entry of the same name). The draft waits
CONFIRMATION_HOURS, and never longer than the helper's unattached uploads are kept. Confirming
submits it under the draft's `application_id` with `channel: assisted`; the timeline shows the
helper (帮办人, when they filled it in) and the confirmation.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import select

from ..errors import Conflict, NotFound, ValidationFailed
from ..extensions import db
from ..files.models import StoredFile
from ..halls_access import page_of, staff_role
from ..identity.actors import Actor
from ..notifications.service import notify, schedule_delivery
from ..security import audit
from ..timeutil import as_aware, utcnow
from . import crossregion, materials, submission
from .assisted_models import CANCELLED, CONFIRMED, DECLINED, PENDING, STATUS_LABELS, AssistedApplication
from .forms import material_kind, service_spec, validate_form
from .models import FILE, LICENSE, Application
from .service import APPLICATION_ID, SUBMIT_SCOPE, ApplicationView, applicant_for, record_event
from .window import Intake, add_new_person, applicant_person, require_hall_staff, scans

CONFIRMATION_HOURS = 24


def _check_files(entries: list[dict], staff_id: str) -> list:
    """The helper's own uploads, not used by anything yet (422 naming the entry otherwise)."""
    wanted = {entry["file_id"]: index for index, entry in enumerate(entries) if material_kind(entry) == FILE}
    rows = {row.id: row for row in db.session.scalars(select(StoredFile).where(StoredFile.id.in_(wanted)))} \
        if wanted else {}
    errors = {}
    for file_id, index in wanted.items():
        row = rows.get(file_id)
        if row is None or row.owner_subject_id != staff_id:
            errors[f"materials[{index}].file_id"] = ["文件不存在或不是您上传的"]
        elif row.attached_at is not None:
            errors[f"materials[{index}].file_id"] = ["该文件已用于其他申请，请重新上传"]
    if errors:
        raise ValidationFailed("材料文件不可用", errors=errors)
    return list(rows.values())


def _expiry(files: list) -> datetime:
    """CONFIRMATION_HOURS from now, or earlier when an upload would be collected before that."""
    now = utcnow()
    ends = [now + timedelta(hours=CONFIRMATION_HOURS)]
    ttl = timedelta(seconds=int(current_app.config.get("FILE_UNATTACHED_TTL", 24 * 3600)))
    ends += [as_aware(row.created_at) + ttl for row in files]
    return min(ends)


def create_assisted(*, actor: Actor, data: dict) -> AssistedApplication:
    """Hall staff fill in an application for a person; it waits for the person's confirmation."""
    require_hall_staff(actor, "帮办代办")
    route = crossregion.route(actor.principal, service_code=data["service_code"],
                              responsible_hall=data.get("responsible_hall"), accepting_hall=data.get("accepting_hall"))
    spec = service_spec(route.service.code)
    if spec.audience != "person":
        raise ValidationFailed.field("service_code", "帮办代办适用于面向个人的事项")
    person = applicant_person(data["applicant"])
    if person.subject_id == actor.subject_id:
        raise ValidationFailed.field("applicant.id_number", "不能为本人帮办，请在爱山东中自行申请")
    applicant = Actor.for_person(person, channel="assisted")
    entries = data["materials"]
    licensed = {f"materials[{i}].license_id": ["证照由申请人确认时从本人卡包提供"]
                for i, entry in enumerate(entries) if material_kind(entry) == LICENSE}
    if licensed:
        raise ValidationFailed("帮办时不能使用申请人卡包中的证照", errors=licensed)
    form = validate_form(spec.fields, data["form"], known={}, applicant=applicant)
    materials.check_entries_known(entries, list(spec.materials))
    materials.plan(spec, form, entries, credit=materials.credit_of(applicant))
    files = _check_files(entries, actor.subject_id)
    hall = route.accepting_hall or spec.hall_code
    if person.id is None:
        add_new_person(person, staff_id=actor.subject_id, hall_code=hall, channel="assisted")
    draft = AssistedApplication(application_id="ap_" + secrets.token_hex(10), subject_id=person.subject_id,
                                service_code=spec.code, service_name=spec.name, hall_code=hall,
                                helper_id=actor.subject_id, contact=data["contact"], status=PENDING,
                                created_at=utcnow(), expires_at=_expiry(files))
    draft.request = {"service_code": spec.code, "form": data["form"], "materials": entries,
                     "accepting_hall": route.accepting_hall}
    db.session.add(draft)
    notify(person.subject_id, kind="assisted_confirmation", title=f"请确认帮办申请：{spec.name}",
           body=f"大厅工作人员为您填写了「{spec.name}」申请（办件编号 {draft.application_id}），"
                "请在爱山东中核对并确认后提交；不是您本人办理的请拒绝。",
           data={"application_id": draft.application_id, "service_name": spec.name},
           template="application_status")
    audit.record("application.assisted_filled", subject_id=person.subject_id, actor=actor.subject_id,
                 details={"application_id": draft.application_id, "hall_code": hall, "contact": data["contact"],
                          "service_code": spec.code})
    db.session.commit()
    schedule_delivery()
    return draft


def _draft(application_id: str) -> AssistedApplication | None:
    if not isinstance(application_id, str) or not APPLICATION_ID.fullmatch(application_id):
        return None
    return db.session.scalar(select(AssistedApplication).where(AssistedApplication.application_id == application_id))


def _pending(draft: AssistedApplication) -> None:
    if draft.state != PENDING:
        raise Conflict(f"该帮办申请{STATUS_LABELS[draft.state]}", extra={"assisted_status": draft.state})


def _merged(entries: list[dict], added: list[dict] | None) -> list[dict]:
    by_name = {entry["name"]: entry for entry in entries}
    by_name.update({entry["name"]: entry for entry in added or []})
    return list(by_name.values())


def confirm(*, actor: Actor, application_id: str, path: str, added_materials: list[dict] | None,
            answer: Callable[[ApplicationView], dict]) -> submission.Submission:
    """The applicant confirms: the application is submitted as theirs (404 for anyone else's draft,
    409 once answered or expired)."""
    applicant = applicant_for(actor, scope=SUBMIT_SCOPE)
    draft = _draft(application_id)
    if draft is None or draft.subject_id != applicant.subject_id:
        raise NotFound("帮办申请不存在")
    _pending(draft)
    request = draft.request

    def confirmed(app: Application) -> None:
        draft.status, draft.decided_at = CONFIRMED, utcnow()
        record_event(app, "confirmed", from_status=None, to_status=None, actor_id=applicant.actor_id,
                     actor_role="applicant", comment="申请人已在爱山东核对并确认提交", data={"channel": "assisted"})

    intake = Intake(applicant=applicant, staff_id=draft.helper_id, hall_code=draft.hall_code, channel="assisted",
                    details={"contact": draft.contact}, accepting_hall=request.get("accepting_hall"),
                    application_id=draft.application_id, filled_at=draft.created_at, confirmed=confirmed)
    entries = _merged(request["materials"], added_materials)
    intake.file_ids = [file_id for file_id in scans(entries) if file_id in scans(request["materials"])]
    data = {"service_code": request["service_code"], "form": request["form"], "materials": entries}
    return submission.submit_application(actor=actor, idempotency_key=f"assisted:{draft.application_id}",
                                         path=path, data=data, answer=answer, intake=intake)


def readable_draft(*, actor: Actor, application_id: str) -> AssistedApplication:
    """The draft for its applicant or the staff of the helper's hall; 404 for anyone else."""
    draft = _draft(application_id)
    if draft is not None:
        if actor.subject_type == "person" and not actor.is_proxy and actor.subject_id == draft.subject_id:
            return draft
        if actor.subject_type == "person" and staff_role(actor.principal, draft.hall_code):
            return draft
    raise NotFound("帮办申请不存在")


def withdraw_draft(*, actor: Actor, application_id: str) -> None:
    """The applicant declines it, or staff of the helper's hall cancel it (409 once answered)."""
    draft = readable_draft(actor=actor, application_id=application_id)
    _pending(draft)
    declined = actor.subject_id == draft.subject_id
    draft.status, draft.decided_at = (DECLINED if declined else CANCELLED), utcnow()
    audit.record(f"application.assisted_{draft.status}", subject_id=draft.subject_id, actor=actor.subject_id,
                 details={"application_id": draft.application_id, "hall_code": draft.hall_code})
    if not declined:
        notify(draft.subject_id, kind="assisted_confirmation", title=f"帮办申请已撤销：{draft.service_name}",
               body=f"大厅工作人员撤销了为您填写的「{draft.service_name}」申请（办件编号 {draft.application_id}）。",
               data={"application_id": draft.application_id})
    db.session.commit()
    schedule_delivery()


def my_drafts(*, actor: Actor, status: str | None, page: int, page_size: int):
    """The caller's assisted applications, newest first (`status=pending`: those waiting for them)."""
    person = actor.own_person()
    query = select(AssistedApplication).where(AssistedApplication.subject_id == person.subject_id)
    if status == PENDING:
        query = query.where(AssistedApplication.status == PENDING, AssistedApplication.expires_at > utcnow())
    elif status:
        query = query.where(AssistedApplication.status == status)
    return page_of(query, AssistedApplication.created_at.desc(), AssistedApplication.id.desc(), page=page,
                   page_size=page_size)
