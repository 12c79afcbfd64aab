"""Materials of an application: licenses from the wallet (verified, logged, and held by the person
the form names), uploaded files (the applicant's own, used by nobody else), commitments (告知承诺),
容缺 with a due date, and inside a bundle the licenses an earlier member produces.

`plan` checks a request's entries without writing; `use_licenses` verifies the licenses (an
access-log entry each); `add_rows` writes the rows and marks the files attached, so that the
files are kept and the handling staff may read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask import current_app
from sqlalchemy import select

from ..errors import Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..files.service import attach
from ..identity import registries
from ..identity.actors import Actor
from ..identity.identifiers import IdentifierError, gender_of
from ..identity.persons import credit_class
from ..timeutil import utcnow
from ..wallet import service as wallet
from .deadlines import add_working_days
from .forms import MaterialSpec, ServiceSpec, check_material_entries, material_kind
from .models import (COMMITMENT, COMMITTED, FILE, LICENSE, MISSING, PENDING, PRODUCED, VERIFIED, Application,
                     ApplicationMaterial)

INITIAL_REVIEW = {LICENSE: VERIFIED, COMMITMENT: COMMITTED, FILE: PENDING, MISSING: MISSING, PRODUCED: PENDING}
# a material named for a parent must be that parent's: (name prefix, gender, form field naming them)
PARENT_ROLES = (("母亲", "女", "mother_id_number"), ("父亲", "男", "father_id_number"))


@dataclass
class Plan:
    """One application to create or change: its service, clean form and material entries."""

    spec: ServiceSpec
    form: dict
    entries: list  # [(index in the request, entry, MaterialSpec)]
    produced: dict = field(default_factory=dict)  # material name -> the bundle member (ServiceSpec) producing it
    uses: dict = field(default_factory=dict)  # material name -> the wallet's answer


# ---- the wallet and the credit registry


def wallet_licenses(actor: Actor) -> list[dict]:
    """The caller's valid licenses with their field values, newest first ([] when the wallet
    cannot be opened with this token, e.g. an agent without licenses:read)."""
    try:
        rows = wallet.holder_licenses(actor)  # usable ones only (valid today)
    except (Forbidden, NotFound):
        return []
    return [{"license_id": row.license_id, "license_type": row.license_type_code, "fields": row.field_values}
            for row in rows]


def credit_of(applicant: Actor) -> str:
    try:
        return credit_class(applicant.subject_number)
    except IdentifierError:
        return registries.DEFAULT_CREDIT_CLASS


# ---- checks without writes


def check_entries_known(entries: list[dict], materials: list[MaterialSpec]) -> None:
    """Every entry names a material of the application, each at most once (422 naming the entry)."""
    names = {m.name for m in materials}
    errors, seen = {}, set()
    for index, entry in enumerate(entries):
        if entry["name"] not in names:
            errors[f"materials[{index}].name"] = [f"「{entry['name']}」不是该申请的材料"]
        elif entry["name"] in seen:
            errors[f"materials[{index}].name"] = [f"材料「{entry['name']}」重复提交"]
        seen.add(entry["name"])
    if errors:
        first = next(iter(errors.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", errors=errors)


def plan(spec: ServiceSpec, form: dict, entries: list[dict], *, credit: str, label: str | None = None,
         produced: dict | None = None) -> Plan:
    """Pick the form values and material entries of one service and check its material rules;
    materials an earlier bundle member produces (`produced`: name -> member) need no entry."""
    produced = {name: member for name, member in (produced or {}).items() if spec.material(name) is not None}
    names = {m.name for m in spec.materials} - set(produced)
    own = [entry for entry in entries if entry["name"] in names]
    specs = [m for m in spec.materials if m.name not in produced]
    check_material_entries(specs, own, credit_class=credit, service_label=label)
    indexed = [(entries.index(entry), entry, spec.material(entry["name"])) for entry in own]
    values = {f.name: form[f.name] for f in spec.fields if f.name in form}
    return Plan(spec=spec, form=values, entries=indexed, produced=produced)


def fits_role(material_name: str, id_number: str | None) -> bool:
    """Whether the person with this ID number may be the one a parent's material names (by gender)."""
    for prefix, gender, _ in PARENT_ROLES:
        if material_name.startswith(prefix) and id_number:
            try:
                return gender_of(id_number) == gender
            except IdentifierError:
                return False
    return True


def _expected_holder(applicant: Actor, material: MaterialSpec, form: dict, error_key: str) -> str | None:
    """The ID number the license must be held by: the parent a parent's material names (from the
    form, else the applicant, who must then be that parent), else the applicant."""
    if applicant.is_company:
        return None  # the company's wallet holds only the company's licenses
    own = form.get("id_number") or applicant.person.id_number
    for prefix, _gender, form_field in PARENT_ROLES:
        if material.name.startswith(prefix):
            if form.get(form_field):
                return form[form_field]
            if not fits_role(material.name, own):
                raise ValidationFailed.field(error_key, f"「{material.name}」须为{prefix}本人的证照，"
                                                        f"请由{prefix}本人提交，或上传该证件的文件")
    return own


def _use_license(applicant: Actor, entry: dict, plan_: Plan, material: MaterialSpec, error_key: str) -> dict:
    try:
        used = wallet.use_license_as_material(principal=applicant, license_id=entry["license_id"],
                                              service_code=plan_.spec.code,
                                              purpose=f"办理「{plan_.spec.name}」：{material.name}")
    except wallet.LicenseUnusable as exc:
        raise ValidationFailed.field(error_key, exc.detail) from None
    if used.get("license_type") != material.license_type_code:
        raise ValidationFailed.field(error_key, f"该证照不能作为材料「{material.name}」")
    holder = _expected_holder(applicant, material, plan_.form, error_key)
    if holder is not None and "id_number" in (used.get("verified_fields") or {}) \
            and not wallet.license_belongs_to(entry["license_id"], id_number=holder):
        raise ValidationFailed.field(error_key, f"证照的持证人不是表单所填的申请人，不能作为材料「{material.name}」")
    return used


def use_licenses(applicant: Actor, plan_: Plan) -> None:
    """Verify each license entry (an access-log entry each, in the caller's transaction)."""
    for index, entry, material in plan_.entries:
        if material_kind(entry) == LICENSE:
            plan_.uses[material.name] = _use_license(applicant, entry, plan_, material,
                                                     f"materials[{index}].license_id")


def _used_by_others(file_ids: list[str], subject_id: str) -> set[str]:
    if not file_ids:
        return set()
    return set(db.session.scalars(select(ApplicationMaterial.file_id).join(Application).where(
        ApplicationMaterial.file_id.in_(file_ids), Application.subject_id != subject_id)))


# ---- writing


def _new_row(app: Application, plan_: Plan, material: MaterialSpec, kind: str) -> ApplicationMaterial:
    positions = {m.name: i for i, m in enumerate(plan_.spec.materials)}
    row = ApplicationMaterial(position=positions[material.name], name=material.name, required=material.required,
                              kind=kind, round=app.round or 1, review=INITIAL_REVIEW[kind], created_at=utcnow())
    app.materials.append(row)  # sets row.application (the encryption context of verified fields)
    return row


def add_rows(app: Application, plan_: Plan, *, owner_subject_id: str, today: date,
             siblings: dict | None = None) -> None:
    """Add the plan's materials (in the service's order) and mark its files attached to `app`;
    a file that is not the owner's, is gone, or is used in another person's application is 422
    naming `materials[i].file_id` (nothing is written: the caller rolls back). 容缺 materials are
    due APPLICATION_MISSING_MATERIAL_DAYS working days after `today`."""
    now = utcnow()
    due_days = int(current_app.config.get("APPLICATION_MISSING_MATERIAL_DAYS", 5))
    files = [(index, entry["file_id"]) for index, entry, _ in plan_.entries if material_kind(entry) == FILE]
    taken = _used_by_others([file_id for _, file_id in files], app.subject_id)
    for index, file_id in files:
        key = f"materials[{index}].file_id"
        if file_id in taken:
            raise ValidationFailed.field(key, "该文件已用于他人的申请，请上传您自己的文件")
        attach(file_ids=[file_id], owner_subject_id=owner_subject_id, reference=f"application:{app.application_id}",
               field=key)
    order = {m.name: i for i, m in enumerate(plan_.spec.materials)}
    for _, entry, material in sorted(plan_.entries, key=lambda item: order[item[2].name]):
        row = _new_row(app, plan_, material, material_kind(entry))
        if row.kind == LICENSE:
            used = plan_.uses[material.name]
            row.license_id, row.license_type = used["license_id"], used["license_type"]
            row.license_identifier = used.get("identifier")
            row.verified_fields = used.get("verified_fields") or {}
            row.verified_at = now
        elif row.kind == FILE:
            row.file_id = entry["file_id"]
        elif row.kind == MISSING:
            row.due_date = add_working_days(today, due_days)
    for name, member in plan_.produced.items():
        row = _new_row(app, plan_, plan_.spec.material(name), PRODUCED)
        row.license_type = member.produces_license
        row.produced_by = (siblings or {}).get(member.code)
    app.materials.sort(key=lambda row: row.position)
