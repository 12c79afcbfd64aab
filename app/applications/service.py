"""Applications (办件): forms with prefill, submission with 免证办 / 告知承诺 / 容缺 materials,
秒批 with license issuance, 一件事 bundles, the processing state machine, deadlines and the
hall's work lists.

State machine (illegal transitions are 409):

    submitted --accept--> accepted --approve--> approved
    submitted|accepted --reject--> rejected
    submitted|accepted --request_more--> request_more --resubmit (applicant)--> submitted
    submitted|request_more --withdraw (applicant)--> withdrawn

A bundle parent is `submitted` until every child is final, then `approved` when all
children were approved, `withdrawn` when all were withdrawn, else `rejected`.

Every change is one transaction: the application row (optimistic lock on `version`), a
timeline event, an inbox entry and channel notices in the outbox; notices are delivered
after the commit. Deadlines: `promised_limit_days` working days after the Beijing date of
(re)submission; the clock stops while the applicant supplements (request_more).
Functions are keyword-only, raise app.errors exceptions and own their transactions.
"""
from __future__ import annotations

import logging
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from ..errors import ApiError, Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..identity import service as identity
from ..identity.identifiers import IdentifierError, gender_of
from ..notifications.service import notify, schedule_delivery
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import BEIJING, as_aware, beijing_today, utcnow
from . import bundles as bundle_rules
from . import idempotency
from .deadlines import add_working_days
from .forms import (SEVERE_DISCREDIT, Applicant, MaterialSpec, ServiceSpec, check_material_entries,
                    known_values, material_kind, prefilled_fields, service_spec, validate_form)
from .models import (ACCEPTED, APPROVED, ATTACHMENT, COMMITMENT, FINAL_STATUSES, LICENSE, MISSING, REJECTED,
                     REQUEST_MORE, RUNNING_STATUSES, STATUS_LABELS, STATUSES, SUBMITTED, WITHDRAWN, Application,
                     ApplicationEvent, ApplicationMaterial)

logger = logging.getLogger("app.applications")

SUBMIT_SCOPE, READ_SCOPE = "applications:submit", "applications:read"
STAFF_ACTIONS = ("accept", "approve", "reject", "request_more")
TRANSITIONS = {
    "accept": {SUBMITTED: ACCEPTED},
    "approve": {ACCEPTED: APPROVED},
    "reject": {SUBMITTED: REJECTED, ACCEPTED: REJECTED},
    "request_more": {SUBMITTED: REQUEST_MORE, ACCEPTED: REQUEST_MORE},
    "resubmit": {REQUEST_MORE: SUBMITTED},
    "withdraw": {SUBMITTED: WITHDRAWN, REQUEST_MORE: WITHDRAWN},
}
ACTION_LABELS = {"accept": "受理", "approve": "办结（准予）", "reject": "不予办理", "request_more": "要求补正",
                 "resubmit": "补正后重新提交", "withdraw": "撤回"}
NOTICES = {
    "submit": ("申请已提交", "您的「{name}」申请已提交，办件编号 {id}，承诺办结日期 {deadline}。"),
    "instant": ("申请已秒批办结", "您的「{name}」申请材料齐全、核验通过，已即时办结。"),
    "accept": ("申请已受理", "您的「{name}」申请已受理，承诺办结日期 {deadline}。"),
    "approve": ("申请已办结", "您的「{name}」申请已办结（准予）。"),
    "reject": ("申请未通过", "您的「{name}」申请未予通过：{comment}"),
    "request_more": ("申请需要补正", "您的「{name}」申请需要补正：{comment}"),
    "resubmit": ("补正材料已提交", "您的「{name}」补正材料已提交，承诺办结日期 {deadline}。"),
    "withdraw": ("申请已撤回", "您的「{name}」申请已撤回。"),
    "bundle": ("一件事申请已提交", "您的「{name}」申请已提交，共 {count} 个子项，办件编号 {id}。"),
    "bundle_final": ("一件事已办结", "您的「{name}」各子项均已办结，结果：{status}。"),
}
CONFLICT_STALE = "办件已被他人更新，请刷新后重试"
APPLICATION_ID = re.compile(r"ap_[0-9a-f]{20}")


# ---- results handed to the views


@dataclass
class ApplicationView:
    """One application as a caller may see it (`viewer` applicant or staff)."""

    application: Application
    viewer: str = "applicant"
    reveal: bool = False
    children: list = field(default_factory=list)


@dataclass
class Submission:
    """What POST /applications answers: the body (replayed verbatim) and whether it is a replay."""

    body: dict
    application_id: str
    replayed: bool = False


# ---- small helpers


def _new_id() -> str:
    return "ap_" + secrets.token_hex(10)


def _today() -> date:
    return beijing_today()


def _beijing_date(value) -> date | None:
    value = as_aware(value)
    return value.astimezone(BEIJING).date() if value else None


def _missing_due_days() -> int:
    return int(current_app.config.get("APPLICATION_MISSING_MATERIAL_DAYS", 5))


def _load(application_id: str, *, fresh: bool = False) -> Application | None:
    if not isinstance(application_id, str) or not APPLICATION_ID.fullmatch(application_id):
        return None
    query = select(Application).where(Application.application_id == application_id)
    if fresh:
        query = query.execution_options(populate_existing=True)
    return db.session.scalar(query)


@contextmanager
def _version_checked():
    """A concurrent change of the same application (its version moved on) is 409."""
    try:
        yield
    except StaleDataError:
        db.session.rollback()
        raise Conflict(CONFLICT_STALE) from None


def _commit() -> None:
    """Commit; a concurrent change of the same application (version moved on) is 409."""
    with _version_checked():
        db.session.commit()


def _saved(app: Application, role: str) -> ApplicationView:
    """Commit a change, deliver its notices and answer as `role` sees the application."""
    _commit()
    schedule_delivery()
    return _view(app, role)


def _event(app: Application, action: str, *, from_status: str | None, to_status: str | None, actor_id: str | None,
           actor_role: str, comment: str | None = None, data: dict | None = None) -> None:
    db.session.add(ApplicationEvent(application=app, at=utcnow(), action=action, from_status=from_status,
                                    to_status=to_status, actor_id=actor_id, actor_role=actor_role,
                                    comment=comment, data=data or {}))


def _notify(app: Application, notice: str, **extra) -> None:
    title, template = NOTICES[notice]
    values = {"name": app.service_name, "id": app.application_id,
              "deadline": app.deadline.isoformat() if app.deadline else "—", "comment": "", **extra}
    notify(app.subject_id, kind="application_status", title=f"{title}：{app.service_name}",
           body=template.format(**values),
           data={"application_id": app.application_id, "status": app.status, "service_name": app.service_name},
           template="application_status")


# ---- who is asking


def applicant_for(principal: Principal, *, scope: str = SUBMIT_SCOPE) -> Applicant:
    """The applicant behind a token: the person, or the company with the person acting for it.

    Company tokens need `scope` (`applications:submit` to apply, `applications:read` or
    `applications:submit` to read); client tokens cannot apply (403).
    """
    if principal.subject_type == "client":
        raise Forbidden("办件须以个人或企业身份办理")
    if principal.subject_type == "legal":
        wanted = {scope} if scope != READ_SCOPE else {READ_SCOPE, SUBMIT_SCOPE}
        if not wanted & set(principal.scopes):
            raise Forbidden(f"您没有代表该企业办理此操作的授权（{scope}）")
        enterprise = identity.enterprise_for(principal)
        person = identity.person_by_subject_id(principal.actor_id)
        if enterprise is None or person is None or not person.active:
            raise NotFound("企业不存在或您已无权代表该企业")
        live = identity.agent_scopes(person, enterprise.credit_code)
        if live is None or not wanted & live:
            raise Forbidden(f"您没有代表该企业办理此操作的授权（{scope}）")
        return Applicant(subject_id=enterprise.subject_id, subject_type="legal", actor_id=person.subject_id,
                         person=person, enterprise=enterprise)
    person = identity.acting_person(principal)
    return Applicant(subject_id=person.subject_id, subject_type="person", actor_id=person.subject_id, person=person)


def staff_role(principal: Principal, hall_code: str) -> str | None:
    """hall_admin / hall_staff when the caller works at `hall_code`; a city's hall_admin also
    acts for the county halls of that city."""
    halls = principal.halls
    if hall_code in halls:
        return halls[hall_code]
    parent = bundle_rules.hall_parent(hall_code)
    if parent and halls.get(parent) == "hall_admin":
        return "hall_admin"
    return None


def _is_applicant(principal: Principal, app: Application) -> bool:
    return principal.subject_id == app.subject_id


def _readable(principal: Principal, app: Application | None) -> str:
    """'applicant' or 'staff'; 404 for anyone else (existence is not revealed)."""
    if app is not None:
        if _is_applicant(principal, app):
            applicant_for(principal, scope=READ_SCOPE)
            return "applicant"
        if principal.subject_type == "person" and staff_role(principal, app.hall_code):
            return "staff"
    raise NotFound("办件不存在")


# ---- the wallet


def _wallet_licenses(principal: Principal) -> list[dict]:
    """The caller's valid licenses with their field values, newest first ([] when the wallet
    cannot be opened with this token, e.g. an agent without licenses:read)."""
    from ..wallet import service as wallet
    try:
        rows = wallet.holder_licenses(principal)  # usable ones only (valid today)
    except (Forbidden, NotFound):
        return []
    return [{"license_id": row.license_id, "license_type": row.license_type_code, "fields": row.field_values}
            for row in rows]


def _use_license(principal: Principal, *, license_id: str, spec: ServiceSpec, material: MaterialSpec,
                 error_key: str) -> dict:
    from ..wallet import service as wallet
    try:
        used = wallet.use_license_as_material(principal=principal, license_id=license_id, service_code=spec.code,
                                              purpose=f"办理「{spec.name}」：{material.name}")
    except wallet.LicenseUnusable as exc:
        raise ValidationFailed.field(error_key, exc.detail) from None
    if used.get("license_type") != material.license_type_code:
        raise ValidationFailed.field(error_key, f"该证照不能作为材料「{material.name}」")
    return used


def _credit_class(applicant: Applicant) -> str:
    try:
        return identity.credit_class(applicant.credit_key)
    except IdentifierError:
        return "诚信守法"


# ---- forms


def _satisfied_by(material: MaterialSpec, licenses: list[dict], credit_class: str):
    if material.license_type_code:
        for item in licenses:
            if item["license_type"] == material.license_type_code:
                return {"license_id": item["license_id"]}
    if material.commitment_allowed and credit_class != SEVERE_DISCREDIT:
        return "commitment"
    return None


def _form_body(principal: Principal, applicant: Applicant, fields_, materials, *, reveal: bool) -> tuple[list, list]:
    licenses = _wallet_licenses(principal)
    known = known_values(fields_, applicant, licenses)
    credit = _credit_class(applicant)
    if reveal:
        _audit_reveal(applicant, "form_prefill")
    return (prefilled_fields(fields_, known, reveal=reveal),
            [{"name": m.name, "required": m.required, "license_type_code": m.license_type_code,
              "commitment_allowed": m.commitment_allowed and credit != SEVERE_DISCREDIT,
              "missing_allowed": not m.core, "satisfied_by": _satisfied_by(m, licenses, credit)}
             for m in materials])


def _audit_reveal(applicant: Applicant, what: str) -> None:
    if applicant.subject_type != "person":
        raise Forbidden("完整的证件号码和手机号码仅向本人显示")
    audit.record("pii.revealed", subject_id=applicant.subject_id, actor=applicant.actor_id,
                 details={"fields": ["id_number", "phone"], "where": what})
    db.session.commit()


def _check_audience(audience: str, applicant: Applicant, key: str = "service_code") -> None:
    if audience == applicant.subject_type:
        return
    if audience == "legal":
        raise ValidationFailed.field(key, "该事项面向法人和其他组织，请以企业身份（企业令牌）申请")
    raise ValidationFailed.field(key, "该事项面向个人，请以个人身份申请")


def service_form(*, principal: Principal, service_code: str, reveal: bool = False) -> dict:
    """The service's form prefilled for the caller, and how each material can be satisfied."""
    spec = service_spec(service_code)
    applicant = applicant_for(principal, scope=SUBMIT_SCOPE)
    fields_, materials = _form_body(principal, applicant, spec.fields, spec.materials, reveal=reveal)
    return {"service_code": spec.code, "service_name": spec.name, "hall_code": spec.hall_code,
            "audience": spec.audience, "fields": fields_, "materials": materials,
            "instant_approval": spec.instant_approval, "promised_limit_days": spec.promised_limit_days}


def _region_of(applicant: Applicant) -> str | None:
    if applicant.enterprise is not None:
        return applicant.enterprise.credit_code[2:8]
    return applicant.person.id_number[:6]


def _any_member_specs(bundle) -> list[ServiceSpec]:
    from ..catalogue.models import Service
    specs = []
    for member in bundle.members:
        row = db.session.scalar(select(Service).where(Service.base_code == member["base_code"])
                                .order_by(Service.code).limit(1))
        if row is None:
            raise NotFound(f"一件事的子项「{member.get('name')}」暂未上线")
        specs.append(ServiceSpec.of(row))
    return specs


def bundle_form(*, principal: Principal, bundle_code: str, hall_code: str | None = None,
                reveal: bool = False) -> dict:
    """The union of the member forms (fields by name, materials by name), prefilled."""
    bundle = bundle_rules.bundle_spec(bundle_code)
    applicant = applicant_for(principal, scope=SUBMIT_SCOPE)
    try:
        parent_hall, specs = bundle_rules.resolve_member_services(bundle, hall_code=hall_code,
                                                                 region=_region_of(applicant))
    except ValidationFailed:
        if hall_code:
            raise
        parent_hall, specs = None, _any_member_specs(bundle)
    fields_, materials = _form_body(principal, applicant, bundle_rules.union_fields(specs),
                                    bundle_rules.union_materials(specs), reveal=reveal)
    return {"bundle_code": bundle.code, "bundle_name": bundle.name, "audience": bundle.audience,
            "hall_code": parent_hall, "fields": fields_, "materials": materials,
            "instant_approval": all(spec.instant_approval for spec in specs),
            "members": [{"service_code": spec.code, "service_name": spec.name, "hall_code": spec.hall_code}
                        for spec in specs]}


# ---- submission


@dataclass
class _Child:
    """One application to create: its service, clean form and material entries."""

    spec: ServiceSpec
    form: dict
    entries: list  # [(index in the request, entry, MaterialSpec)]
    uses: dict = field(default_factory=dict)  # material name -> wallet answer


def _plan_child(spec: ServiceSpec, form: dict, entries: list[dict], *, credit: str, label: str | None = None) -> _Child:
    """Pick the form values and material entries of one service and check its rules (no writes)."""
    names = {m.name for m in spec.materials}
    own = [entry for entry in entries if entry.get("name") in names]
    check_material_entries(spec.materials, own, credit_class=credit, service_label=label)
    indexed = [(entries.index(entry), entry, spec.material(entry["name"])) for entry in own]
    values = {f.name: form[f.name] for f in spec.fields if f.name in form}
    missing = [f"form.{f.name}" for f in spec.fields if f.required and f.name not in values]
    if missing:
        raise ValidationFailed("表单缺少必填项", errors={key: ["缺少必填项"] for key in missing})
    return _Child(spec=spec, form=values, entries=indexed)


def _check_entries_known(entries: list[dict], materials: list[MaterialSpec]) -> None:
    names = {m.name for m in materials}
    errors, seen = {}, set()
    for index, entry in enumerate(entries):
        if entry.get("name") not in names:
            errors[f"materials[{index}].name"] = [f"「{entry.get('name')}」不是该申请的材料"]
        elif entry["name"] in seen:
            errors[f"materials[{index}].name"] = [f"材料「{entry['name']}」重复提交"]
        seen.add(entry.get("name"))
    if errors:
        first = next(iter(errors.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", errors=errors)


def _use_licenses(principal: Principal, child: _Child) -> None:
    for index, entry, material in child.entries:
        if material_kind(entry) == LICENSE:
            child.uses[material.name] = _use_license(principal, license_id=entry["license_id"], spec=child.spec,
                                                     material=material, error_key=f"materials[{index}].license_id")


def _instant_verdict(child: _Child, credit: str) -> tuple[bool, str | None]:
    """Whether 秒批 applies: the service allows it, every required material is satisfied
    (license, commitment or attachment: nothing 容缺) and the applicant is not 严重失信."""
    if not child.spec.instant_approval:
        return False, None
    if credit == SEVERE_DISCREDIT:
        return False, "申请人存在严重失信记录，转人工审核"
    if any(material_kind(entry) == MISSING for _, entry, material in child.entries if material.required):
        return False, "存在容缺后补的必需材料，转人工审核"
    return True, None


def _build(applicant: Applicant, spec: ServiceSpec, form: dict, *, hall_code: str | None = None,
           parent: Application | None = None, bundle_code: str | None = None) -> Application:
    now = utcnow()
    app = Application(application_id=_new_id(), subject_id=applicant.subject_id,
                      subject_type=applicant.subject_type, actor_id=applicant.actor_id,
                      service_code=spec.code, base_code=spec.base_code, service_name=spec.name,
                      department=spec.department, bundle_code=bundle_code, parent=parent,
                      hall_code=hall_code or spec.hall_code, status=SUBMITTED, instant=False,
                      promised_limit_days=spec.promised_limit_days,
                      deadline=add_working_days(_today(), spec.promised_limit_days),
                      created_at=now, submitted_at=now, updated_at=now)
    app.applicant_name = applicant.enterprise.name if applicant.enterprise is not None else applicant.person.name
    app.set_form(form, {f.name: f.type for f in spec.fields})
    db.session.add(app)
    return app


def _attach_materials(app: Application, child: _Child) -> None:
    now, today = utcnow(), _today()
    positions = {m.name: i for i, m in enumerate(child.spec.materials)}
    for _, entry, material in child.entries:
        row = ApplicationMaterial(position=positions[material.name], name=material.name,
                                  required=material.required, kind=material_kind(entry), created_at=now)
        app.materials.append(row)  # sets row.application (the encryption context of verified fields)
        if row.kind == LICENSE:
            used = child.uses[material.name]
            row.license_id, row.license_type = used["license_id"], used["license_type"]
            row.license_identifier = used.get("identifier")
            row.verified_fields = used.get("verified_fields") or {}
            row.verified_at = now
        elif row.kind == MISSING:
            row.due_date = add_working_days(today, _missing_due_days())
        elif row.kind == ATTACHMENT:
            row.attachment = entry.get("attachment")


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _license_fields(license_type, *, applicant: Applicant, app: Application, spec: ServiceSpec,
                    valid_until: date) -> dict:
    form, profile, today = app.form, applicant.profile(), _today()
    serial = app.application_id[3:15].upper()
    derived = {
        "residence_address": form.get("address"), "employer": form.get("employer_name"),
        "issuing_authority": spec.department, "issue_date": today.isoformat(),
        "license_number": f"{spec.hall_code}{today:%Y}{serial}", "card_number": f"HC{spec.hall_code}{serial}",
        "valid_from": today.isoformat(), "valid_until": valid_until.isoformat(),
        "endorsement_valid_until": valid_until.isoformat(), "entity_name": profile.get("company_name"),
    }
    if not derived["employer"]:
        derived["employer"] = "未登记"
    if applicant.enterprise is None:
        try:
            derived["gender"] = gender_of(applicant.person.id_number)
        except IdentifierError:
            pass
    values = {}
    for item in license_type.fields:
        name = item["name"]
        value = form.get(name) or profile.get(name) or derived.get(name)
        if value not in (None, ""):
            values[name] = value
    return values


def _prepare_issuer(specs: list[ServiceSpec]) -> None:
    """Create the platform issuer's signing key before our own writes (creating it commits)."""
    if any(spec.instant_approval and spec.produces_license for spec in specs):
        from ..wallet import service as wallet
        wallet.prepare_platform_issuer()


def _issue_license(applicant: Applicant, app: Application, spec: ServiceSpec) -> str | None:
    """Issue the license an instantly approved service produces into the applicant's wallet
    (by the platform issuer). None when it could not be issued (the caller falls back to
    manual processing); nothing of a failed attempt stays (savepoint)."""
    from ..wallet import service as wallet
    from ..wallet.models import LicenseType
    license_type = db.session.get(LicenseType, spec.produces_license)
    if license_type is None or license_type.holder_type != applicant.subject_type:
        return None
    today = _today()
    valid_until = _years_after(today, license_type.validity_years or 1) - timedelta(days=1)
    holder = ({"holder_credit_code": applicant.enterprise.credit_code} if applicant.enterprise is not None
              else {"holder_id_number": applicant.person.id_number})
    fields_ = _license_fields(license_type, applicant=applicant, app=app, spec=spec, valid_until=valid_until)
    savepoint = db.session.begin_nested()
    try:
        issued = wallet.issue_platform_license(license_type=license_type.code, fields=fields_, valid_from=today,
                                               valid_until=valid_until, **holder)
        savepoint.commit()
    except ApiError as exc:
        savepoint.rollback()
        logger.warning("instant approval of %s: license not issued (%s)", app.application_id, exc.detail)
        return None
    return issued.license_id


def _finish_child(applicant: Applicant, app: Application, child: _Child, credit: str) -> None:
    """Submission event, then 秒批 when it applies."""
    _event(app, "submit", from_status=None, to_status=SUBMITTED, actor_id=applicant.actor_id, actor_role="applicant",
           data={"deadline": app.deadline.isoformat() if app.deadline else None})
    instant, reason = _instant_verdict(child, credit)
    if not instant:
        if reason:
            _event(app, "instant_declined", from_status=SUBMITTED, to_status=SUBMITTED, actor_id=None,
                   actor_role="system", comment=reason)
        return
    license_id = None
    if child.spec.produces_license:
        db.session.flush()
        license_id = _issue_license(applicant, app, child.spec)
        if license_id is None:
            _event(app, "instant_declined", from_status=SUBMITTED, to_status=SUBMITTED, actor_id=None,
                   actor_role="system", comment="电子证照未能自动签发，转人工办理")
            return
    app.status, app.instant, app.issued_license_id = APPROVED, True, license_id
    app.completed_at = app.updated_at = utcnow()
    _event(app, "instant_approve", from_status=SUBMITTED, to_status=APPROVED, actor_id=None, actor_role="system",
           comment="秒批：材料齐全、核验通过，系统自动办结",
           data={"license_id": license_id} if license_id else {})


def _snapshot(app: Application) -> dict:
    from schemas.applications import ApplicationSchema
    db.session.flush()
    return ApplicationSchema().dump(_view(app, "applicant"))


def _view(app: Application, viewer: str, *, reveal: bool = False) -> ApplicationView:
    children = [_view(child, viewer, reveal=reveal) for child in app.children] if app.is_bundle else []
    return ApplicationView(application=app, viewer=viewer, reveal=reveal, children=children)


def _idempotent(principal: Principal, *, key: str, path: str, body: dict, create) -> Submission:
    """Run `create(applicant, reservation)` once per Idempotency-Key (see idempotency.py)."""
    applicant = applicant_for(principal, scope=SUBMIT_SCOPE)
    reservation = idempotency.reserve(subject_id=applicant.subject_id, key=key,
                                      fp=idempotency.fingerprint(path, body))
    if reservation.replay is not None:
        return Submission(body=reservation.replay, application_id=reservation.replay.get("application_id"),
                          replayed=True)
    try:
        app, claim = create(applicant, reservation)
        claim.application_id = app.application_id
        claim.response = _snapshot(app)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        body_ = idempotency.winner_answer(reservation)
        return Submission(body=body_, application_id=body_.get("application_id"), replayed=True)
    except BaseException:
        db.session.rollback()
        idempotency.release(reservation)
        raise
    idempotency.complete(reservation, app.application_id)
    schedule_delivery()
    return Submission(body=claim.response, application_id=app.application_id)


def submit_application(*, principal: Principal, idempotency_key: str, path: str, body: dict) -> Submission:
    """Create one application (201), or replay the answer given to the same Idempotency-Key."""

    def create(applicant: Applicant, reservation):
        spec = service_spec(body["service_code"])
        _check_audience(spec.audience, applicant)
        known = _known_for_submit(principal, applicant, spec.fields, body.get("form") or {})
        form = validate_form(spec.fields, body.get("form") or {}, known=known, applicant=applicant)
        entries = body.get("materials") or []
        credit = _credit_class(applicant)
        _check_entries_known(entries, list(spec.materials))
        child = _plan_child(spec, form, entries, credit=credit)
        _prepare_issuer([spec])
        claim = idempotency.claim(reservation)  # first write: a racing request with this key waits here
        _use_licenses(principal, child)
        app = _build(applicant, spec, form)
        _attach_materials(app, child)
        _finish_child(applicant, app, child, credit)
        _notify(app, "instant" if app.status == APPROVED else "submit")
        return app, claim

    return _idempotent(principal, key=idempotency_key, path=path, body=body, create=create)


def _known_for_submit(principal: Principal, applicant: Applicant, fields_, form: dict) -> dict:
    """Prefill values, looked up only when the form carries a masked value to substitute."""
    if not any(isinstance(v, str) and "*" in v for v in form.values()):
        return {}
    return known_values(fields_, applicant, _wallet_licenses(principal))


def submit_bundle(*, principal: Principal, bundle_code: str, idempotency_key: str, path: str,
                  body: dict) -> Submission:
    """One form for a 一件事: the parent and one child per member at the right hall."""
    bundle = bundle_rules.bundle_spec(bundle_code)

    def create(applicant: Applicant, reservation):
        _check_audience(bundle.audience, applicant, key="bundle_code")
        parent_hall, specs = bundle_rules.resolve_member_services(bundle, hall_code=body.get("hall_code"),
                                                                 region=_region_of(applicant))
        union = bundle_rules.union_fields(specs)
        known = _known_for_submit(principal, applicant, union, body.get("form") or {})
        form = validate_form(union, body.get("form") or {}, known=known, applicant=applicant)
        entries = body.get("materials") or []
        _check_entries_known(entries, bundle_rules.union_materials(specs))
        credit = _credit_class(applicant)
        children = [_plan_child(spec, form, entries, credit=credit, label=spec.name) for spec in specs]
        _prepare_issuer(specs)
        claim = idempotency.claim(reservation)
        for child in children:
            _use_licenses(principal, child)
        now = utcnow()
        parent = Application(application_id=_new_id(), subject_id=applicant.subject_id,
                             subject_type=applicant.subject_type, actor_id=applicant.actor_id, service_code=None,
                             service_name=bundle.name, bundle_code=bundle.code, hall_code=parent_hall,
                             status=SUBMITTED, created_at=now, submitted_at=now, updated_at=now)
        parent.applicant_name = applicant.enterprise.name if applicant.enterprise is not None else applicant.person.name
        parent.set_form(form, {f.name: f.type for f in union})
        db.session.add(parent)
        for child in children:
            app = _build(applicant, child.spec, child.form, parent=parent, bundle_code=bundle.code)
            _attach_materials(app, child)
            _finish_child(applicant, app, child, credit)
        deadlines = [c.deadline for c in parent.children if c.deadline]
        parent.deadline = max(deadlines) if deadlines else None
        _event(parent, "submit", from_status=None, to_status=SUBMITTED, actor_id=applicant.actor_id,
               actor_role="applicant", data={"children": [c.application_id for c in parent.children]})
        _aggregate(parent, actor_id=None)
        _notify(parent, "bundle", count=len(children))
        return parent, claim

    return _idempotent(principal, key=idempotency_key, path=path, body=body, create=create)


# ---- reading


def application_detail(*, principal: Principal, application_id: str, reveal: bool = False) -> ApplicationView:
    """The application with its form, materials (verified references) and timeline; 404 for
    anyone but the applicant and the staff of its hall (and of the hall's city)."""
    app = _load(application_id)
    viewer = _readable(principal, app)
    if reveal:
        if viewer != "applicant":
            raise Forbidden("完整的证件号码和手机号码仅向本人显示")
        _audit_reveal(applicant_for(principal, scope=READ_SCOPE), "application")
    return _view(app, viewer, reveal=reveal)


def list_applications(*, principal: Principal, status: str | None, page: int, page_size: int):
    """The caller's applications (bundle parents and children included), newest first."""
    applicant = applicant_for(principal, scope=READ_SCOPE)
    query = select(Application).where(Application.subject_id == applicant.subject_id)
    if status:
        query = query.where(Application.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.options(selectinload(Application.parent))
                              .order_by(Application.created_at.desc(), Application.id.desc())
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total


def hall_applications(*, principal: Principal, hall_code: str, status: str | None = None, overdue: bool = False,
                      due_within_days: int | None = None, page: int = 1, page_size: int = 20):
    """A hall's work list for its staff: by status, overdue (deadline passed while the clock
    runs), or due within N working days (today included), earliest deadline first."""
    if not bundle_rules.hall_exists(hall_code):
        raise NotFound("大厅不存在")
    if principal.subject_type != "person" or staff_role(principal, hall_code) is None:
        raise Forbidden("仅该大厅的工作人员可以查看办件")
    today = _today()
    query = select(Application).where(Application.hall_code == hall_code, Application.service_code.is_not(None))
    if status:
        query = query.where(Application.status == status)
    if overdue:
        query = query.where(Application.status.in_(RUNNING_STATUSES), Application.deadline < today)
    if due_within_days is not None:
        query = query.where(Application.status.in_(RUNNING_STATUSES), Application.deadline >= today,
                            Application.deadline <= add_working_days(today, due_within_days))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(Application.deadline.asc(), Application.id.asc())
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total


# ---- processing


def _aggregate(parent: Application, *, actor_id: str | None) -> None:
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
    previous = parent.status
    parent.status, parent.updated_at = target, utcnow()
    parent.completed_at = utcnow() if target in FINAL_STATUSES else None
    _event(parent, "children_final" if target in FINAL_STATUSES else "children_changed", from_status=previous,
           to_status=target, actor_id=actor_id, actor_role="system")
    if target in (APPROVED, REJECTED):
        _notify(parent, "bundle_final", status=STATUS_LABELS[target])


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
    _aggregate(parent, actor_id=actor_id)


def _change(app: Application, action: str, *, actor_id: str, actor_role: str, comment: str | None = None,
            data: dict | None = None) -> str:
    target = TRANSITIONS[action].get(app.status)
    if target is None:
        raise Conflict(f"办件当前状态为「{STATUS_LABELS[app.status]}」，不能{ACTION_LABELS[action]}",
                       extra={"application_status": app.status})
    previous = app.status
    app.status, app.updated_at = target, utcnow()
    if target in FINAL_STATUSES:
        app.completed_at = utcnow()
    _event(app, action, from_status=previous, to_status=target, actor_id=actor_id, actor_role=actor_role,
           comment=comment, data=data)
    return previous


def transition(*, principal: Principal, application_id: str, action: str, comment: str | None = None,
               version: int | None = None) -> ApplicationView:
    """Hall staff accept / approve / reject / request_more; 409 when the status does not
    allow it or another change came first (optimistic lock)."""
    app = _load(application_id, fresh=True)
    if app is not None and _is_applicant(principal, app):
        raise Forbidden("仅办理大厅的工作人员可以办理此操作，且不能办理本人的申请")
    role = staff_role(principal, app.hall_code) if app is not None and principal.subject_type == "person" else None
    if role is None:
        raise NotFound("办件不存在")
    if app.is_bundle:
        raise Conflict("一件事主件的状态由各子项决定，请办理各子项")
    if action in ("reject", "request_more") and not (comment or "").strip():
        raise ValidationFailed.field("comment", "不予办理或要求补正时须说明理由")
    if version is not None and version != app.version:
        raise Conflict(CONFLICT_STALE, extra={"version": app.version})
    previous = _change(app, action, actor_id=principal.subject_id, actor_role="staff", comment=comment,
                       data={"hall_role": role})
    if action == "accept" and app.deadline is None:
        app.deadline = add_working_days(_today(), app.promised_limit_days or 0)
    with _version_checked():
        db.session.flush()
        _sync_parent(app, actor_id=principal.subject_id)
        _notify(app, action, comment=comment or "")
        audit.record("application.transition", subject_id=app.subject_id, actor=principal.subject_id,
                     details={"application_id": app.application_id, "action": action, "from": previous,
                              "to": app.status, "hall_code": app.hall_code})
    return _saved(app, "staff")


def _own(principal: Principal, application_id: str) -> tuple[Application, Applicant]:
    app = _load(application_id, fresh=True)
    if app is None or not _is_applicant(principal, app):
        raise NotFound("办件不存在")
    return app, applicant_for(principal, scope=SUBMIT_SCOPE)


def withdraw(*, principal: Principal, application_id: str) -> ApplicationView:
    """The applicant withdraws before acceptance (or while asked to supplement); a bundle is
    withdrawn as a whole."""
    app, applicant = _own(principal, application_id)
    if app.parent_id is not None:
        raise Conflict("一件事的子项不能单独撤回，请撤回整个一件事")
    with _version_checked():
        if app.is_bundle:
            blocking = [c for c in app.children if c.status not in TRANSITIONS["withdraw"]]
            if blocking or app.status != SUBMITTED:
                raise Conflict("一件事中已有子项受理或办结，不能撤回")
            for child in app.children:
                _change(child, "withdraw", actor_id=applicant.actor_id, actor_role="applicant")
            db.session.flush()
            _aggregate(app, actor_id=applicant.actor_id)
        else:
            _change(app, "withdraw", actor_id=applicant.actor_id, actor_role="applicant")
        _notify(app, "withdraw")
        db.session.flush()
    return _saved(app, "applicant")


def _entry_of(row: ApplicationMaterial) -> dict:
    if row.kind == LICENSE:
        return {"name": row.name, "license_id": row.license_id}
    if row.kind == COMMITMENT:
        return {"name": row.name, "commitment": True}
    if row.kind == MISSING:
        return {"name": row.name, "missing": True}
    return {"name": row.name, "attachment": row.attachment}


def resubmit(*, principal: Principal, application_id: str, form: dict | None,
             materials: list | None) -> ApplicationView:
    """补正: the applicant changes form values (merged into the form; null removes a value) and
    materials (replacing those of the same name) and submits again; the deadline restarts."""
    app, applicant = _own(principal, application_id)
    if app.is_bundle:
        raise Conflict("请对需要补正的子项分别补正")
    if app.status != REQUEST_MORE:
        raise Conflict(f"办件当前状态为「{STATUS_LABELS[app.status]}」，无需补正")
    spec = service_spec(app.service_code)
    current = app.form
    changes = form or {}
    merged = {k: v for k, v in {**current, **changes}.items() if v is not None}
    known = {name: (value, "application") for name, value in current.items()}
    clean = validate_form(spec.fields, merged, known=known, applicant=applicant)
    new_entries = materials or []
    _check_entries_known(new_entries, list(spec.materials))
    replaced = {entry["name"] for entry in new_entries}
    entries = list(new_entries) + [_entry_of(row) for row in app.materials if row.name not in replaced]
    credit = _credit_class(applicant)
    child = _plan_child(spec, clean, entries, credit=credit)
    child.entries = [item for item in child.entries if item[2].name in replaced]
    _use_licenses(principal, child)
    for row in [row for row in app.materials if row.name in replaced]:
        app.materials.remove(row)
    db.session.flush()
    _attach_materials(app, child)
    app.set_form(clean, {f.name: f.type for f in spec.fields})
    app.submitted_at = utcnow()
    app.deadline = add_working_days(_today(), app.promised_limit_days or 0)
    with _version_checked():
        _change(app, "resubmit", actor_id=applicant.actor_id, actor_role="applicant",
                data={"changed_fields": sorted(changes), "changed_materials": sorted(replaced)})
        _notify(app, "resubmit")
        db.session.flush()
    return _saved(app, "applicant")


# ---- used by evaluations


def completed_application_for_rating(*, principal: Principal, application_id: str) -> Application:
    """The caller's own application to rate (404 for anyone else's)."""
    app = _load(application_id)
    if app is None or not _is_applicant(principal, app):
        raise NotFound("办件不存在")
    return app


def completion_date(app: Application) -> date | None:
    return _beijing_date(app.completed_at)


__all__ = ["STATUSES", "STAFF_ACTIONS", "ApplicationView", "Submission", "applicant_for", "staff_role",
           "service_form", "bundle_form", "submit_application", "submit_bundle", "application_detail",
           "list_applications", "hall_applications", "transition", "withdraw", "resubmit"]
