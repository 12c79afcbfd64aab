"""Credentials: password reset by SMS, password change (or a first password after an SMS check for
accounts made through a mini-program), phone change proving both numbers. A reset ends every
session of the account (the tokens relying parties hold through 一号通行 too); a change ends every
session but the caller's."""
from __future__ import annotations

from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..oidc.logout import notify_logout
from ..oidc.tokens import revoke_for_person
from ..security import audit
from ..security.passwords import hash_password
from ..security.pii import mask_phone
from ..security.rbac import Principal
from . import sms
from .common import commit, field_phone
from .grants import password_matches, unlock
from .models import phone_index
from .persons import acting_person, checked_password, find_person_by_phone, phone_taken
from .sessions import end_sessions_of

NO_PASSWORD_YET = "账号尚未设置密码：请获取用途为 reset_password 的短信验证码，以 sms_code 设置密码"


def reset_password(*, phone: str, sms_code: str, new_password: str) -> None:
    """Set a new password with a `reset_password` code sent to the account's phone; every session
    of the account ends and the failed-login lock is lifted. A phone without an account answers
    exactly as a wrong code does (its owner got a notice, never a code)."""
    phone = field_phone(phone)
    checked_password(new_password, field="new_password")
    proven = sms.require(phone, "reset_password", sms_code)
    person = find_person_by_phone(phone)
    if person is None or not person.active:
        raise ValidationFailed(sms.CODE_INVALID, errors={"sms_code": [sms.CODE_INVALID]})
    sms.consume(proven)
    person.password_hash = hash_password(new_password)
    ended = end_sessions_of(person)
    other_systems = revoke_for_person(person.subject_id)  # 一号通行 tokens held by relying parties
    audit.record("auth.password_reset", subject_id=person.subject_id, actor=person.subject_id,
                 details={"sessions_ended": ended, "oidc_tokens_revoked": len(other_systems)})
    db.session.commit()
    unlock(person)
    notify_logout(other_systems)


def change_password(*, principal: Principal, new_password: str, old_password: str | None = None,
                    sms_code: str | None = None) -> None:
    """The caller's new password, proven by the old one (or, for an account without a password,
    by a `reset_password` code sent to its phone); every other session ends."""
    person = acting_person(principal)
    checked_password(new_password, field="new_password")
    if person.password_hash:
        if not old_password:
            raise ValidationFailed.field("old_password", "请填写原密码")
        if not password_matches(person, old_password, lock_subject=person.subject_id, method="password_change"):
            raise ValidationFailed.field("old_password", "原密码不正确")
        method = "old_password"
    else:
        if not sms_code or not person.phone:
            raise ValidationFailed.field("sms_code", NO_PASSWORD_YET)
        sms.consume(sms.require(person.phone, "reset_password", sms_code))
        method = "sms"
    person.password_hash = hash_password(new_password)
    ended = end_sessions_of(person, keep_session=principal.claims.get("sid"))
    audit.record("auth.password_changed", subject_id=person.subject_id, actor=person.subject_id,
                 details={"method": method, "sessions_ended": ended})
    db.session.commit()


def change_phone(*, principal: Principal, phone: str, sms_code: str, old_sms_code: str | None = None,
                 password: str | None = None) -> str:
    """Move the caller's account to `phone`: the new number proven by its `change_phone` code, the
    current one by its own (an account without a phone proves itself with its password); every
    other session ends. Returns the new number."""
    person = acting_person(principal)
    phone = field_phone(phone)
    if person.phone_index == phone_index(phone):
        raise ValidationFailed.field("phone", "新手机号与当前手机号相同")
    old_phone = person.phone
    if old_phone:
        old = sms.require(old_phone, "change_phone", old_sms_code, field="old_sms_code")
    elif not password or not password_matches(person, password, lock_subject=person.subject_id,
                                              method="phone_change"):
        raise ValidationFailed.field("password", "账号未登记手机号，请填写正确的登录密码")
    new = sms.require(phone, "change_phone", sms_code)
    if phone_taken(phone, other_than=person):
        raise Conflict("该手机号已绑定其他账号")
    if old_phone:
        sms.consume(old, field="old_sms_code")
    sms.consume(new)
    person.phone = phone
    ended = end_sessions_of(person, keep_session=principal.claims.get("sid"))
    audit.record("person.phone_changed", subject_id=person.subject_id, actor=person.subject_id,
                 details={"from": mask_phone(old_phone) if old_phone else None, "to": mask_phone(phone),
                          "sessions_ended": ended})
    commit("该手机号已绑定其他账号")
    return phone
