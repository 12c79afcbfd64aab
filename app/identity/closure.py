"""Closing an account (个人信息保护法 article 47): after a password or SMS check the person's tokens
die at once on every worker, logins fail, contact data and channel bindings are erased, the ID
number can register again (as a new subject), future appointment places go back to their slots,
and what the law requires to keep (applications, the audit chain) stays without the contact data.
"""
from __future__ import annotations

import logging

from sqlalchemy import delete, select

from ..applications.models import Application
from ..applications.assisted_models import decline_pending_of
from ..appointments.booking import cancel_future_of
from ..errors import ValidationFailed
from ..extensions import db, limiter
from ..notifications.models import Notification, OutboxMessage
from ..oidc.consents import revoke_all_for_subject
from ..security import audit
from ..security.passwords import verify_password
from ..security.rbac import Principal
from ..security.tokens import mark_closed
from ..timeutil import utcnow
from . import levels, proxies, sms
from .account_models import AccountClosure, DataExport
from .models import ChannelBinding, Person
from .persons import acting_person
from .sessions import end_sessions_of

logger = logging.getLogger("app.identity.closure")

CLOSE_ATTEMPTS = "5/15minute"  # checks of the password or code per account
WRONG_PASSWORD = "密码错误"
CONTACT_FIELD_TYPES = ("phone",)


def close_account(*, principal: Principal, password: str | None = None, sms_code: str | None = None) -> None:
    """Close the caller's own account after checking `password` or an SMS code (purpose `login`)
    sent to its phone: the closed marker goes into the shared store first, then one transaction."""
    person = acting_person(principal)
    levels.ensure_level_for(person, "account_closure", base=levels.PHONE_PROVEN)  # L3 where REQUIRE_L3_FOR says
    limiter.hit(CLOSE_ATTEMPTS, "account-close", person.subject_id, detail="验证次数过多，请稍后再试")
    proven = _checked(person, password=password, sms_code=sms_code)
    if proven is not None and not proven.consume():
        raise ValidationFailed(sms.CODE_INVALID, errors={"sms_code": [sms.CODE_INVALID]})
    method = "password" if password is not None else "sms"
    subject_id = person.subject_id
    mark_closed(subject_id)  # first: without the shared store nothing happens (503, nothing written)
    counts = {"grants_ended": proxies.end_grants_of(person), "sessions_ended": end_sessions_of(person),
              "bindings_erased": _erase(ChannelBinding, ChannelBinding.subject_id == subject_id),
              "applications_kept": _strip_contact_data(subject_id),
              "oidc_tokens_revoked": revoke_all_for_subject(subject_id)}
    cancelled = cancel_future_of(subject_id)
    counts["appointments_cancelled"] = len(cancelled)
    counts["assisted_drafts_declined"] = decline_pending_of(subject_id)
    _erase(OutboxMessage, OutboxMessage.subject_id == subject_id)
    _erase(Notification, Notification.subject_id == subject_id)
    _erase(DataExport, DataExport.subject_id == subject_id)
    person.phone = None
    person.password_hash = None
    person.active = False
    person.id_number_index = f"closed:{subject_id}"  # the ID number is free to register again
    db.session.add(AccountClosure(subject_id=subject_id, method=method, closed_at=utcnow()))
    audit.record("account.closed", subject_id=subject_id, actor=subject_id,
                 details={"method": method, **counts, "appointments": cancelled})
    db.session.commit()
    logger.info("account closed", extra={"subject": subject_id})


def _checked(person: Person, *, password: str | None, sms_code: str | None):
    """The proven SMS code to consume (None for a password); 422 naming the field when wrong."""
    if (password is None) == (sms_code is None):
        message = "请提供登录密码或短信验证码（二选一）"
        raise ValidationFailed(message, errors={"password": [message], "sms_code": [message]})
    if password is not None:
        if not verify_password(person.password_hash, password):
            raise ValidationFailed.field("password", WRONG_PASSWORD)
        return None
    if not person.phone:
        raise ValidationFailed.field("sms_code", "账号未登记手机号，请使用登录密码验证")
    return sms.require(person.phone, "login", sms_code)


def _erase(model, where) -> int:
    return db.session.execute(delete(model).where(where).execution_options(synchronize_session=False)).rowcount


def _strip_contact_data(subject_id: str) -> int:
    """The person's applications stay (records the law keeps) without the phone numbers typed into them."""
    applications = db.session.scalars(select(Application).where(Application.subject_id == subject_id)).all()
    for app in applications:
        types = dict(app.form_types or {})
        if any(kind in CONTACT_FIELD_TYPES for kind in types.values()):
            kept = {name: value for name, value in app.form.items() if types.get(name) not in CONTACT_FIELD_TYPES}
            app.set_form(kept, types)
    return len(applications)
