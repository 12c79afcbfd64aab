"""Submission of applications: prefilled forms, submit once per Idempotency-Key, 一件事 fan-out.

Materials are a license from the wallet (免证办, verified and logged), an uploaded file, a
commitment (告知承诺) or handed in later (容缺, non-core materials only): see `materials`. The
request data comes validated by the view's schema; form values are checked here, against the
fields of the service. One application per service and applicant may be open at a time unless
the service allows several (`ServiceSpec.several_allowed`): a second one is 409 naming the first.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..catalogue.models import Service
from ..errors import Conflict, NotFound, ValidationFailed
from ..extensions import db
from ..identity.actors import Actor
from ..notifications.service import schedule_delivery
from ..timeutil import beijing_today, utcnow
from . import bundles as bundle_rules
from . import idempotency, instant, licenses, materials, outcomes
from .deadlines import add_working_days
from .forms import SEVERE_DISCREDIT, MaterialSpec, ServiceSpec, known_values, prefilled_fields, service_spec, validate_form
from .models import APPROVED, SUBMITTED, Application
from .processing import aggregate
from .service import SUBMIT_SCOPE, ApplicationView, applicant_for, audit_reveal, notify_applicant, record_event, view_of


@dataclass
class Submission:
    """What POST /applications answers: the new application, or the first answer replayed verbatim."""

    application_id: str
    view: ApplicationView | None = None  # a new application
    replay: dict | None = None  # the body first answered for this Idempotency-Key

    @property
    def replayed(self) -> bool:
        return self.replay is not None


# ---- forms


def _satisfied_by(material: MaterialSpec, licenses: list[dict], credit_class: str, applicant: Actor):
    own = None if applicant.is_company else applicant.person.id_number
    if material.license_type_code and materials.fits_role(material.name, own):
        for item in licenses:
            if item["license_type"] == material.license_type_code:
                return {"license_id": item["license_id"]}
    if material.commitment_allowed and credit_class != SEVERE_DISCREDIT:
        return "commitment"
    return None


def _form_body(applicant: Actor, fields_, materials_, *, reveal: bool) -> tuple[list, list]:
    licenses_ = materials.wallet_licenses(applicant)
    known = known_values(fields_, applicant, licenses_)
    credit = materials.credit_of(applicant)
    if reveal:
        audit_reveal(applicant, "form_prefill")
    return (prefilled_fields(fields_, known, reveal=reveal),
            [{"name": m.name, "required": m.required, "license_type_code": m.license_type_code,
              "commitment_allowed": m.commitment_allowed and credit != SEVERE_DISCREDIT,
              "missing_allowed": not m.core, "satisfied_by": _satisfied_by(m, licenses_, credit, applicant)}
             for m in materials_])


def _check_audience(audience: str, applicant: Actor, key: str = "service_code") -> None:
    if audience == applicant.subject_type:
        return
    if audience == "legal":
        raise ValidationFailed.field(key, "该事项面向法人和其他组织，请以企业身份（企业令牌）申请")
    raise ValidationFailed.field(key, "该事项面向个人，请以个人身份申请")


def service_form(*, actor: Actor, service_code: str, reveal: bool = False) -> dict:
    """The service's form prefilled for the caller, and how each material can be satisfied."""
    spec = service_spec(service_code)
    applicant = applicant_for(actor, scope=SUBMIT_SCOPE)
    fields_, materials_ = _form_body(applicant, spec.fields, spec.materials, reveal=reveal)
    return {"service_code": spec.code, "service_name": spec.name, "hall_code": spec.hall_code,
            "audience": spec.audience, "fields": fields_, "materials": materials_,
            "instant_approval": instant.possible(spec), "promised_limit_days": spec.promised_limit_days,
            "several_allowed": spec.several_allowed}


def _region_of(applicant: Actor) -> str | None:
    if applicant.enterprise is not None:
        return applicant.enterprise.credit_code[2:8]
    return applicant.person.id_number[:6]


def _any_member_specs(bundle) -> list[ServiceSpec]:
    specs = []
    for member in bundle.members:
        row = db.session.scalar(select(Service).where(Service.base_code == member["base_code"])
                                .order_by(Service.code).limit(1))
        if row is None:
            raise NotFound(f"一件事的子项「{member.get('name')}」暂未上线")
        specs.append(ServiceSpec.of(row))
    return specs


def bundle_form(*, actor: Actor, bundle_code: str, hall_code: str | None = None, reveal: bool = False) -> dict:
    """The union of the member forms (fields by name, materials by name), prefilled."""
    bundle = bundle_rules.bundle_spec(bundle_code)
    applicant = applicant_for(actor, scope=SUBMIT_SCOPE)
    try:
        parent_hall, specs = bundle_rules.resolve_member_services(bundle, hall_code=hall_code,
                                                                 region=_region_of(applicant))
    except ValidationFailed:
        if hall_code:
            raise
        parent_hall, specs = None, _any_member_specs(bundle)
    fields_, materials_ = _form_body(applicant, bundle_rules.union_fields(specs),
                                     bundle_rules.union_materials(specs), reveal=reveal)
    return {"bundle_code": bundle.code, "bundle_name": bundle.name, "audience": bundle.audience,
            "hall_code": parent_hall, "fields": fields_, "materials": materials_,
            "instant_approval": all(instant.possible(spec) for spec in specs),
            "members": [{"service_code": spec.code, "service_name": spec.name, "hall_code": spec.hall_code}
                        for spec in specs]}


# ---- one application to create


def _new_id() -> str:
    return "ap_" + secrets.token_hex(10)


def open_key(subject_id: str, what: str) -> str:
    """The key an open application of `subject_id` for a service (base code) or bundle holds."""
    return hashlib.sha256(f"{subject_id}|{what}".encode()).hexdigest()


def _refuse_second(key: str | None) -> None:
    """409 naming the applicant's open application that holds `key`."""
    if key is None:
        return
    existing = db.session.scalar(select(Application).where(Application.open_key == key))
    if existing is not None:
        raise Conflict(f"您已有一件「{existing.service_name}」申请正在办理（办件编号 {existing.application_id}），"
                       "请等待办结或撤回后再申请", extra={"application_id": existing.application_id})


def _hold(app: Application, key: str | None) -> None:
    """Give `app` its open key (flushed in a savepoint: a concurrent twin is 409, not a 500)."""
    if key is None:
        return
    app.open_key = key
    savepoint = db.session.begin_nested()
    try:
        db.session.flush()
        savepoint.commit()
    except IntegrityError:
        savepoint.rollback()
        _refuse_second(key)
        raise Conflict("您已有一件相同事项的申请正在办理，请稍后刷新查看") from None


def _build(applicant: Actor, spec: ServiceSpec, form: dict, *, parent: Application | None = None,
           bundle_code: str | None = None) -> Application:
    now = utcnow()
    app = Application(application_id=_new_id(), subject_id=applicant.subject_id,
                      subject_type=applicant.subject_type, actor_id=applicant.actor_id,
                      service_code=spec.code, base_code=spec.base_code, service_name=spec.name,
                      department=spec.department, bundle_code=bundle_code, parent=parent,
                      hall_code=spec.hall_code, status=SUBMITTED, instant=False, round=1,
                      promised_limit_days=spec.promised_limit_days,
                      deadline=add_working_days(beijing_today(), spec.promised_limit_days),
                      created_at=now, submitted_at=now, updated_at=now)
    app.applicant_name = applicant.subject_name
    app.set_form(form, {f.name: f.type for f in spec.fields})
    db.session.add(app)
    return app


def _service_key(applicant: Actor, spec: ServiceSpec) -> str | None:
    return None if spec.several_allowed else open_key(applicant.subject_id, spec.base_code or spec.code)


# ---- submitting (once per Idempotency-Key)


def _idempotent(actor: Actor, *, key: str, path: str, data: dict, answer: Callable[[ApplicationView], dict],
                create, applicant: Actor | None = None) -> Submission:
    """Run `create(applicant, reservation)` once per Idempotency-Key of the caller (see idempotency.py)
    and keep `answer(view)` of the new application as the answer to replay. `applicant`: the person
    staff submit for (else the caller)."""
    applicant = applicant or applicant_for(actor, scope=SUBMIT_SCOPE)
    reservation = idempotency.reserve(subject_id=actor.subject_id, key=key,
                                      fp=idempotency.fingerprint(path, data))
    if reservation.replay is not None:
        return Submission(application_id=reservation.replay.get("application_id"), replay=reservation.replay)
    try:
        app, claim = create(applicant, reservation)
        claim.application_id = app.application_id
        db.session.flush()
        claim.response = answer(view_of(app, "applicant"))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        first = idempotency.winner_answer(reservation)
        return Submission(application_id=first.get("application_id"), replay=first)
    except BaseException:
        db.session.rollback()
        idempotency.release(reservation)
        raise
    idempotency.complete(reservation, app.application_id)
    schedule_delivery()
    outcomes.after_commit(app)
    return Submission(application_id=app.application_id, view=view_of(app, "applicant"))


def _known_for_submit(applicant: Actor, fields_, form: dict) -> dict:
    """Prefill values, looked up only when the form carries a masked value to substitute."""
    if not any(isinstance(v, str) and "*" in v for v in form.values()):
        return {}
    return known_values(fields_, applicant, materials.wallet_licenses(applicant))


def submit_application(*, actor: Actor, idempotency_key: str, path: str, data: dict,
                       answer: Callable[[ApplicationView], dict], intake=None) -> Submission:
    """Create one application (201), or replay the answer given to the same Idempotency-Key.
    `data` is the validated request (service_code, form, materials); `answer` renders the reply.
    `intake` (app.applications.window.Intake): staff submit for `intake.applicant` (一窗受理, 帮办代办)."""

    def create(applicant: Actor, reservation):
        spec = service_spec(data["service_code"])
        _check_audience(spec.audience, applicant)
        known = _known_for_submit(applicant, spec.fields, data["form"])
        form = validate_form(spec.fields, data["form"], known=known, applicant=applicant)
        entries = data["materials"]
        credit = materials.credit_of(applicant)
        materials.check_entries_known(entries, list(spec.materials))
        plan = materials.plan(spec, form, entries, credit=credit)
        licenses.prepare_issuer([spec] if spec.instant_approval else [])
        claim = idempotency.claim(reservation)  # first write: a racing request with this key waits here
        key = _service_key(applicant, spec)
        _refuse_second(key)
        materials.use_licenses(applicant, plan)
        app = _build(applicant, spec, form)
        if intake is not None:
            intake.took_in(app)
        _hold(app, key)
        materials.add_rows(app, plan, owner_subject_id=applicant.subject_id, today=beijing_today())
        instant.finish(applicant, app, spec, plan, credit)
        notify_applicant(app, "instant" if app.status == APPROVED else "submit")
        return app, claim

    return _idempotent(actor, key=idempotency_key, path=path, data=data, answer=answer, create=create,
                       applicant=intake.applicant if intake else None)


def submit_bundle(*, actor: Actor, bundle_code: str, idempotency_key: str, path: str, data: dict,
                  answer: Callable[[ApplicationView], dict]) -> Submission:
    """One form for a 一件事: the parent and one child per member at the right hall. A material
    an earlier member produces (the newborn's 出生医学证明) is not asked for again."""
    bundle = bundle_rules.bundle_spec(bundle_code)

    def create(applicant: Actor, reservation):
        _check_audience(bundle.audience, applicant, key="bundle_code")
        parent_hall, specs = bundle_rules.resolve_member_services(bundle, hall_code=data.get("hall_code"),
                                                                 region=_region_of(applicant))
        union = bundle_rules.union_fields(specs)
        known = _known_for_submit(applicant, union, data["form"])
        form = validate_form(union, data["form"], known=known, applicant=applicant)
        entries = data["materials"]
        materials.check_entries_known(entries, bundle_rules.union_materials(specs))
        credit = materials.credit_of(applicant)
        plans = [materials.plan(spec, form, entries, credit=credit, label=spec.name,
                                produced=bundle_rules.produced_before(specs, index))
                 for index, spec in enumerate(specs)]
        licenses.prepare_issuer([spec for spec in specs if spec.instant_approval])
        claim = idempotency.claim(reservation)
        key = open_key(applicant.subject_id, f"bundle:{bundle.code}")
        _refuse_second(key)
        for plan in plans:
            materials.use_licenses(applicant, plan)
        now = utcnow()
        parent = Application(application_id=_new_id(), subject_id=applicant.subject_id,
                             subject_type=applicant.subject_type, actor_id=applicant.actor_id, service_code=None,
                             service_name=bundle.name, bundle_code=bundle.code, hall_code=parent_hall,
                             status=SUBMITTED, round=1, created_at=now, submitted_at=now, updated_at=now)
        parent.applicant_name = applicant.subject_name
        parent.set_form(form, {f.name: f.type for f in union})
        db.session.add(parent)
        _hold(parent, key)
        siblings = {}
        for plan in plans:
            app = _build(applicant, plan.spec, plan.form, parent=parent, bundle_code=bundle.code)
            siblings[plan.spec.code] = app.application_id
            materials.add_rows(app, plan, owner_subject_id=applicant.subject_id, today=beijing_today(),
                               siblings=siblings)
            instant.finish(applicant, app, plan.spec, plan, credit)
        deadlines = [c.deadline for c in parent.children if c.deadline]
        parent.deadline = max(deadlines) if deadlines else None
        record_event(parent, "submit", from_status=None, to_status=SUBMITTED, actor_id=applicant.actor_id,
                     actor_role="applicant", data={"children": [c.application_id for c in parent.children]})
        aggregate(parent, actor_id=None)
        notify_applicant(parent, "bundle", count=len(plans))
        return parent, claim

    return _idempotent(actor, key=idempotency_key, path=path, data=data, answer=answer, create=create)
