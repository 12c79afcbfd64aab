"""一窗受理: hall staff submit for a walk-in applicant, who owns the application.

The staff member names the applicant (`{"id_number","name"}`) and how the identity was checked at
the window (`identity_check`: the ID card reader, a face check, or the documents shown). The person
must match the population registry; a person the platform does not know yet is created without an
account (no password, no phone), in the same transaction as the application, and registering later
with that ID number takes the record over (app.identity.persons.without_account), so the
application is then in their list, their inbox and theirs to rate. The application has
`channel: window`, the staff member in `intake_staff_id` and on the timeline; the documents the
staff scanned for it (uploaded with POST /files) become the applicant's. Staff take in only what
their hall offers, or 全省通办 items for another hall (`crossregion`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, Forbidden, ValidationFailed
from ..extensions import db
from ..files.models import StoredFile
from ..identity import registries
from ..identity.actors import Actor
from ..identity.common import REGISTRY_MISMATCH, new_id
from ..identity.identifiers import IdentifierError, normalize_id_number
from ..identity.levels import REGISTRY_MATCHED
from ..identity.models import Person
from ..identity.persons import find_person_by_id_number
from ..security import audit
from ..timeutil import isoformat_z
from . import crossregion, submission
from .models import Application, ApplicationEvent
from .routing import staff_card
from .service import ApplicationView

IDENTITY_CHECKS = ("id_card_reader", "face", "documents")
IDENTITY_CHECK_LABELS = {"id_card_reader": "二代身份证阅读器读卡", "face": "人脸识别比对", "documents": "查验身份证件原件"}
CHANNELS = ("online", "window", "assisted")
WINDOW_FIELDS = ("applicant", "identity_check", "responsible_hall", "accepting_hall")


def require_hall_staff(actor: Actor, what: str) -> None:
    """403 unless the caller is a person working at some hall (their own token, no company or proxy)."""
    principal = actor.principal
    if actor.subject_type != "person" or actor.is_proxy or not principal.halls:
        raise Forbidden(f"仅大厅工作人员可以{what}")


def applicant_person(applicant: dict) -> Person:
    """The person named at the window, matched against the population registry: the platform's
    record of them, or a new one without an account (not yet in the session). 422 naming
    `applicant.id_number` / `applicant.name` otherwise."""
    try:
        id_number = normalize_id_number(applicant["id_number"])
    except IdentifierError as exc:
        raise ValidationFailed.field("applicant.id_number", exc.message) from None
    name = applicant["name"].strip()
    if not registries.population().matches(id_number=id_number, name=name):
        raise ValidationFailed(REGISTRY_MISMATCH, errors={"applicant.id_number": [REGISTRY_MISMATCH],
                                                          "applicant.name": [REGISTRY_MISMATCH]})
    person = find_person_by_id_number(id_number)
    if person is not None:
        if not person.active:
            raise ValidationFailed.field("applicant.id_number", "该身份账号已停用，请申请人先恢复账号")
        return person
    person = Person(subject_id=new_id("p"), name=name, real_name_level=REGISTRY_MATCHED, active=True,
                    credentials_version=0)
    person.id_number = id_number
    return person


@dataclass
class Intake:
    """Staff submitting for `applicant` (see submission.submit_application's `intake`): what the new
    application records about how it came in. `took_in` runs inside the submitting transaction."""

    applicant: Actor
    staff_id: str
    hall_code: str  # where the staff member works for this intake
    channel: str  # window | assisted
    details: dict = field(default_factory=dict)  # what the intake event shows (identity_check, contact)
    new_person: Person | None = None
    accepting_hall: str | None = None
    application_id: str | None = None  # the id the application takes (帮办: the draft's)
    filled_at: datetime | None = None  # 帮办: when the helper filled it in
    confirmed: Callable[[Application], None] | None = None  # 帮办: the applicant's confirmation
    file_ids: list[str] = field(default_factory=list)  # the staff member's scans among the materials

    def took_in(self, app: Application) -> None:
        if self.application_id and app.application_id != self.application_id:
            form, types = app.form, dict(app.form_types or {})
            app.application_id = self.application_id
            app.set_form(form, types)  # sealed under the application's id
        if self.new_person is not None:
            add_new_person(self.new_person, staff_id=self.staff_id, hall_code=self.hall_code, channel=self.channel)
        app.channel, app.intake_staff_id, app.accepting_hall_code = self.channel, self.staff_id, self.accepting_hall
        hand_files_over(self.file_ids, staff_id=self.staff_id, applicant_id=app.subject_id)
        data = {"channel": self.channel, "staff": staff_card(self.staff_id, self.hall_code), **self.details}
        action, comment = (("window_intake", "窗口工作人员代为提交申请") if self.channel == "window"
                           else ("assisted", "工作人员帮办代办，填写申请"))
        db.session.add(ApplicationEvent(application=app, at=self.filled_at or app.submitted_at, action=action,
                                        from_status=None, to_status=None, actor_id=self.staff_id, actor_role="staff",
                                        comment=comment, data=data))
        if self.confirmed is not None:
            self.confirmed(app)
        if self.accepting_hall:
            crossregion.record_hand_over(app, staff_id=self.staff_id)
        audit.record(f"application.{action}", subject_id=app.subject_id, actor=self.staff_id,
                     details={"application_id": app.application_id, "hall_code": self.hall_code,
                              "responsible_hall": app.hall_code, "person_created": self.new_person is not None,
                              **{k: v for k, v in self.details.items() if k in ("identity_check", "contact")}})


def scans(entries: list[dict]) -> list[str]:
    """The uploaded files among material entries."""
    return [entry["file_id"] for entry in entries if entry.get("file_id")]


def hand_files_over(file_ids: list[str], *, staff_id: str, applicant_id: str) -> None:
    """The scans the staff member made for the applicant become the applicant's (theirs to read, and
    what the application's materials and archive expect); anything else stays as it is and the
    submission refuses it."""
    if file_ids:
        db.session.execute(update(StoredFile).where(
            StoredFile.id.in_(file_ids), StoredFile.owner_subject_id == staff_id, StoredFile.attached_at.is_(None))
            .values(owner_subject_id=applicant_id).execution_options(synchronize_session=False))


def add_new_person(person: Person, *, staff_id: str, hall_code: str, channel: str) -> None:
    """A person first met at a hall, added in a savepoint: the same person taken in at two windows at
    once is 409 for the second, not a 500."""
    savepoint = db.session.begin_nested()
    db.session.add(person)
    try:
        db.session.flush()
        savepoint.commit()
    except IntegrityError:
        savepoint.rollback()
        raise Conflict("该申请人正在另一窗口登记，请稍后重试") from None
    audit.record("person.created_at_window", subject_id=person.subject_id, actor=staff_id,
                 details={"hall_code": hall_code, "channel": channel})


def submit_at_window(*, actor: Actor, idempotency_key: str, path: str, data: dict,
                     answer: Callable[[ApplicationView], dict]) -> submission.Submission:
    """POST /applications by hall staff with `applicant`: the applicant's application, taken in here."""
    require_hall_staff(actor, "代申请人提交申请（applicant）")
    route = crossregion.route(actor.principal, service_code=data["service_code"],
                              responsible_hall=data.get("responsible_hall"), accepting_hall=data.get("accepting_hall"))
    person = applicant_person(data["applicant"])
    new_person = person if person.id is None else None
    intake = Intake(applicant=Actor.for_person(person, channel="window"), staff_id=actor.subject_id,
                    hall_code=route.accepting_hall or route.service.hall_code, channel="window",
                    details={"identity_check": data["identity_check"]}, new_person=new_person,
                    accepting_hall=route.accepting_hall, file_ids=scans(data["materials"]))
    request = {key: value for key, value in data.items() if key not in ("responsible_hall", "accepting_hall")}
    return submission.submit_application(actor=actor, idempotency_key=idempotency_key, path=path,
                                         data={**request, "service_code": route.service.code}, answer=answer,
                                         intake=intake)


def intake_of(app: Application) -> dict | None:
    """How the application came in, for its detail: None when the applicant applied online."""
    if (app.channel or "online") == "online":
        return None
    event = next((e for e in app.events if e.action in ("window_intake", "assisted")), None)
    data = event.data if event is not None else {}
    confirmed = next((e for e in app.events if e.action == "confirmed"), None)
    return {"channel": app.channel, "staff": data.get("staff"), "identity_check": data.get("identity_check"),
            "contact": data.get("contact"), "accepting_hall_code": app.accepting_hall_code,
            "confirmed_at": isoformat_z(confirmed.at) if confirmed is not None else None}
