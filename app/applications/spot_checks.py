"""抽查 of 秒批: a random sample of a hall's applications approved instantly on a commitment is
checked afterwards. A false commitment revokes the result: the application is marked revoked,
its license is revoked through the wallet's status function (as the department that issued it),
the breach goes to the credit registry, and a sealed revocation decision follows."""
from __future__ import annotations

import logging
import secrets

from sqlalchemy import exists, select

from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..halls_access import require_staff_of_hall, staff_role
from ..identity import registries
from ..identity.actors import Actor
from ..identity.clients import client_by_id, client_claims
from ..identity.identifiers import IdentifierError
from ..jobs import enqueue
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import utcnow
from ..wallet import service as wallet
from ..wallet.models import License
from .licenses import holder_of
from .models import (APPROVED, COMMITMENT, SPOT_BREACH, SPOT_PASSED, SPOT_SELECTED, Application,
                     ApplicationMaterial)
from .service import (ApplicationView, is_applicant, load_application, notify_applicant, record_event, saved,
                      version_checked)

logger = logging.getLogger("app.applications")
BREACH_CLASS = "一般失信"  # a false commitment: at least this class, so commitments no longer pass 秒批
OUTCOMES = ("passed", "breach")
MAX_SAMPLE = 100


def _candidates(hall_code: str):
    with_commitment = exists().where(ApplicationMaterial.application_id == Application.id,
                                     ApplicationMaterial.kind == COMMITMENT)
    return select(Application.id).where(Application.hall_code == hall_code, Application.instant.is_(True),
                                        Application.status == APPROVED, Application.spot_check.is_(None),
                                        Application.revoked_at.is_(None), with_commitment)


def draw_sample(*, hall_code: str, count: int, actor_id: str | None) -> list[Application]:
    """Mark a random sample (at most `count`) of the hall's unchecked 秒批 applications with
    commitments as selected for 抽查; commits."""
    ids = list(db.session.scalars(_candidates(hall_code)))
    chosen = secrets.SystemRandom().sample(ids, min(count, len(ids)))
    rows = list(db.session.scalars(select(Application).where(Application.id.in_(chosen))
                                   .order_by(Application.id))) if chosen else []
    for app in rows:
        app.spot_check, app.updated_at = SPOT_SELECTED, utcnow()
        record_event(app, "spot_check_selected", from_status=app.status, to_status=app.status, actor_id=actor_id,
                     actor_role="staff" if actor_id else "system", comment="秒批事后抽查：已抽中")
    with version_checked():
        db.session.commit()
    return rows


def sample(*, actor: Actor, hall_code: str, count: int) -> list[Application]:
    """Hall staff draw a sample of their hall (403 for anyone else, 404 for an unknown hall)."""
    require_staff_of_hall(actor.principal, hall_code, what="抽查")
    return draw_sample(hall_code=hall_code, count=min(count, MAX_SAMPLE), actor_id=actor.principal.subject_id)


def _department_principal(license: License) -> Principal | None:
    client = client_by_id(license.issuer_client_id)
    if client is None:
        return None
    roles, claims = client_claims(client)
    return Principal(subject_id=client.client_id, subject_type="client", roles=frozenset(roles), claims=claims)


def _revoke_license(license_id: str, reason: str) -> None:
    license = db.session.scalar(select(License).where(License.license_id == license_id))
    principal = _department_principal(license) if license is not None else None
    if principal is None:
        logger.error("license %s of a revoked result has no issuing client: revoke it by hand", license_id)
        return
    wallet.change_status(principal=principal, license_id=license_id, status="revoked", reason=reason)


def _report_breach(app: Application, reason: str) -> None:
    holder = holder_of(app)
    if holder is None:
        return
    try:
        registries.credit().record_breach(holder.id_number or holder.credit_code, credit_class=BREACH_CLASS,
                                          reason=reason)
    except (NotImplementedError, IdentifierError):
        logger.warning("credit registry took no breach report for %s", app.application_id, exc_info=True)


def conclude(*, actor: Actor, application_id: str, outcome: str, comment: str | None = None,
             materials: list[str] | None = None) -> ApplicationView:
    """Record a spot check's outcome; `breach` names the false commitments and revokes the result."""
    app = load_application(application_id, fresh=True)
    principal = actor.principal
    if app is not None and is_applicant(actor, app):
        raise Forbidden("不能抽查本人的申请")
    if app is None or principal.subject_type != "person" or staff_role(principal, app.hall_code) is None:
        raise NotFound("办件不存在")
    if not app.instant or app.status != APPROVED or app.spot_check not in (None, SPOT_SELECTED):
        raise Conflict("该办件不是待抽查的秒批办件", extra={"spot_check": app.spot_check})
    data = {"outcome": outcome}
    if outcome == "breach":
        if not (comment or "").strip():
            raise ValidationFailed.field("comment", "认定承诺不实时须说明核查情况")
        commitments = {row.name for row in app.materials if row.kind == COMMITMENT}
        named = list(dict.fromkeys(materials or ()))
        if not named:
            raise ValidationFailed.field("materials", "请列出承诺不实的材料")
        wrong = [f"materials[{i}]" for i, name in enumerate(named) if name not in commitments]
        if wrong:
            raise ValidationFailed("所列材料不是该办件以告知承诺提交的材料",
                                   errors={key: ["不是以告知承诺提交的材料"] for key in wrong})
        data["materials"] = named
    app.spot_check, app.updated_at = (SPOT_BREACH if outcome == "breach" else SPOT_PASSED), utcnow()
    record_event(app, "spot_check", from_status=app.status, to_status=app.status, actor_id=principal.subject_id,
                 actor_role="staff", comment=comment, data=data)
    if outcome == "breach":
        app.revoked_at = utcnow()
        record_event(app, "revoke", from_status=app.status, to_status=app.status, actor_id=principal.subject_id,
                     actor_role="staff", comment=comment, data={**data, "license_id": app.issued_license_id})
        _report_breach(app, f"告知承诺不实：{'、'.join(data['materials'])}（办件 {app.application_id}）")
        notify_applicant(app, "revoke", comment=comment)
    with version_checked():
        db.session.flush()
        audit.record("application.spot_checked", subject_id=app.subject_id, actor=principal.subject_id,
                     details={"application_id": app.application_id, "outcome": outcome,
                              "materials": data.get("materials", [])})
    view = saved(app, "staff")
    if outcome == "breach":
        if app.issued_license_id:
            _revoke_license(app.issued_license_id, f"告知承诺不实，办理结果已撤销（办件 {app.application_id}）")
        enqueue("app.applications.outcomes:revoke", app.application_id, comment)
    return view
