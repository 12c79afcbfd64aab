"""补正 and 容缺: the applicant provides materials again after `request_more` (a new round, back to
`submitted`), or hands in a material marked missing while the application is being processed."""
from __future__ import annotations

from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..identity.actors import Actor
from ..timeutil import beijing_today, utcnow
from . import materials
from .deadlines import add_working_days
from .forms import material_kind, service_spec, validate_form
from .models import (ACCEPTED, COMMITMENT, FILE, LICENSE, MISSING, PRODUCED, REQUEST_MORE, STATUS_LABELS, SUBMITTED,
                     Application, ApplicationMaterial)
from .processing import change, own_application
from .service import ApplicationView, notify_applicant, record_event, saved, version_checked


def _entry_of(row: ApplicationMaterial) -> dict | None:
    if row.kind == LICENSE:
        return {"name": row.name, "license_id": row.license_id}
    if row.kind == FILE:
        return {"name": row.name, "file_id": row.file_id}
    if row.kind == COMMITMENT:
        return {"name": row.name, "commitment": True}
    if row.kind == MISSING:
        return {"name": row.name, "missing": True}
    return None  # produced by an earlier bundle member: not the applicant's to give


def _replace(applicant: Actor, app: Application, form: dict, entries: list[dict]) -> list[str]:
    """Check `entries` with the application's other materials and put them in place of the rows of
    the same names (a new round); returns the names replaced. Nothing is written on a 4xx."""
    spec = service_spec(app.service_code)
    materials.check_entries_known(entries, list(spec.materials))
    replaced = [entry["name"] for entry in entries]
    kept = [entry for entry in (_entry_of(row) for row in app.materials if row.name not in replaced) if entry]
    produced = {row.name: None for row in app.materials if row.kind == PRODUCED}
    plan = materials.plan(spec, form, list(entries) + kept, credit=materials.credit_of(applicant), produced=produced)
    plan.entries = [item for item in plan.entries if item[2].name in replaced]
    plan.produced = {}
    materials.use_licenses(applicant, plan)
    for row in [row for row in app.materials if row.name in replaced]:
        app.materials.remove(row)
    db.session.flush()
    materials.add_rows(app, plan, owner_subject_id=applicant.subject_id, today=beijing_today())
    return replaced


def _supplement(applicant: Actor, app: Application, form: dict, entries: list[dict]) -> ApplicationView:
    """容缺: hand in materials marked missing while staff process the application."""
    if form:
        raise ValidationFailed.field("form", "办理中只能补交容缺材料，不能修改表单")
    if not entries:
        raise ValidationFailed.field("materials", "请提交需要补交的容缺材料")
    missing = {row.name for row in app.materials if row.kind == MISSING}
    errors = {}
    for index, entry in enumerate(entries):
        if entry["name"] not in missing:
            errors[f"materials[{index}].name"] = [f"材料「{entry['name']}」不是待补交的容缺材料"]
        elif material_kind(entry) == MISSING:
            errors[f"materials[{index}]"] = [f"请提交材料「{entry['name']}」，不能再次容缺"]
    if errors:
        first = next(iter(errors.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", errors=errors)
    with version_checked():
        names = _replace(applicant, app, app.form, entries)
        app.updated_at = utcnow()
        record_event(app, "supplement", from_status=app.status, to_status=app.status, actor_id=applicant.actor_id,
                     actor_role="applicant", data={"round": app.round, "materials": names})
        notify_applicant(app, "supplement")
        db.session.flush()
    return saved(app, "applicant")


def resubmit(*, actor: Actor, application_id: str, form: dict, materials_: list) -> ApplicationView:
    """补正: the applicant changes form values (merged into the form; null removes a value) and
    provides materials again (replacing those of the same name; every material staff asked for
    must be among them); a new round starts, back to `submitted`, the deadline restarts."""
    app, applicant = own_application(actor, application_id)
    if app.is_bundle:
        raise Conflict("请对需要补正的子项分别补正")
    if app.status in (SUBMITTED, ACCEPTED):
        return _supplement(applicant, app, form, materials_)
    if app.status != REQUEST_MORE:
        raise Conflict(f"办件当前状态为「{STATUS_LABELS[app.status]}」，不能补正", extra={"application_status": app.status})
    spec = service_spec(app.service_code)
    current = app.form
    merged = {k: v for k, v in {**current, **form}.items() if v is not None}
    known = {name: (value, "application") for name, value in current.items()}
    clean = validate_form(spec.fields, merged, known=known, applicant=applicant)
    requested = [row.name for row in app.materials if row.requested]
    given = {entry["name"]: (index, entry) for index, entry in enumerate(materials_)}
    absent = [name for name in requested if name not in given]
    if absent:
        raise ValidationFailed.field("materials", "请重新提供以下材料：" + "、".join(absent))
    again = [f"materials[{given[name][0]}]" for name in requested if material_kind(given[name][1]) == MISSING]
    if again:
        raise ValidationFailed("要求补正的材料须提交，不能再次容缺", errors={key: ["须提交该材料，不能再次容缺"] for key in again})
    app.set_form(clean, {f.name: f.type for f in spec.fields})
    with version_checked():
        app.round = (app.round or 1) + 1
        names = _replace(applicant, app, clean, materials_)
        for row in app.materials:
            row.requested = False
        app.submitted_at = utcnow()
        app.deadline = add_working_days(beijing_today(), app.promised_limit_days or 0)
        change(app, "resubmit", actor_id=applicant.actor_id, actor_role="applicant",
               data={"round": app.round, "changed_fields": sorted(form), "materials": names})
        notify_applicant(app, "resubmit")
        db.session.flush()
    return saved(app, "applicant")
