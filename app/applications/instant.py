"""秒批 (instant approval): only when a machine has checked everything a person would.

Every required material must be a license from the applicant's wallet whose holder and identity
fields match the form, or a commitment the applicant's credit class allows for 秒批 (诚信守法);
the form's name and ID number must match the population registry; no material may be an
uploaded file (a person looks at it first) or handed in later (容缺); and the license the
service produces must be fully known from the registries, the form and the department (see
`licenses`). Otherwise the application goes to staff, and the timeline says why.
"""
from __future__ import annotations

from ..extensions import db
from ..identity import registries
from ..identity.actors import Actor
from ..wallet.models import LicenseType
from .forms import SEVERE_DISCREDIT, ServiceSpec, material_kind
from .licenses import FORM_FIELDS, WALLET_IMPLIED, Holder, holder_of, try_issue, unknown_without_staff
from .materials import Plan
from .models import APPROVED, COMMITMENT, FILE, LICENSE, SUBMITTED, Application
from .service import record_event

INSTANT_COMMITMENT_CLASSES = ("诚信守法",)  # a commitment stands in for a check only for these
ASSIGNED_FIELDS = frozenset({"issuing_authority", "registration_authority", "issue_date", "license_number",
                             "card_number", "establish_date", "endorsement_valid_until"})
HOLDER_FIELDS = {"person": frozenset({"name"}), "legal": frozenset({"entity_name", "legal_representative"})}


def possible(spec: ServiceSpec) -> bool:
    """Whether 秒批 can ever apply to the service: the catalogue allows it, every required material
    can be a license or a commitment, and the form names every field of the license it produces."""
    if not spec.instant_approval:
        return False
    if any(m.required and not (m.license_type_code or m.commitment_allowed) for m in spec.materials):
        return False
    if not spec.produces_license:
        return True
    ltype = db.session.get(LicenseType, spec.produces_license)
    if ltype is None:
        return False
    form_names = {f.name for f in spec.fields}
    known = set(WALLET_IMPLIED) | ASSIGNED_FIELDS | HOLDER_FIELDS.get(ltype.holder_type, frozenset())
    return all(name in known or name in form_names or form_names & set(FORM_FIELDS.get(name, ()))
               for name in ltype.field_names)


def _identity_matches(app: Application) -> bool:
    form = app.form
    if app.subject_type != "person" or not form.get("id_number") or not form.get("name"):
        return True
    return registries.population().matches(id_number=form["id_number"], name=form["name"])


def _license_mismatch(plan: Plan, form: dict) -> str | None:
    for material in plan.uses:
        verified = plan.uses[material].get("verified_fields") or {}
        for name in ("name", "id_number"):
            if name in verified and form.get(name) and not registries.same_name(str(verified[name]), str(form[name])):
                return f"证照「{material}」的{'姓名' if name == 'name' else '证件号码'}与表单不一致，转人工审核"
    return None


def _reason_against(app: Application, spec: ServiceSpec, plan: Plan, credit: str, holder: Holder | None) -> str | None:
    """Why 秒批 does not apply (None: it does), before anything is issued."""
    kinds = {material.name: material_kind(entry) for _, entry, material in plan.entries}
    if any(kind == FILE for kind in kinds.values()):
        return "材料中有上传的文件，须由工作人员审核"
    if credit == SEVERE_DISCREDIT:
        return "申请人存在严重失信记录，转人工审核"
    for material in spec.materials:
        kind = kinds.get(material.name)
        if material.name in plan.produced and material.required:
            return f"材料「{material.name}」待一件事中的前序事项办结后提供，转人工办理"
        if not material.required and kind is None:
            continue
        if kind == COMMITMENT and credit not in INSTANT_COMMITMENT_CLASSES:
            return f"申请人信用等级为{credit}，告知承诺的材料须人工审核"
        if kind not in (LICENSE, COMMITMENT):
            return "存在容缺后补的必需材料，转人工审核"
    if not _identity_matches(app):
        return "申请人姓名、证件号码与人口库登记信息不一致，转人工审核"
    mismatch = _license_mismatch(plan, app.form)
    if mismatch:
        return mismatch
    unknown = unknown_without_staff(app, spec, holder)
    if unknown:
        return "电子证照的以下字段须由工作人员根据部门业务系统核定：" + "、".join(unknown)
    return None


def finish(applicant: Actor, app: Application, spec: ServiceSpec, plan: Plan, credit: str) -> None:
    """Record the submission, then approve at once (issuing the service's license) when 秒批 applies."""
    record_event(app, "submit", from_status=None, to_status=SUBMITTED, actor_id=applicant.actor_id,
                 actor_role="applicant", data={"round": 1, "deadline": app.deadline.isoformat() if app.deadline else None})
    if not spec.instant_approval:
        return
    holder = holder_of(app, applicant)
    reason = _reason_against(app, spec, plan, credit, holder)
    license_id = None
    if reason is None:
        license_id, failure = try_issue(app, spec, holder)
        if failure:
            reason = f"电子证照未能自动签发（{failure}），转人工办理"
    if reason:
        record_event(app, "instant_declined", from_status=SUBMITTED, to_status=SUBMITTED, actor_id=None,
                     actor_role="system", comment=reason)
        return
    app.move_to(APPROVED)
    app.instant, app.issued_license_id = True, license_id
    record_event(app, "instant_approve", from_status=SUBMITTED, to_status=APPROVED, actor_id=None,
                 actor_role="system", comment="秒批：材料齐全、核验通过，系统自动办结",
                 data={"license_id": license_id} if license_id else {})
