"""Demo activity for development (`flask seed`): the demo residents' company and agent, applications in
every state at the 历下区 hall, ratings, complaints and a booking, all made through the domain services
(the rules apply as they do to requests). Keyed on the demo residents and the services, so a second
run changes nothing; a run that stopped half-way resumes where it stopped."""
from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..applications import materials, processing, review, submission
from ..applications.forms import service_spec
from ..applications.models import APPROVED, REJECTED, Application
from ..applications.service import load_application
from ..appointments import booking, slots
from ..appointments.models import BOOKED, Appointment, AppointmentSlot
from ..catalogue.models import Hall
from ..complaints import service as complaints
from ..complaints.models import CLOSED, Complaint
from ..evaluations import service as evaluations
from ..evaluations.models import Evaluation
from ..extensions import db
from ..files.service import store_upload
from ..files.upload import Upload
from ..identity import enterprises, persons
from ..identity.actors import Actor
from ..security.rbac import Principal
from ..timeutil import beijing_today, utcnow
from .accounts import DEVELOPMENT
from .demo_cases import (AGENT, AGENT_DAYS, AGENT_SCOPES, APPOINTMENT, CASES, COMPLAINTS, ENTERPRISE, FORM_PHONES,
                         FRONT_DESK, HALL, Case, ComplaintCase)

STEP_ACTIONS = frozenset({"review", "accept", "approve", "reject", "request_more", "dispatch", "withdraw"})


def principal_of(id_number: str) -> Principal | None:
    """The demo person as their access token would describe them (roles and halls read now)."""
    person = persons.find_person_by_id_number(id_number)
    if person is None:
        return None
    roles, halls = persons.staff_roles(person.subject_id)
    claims = {"sub": person.subject_id, "sub_type": "person", "channel": "app"}
    if halls:
        claims["halls"] = halls
    return Principal(subject_id=person.subject_id, subject_type="person", roles=frozenset(roles), claims=claims)


def seed_demo_activity() -> str:
    """Play the demo cases that have not been played yet (development only; idempotent)."""
    env = current_app.config.get("APP_ENV")
    if env != DEVELOPMENT:
        return f"skipped in {env}"
    people = {case.id_number for case in CASES} | {FRONT_DESK, ENTERPRISE[2], AGENT}
    if any(principal_of(id_number) is None for id_number in people):
        return "skipped: the demo accounts are missing"
    added = {"enterprise": demo_enterprise(), "applications": 0, "steps": 0, "ratings": 0}
    for case in CASES:
        for name, count in play(case).items():
            added[name] += count
    added["complaints"] = sum(file_complaint(item) for item in COMPLAINTS)
    added["appointments"] = book_visit()
    return ", ".join(f"{count} {name}" for name, count in added.items()) + " added"


# ---- the company and its agent


def demo_enterprise() -> int:
    """王芳 claims her company and lets 张三 act for it; returns how many of the two were done now."""
    credit_code, name, representative = ENTERPRISE
    owner = principal_of(representative)
    done = 0
    if enterprises.enterprise_for(credit_code) is None:
        enterprises.claim_enterprise(principal=owner, credit_code=credit_code, name=name)
        done += 1
    agent = persons.find_person_by_id_number(AGENT)
    if enterprises.agent_scopes(agent, credit_code) is None:
        enterprises.grant_agent(principal=owner, credit_code=credit_code, id_number=AGENT, scopes=list(AGENT_SCOPES),
                                expires_at=utcnow() + timedelta(days=AGENT_DAYS))
        done += 1
    return done


# ---- applications


def application_of(case: Case, subject_id: str) -> Application | None:
    return db.session.scalar(select(Application).where(Application.subject_id == subject_id,
                                                       Application.service_code == case.service_code)
                             .order_by(Application.id).limit(1))


def play(case: Case) -> dict:
    """Submit the case's application unless the resident has one for the service, take the steps not
    taken yet, then rate it."""
    applicant = principal_of(case.id_number)
    existing = application_of(case, applicant.subject_id)
    application_id = existing.application_id if existing else submit(case, applicant)
    taken = [event.action for event in load_application(application_id).events if event.action in STEP_ACTIONS]
    remaining = case.steps[len(taken):]
    for step in remaining:
        take(step, application_id, applicant)
    return {"applications": int(existing is None), "steps": len(remaining), "ratings": rate(case, application_id)}


def submit(case: Case, principal: Principal) -> str:
    actor = Actor(principal)
    person = actor.own_person()
    spec = service_spec(case.service_code)
    held = {item["license_type"]: item["license_id"] for item in materials.wallet_licenses(actor)}
    entries = []
    for name, how in case.materials.items():
        if how == "license":
            entries.append({"name": name, "license_id": held[spec.material(name).license_type_code]})
        elif how == "file":
            entries.append({"name": name, "file_id": scan(person.subject_id, f"{spec.name}: {name}")})
        else:
            entries.append({"name": name, how: True})
    form = {"name": person.name, "id_number": person.id_number,
            "phone": person.phone or FORM_PHONES[case.id_number], **case.form}
    submitted = submission.submit_application(
        actor=actor, idempotency_key=f"demo-{case.key}", path="/api/v1/applications",
        data={"service_code": case.service_code, "form": form, "materials": entries},
        answer=lambda view: {"application_id": view.application.application_id})
    return submitted.application_id


def scan(owner_subject_id: str, title: str) -> str:
    """A one-page PDF standing in for a scanned material, uploaded as the resident would."""
    from fpdf import FPDF
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(0, 10, f"demo scan {hashlib.sha256(title.encode()).hexdigest()[:16]}")
    data = bytes(pdf.output())
    handle, path = tempfile.mkstemp(prefix="ias-demo-", suffix=".pdf")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        upload = Upload(path=path, name="scan.pdf", size=len(data), sha256=hashlib.sha256(data).hexdigest())
        return store_upload(owner_subject_id=owner_subject_id, upload=upload).id
    finally:
        os.unlink(path)


def take(step: tuple, application_id: str, applicant: Principal) -> None:
    """One step: the front desk reviews a material or moves the application on; the applicant withdraws."""
    if step[0] == "withdraw":
        processing.withdraw(actor=Actor(applicant), application_id=application_id)
        return
    staff = Actor(principal_of(FRONT_DESK))
    if step[0] == "review":
        _, name, decision, reason = step
        review.review_material(actor=staff, application_id=application_id, name=name, decision=decision,
                               reason=reason)
        return
    action, comment = step
    processing.transition(actor=staff, application_id=application_id, action=action, comment=comment)


def rate(case: Case, application_id: str) -> int:
    app = load_application(application_id)
    if case.rating is None or app.status not in (APPROVED, REJECTED) or db.session.scalar(
            select(Evaluation.id).where(Evaluation.application_id == app.id)) is not None:
        return 0
    stars, comment = case.rating
    evaluations.rate(principal=principal_of(case.id_number), application_id=application_id, rating=stars,
                     comment=comment)
    return 1


# ---- complaints and a booking


def file_complaint(item: ComplaintCase) -> int:
    """File the complaint unless the resident has one of its kind about the same thing; reply, close
    and rate as the item says."""
    owner = principal_of(item.id_number)
    about = {"service_code": f"{HALL}-{item.about_service}" if item.about_service else None, "application_id": None}
    if item.about_case:
        case = next(case for case in CASES if case.key == item.about_case)
        about["application_id"] = application_of(case, owner.subject_id).application_id
    row = db.session.scalar(select(Complaint).where(
        Complaint.subject_id == owner.subject_id, Complaint.hall_code == HALL, Complaint.category == item.category,
        Complaint.service_code.is_not_distinct_from(about["service_code"]),
        Complaint.application_id.is_not_distinct_from(about["application_id"])).limit(1))
    added = 0
    if row is None:
        complaint_id = complaints.create_complaint(principal=owner, category=item.category, content=item.content,
                                                   hall_code=HALL, **about).complaint.complaint_id
        added = 1
    else:
        complaint_id = row.complaint_id
    current = complaints.complaint_detail(principal=owner, complaint_id=complaint_id).complaint
    if item.reply and current.status != CLOSED:
        complaints.reply(principal=principal_of(FRONT_DESK), complaint_id=complaint_id, content=item.reply, close=True)
    if item.rating and current.rating is None:
        stars, comment = item.rating
        complaints.rate(principal=owner, complaint_id=complaint_id, rating=stars, comment=comment)
    return added


def book_visit() -> int:
    """A booking of the resident at the hall on the first bookable slot, unless one is still ahead."""
    id_number, base_code = APPOINTMENT
    owner = principal_of(id_number)
    ahead = db.session.scalar(select(Appointment.id).where(
        Appointment.subject_id == owner.subject_id, Appointment.hall_code == HALL, Appointment.status == BOOKED,
        Appointment.day >= beijing_today()).limit(1))
    hall = db.session.get(Hall, HALL)
    if ahead is not None or hall is None:
        return 0
    for day in slots.bookable_days():
        slots.open_day(hall, day)
        slot = db.session.scalar(select(AppointmentSlot).where(
            AppointmentSlot.hall_code == HALL, AppointmentSlot.day == day, AppointmentSlot.start_at > utcnow(),
            AppointmentSlot.booked < AppointmentSlot.capacity).order_by(AppointmentSlot.start_at).limit(1))
        if slot is not None:
            booking.book(principal=owner, slot_id=slot.slot_id, service_code=f"{HALL}-{base_code}")
            return 1
    return 0

