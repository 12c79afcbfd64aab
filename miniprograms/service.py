"""Mini-program sign-in: platform login, bind tickets, binding to a real-name account, phone numbers.

Flow: the front end sends its login code; a bound account (by openid, or by unionid when the
person uses another of the operator's apps) gets a token pair with channel "wechat" / "alipay".
An unknown account gets a bind ticket: random, single-use, short-lived, kept only as a hash
key in the shared store with the channel identity encrypted (the WeChat session_key never
leaves the server). Binding proves the phone with an SMS code (purpose `bind`) and the person
with the population registry; nothing is bound when any check fails, and failures are audited.

Functions raise app.errors exceptions and own their transactions.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import (ApiError, Conflict, Forbidden, ServiceUnavailable, Unauthorized,
                        ValidationFailed)
from app.extensions import db, store
from app.identity.channels import register_or_link_person
from app.identity.common import REGISTRY_MISMATCH
from app.identity.persons import person_by_subject_id, set_phone
from app.identity.sessions import issue_token_pair
from app.identity.models import ChannelBinding, Person
from app.security import audit
from app.security.ciphers import pii_cipher
from app.security.pii import PiiDecryptError, mask_id_number
from app.security.rbac import Principal
from app.timeutil import epoch, timestamp, utcnow

from .adapters import adapter_for
from .base import ChannelAdapter, ChannelIdentity

logger = logging.getLogger("miniprograms.service")

CHANNEL_NAMES = {"wechat": "微信", "alipay": "支付宝"}
BIND_TICKET_TTL = 600          # MINIPROGRAM_BIND_TICKET_TTL overrides
MAX_BIND_ATTEMPTS = 5          # wrong SMS codes / registry answers before a ticket dies
TICKET_INVALID = "绑定凭证无效、已使用或已过期，请重新进入小程序登录"


# ---- adapters


def channel_adapter(channel: str) -> ChannelAdapter:
    """The configured adapter of `channel`; 503 when the deployment has not enabled it."""
    adapter = adapter_for(channel)
    if adapter is None:
        raise ServiceUnavailable(f"{CHANNEL_NAMES.get(channel, channel)}小程序服务未开通：需设置环境变量 " + (
            "WECHAT_APP_ID 和 WECHAT_APP_SECRET" if channel == "wechat" else
            "ALIPAY_APP_ID、ALIPAY_APP_PRIVATE_KEY 和 ALIPAY_PUBLIC_KEY") + "（本地开发可先运行 make fakes）")
    return adapter


# ---- sign-in


def start_session(*, channel: str, code: str) -> dict:
    """Exchange a login code: a token pair when the account is bound, else a bind ticket."""
    adapter = channel_adapter(channel)
    who = adapter.login(code)
    person = _recognise(who)
    if person is None:
        ticket, ttl = _issue_ticket(who, keep_secret=adapter.session_secret_ttl > 0)
        return {"bind_required": True, "bind_ticket": ticket, "bind_ticket_expires_in": ttl}
    tokens = issue_token_pair(person, channel=channel)
    _remember_session_secret(adapter, who, person.subject_id)
    return tokens


def _binding(channel: str, app_id: str, open_id: str) -> ChannelBinding | None:
    return db.session.scalar(select(ChannelBinding).where(
        ChannelBinding.channel == channel, ChannelBinding.app_id == app_id, ChannelBinding.open_id == open_id))


def _recognise(who: ChannelIdentity) -> Person | None:
    """The person bound to this account, or to the same unionid in another of our apps."""
    binding = _binding(who.channel, who.app_id, who.open_id)
    if binding is not None:
        if who.union_id and binding.union_id != who.union_id:
            binding.union_id = who.union_id  # committed with the login
        return person_by_subject_id(binding.subject_id)
    if not who.union_id:
        return None
    sibling = db.session.scalar(select(ChannelBinding).where(
        ChannelBinding.channel == who.channel, ChannelBinding.union_id == who.union_id)
        .order_by(ChannelBinding.created_at, ChannelBinding.id).limit(1))
    person = person_by_subject_id(sibling.subject_id) if sibling else None
    if person is None:
        return None
    db.session.add(ChannelBinding(subject_id=person.subject_id, channel=who.channel, app_id=who.app_id,
                                  open_id=who.open_id, union_id=who.union_id, created_at=utcnow()))
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent login of the same account bound it first
        db.session.rollback()
        binding = _binding(who.channel, who.app_id, who.open_id)
        return person_by_subject_id(binding.subject_id) if binding else None
    audit.record("channel.bound", subject_id=person.subject_id, actor=person.subject_id,
                 details={"channel": who.channel, "app_id": who.app_id, "via": "union_id"})
    return person


# ---- bind tickets


def _ticket_ttl() -> int:
    return int(current_app.config.get("MINIPROGRAM_BIND_TICKET_TTL", BIND_TICKET_TTL))


def _ticket_key(ticket: str) -> tuple[str, str]:
    digest = hashlib.sha256(ticket.encode("utf-8")).hexdigest()
    return f"miniprogram:bind-ticket:{digest}", f"bind-ticket:{digest}"


def _issue_ticket(who: ChannelIdentity, *, keep_secret: bool) -> tuple[str, int]:
    ticket, ttl = "bt_" + secrets.token_urlsafe(32), _ticket_ttl()
    payload = {"channel": who.channel, "app_id": who.app_id, "open_id": who.open_id,
               "union_id": who.union_id, "expires_at": epoch() + ttl, "attempts": 0,
               "session_key": who.session_secret if keep_secret else None}
    _put_ticket(ticket, payload, ttl)
    return ticket, ttl


def _put_ticket(ticket: str, payload: dict, ttl: int) -> None:
    key, context = _ticket_key(ticket)
    store.set(key, pii_cipher().encrypt(json.dumps(payload), context=context), ttl)


def _take_ticket(ticket: str, channel: str) -> dict:
    """Claim a ticket (atomically: the first caller wins); 401 and an audit entry otherwise."""
    key, context = _ticket_key(ticket or "")
    sealed = store.pop(key)
    payload = None
    if sealed:
        try:
            payload = json.loads(pii_cipher().decrypt(sealed, context=context))
        except (PiiDecryptError, ValueError):
            payload = None
    if payload is None or payload.get("channel") != channel or payload["expires_at"] <= timestamp():
        audit.record("channel.bind_failed", details={"channel": channel, "reason": "ticket_invalid"})
        db.session.commit()
        raise Unauthorized(TICKET_INVALID, headers={})
    return payload


def _give_back(ticket: str, payload: dict) -> None:
    """After a failure the user can correct, the ticket stays usable for its remaining life."""
    attempts = payload["attempts"] + 1
    remaining = payload["expires_at"] - epoch()
    if attempts < MAX_BIND_ATTEMPTS and remaining > 0:
        _put_ticket(ticket, {**payload, "attempts": attempts}, remaining)


def _failure_reason(exc: ApiError) -> str:
    if isinstance(exc, ValidationFailed):
        if exc.detail == REGISTRY_MISMATCH:
            return "registry_mismatch"
        if exc.errors and "sms_code" in exc.errors:
            return "sms_code"
        if exc.errors and "phone" in exc.errors:
            return "phone_mismatch"
        return "invalid_input"
    if isinstance(exc, Conflict):
        return "conflict"
    return exc.slug or "error"


def _bind_failed(payload: dict, reason: str, id_number: str) -> None:
    audit.record("channel.bind_failed", details={
        "channel": payload["channel"], "app_id": payload["app_id"], "reason": reason,
        "id_number": mask_id_number(id_number), "attempt": payload["attempts"] + 1})
    db.session.commit()


def bind(*, channel: str, bind_ticket: str, id_number: str, name: str, phone: str, sms_code: str) -> dict:
    """Bind the ticket's account to the person (linked, or created when the registry matches)."""
    adapter = channel_adapter(channel)
    payload = _take_ticket(bind_ticket, channel)
    try:  # the code is checked first and used up only by a binding that succeeds
        person = register_or_link_person(
            id_number=id_number, name=name, phone=phone, sms_code=sms_code, channel=channel,
            app_id=payload["app_id"], open_id=payload["open_id"], union_id=payload.get("union_id"))
    except ApiError as exc:
        db.session.rollback()
        _bind_failed(payload, _failure_reason(exc), id_number)
        _give_back(bind_ticket, payload)
        raise
    tokens = issue_token_pair(person, channel=channel)
    who = ChannelIdentity(channel=channel, app_id=payload["app_id"], open_id=payload["open_id"],
                          union_id=payload.get("union_id"), session_secret=payload.get("session_key"))
    _remember_session_secret(adapter, who, person.subject_id)
    return tokens


# ---- signed-in mini-program users


def _session_secret_ref(channel: str, app_id: str, subject_id: str) -> tuple[str, str]:
    ref = f"{channel}-session-key:{app_id}:{subject_id}"
    return f"miniprogram:{ref}", ref


def _remember_session_secret(adapter: ChannelAdapter, who: ChannelIdentity, subject_id: str) -> None:
    """Keep the platform session credential (encrypted) when the channel needs it later."""
    if adapter.session_secret_ttl <= 0 or not who.session_secret:
        return
    key, context = _session_secret_ref(who.channel, who.app_id, subject_id)
    store.set(key, pii_cipher().encrypt(who.session_secret, context=context), adapter.session_secret_ttl)


def _bound_caller(channel: str, principal: Principal, app_id: str) -> str:
    """The subject id of a person signed in through this mini-program; 403 otherwise."""
    name = CHANNEL_NAMES[channel]
    if principal.subject_type != "person" or principal.channel != channel:
        raise Forbidden(f"请在{name}小程序内登录后再操作")
    bound = db.session.scalar(select(ChannelBinding.id).where(
        ChannelBinding.subject_id == principal.subject_id, ChannelBinding.channel == channel,
        ChannelBinding.app_id == app_id).limit(1))
    if bound is None:
        raise Forbidden(f"当前账号未绑定本{name}小程序")
    return principal.subject_id


def store_phone(*, channel: str, principal: Principal, proof) -> Person:
    """Read the verified phone from the channel proof and record it on the caller's account."""
    adapter = channel_adapter(channel)
    subject_id = _bound_caller(channel, principal, adapter.app_id)
    phone = adapter.phone_number(proof)
    return set_phone(subject_id=subject_id, phone=phone)


def decrypt_open_data(*, channel: str, principal: Principal, encrypted_data: str, iv: str) -> dict:
    """The channel's open data (WeChat encryptedData), decrypted by the adapter with the caller's
    kept session credential."""
    adapter = channel_adapter(channel)
    subject_id = _bound_caller(channel, principal, adapter.app_id)
    key, context = _session_secret_ref(channel, adapter.app_id, subject_id)
    expired = f"{CHANNEL_NAMES[channel]}会话已过期，请重新登录小程序后再试"
    sealed = store.get(key)
    if not sealed:
        raise Unauthorized(expired)
    try:
        session_secret = pii_cipher().decrypt(sealed, context=context)
    except PiiDecryptError:
        store.delete(key)
        raise Unauthorized(expired) from None
    data = adapter.decrypt_open_data(session_secret, encrypted_data, iv)
    data.pop("watermark", None)
    return data
