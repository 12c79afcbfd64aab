"""Personal-data exports (个人信息保护法 articles 45 and 47): everything the platform keeps about a
person, full values included since it is their own, built by a job, stored encrypted, kept a week.

Only records whose subject is the person are read (their applications, what hall staff filled in for
them to confirm (帮办代办), licenses held under their ID number and who looked at them, their inbox,
consents, bookings, complaints...), never records
they touched for someone else (a company, a relative), which belong to that other subject.
"""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, or_, select

from schemas.applications import ApplicationSchema
from schemas.appointments import AppointmentSchema
from schemas.complaints import ComplaintSchema
from schemas.evaluations import EvaluationSchema
from schemas.hall_desk import AssistedApplicationSchema
from schemas.notifications import NotificationSchema
from schemas.wallet import AccessLogEntrySchema, WalletLicenseDetailSchema

from ..applications.assisted_models import AssistedApplication
from ..applications.models import Application
from ..applications.service import view_of
from ..appointments.models import Appointment
from ..complaints.models import Complaint
from ..complaints.service import ComplaintView
from ..errors import NotFound
from ..evaluations.models import Evaluation
from ..extensions import db, limiter
from ..files.models import StoredFile
from ..jobs import enqueue
from ..journal import catch_up
from ..notifications.models import Notification
from ..oidc.consents import consents_for_export
from ..security import audit
from ..security.models import AuditEvent
from ..security.rbac import Principal
from ..timeutil import as_aware, isoformat_z, utcnow
from ..wallet.models import AccessLogEntry, License
from .account_models import DataExport, ProxyGrant
from .common import new_id
from .models import AgentGrant, AuthSession, ChannelBinding, Enterprise, Person, StaffAssignment
from .persons import acting_person, person_by_subject_id

logger = logging.getLogger("app.identity.exports")

EXPORT_DAYS = 7
EXPORT_RATE_LIMIT = "5/day"  # DATA_EXPORT_RATE_LIMIT overrides
FORMAT = "ishandong-personal-data/1"


def request_export(*, principal: Principal) -> DataExport:
    """Start an export of the caller's data (a job; inline without Redis); commits."""
    person = acting_person(principal)
    limiter.hit(current_app.config.get("DATA_EXPORT_RATE_LIMIT") or EXPORT_RATE_LIMIT, "data-export",
                person.subject_id, detail="个人信息导出过于频繁，请明天再试")
    db.session.execute(delete(DataExport).where(DataExport.expires_at <= utcnow()))
    export = DataExport(export_id=new_id("ex"), subject_id=person.subject_id, status="pending",
                        created_at=utcnow(), expires_at=utcnow() + timedelta(days=EXPORT_DAYS))
    db.session.add(export)
    audit.record("account.export_requested", subject_id=person.subject_id, actor=person.subject_id,
                 details={"export_id": export.export_id})
    db.session.commit()
    enqueue("app.identity.exports:build_export", export.export_id)
    return export


def build_export(export_id: str) -> None:
    """Job: collect, encrypt and keep the document (again after a retry: written once)."""
    export = db.session.scalar(select(DataExport).where(DataExport.export_id == export_id))
    if export is None or export.status == "ready":
        return
    person = person_by_subject_id(export.subject_id)
    if person is None or not person.active:
        db.session.delete(export)
        db.session.commit()
        return
    document = personal_data(person)
    export.seal(json.dumps(document, ensure_ascii=False, sort_keys=True))
    export.status, export.ready_at = "ready", utcnow()
    audit.record("account.export_built", subject_id=person.subject_id, actor="system",
                 details={"export_id": export_id, "sections": sorted(document)})
    db.session.commit()
    logger.info("personal data export built", extra={"export_id": export_id})


def export_view(*, principal: Principal, export_id: str) -> dict:
    """The caller's own export ({"export_id","status","data"}); 404 for any other, or once expired."""
    person = acting_person(principal)
    export = db.session.scalar(select(DataExport).where(DataExport.export_id == export_id,
                                                        DataExport.subject_id == person.subject_id))
    if export is None or as_aware(export.expires_at) <= utcnow():
        raise NotFound("导出记录不存在或已过期")
    body = {"export_id": export.export_id, "status": export.status, "data": None,
            "created_at": export.created_at, "expires_at": export.expires_at}
    if export.status == "ready":
        body["data"] = json.loads(export.opened())
        audit.record("account.export_downloaded", subject_id=person.subject_id, actor=person.subject_id,
                     details={"export_id": export.export_id})
        db.session.commit()
    return body


# ---- the document


def personal_data(person: Person) -> dict:
    """Everything kept about `person`, JSON-ready."""
    catch_up()  # verifications still in the journal belong in the access log
    licenses = _licenses(person)
    return {
        "format": FORMAT, "generated_at": isoformat_z(utcnow()), "subject_id": person.subject_id,
        "profile": _profile(person), "bindings": _bindings(person), "sessions": _sessions(person),
        "applications": _applications(person), "assisted_applications": _assisted(person),
        "evaluations": _evaluations(person),
        "licenses": [item for item, _ in licenses], "license_access_log": _access_log(licenses),
        "inbox": _inbox(person), "consents": _consents(person), "proxies": _proxies(person),
        "enterprises": _enterprises(person), "files": _files(person),
        "appointments": _appointments(person), "complaints": _complaints(person),
        "security_events": _security_events(person),
    }


def _profile(person: Person) -> dict:
    roles = db.session.execute(select(StaffAssignment.role, StaffAssignment.hall_code)
                               .where(StaffAssignment.subject_id == person.subject_id)).all()
    return {"subject_id": person.subject_id, "name": person.name, "id_number": person.id_number,
            "phone": person.phone, "real_name_level": person.real_name_level,
            "created_at": isoformat_z(person.created_at),
            "staff_roles": [{"role": role, "hall_code": hall} for role, hall in roles]}


def _bindings(person: Person) -> list[dict]:
    rows = db.session.scalars(select(ChannelBinding).where(ChannelBinding.subject_id == person.subject_id))
    return [{"channel": row.channel, "app_id": row.app_id, "open_id": row.open_id, "union_id": row.union_id,
             "bound_at": isoformat_z(row.created_at)} for row in rows]


def _sessions(person: Person) -> list[dict]:
    rows = db.session.scalars(select(AuthSession).where(AuthSession.subject_id == person.subject_id,
                                                        AuthSession.actor_id.is_(None))
                              .order_by(AuthSession.created_at))
    return [{"session_id": row.session_id, "channel": row.channel, "created_at": isoformat_z(row.created_at),
             "last_used_at": isoformat_z(row.last_used_at), "expires_at": isoformat_z(row.expires_at),
             "ended_at": isoformat_z(row.revoked_at)} for row in rows]


def _applications(person: Person) -> list[dict]:
    rows = db.session.scalars(select(Application).where(Application.subject_id == person.subject_id,
                                                        Application.parent_id.is_(None))
                              .order_by(Application.created_at))
    return [ApplicationSchema().dump(view_of(row, "applicant", reveal=True)) for row in rows]


def _assisted(person: Person) -> list[dict]:
    """帮办代办 drafts filled in for the person, as they see them in the app but with their own form
    values in full (as in `applications`); the helper appears as the timeline names staff."""
    rows = db.session.scalars(select(AssistedApplication).where(AssistedApplication.subject_id == person.subject_id)
                              .order_by(AssistedApplication.created_at, AssistedApplication.id))
    return [{**AssistedApplicationSchema().dump(row), "form": row.request["form"]} for row in rows]


def _evaluations(person: Person) -> list[dict]:
    rows = db.session.scalars(select(Evaluation).where(Evaluation.subject_id == person.subject_id)
                              .order_by(Evaluation.created_at))
    return EvaluationSchema(many=True).dump(rows)


def _licenses(person: Person) -> list[tuple[dict, object]]:
    rows = db.session.scalars(select(License).where(License.holder_type == "person",
                                                    License.holder_index == person.id_number_index)
                              .order_by(License.issued_at))
    return [(WalletLicenseDetailSchema().dump({"license": row, "values": row.field_values, "reveal": True,
                                               "viewer_role": "holder"}), row) for row in rows]


def _access_log(licenses: list) -> list[dict]:
    by_pk = {row.id: row.license_id for _, row in licenses}
    if not by_pk:
        return []
    rows = db.session.scalars(select(AccessLogEntry).where(AccessLogEntry.license_id.in_(by_pk))
                              .order_by(AccessLogEntry.at, AccessLogEntry.id))
    return [{"license_id": by_pk[row.license_id], **AccessLogEntrySchema().dump(row)} for row in rows]


def _inbox(person: Person) -> list[dict]:
    rows = db.session.scalars(select(Notification).where(Notification.subject_id == person.subject_id)
                              .order_by(Notification.created_at, Notification.id))
    return NotificationSchema(many=True).dump(rows)


def _consents(person: Person) -> list[dict]:
    return consents_for_export(person.subject_id)


def _proxies(person: Person) -> dict:
    def item(grant: ProxyGrant, **extra) -> dict:
        return {"proxy_id": grant.proxy_id, "scopes": list(grant.scopes), "expires_at": isoformat_z(grant.expires_at),
                "created_at": isoformat_z(grant.created_at), "revoked_at": isoformat_z(grant.revoked_at), **extra}

    granted = db.session.scalars(select(ProxyGrant).where(ProxyGrant.grantor_subject_id == person.subject_id))
    received = db.session.scalars(select(ProxyGrant).where(
        ProxyGrant.grantee_id_number_index == person.id_number_index))
    # the relative is another person: their ID number stays masked even here
    return {"granted": [item(g, grantee_name=g.grantee_name, grantee_id_number_masked=g.grantee_id_number_masked)
                        for g in granted],
            "received": [item(g, grantor_subject_id=g.grantor_subject_id) for g in received]}


def _enterprises(person: Person) -> list[dict]:
    represented = db.session.scalars(select(Enterprise).where(Enterprise.representative_id == person.id))
    agent_of = db.session.execute(select(Enterprise, AgentGrant).join(AgentGrant, AgentGrant.enterprise_id == Enterprise.id)
                                  .where(AgentGrant.agent_id_number_index == person.id_number_index)).all()
    return ([{"credit_code": e.credit_code, "name": e.name, "role": "representative",
              "since": isoformat_z(e.claimed_at)} for e in represented]
            + [{"credit_code": e.credit_code, "name": e.name, "role": "agent", "scopes": list(g.scopes),
                "expires_at": isoformat_z(g.expires_at), "revoked_at": isoformat_z(g.revoked_at)}
               for e, g in agent_of])


def _files(person: Person) -> list[dict]:
    rows = db.session.scalars(select(StoredFile).where(StoredFile.owner_subject_id == person.subject_id)
                              .order_by(StoredFile.created_at))
    return [{"file_id": row.id, "name": row.name, "content_type": row.content_type, "size": row.size,
             "sha256": row.sha256, "uploaded_at": isoformat_z(row.created_at), "attached_to": row.attached_to}
            for row in rows]


def _appointments(person: Person) -> list[dict]:
    rows = db.session.scalars(select(Appointment).where(Appointment.subject_id == person.subject_id)
                              .order_by(Appointment.created_at))
    return AppointmentSchema(many=True).dump(rows)


def _complaints(person: Person) -> list[dict]:
    rows = db.session.scalars(select(Complaint).where(Complaint.subject_id == person.subject_id)
                              .order_by(Complaint.created_at))
    return ComplaintSchema(many=True).dump([ComplaintView(row, "owner") for row in rows])


def _security_events(person: Person) -> list[dict]:
    rows = db.session.execute(select(AuditEvent.event, AuditEvent.at, AuditEvent.ip, AuditEvent.actor).where(
        or_(AuditEvent.subject_id == person.subject_id, AuditEvent.actor == person.subject_id))
        .order_by(AuditEvent.seq)).all()
    # the address is theirs only when they acted (not when someone else acted on their account)
    return [{"event": event, "at": isoformat_z(at), "ip": ip if actor == person.subject_id else None}
            for event, at, ip, actor in rows]
