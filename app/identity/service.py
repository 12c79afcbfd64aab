"""Identity services (一号通行): registration, SMS codes, token grants, logout, companies and
their agents, staff, API clients and mini-program bindings.

Functions are keyword-only where callers could mix arguments up, raise domain exceptions
from app.errors, and own their transactions (they commit on success). Other domains use:
`find_person_by_id_number`, `person_by_subject_id`, `enterprise_for`, `agent_scopes`,
`guardian_of`, `credit_class`, `issue_token_pair`, `register_or_link_person`,
`bound_person`, `set_phone`, `send_sms_code`, `verify_sms_code`.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, Forbidden, Locked, NotFound, TooManyRequests, Unauthorized, ValidationFailed
from ..extensions import db, limiter, store
from ..security import audit
from ..security.ciphers import pii_cipher
from ..security.passwords import PasswordPolicyError, check_policy, hash_password, needs_rehash, verify_password
from ..security.pii import mask_id_number, mask_phone
from ..security.rbac import Principal
from ..security.signed_requests import OPEN_API_SCOPES, SIGNING_KINDS, remember_signing_secret
from ..security.tokens import issue_access_token, revoke_access_token
from ..timeutil import as_aware, epoch, utcnow
from . import registries, sms
from .identifiers import (CREDIT_ALPHABET, IdentifierError, credit_check_char, normalize_credit_code,
                          normalize_id_number, normalize_phone)
from .models import (AgentGrant, ApiClient, ChannelBinding, Enterprise, Person, RefreshToken,
                     StaffAssignment, id_index, phone_index)

logger = logging.getLogger("app.identity")

CHANNELS = ("app", "wechat", "alipay")
BINDING_CHANNELS = ("wechat", "alipay")
CLIENT_KINDS = ("issuer", "verifier", "third_party")
STAFF_ROLES = ("hall_admin", "hall_staff", "platform_admin")
HALL_ROLES = ("hall_admin", "hall_staff")
# What a representative may delegate to an agent; the representative holds all of them.
AGENT_SCOPES = ("applications:submit", "applications:read", "licenses:read", "licenses:present",
                "evaluations:write")
REAL_NAME_REGISTRY_MATCH = 2  # name + ID number matched in the population registry
MAX_FAILED_LOGINS = 5
LOGIN_WINDOW = 15 * 60
LOCK_SECONDS = 15 * 60  # LOGIN_LOCK_SECONDS overrides
MAX_AGENT_GRANT_DAYS = 366
CLIENT_CACHE_SECONDS = 30  # how long a worker trusts its copy of a client's registration
REGISTRY_MISMATCH = "身份核验未通过：姓名、身份证号码与户籍登记信息不一致"
ENTITY_MISMATCH = "企业核验未通过：统一社会信用代码、企业名称或法定代表人与登记信息不一致"


# ---- small helpers


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _commit(conflict_detail: str) -> None:
    """Commit, turning a unique-constraint race into 409."""
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(conflict_detail) from exc


def _field_id_number(value: str, field: str = "id_number") -> str:
    try:
        return normalize_id_number(value)
    except IdentifierError as exc:
        raise ValidationFailed.field(field, exc.message) from None


def _field_phone(value: str, field: str = "phone") -> str:
    try:
        return normalize_phone(value)
    except IdentifierError as exc:
        raise ValidationFailed.field(field, exc.message) from None


def _registry_mismatch() -> ValidationFailed:
    # the same answer whether the ID number is unknown or the name is wrong
    return ValidationFailed(REGISTRY_MISMATCH, errors={"id_number": [REGISTRY_MISMATCH],
                                                       "name": [REGISTRY_MISMATCH]})


# ---- persons


def find_person_by_id_number(id_number: str) -> Person | None:
    """The person with this ID number (looked up by blind index), or None."""
    try:
        normalized = normalize_id_number(id_number)
    except IdentifierError:
        return None
    return db.session.scalar(select(Person).where(Person.id_number_index == id_index(normalized)))


def find_person_by_phone(phone: str) -> Person | None:
    """The person with this phone number, or None."""
    try:
        normalized = normalize_phone(phone)
    except IdentifierError:
        return None
    return db.session.scalar(select(Person).where(Person.phone_index == phone_index(normalized)))


def person_by_subject_id(subject_id: str) -> Person | None:
    """The person with this subject id ("p_..."), or None."""
    if not isinstance(subject_id, str) or not subject_id.startswith("p_"):
        return None
    return db.session.scalar(select(Person).where(Person.subject_id == subject_id))


def _new_person(*, id_number: str, name: str, phone: str | None, password: str | None,
                real_name_level: int = REAL_NAME_REGISTRY_MATCH) -> Person:
    person = Person(subject_id=_new_id("p"), name=name, real_name_level=real_name_level, active=True)
    person.id_number = id_number
    person.phone = phone
    person.password_hash = hash_password(password) if password else None
    db.session.add(person)
    return person


def _phone_taken(phone: str, *, other_than: Person | None = None) -> bool:
    owner = find_person_by_phone(phone)
    return owner is not None and (other_than is None or owner.id != other_than.id)


def register_person(*, id_number: str, name: str, phone: str, password: str) -> Person:
    """Register a person who matches the population registry; 422 / 409 otherwise."""
    id_number, phone, name = _field_id_number(id_number), _field_phone(phone), name.strip()
    try:
        check_policy(password)
    except PasswordPolicyError as exc:
        raise ValidationFailed.field("password", exc.message) from None
    if not registries.population().matches(id_number=id_number, name=name, phone=phone):
        raise _registry_mismatch()
    if find_person_by_id_number(id_number) is not None:
        raise Conflict("该身份证号码已注册，请直接登录")
    if _phone_taken(phone):
        raise Conflict("该手机号已绑定其他账号")
    person = _new_person(id_number=id_number, name=name, phone=phone, password=password)
    db.session.flush()
    audit.record("person.registered", subject_id=person.subject_id, actor=person.subject_id,
                 details={"real_name_level": person.real_name_level, "channel": "app"})
    _commit("该身份证号码或手机号已注册")
    logger.info("person registered: %s", mask_id_number(id_number))
    return person


def set_phone(*, subject_id: str, phone: str) -> Person:
    """Record a verified phone number for a person (e.g. from a mini-program); 409 when taken."""
    person = person_by_subject_id(subject_id)
    if person is None:
        raise NotFound("用户不存在")
    phone = _field_phone(phone)
    if _phone_taken(phone, other_than=person):
        raise Conflict("该手机号已绑定其他账号")
    person.phone = phone
    audit.record("person.phone_changed", subject_id=subject_id, actor=subject_id,
                 details={"phone_masked": mask_phone(phone)})
    _commit("该手机号已绑定其他账号")
    return person


# ---- registry-backed look-ups for other domains


def guardian_of(parent_id_number: str, child_id_number: str) -> bool:
    """True when the population registry names the parent as guardian of a child who is a minor."""
    try:
        parent, child = normalize_id_number(parent_id_number), normalize_id_number(child_id_number)
    except IdentifierError:
        return False
    return registries.is_minor(child) and registries.population().guardian_of(
        parent_id_number=parent, child_id_number=child)


def credit_class(id_number_or_credit_code: str) -> str:
    """诚信守法 / 轻微失信 / 一般失信 / 严重失信 for an ID number or credit code (IdentifierError if neither)."""
    return registries.credit().credit_class(registries.normalize_credit_key(id_number_or_credit_code))


# ---- SMS codes


def send_sms_code(*, phone: str, purpose: str) -> None:
    """Send a one-time code; one per phone per 60 s, at most 10 a day.

    For `login`, nothing is sent when no account has this phone, but the answer is the same.
    """
    if purpose not in sms.PURPOSES:
        raise ValidationFailed.field("purpose", "用途应为 login、register 或 bind")
    phone = _field_phone(phone)
    cooldown = f"sms:cooldown:{phone_index(phone)}"
    if not store.set_if_absent(cooldown, "1", sms.RESEND_INTERVAL):
        wait = store.ttl(cooldown) or sms.RESEND_INTERVAL
        raise TooManyRequests(f"验证码发送过于频繁，请{wait}秒后再试", retry_after=wait)
    limiter.hit(sms.DAILY_LIMIT_PER_PHONE, "sms-phone", phone_index(phone),
                detail="该手机号今日获取验证码次数已达上限，请明天再试")
    if purpose == "login" and find_person_by_phone(phone) is None:
        logger.info("sms login code requested for an unknown phone %s; not sent", mask_phone(phone))
        return
    code = sms.new_code(phone, purpose)
    try:
        sms.sender().send(phone, sms.body_for(purpose, code), purpose=purpose, code=code)
        db.session.commit()
    except Exception:
        db.session.rollback()
        store.delete(cooldown)
        raise


def verify_sms_code(phone: str, purpose: str, code: str) -> bool:
    """True once for the right, unexpired code; 5 wrong tries kill the code."""
    try:
        phone = normalize_phone(phone)
    except IdentifierError:
        return False
    return sms.check_code(phone, purpose, code)


# ---- tokens


def staff_roles(subject_id: str) -> tuple[set[str], dict[str, str]]:
    """A person's roles now and their halls (hall code -> hall_admin or hall_staff, admin wins)."""
    roles, halls = {"citizen"}, {}
    for row in db.session.scalars(select(StaffAssignment).where(StaffAssignment.subject_id == subject_id)):
        roles.add(row.role)
        if row.hall_code and (row.role == "hall_admin" or halls.get(row.hall_code) != "hall_admin"):
            halls[row.hall_code] = row.role
    return roles, halls


def _person_claims(person: Person, channel: str) -> tuple[list[str], dict]:
    roles, halls = staff_roles(person.subject_id)
    extra = {"sub_type": "person", "channel": channel}
    if halls:
        extra["halls"] = halls
    return sorted(roles), extra


def _enterprise_claims(enterprise: Enterprise, person: Person, channel: str) -> tuple[list[str], dict]:
    scopes = agent_scopes(person, enterprise.credit_code)
    if scopes is None:
        raise NotFound("未找到您可以代办的该企业")
    role = "representative" if enterprise.representative_id == person.id else "agent"
    return ["enterprise_agent"], {"sub_type": "legal", "channel": channel, "act": {"sub": person.subject_id},
                                  "credit_code": enterprise.credit_code, "enterprise_role": role,
                                  "scopes": sorted(scopes)}


def _client_claims(client: ApiClient) -> tuple[list[str], dict]:
    extra = {"sub_type": "client", "channel": client.channel or "app", "client_id": client.client_id,
             "client_kind": client.kind}
    if client.kind in ("issuer", "verifier"):
        extra["license_types"] = list(client.license_types or [])
    if client.scopes:
        extra["scopes"] = list(client.scopes)
    if client.credit_code:
        extra["credit_code"] = client.credit_code
    return [client.kind], extra


def _issue(subject_id: str, roles: list[str], extra: dict, *, channel: str, actor_id: str | None = None,
           family_id: str | None = None, refresh: bool = True) -> dict:
    token, claims = issue_access_token(subject_id, roles=roles, extra=extra)
    body = {"access_token": token, "token_type": "Bearer",
            "expires_in": int(claims["exp"]) - int(claims["iat"])}
    if refresh:
        raw = "rt_" + secrets.token_urlsafe(32)
        ttl = current_app.config["REFRESH_TOKEN_TTL"]
        db.session.add(RefreshToken(
            token_hash=_sha256(raw), family_id=family_id or secrets.token_hex(16), subject_id=subject_id,
            actor_id=actor_id, channel=channel, access_jti=claims["jti"], access_exp=int(claims["exp"]),
            created_at=utcnow(), expires_at=utcnow() + timedelta(seconds=ttl)))
        body["refresh_token"] = raw
    return body


def _person_pair(person: Person, channel: str, family_id: str | None = None) -> dict:
    roles, extra = _person_claims(person, channel)
    return _issue(person.subject_id, roles, extra, channel=channel, family_id=family_id)


def issue_token_pair(subject: Person, *, channel: str = "app") -> dict:
    """Token pair for a person who signed in some other way (mini-programs); commits.

    Returns the contract body {"access_token","token_type":"Bearer","expires_in","refresh_token"}.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if not isinstance(subject, Person):
        raise TypeError("issue_token_pair expects a Person")
    if not subject.active:
        raise Forbidden("该账号已停用")
    body = _person_pair(subject, channel)
    audit.record("auth.login_succeeded", subject_id=subject.subject_id, actor=subject.subject_id,
                 details={"method": "channel", "channel": channel})
    db.session.commit()
    return body


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


def password_grant(*, username: str, password: str) -> dict:
    """ID number or phone + password; 5 failures within 15 minutes lock the account for 15 minutes."""
    person = _person_for_username(username)
    lock_subject = _lock_subject(person, username)
    lock_key, fail_key = f"login:lock:{lock_subject}", f"login:fail:{lock_subject}"
    if store.get(lock_key):
        raise _locked_error(store.ttl(lock_key) or LOCK_SECONDS)
    ok = verify_password(person.password_hash if person else None, password)
    if not ok or not person.active:
        failures = store.incr(fail_key, LOGIN_WINDOW)
        audit.record("auth.login_failed", subject_id=person.subject_id if person else None,
                     details={"method": "password", "failures": failures})
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
        raise Unauthorized("用户名或密码错误")
    store.delete(fail_key)
    if needs_rehash(person.password_hash):
        person.password_hash = hash_password(password)
    body = _person_pair(person, "app")
    audit.record("auth.login_succeeded", subject_id=person.subject_id, actor=person.subject_id,
                 details={"method": "password"})
    db.session.commit()
    return body


def sms_grant(*, phone: str, code: str) -> dict:
    """Phone + one-time code sent with purpose `login`."""
    phone = _field_phone(phone)
    person = find_person_by_phone(phone) if sms.check_code(phone, "login", code) else None
    if person is None or not person.active:
        audit.record("auth.login_failed", subject_id=person.subject_id if person else None,
                     details={"method": "sms"})
        db.session.commit()
        raise Unauthorized("验证码错误或已失效")
    body = _person_pair(person, "app")
    audit.record("auth.login_succeeded", subject_id=person.subject_id, actor=person.subject_id,
                 details={"method": "sms"})
    db.session.commit()
    return body


def _revoke_family(family_id: str) -> int:
    """Revoke every refresh token of a family and the access tokens issued with them."""
    now, now_epoch, count = utcnow(), epoch(), 0
    for row in db.session.scalars(select(RefreshToken).where(RefreshToken.family_id == family_id)):
        if row.revoked_at is None:
            row.revoked_at = now
            count += 1
        if row.access_exp > now_epoch:
            revoke_access_token({"jti": row.access_jti, "exp": row.access_exp})
    return count


def refresh_grant(*, refresh_token: str) -> dict:
    """Rotate a refresh token; a token used twice revokes its whole family (401)."""
    row = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == _sha256(refresh_token or "")))
    if row is None:
        raise Unauthorized("刷新令牌无效")
    if row.revoked_at is not None and row.used_at is None:
        raise Unauthorized("刷新令牌已注销，请重新登录")
    claimed = db.session.execute(
        update(RefreshToken).where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None),
                                   RefreshToken.revoked_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        revoked = _revoke_family(row.family_id)
        audit.record("auth.refresh_reused", subject_id=row.subject_id, actor=row.actor_id,
                     details={"family": row.family_id[:8], "revoked": revoked})
        db.session.commit()
        logger.warning("refresh token reused; family revoked", extra={"subject": row.subject_id})
        raise Unauthorized("刷新令牌已被使用过，为保护账号安全，该登录会话已全部注销，请重新登录")
    if as_aware(row.expires_at) <= utcnow():
        db.session.commit()
        raise Unauthorized("刷新令牌已过期，请重新登录")
    try:
        body = _refreshed_pair(row)
    except (NotFound, Forbidden):
        db.session.rollback()
        _revoke_family(row.family_id)
        db.session.commit()
        raise Unauthorized("登录会话已失效，请重新登录") from None
    db.session.commit()
    return body


def _refreshed_pair(row: RefreshToken) -> dict:
    if row.subject_id.startswith("e_"):
        enterprise = enterprise_for(row.subject_id)
        person = person_by_subject_id(row.actor_id or "")
        if enterprise is None or person is None or not person.active:
            raise NotFound("企业或经办人不存在")
        roles, extra = _enterprise_claims(enterprise, person, row.channel)
        return _issue(enterprise.subject_id, roles, extra, channel=row.channel, actor_id=person.subject_id,
                      family_id=row.family_id)
    person = person_by_subject_id(row.subject_id)
    if person is None or not person.active:
        raise Forbidden("账号不存在或已停用")
    return _person_pair(person, row.channel, family_id=row.family_id)


def client_credentials_grant(*, client_id: str, client_secret: str) -> dict:
    """Issuer, verifier and third-party systems; an access token only, no refresh token."""
    client = db.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    expected = client.secret_hash if client is not None else _sha256("no-such-client")
    if not hmac.compare_digest(expected, _sha256(client_secret or "")) or client is None or not client.active:
        audit.record("auth.client_failed", subject_id=client.client_id if client else None,
                     details={"method": "client_credentials"})
        db.session.commit()
        raise Unauthorized("客户端标识或密钥错误")
    roles, extra = _client_claims(client)
    body = _issue(client.client_id, roles, extra, channel=extra["channel"], refresh=False)
    audit.record("auth.client_token_issued", subject_id=client.client_id, actor=client.client_id,
                 details={"kind": client.kind})
    db.session.commit()
    return body


def logout(*, refresh_token: str | None, access_claims: dict | None) -> None:
    """Revoke the presented access token (by jti) and the refresh token's whole family."""
    subject = access_claims.get("sub") if access_claims else None
    if access_claims:
        revoke_access_token(access_claims)
    row = None
    if refresh_token:
        row = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == _sha256(refresh_token)))
    if row is not None:
        _revoke_family(row.family_id)
        subject = subject or row.subject_id
    if subject is None:
        raise Unauthorized("刷新令牌无效")
    audit.record("auth.logout", subject_id=subject, actor=(access_claims or {}).get("act", {}).get("sub"),
                 details={"family_revoked": row is not None})
    db.session.commit()


# ---- principals


def acting_person(principal: Principal) -> Person:
    """The person behind a personal token (not a company or client token); 403 otherwise."""
    if principal.subject_type != "person" or principal.claims.get("act"):
        raise Forbidden("请使用个人身份登录后再办理此操作")
    person = person_by_subject_id(principal.subject_id)
    if person is None or not person.active:
        raise Unauthorized("账号不存在或已停用")
    return person


def me(principal: Principal, *, reveal: bool = False) -> dict:
    """The caller's profile for MeSchema. For a company token it describes the person acting
    (the `act` claim) with `acting_for` naming the company. Full ID and phone numbers are
    included only when the holder asks (`reveal`), which is audited."""
    base = {"roles": sorted(principal.roles), "halls": principal.halls, "acting_for": None,
            "bindings": [], "reveal": False, "id_number": None, "phone": None, "real_name_level": None}
    if principal.subject_type == "client":
        client = client_by_id(principal.subject_id)
        return {**base, "subject_id": principal.subject_id, "subject_type": "client",
                "name": client.name if client else None}
    person = person_by_subject_id(principal.actor_id)
    if person is None or not person.active:
        raise Unauthorized("账号不存在或已停用")
    if principal.subject_type == "legal":
        enterprise = enterprise_for(principal.subject_id)
        base["acting_for"] = {
            "subject_id": principal.subject_id,
            "credit_code": enterprise.credit_code if enterprise else principal.claims.get("credit_code"),
            "name": enterprise.name if enterprise else None,
            "role": principal.claims.get("enterprise_role"),
            "scopes": list(principal.claims.get("scopes") or [])}
    if reveal:
        audit.record("pii.revealed", subject_id=person.subject_id, actor=person.subject_id,
                     details={"fields": ["id_number", "phone"]})
        db.session.commit()
    return {**base, "subject_id": person.subject_id, "subject_type": "person", "name": person.name,
            "id_number": person.id_number, "phone": person.phone, "real_name_level": person.real_name_level,
            "bindings": bindings_of(person.subject_id), "reveal": reveal}


# ---- companies and agents


def enterprise_for(ref) -> Enterprise | None:
    """The enterprise named by a Principal (company token), a subject id ("e_...") or a credit code."""
    if isinstance(ref, Principal):
        if ref.subject_type != "legal":
            return None
        ref = ref.subject_id
    if not isinstance(ref, str):
        return None
    if ref.startswith("e_"):
        return db.session.scalar(select(Enterprise).where(Enterprise.subject_id == ref))
    try:
        code = normalize_credit_code(ref)
    except IdentifierError:
        return None
    return db.session.scalar(select(Enterprise).where(Enterprise.credit_code == code))


def _active_grants(enterprise: Enterprise, id_number_index: str) -> list[AgentGrant]:
    return list(db.session.scalars(select(AgentGrant).where(
        AgentGrant.enterprise_id == enterprise.id, AgentGrant.agent_id_number_index == id_number_index,
        AgentGrant.revoked_at.is_(None), AgentGrant.expires_at > utcnow())))


def agent_scopes(person_id, credit_code: str) -> set[str] | None:
    """Scopes the person may use for the company: all of AGENT_SCOPES for its representative,
    the granted ones for an agent, None when the person may not act for it at all.
    `person_id` is a Person or a subject id ("p_...")."""
    person = person_id if isinstance(person_id, Person) else person_by_subject_id(person_id)
    enterprise = enterprise_for(credit_code)
    if person is None or enterprise is None:
        return None
    if enterprise.representative_id == person.id:
        return set(AGENT_SCOPES)
    grants = _active_grants(enterprise, person.id_number_index)
    if not grants:
        return None
    return {scope for grant in grants for scope in grant.scopes}


def claim_enterprise(*, principal: Principal, credit_code: str, name: str) -> Enterprise:
    """The caller becomes the company's representative when the legal-entity registry names them."""
    person = acting_person(principal)
    try:
        credit_code = normalize_credit_code(credit_code)
    except IdentifierError as exc:
        raise ValidationFailed.field("credit_code", exc.message) from None
    record = registries.legal_entities().lookup(credit_code)
    if (record is None or not registries.same_name(record.name, name)
            or record.representative_id_number != person.id_number):
        raise ValidationFailed(ENTITY_MISMATCH, errors={"credit_code": [ENTITY_MISMATCH]})
    enterprise = enterprise_for(credit_code)
    if enterprise is not None and enterprise.representative_id == person.id:
        raise Conflict("您已认领该企业")
    if enterprise is None:
        enterprise = Enterprise(subject_id=_new_id("e"), credit_code=credit_code, name=record.name,
                                representative_id=person.id, claimed_at=utcnow())
        db.session.add(enterprise)
    else:  # the registry now names the caller: representation passes to them
        previous = db.session.get(Person, enterprise.representative_id)
        enterprise.representative_id, enterprise.name, enterprise.claimed_at = person.id, record.name, utcnow()
        if previous is not None:
            _revoke_company_sessions(enterprise, previous)
    db.session.flush()
    audit.record("enterprise.claimed", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"credit_code": credit_code})
    _commit("该企业已被认领")
    return enterprise


def enterprises_of(*, principal: Principal) -> list[dict]:
    """Companies the caller represents or may act for as an agent."""
    person = acting_person(principal)
    items = [{"enterprise": e, "role": "representative", "scopes": list(AGENT_SCOPES), "expires_at": None}
             for e in db.session.scalars(select(Enterprise).where(Enterprise.representative_id == person.id)
                                         .order_by(Enterprise.claimed_at))]
    seen = {item["enterprise"].id for item in items}
    grants = db.session.scalars(select(AgentGrant).where(
        AgentGrant.agent_id_number_index == person.id_number_index, AgentGrant.revoked_at.is_(None),
        AgentGrant.expires_at > utcnow()).order_by(AgentGrant.created_at))
    for grant in grants:
        if grant.enterprise_id in seen:
            continue
        seen.add(grant.enterprise_id)
        scopes = agent_scopes(person, grant.enterprise.credit_code) or set()
        items.append({"enterprise": grant.enterprise, "role": "agent", "scopes": sorted(scopes),
                      "expires_at": grant.expires_at})
    return items


def enterprise_view(*, principal: Principal, credit_code: str) -> dict:
    """One company as the caller sees it (representative or agent); 404 for anyone else."""
    for item in enterprises_of(principal=principal):
        if item["enterprise"].credit_code == (credit_code or "").upper():
            return item
    raise NotFound("企业不存在或您无权查看")


def _represented(principal: Principal, credit_code: str) -> tuple[Person, Enterprise]:
    person = acting_person(principal)
    enterprise = enterprise_for(credit_code)
    if enterprise is None or enterprise.representative_id != person.id:
        raise NotFound("企业不存在或您不是其法定代表人")
    return person, enterprise


def _revoke_company_sessions(enterprise: Enterprise, person: Person) -> None:
    """End every act-as session of `person` for `enterprise` (refresh families and access tokens)."""
    families = db.session.scalars(select(RefreshToken.family_id).where(
        RefreshToken.subject_id == enterprise.subject_id, RefreshToken.actor_id == person.subject_id,
        RefreshToken.revoked_at.is_(None)).distinct()).all()
    for family in families:
        _revoke_family(family)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:  # naive input is Beijing time
        value = value.replace(tzinfo=timezone(timedelta(hours=8)))
    return value.astimezone(timezone.utc)


def grant_agent(*, principal: Principal, credit_code: str, id_number: str, scopes: list[str],
                expires_at: datetime) -> AgentGrant:
    """The representative lets a person act for the company within `scopes` until `expires_at`."""
    person, enterprise = _represented(principal, credit_code)
    id_number = _field_id_number(id_number)
    if id_number == person.id_number:
        raise ValidationFailed.field("id_number", "法定代表人无需为自己授权")
    unknown = sorted(set(scopes) - set(AGENT_SCOPES))
    if unknown or not scopes:
        raise ValidationFailed.field("scopes", "授权范围应为以下之一：" + "、".join(AGENT_SCOPES))
    expires_at = _utc(expires_at)
    if expires_at <= utcnow():
        raise ValidationFailed.field("expires_at", "授权截止时间应晚于当前时间")
    if expires_at > utcnow() + timedelta(days=MAX_AGENT_GRANT_DAYS):
        raise ValidationFailed.field("expires_at", f"授权期限不能超过{MAX_AGENT_GRANT_DAYS}天")
    if _active_grants(enterprise, id_index(id_number)):
        raise Conflict("该人员已有有效授权，如需调整请先撤销原授权")
    grant = AgentGrant(agent_id=_new_id("ag"), enterprise_id=enterprise.id, scopes=sorted(set(scopes)),
                       expires_at=expires_at, granted_by=person.subject_id, created_at=utcnow())
    grant.agent_id_number = id_number
    db.session.add(grant)
    db.session.flush()
    audit.record("enterprise.agent_granted", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"agent_id": grant.agent_id, "agent": mask_id_number(id_number),
                          "scopes": grant.scopes, "expires_at": expires_at.isoformat()})
    _commit("该人员已有有效授权")
    return grant


def list_agents(*, principal: Principal, credit_code: str) -> list[AgentGrant]:
    """Every grant of the company, newest first (representative only)."""
    _, enterprise = _represented(principal, credit_code)
    return list(db.session.scalars(select(AgentGrant).where(AgentGrant.enterprise_id == enterprise.id)
                                   .order_by(AgentGrant.created_at.desc(), AgentGrant.id.desc())))


def revoke_agent(*, principal: Principal, credit_code: str, agent_id: str) -> None:
    """End a grant now; the agent's company sessions stop working too."""
    person, enterprise = _represented(principal, credit_code)
    grant = db.session.scalar(select(AgentGrant).where(AgentGrant.agent_id == agent_id,
                                                       AgentGrant.enterprise_id == enterprise.id))
    if grant is None:
        raise NotFound("授权不存在")
    if grant.revoked_at is not None:
        return
    grant.revoked_at = utcnow()
    agent = db.session.scalar(select(Person).where(Person.id_number_index == grant.agent_id_number_index))
    if agent is not None and agent_scopes(agent, enterprise.credit_code) is None:
        _revoke_company_sessions(enterprise, agent)
    audit.record("enterprise.agent_revoked", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"agent_id": agent_id})
    db.session.commit()


def act_as(*, principal: Principal, credit_code: str) -> dict:
    """A token pair for the company whose `act` claim names the calling person."""
    person = acting_person(principal)
    enterprise = enterprise_for(credit_code)
    if enterprise is None:
        raise NotFound("未找到您可以代办的该企业")
    roles, extra = _enterprise_claims(enterprise, person, principal.channel)
    body = _issue(enterprise.subject_id, roles, extra, channel=principal.channel, actor_id=person.subject_id)
    audit.record("auth.act_as", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"role": extra["enterprise_role"]})
    db.session.commit()
    return body


# ---- staff and clients (operator commands)


def create_staff(*, role: str, id_number: str, name: str, hall_code: str | None = None,
                 password: str | None = None, phone: str | None = None) -> tuple[Person, bool]:
    """Give a person a staff role, creating the person when absent; returns (person, created)."""
    if role not in STAFF_ROLES:
        raise ValidationFailed.field("role", "角色应为 hall_admin、hall_staff 或 platform_admin")
    if role in HALL_ROLES and not hall_code:
        raise ValidationFailed.field("hall", "大厅工作人员必须指定大厅编码")
    if role == "platform_admin":
        hall_code = None
    id_number = _field_id_number(id_number)
    phone = _field_phone(phone) if phone else None
    person, created = find_person_by_id_number(id_number), False
    if person is None:
        if not password:
            raise ValidationFailed.field("password", "新建人员时必须设置密码")
        try:
            check_policy(password)
        except PasswordPolicyError as exc:
            raise ValidationFailed.field("password", exc.message) from None
        if isinstance(registries.population(), registries.DatabasePopulationRegistry) and \
                not registries.population().matches(id_number=id_number, name=name):
            registries.add_person(id_number=id_number, name=name, phone=phone)
        if phone and _phone_taken(phone):
            raise Conflict("该手机号已绑定其他账号")
        person, created = _new_person(id_number=id_number, name=name, phone=phone, password=password), True
        db.session.flush()
    exists = db.session.scalar(select(StaffAssignment.id).where(
        StaffAssignment.subject_id == person.subject_id, StaffAssignment.role == role,
        StaffAssignment.hall_code.is_(None) if hall_code is None else StaffAssignment.hall_code == hall_code))
    if exists is None:
        db.session.add(StaffAssignment(subject_id=person.subject_id, hall_code=hall_code, role=role))
        audit.record("staff.assigned", subject_id=person.subject_id, actor="operator",
                     details={"role": role, "hall_code": hall_code, "created": created})
    _commit("该人员已拥有此角色")
    return person, created


def generated_credit_code() -> str:
    """A valid GB 32100 code for an authority whose own code was not given (development)."""
    body = "11370000" + "".join(secrets.choice(CREDIT_ALPHABET) for _ in range(9))
    return body + credit_check_char(body)


def create_client(*, kind: str, name: str, license_types=(), scopes=(), channel: str = "app",
                  credit_code: str | None = None) -> tuple[ApiClient, str]:
    """Register an issuer / verifier / third-party client; returns (client, secret shown once)."""
    if kind not in CLIENT_KINDS:
        raise ValidationFailed.field("kind", "客户端类型应为 issuer、verifier 或 third_party")
    if channel not in CHANNELS:
        raise ValidationFailed.field("channel", "渠道应为 app、wechat 或 alipay")
    if not (name or "").strip():
        raise ValidationFailed.field("name", "名称不能为空")
    license_types = sorted({str(t).strip() for t in license_types if str(t).strip()})
    if kind == "issuer" and not license_types:
        raise ValidationFailed.field("license_type", "签发方客户端至少需要一个证照类型")
    if credit_code:
        try:
            credit_code = normalize_credit_code(credit_code)
        except IdentifierError as exc:
            raise ValidationFailed.field("credit_code", exc.message) from None
    elif kind == "issuer":
        credit_code = generated_credit_code()
    if kind == "third_party" and set(scopes) - set(OPEN_API_SCOPES):
        raise ValidationFailed.field("scope", "第三方客户端的授权范围应为以下之一：" + "、".join(OPEN_API_SCOPES))
    secret = secrets.token_urlsafe(32)
    client = ApiClient(client_id=_new_id("c"), secret_hash=_sha256(secret), kind=kind, name=name.strip(),
                       license_types=license_types, scopes=sorted(set(scopes)), channel=channel,
                       credit_code=credit_code, active=True, created_at=utcnow())
    db.session.add(client)
    db.session.flush()
    if kind in SIGNING_KINDS:  # signed open-API requests need the secret itself, kept encrypted
        remember_signing_secret(client, secret)
    audit.record("client.created", subject_id=client.client_id, actor="operator",
                 details={"kind": kind, "name": client.name, "license_types": license_types,
                          "scopes": client.scopes})
    _commit("客户端已存在")
    return client, secret


def client_by_id(client_id: str) -> ApiClient | None:
    """An API client by its client_id ("c_...")."""
    return db.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))


def client_license_types(client_id: str) -> frozenset[str]:
    """The license types an active client is registered for now (empty when inactive or
    unknown); each worker reads a client again after CLIENT_CACHE_SECONDS."""
    cache = current_app.extensions.setdefault("client_license_types", {})
    hit = cache.get(client_id)
    if hit is None or hit[1] < time.monotonic():
        client = client_by_id(client_id)
        types = frozenset(client.license_types or ()) if client is not None and client.active else frozenset()
        hit = cache[client_id] = (types, time.monotonic() + CLIENT_CACHE_SECONDS)
    return hit[0]


# ---- mini-program bindings


def bound_person(*, channel: str, app_id: str, open_id: str) -> Person | None:
    """The person bound to a mini-program account, or None."""
    binding = db.session.scalar(select(ChannelBinding).where(
        ChannelBinding.channel == channel, ChannelBinding.app_id == app_id, ChannelBinding.open_id == open_id))
    return person_by_subject_id(binding.subject_id) if binding else None


def register_or_link_person(*, id_number: str, name: str, phone: str, channel: str, app_id: str,
                            open_id: str, union_id: str | None = None) -> Person:
    """Bind a mini-program account to a person, creating the person when the registry matches.

    The caller has verified `phone` with an SMS code (purpose `bind`). An existing account is
    linked only when that phone is the account's own (or the account has none yet); commits.
    """
    if channel not in BINDING_CHANNELS:
        raise ValueError(f"unknown binding channel {channel!r}")
    id_number, phone, name = _field_id_number(id_number), _field_phone(phone), (name or "").strip()
    if not registries.population().matches(id_number=id_number, name=name, phone=phone):
        raise _registry_mismatch()
    person = find_person_by_id_number(id_number)
    if person is not None:
        if person.phone_index and person.phone_index != phone_index(phone):
            raise ValidationFailed.field("phone", "手机号与该身份账号登记的手机号不一致")
        if not person.phone_index:
            if _phone_taken(phone):
                raise Conflict("该手机号已绑定其他账号")
            person.phone = phone
    else:
        if _phone_taken(phone):
            raise Conflict("该手机号已绑定其他账号")
        person = _new_person(id_number=id_number, name=name, phone=phone, password=None)
        db.session.flush()
        audit.record("person.registered", subject_id=person.subject_id, actor=person.subject_id,
                     details={"real_name_level": person.real_name_level, "channel": channel})
    binding = db.session.scalar(select(ChannelBinding).where(
        ChannelBinding.channel == channel, ChannelBinding.app_id == app_id, ChannelBinding.open_id == open_id))
    if binding is not None and binding.subject_id != person.subject_id:
        raise Conflict("该小程序账号已绑定其他用户")
    if binding is None:
        db.session.add(ChannelBinding(subject_id=person.subject_id, channel=channel, app_id=app_id,
                                      open_id=open_id, union_id=union_id, created_at=utcnow()))
        audit.record("channel.bound", subject_id=person.subject_id, actor=person.subject_id,
                     details={"channel": channel, "app_id": app_id})
    _commit("该小程序账号或手机号已绑定其他用户")
    return person


def bindings_of(subject_id: str) -> list[ChannelBinding]:
    return list(db.session.scalars(select(ChannelBinding).where(ChannelBinding.subject_id == subject_id)
                                   .order_by(ChannelBinding.created_at)))

