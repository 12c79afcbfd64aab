"""Token grants: password (with the failed-login lock), SMS code, refresh, client credentials, act-as."""
from __future__ import annotations

import hmac
import logging
from typing import NoReturn

from flask import current_app
from sqlalchemy import select

from .. import journal
from ..errors import Forbidden, Locked, NotFound, Unauthorized
from ..extensions import db, store
from ..ratelimit import Window
from ..security import audit
from ..security.ciphers import pii_cipher
from ..security.passwords import hash_password, needs_rehash, verify_password
from ..security.rbac import Principal
from ..timeutil import as_aware, utcnow
from . import held_sessions, proxies, sms
from .clients import client_by_id, client_claims
from .common import field_phone, sha256_hex
from .enterprises import enterprise_claims, enterprise_for
from .identifiers import IdentifierError, normalize_phone
from .models import Person, phone_index
from .persons import acting_person, find_person_by_id_number, find_person_by_phone, person_by_subject_id
from .sessions import (claim_refresh_token, issue_person_pair, issue_tokens, next_refresh_token, parse_refresh_token,
                       refresh_token_row, refusal, revoke_family, rotate_refresh_token, session_row)

logger = logging.getLogger("app.identity")

MAX_FAILED_LOGINS = 5
LOGIN_WINDOW = 15 * 60
LOCK_SECONDS = 15 * 60  # LOGIN_LOCK_SECONDS overrides


def _person_for_username(username: str) -> Person | None:
    """`username` is a phone number (with or without +86) or an ID number."""
    try:
        phone = normalize_phone(username or "")
    except IdentifierError:
        return find_person_by_id_number(username or "")
    return db.session.scalar(select(Person).where(Person.phone_index == phone_index(phone)))


def _lock_subject(person: Person | None, username: str) -> str:
    # unknown usernames lock too, so a 423 tells nobody whether an account exists
    if person is not None:
        return person.subject_id
    normalized = "".join((username or "").split()).upper()
    return "u_" + pii_cipher().blind_index(normalized, domain="login-username")[:32]


def _locked_error(seconds: int) -> Locked:
    minutes = max(1, (seconds + 59) // 60)
    return Locked(f"密码错误次数过多，账户已临时锁定，请{minutes}分钟后再试", retry_after=seconds)


def password_matches(person: Person | None, password: str, *, lock_subject: str, method: str) -> bool:
    """Check a password under the failed-login lock: 423 while the subject is locked; a failure is
    counted (the fifth within 15 minutes locks for LOGIN_LOCK_SECONDS), audited and committed."""
    lock_key, fail_key = f"login:lock:{lock_subject}", f"login:fail:{lock_subject}"
    if store.get(lock_key):
        raise _locked_error(store.ttl(lock_key) or LOCK_SECONDS)
    if verify_password(person.password_hash if person else None, password) and person.active:
        store.delete(fail_key)
        return True
    failures = store.incr(fail_key, LOGIN_WINDOW)
    audit.record("auth.login_failed", subject_id=person.subject_id if person else None,
                 details={"method": method, "failures": failures})
    locked = failures >= MAX_FAILED_LOGINS
    if locked:
        seconds = int(current_app.config.get("LOGIN_LOCK_SECONDS", LOCK_SECONDS))
        store.set_if_absent(lock_key, "1", seconds)
        store.delete(fail_key)
        audit.record("auth.account_locked", subject_id=person.subject_id if person else None,
                     details={"seconds": seconds})
    db.session.commit()
    if locked:
        raise _locked_error(store.ttl(lock_key) or seconds)
    return False


def unlock(person: Person) -> None:
    """Forget failed passwords and lift the lock (the password was just reset)."""
    store.delete(f"login:lock:{person.subject_id}", f"login:fail:{person.subject_id}")


def password_grant(*, username: str, password: str) -> dict:
    """ID number or phone + password; 5 failures within 15 minutes lock the account for 15 minutes."""
    person = check_password(username=username, password=password, commit=False)
    body = issue_person_pair(person, "app")
    db.session.commit()
    return body


def check_password(*, username: str, password: str, page: str | None = None, commit: bool = True) -> Person:
    """Who this ID number or phone + password is (the lock, the rehash and the audit of every sign-in), with
    no API session: sign-in pages (`page` names which) keep their own."""
    person = _person_for_username(username)
    if not password_matches(person, password, lock_subject=_lock_subject(person, username), method="password"):
        raise Unauthorized("用户名或密码错误")
    if needs_rehash(person.password_hash):
        person.password_hash = hash_password(password)
    audit.record("auth.login_succeeded", subject_id=person.subject_id, actor=person.subject_id,
                 details={"method": "password", **({"page": page} if page else {})})
    if commit:
        db.session.commit()
    return person


def sms_grant(*, phone: str, code: str) -> dict:
    """Phone + one-time code sent with purpose `login`."""
    phone = field_phone(phone)
    person = find_person_by_phone(phone) if sms.check_code(phone, "login", code) else None
    if person is None or not person.active:
        audit.record("auth.login_failed", subject_id=person.subject_id if person else None,
                     details={"method": "sms"})
        db.session.commit()
        raise Unauthorized("验证码错误或已失效")
    body = issue_person_pair(person, "app")
    audit.record("auth.login_succeeded", subject_id=person.subject_id, actor=person.subject_id,
                 details={"method": "sms"})
    db.session.commit()
    return body


REFUSALS = {
    "unknown": "刷新令牌无效",
    "ended": "刷新令牌已注销，请重新登录",
    "expired": "刷新令牌已过期，请重新登录",
    "stale": "登录会话已结束，请重新登录",
}


def refresh_grant(*, refresh_token: str) -> dict:
    """Rotate a session's refresh token (`rotate_session`); a token of an older generation is a reused
    one and ends the session (401). The new pair reuses the person row the rotation read."""
    presented = refresh_token or ""
    named = parse_refresh_token(presented)
    if named is None:
        return _legacy_refresh(presented)
    session_id, generation = named
    rotated = rotate_session(session_id, generation=generation, presented=presented)
    if isinstance(rotated, str):
        _reused(session_id, subject_id=rotated, actor_id=None)
    if rotated is None:
        db.session.rollback()
        row = session_row(session_id)
        reason = refusal(row, generation, presented)
        if reason == "reused":
            _reused(session_id, subject_id=row.subject_id, actor_id=row.actor_id)
        if reason == "stale":
            _end_session(session_id, REFUSALS["stale"])
        raise Unauthorized(REFUSALS[reason])
    return continue_rotated(*rotated)


def rotate_session(session_id: str, *, generation: int, presented: str, counted: Window | None = None):
    """The session's rotation as (row, new refresh token): in the shared store when it holds the session
    (`held_sessions`), else in the database (again once the journal has written what the store rotated,
    when the row refused), after which the store holds the session. The subject id instead when the
    store saw an older generation (a reuse: the row may not show it yet); None when the database
    refused. `counted`: the request's rate-limit hit, counted in the store's step."""
    next_token = next_refresh_token(session_id, generation + 1)
    outcome, held = held_sessions.rotate(session_id, generation=generation, presented=presented, next_token=next_token,
                                         counted=counted)
    if outcome != "database":
        return (held, next_token) if outcome == "rotated" else held
    rotated = rotate_refresh_token(session_id, generation=generation, presented=presented)
    if rotated is None:  # the row may have been behind the store (or a drainer caught it up meanwhile)
        journal.catch_up()
        rotated = rotate_refresh_token(session_id, generation=generation, presented=presented)
    if rotated is None:
        return None
    row, token = rotated
    if row.person_active and held_sessions.holds(row.subject_id, row.actor_id):
        held_sessions.hold_after_commit(
            session_id=session_id, subject_id=row.subject_id, channel=row.channel, generation=generation + 1,
            refresh_hash=sha256_hex(token), expires_at=row.expires_at,
            credentials_version=row.credentials_version or 0, staff_roles=row.staff_roles or "")
    return rotated


def continue_rotated(row, new_token: str) -> dict:
    """The new token pair of a session whose refresh token was just rotated (committed); a session whose
    subject is gone or inactive ends instead (401). A rotation the store made has nothing to commit."""
    try:
        body = _refreshed_pair(row, new_token)
    except (NotFound, Forbidden):
        _end_session(row.family_id, "登录会话已失效，请重新登录")
    if not isinstance(row, held_sessions.HeldRow):
        db.session.commit()  # and the store holds the session from here (`held_sessions`)
    return body


def _end_session(session_id: str, detail: str) -> NoReturn:
    """Drop what the refresh did, end the session, and refuse with `detail`."""
    db.session.rollback()
    revoke_family(session_id)
    db.session.commit()
    raise Unauthorized(detail)


def _legacy_refresh(refresh_token: str) -> dict:
    """A refresh token issued before sessions held their own: claimed once; its session then holds the next."""
    row = claim_refresh_token(refresh_token)
    if row is None:
        db.session.rollback()
        old = refresh_token_row(refresh_token)
        if old is None:
            raise Unauthorized(REFUSALS["unknown"])
        if old.revoked_at is not None and old.used_at is None:
            raise Unauthorized(REFUSALS["ended"])
        _reused(old.family_id, subject_id=old.subject_id, actor_id=old.actor_id)
    if as_aware(row.expires_at) <= utcnow():
        db.session.commit()
        raise Unauthorized(REFUSALS["expired"])
    rotated = rotate_refresh_token(row.family_id, generation=0, presented=None)
    if rotated is None:  # ended, or opened before the credentials changed
        _end_session(row.family_id, REFUSALS["stale"])
    return continue_rotated(*rotated)


def _reused(session_id: str, *, subject_id: str, actor_id: str | None) -> NoReturn:
    """A refresh token used a second time: whoever holds the next one may not be its owner; end the session."""
    revoked = revoke_family(session_id)
    audit.record("auth.refresh_reused", subject_id=subject_id, actor=actor_id,
                 details={"family": session_id[:8], "revoked": revoked})
    db.session.commit()
    logger.warning("refresh token reused; session ended", extra={"subject": subject_id})
    raise Unauthorized("刷新令牌已被使用过，为保护账号安全，该登录会话已全部注销，请重新登录")


def _refreshed_pair(row, refresh_token: str) -> dict:
    if row.subject_id.startswith("e_"):
        enterprise = enterprise_for(row.subject_id)
        person = person_by_subject_id(row.actor_id or "")
        if enterprise is None or person is None or not person.active:
            raise NotFound("企业或经办人不存在")
        roles, extra = enterprise_claims(enterprise, person, row.channel)
        return issue_tokens(enterprise.subject_id, roles, extra, channel=row.channel, actor_id=person.subject_id,
                            family_id=row.family_id, refresh_token=refresh_token)
    if row.actor_id:  # a family proxy's session
        return proxies.refreshed_pair(row, refresh_token)
    if not row.person_active:  # the rotation read the person: None when there is none
        raise Forbidden("账号不存在或已停用")
    return issue_person_pair(row.subject_id, row.channel, family_id=row.family_id, refresh_token=refresh_token,
                             credentials_version=row.credentials_version, staff=row.staff_roles or "")


def client_credentials_grant(*, client_id: str, client_secret: str) -> dict:
    """Issuer, verifier and third-party systems; an access token only, no refresh token."""
    client = client_by_id(client_id)
    expected = client.secret_hash if client is not None else sha256_hex("no-such-client")
    matches = hmac.compare_digest(expected, sha256_hex(client_secret or ""))
    if not matches or client is None or not client.active:
        audit.record("auth.client_failed", subject_id=client.client_id if client else None,
                     details={"method": "client_credentials"})
        db.session.commit()
        raise Unauthorized("客户端标识或密钥错误")
    roles, extra = client_claims(client)
    body = issue_tokens(client.client_id, roles, extra, channel=extra["channel"], refresh=False)
    audit.record("auth.client_token_issued", subject_id=client.client_id, actor=client.client_id,
                 details={"kind": client.kind})
    db.session.commit()
    return body


def act_as(*, principal: Principal, credit_code: str | None = None, subject_id: str | None = None) -> dict:
    """A token pair for the company whose `act` claim names the calling person, or (`subject_id`)
    for a person who made the caller their family proxy (app.identity.proxies)."""
    if subject_id is not None:
        return proxies.act_for_person(principal=principal, subject_id=subject_id)
    person = acting_person(principal)
    enterprise = enterprise_for(credit_code)
    if enterprise is None:
        raise NotFound("未找到您可以代办的该企业")
    roles, extra = enterprise_claims(enterprise, person, principal.channel)
    body = issue_tokens(enterprise.subject_id, roles, extra, channel=principal.channel,
                        actor_id=person.subject_id)
    audit.record("auth.act_as", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"role": extra["enterprise_role"]})
    db.session.commit()
    return body
