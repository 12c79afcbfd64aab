"""SMS: the sender interface, the development outbox sender, one-time codes and their limits.

Codes are 6 digits, live SMS_CODE_TTL seconds (300), are bound to (phone, purpose) and work
once; only a keyed hash is kept, in the shared store, so every worker sees the same state. A code
answers at most 5 checks and the fifth wrong guess burns it (audited). A flow that checks other
things before it writes (registration, binding, resets) proves the code first (`prove`: a check,
nothing consumed) and consumes it (`ProvenCode.consume`, atomic: of concurrent callers one wins)
only once everything else holds, so a typo in a name does not use the code up.

Sending is limited per phone (SMS_RATE_LIMIT) and per client address (SMS_ADDRESS_RATE_LIMIT),
counted in the shared store by every worker: 429 with Retry-After. The answer never tells whether
an account has the phone: for `login` and `reset_password` a phone without an account gets a
notice instead of a code, so the work done and the answer are the same.
A deployment plugs a real gateway in with the setting `SMS_SENDER` ("module:Class").
"""
from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..errors import ValidationFailed
from ..extensions import db, limiter, store
from ..ratelimit import parse as parse_limit
from ..security import audit
from ..security.ciphers import pii_cipher
from ..security.pii import mask_phone
from .common import field_phone
from .identifiers import IdentifierError, normalize_phone
from . import persons
from .models import SmsOutbox, phone_index

logger = logging.getLogger("app.identity.sms")

PURPOSES = ("login", "register", "bind", "reset_password", "change_phone")
ACCOUNT_PURPOSES = ("login", "reset_password")  # a code only an existing account can use
CODE_LENGTH = 6
CODE_TTL = 300
MAX_ATTEMPTS = 5
PHONE_LIMIT = "1/minute;5/hour;10/day"  # SMS_RATE_LIMIT overrides
ADDRESS_LIMIT = "5/minute;30/hour;100/day"  # SMS_ADDRESS_RATE_LIMIT overrides
PURPOSE_TEXT = {"login": "登录", "register": "注册", "bind": "绑定账号", "reset_password": "重置密码",
                "change_phone": "更换手机号"}
NO_ACCOUNT_NOTICE = ("【爱山东】有人使用本手机号申请{action}，但该号码尚未注册爱山东账号，如需使用请先注册。"
                     "如非本人操作，请忽略本短信。")
CODE_INVALID = "短信验证码错误或已失效，请重新获取"
DEFAULT_SENDER = "app.identity.sms:OutboxSmsSender"


class SmsSender(ABC):
    """Delivers one text message to a mainland mobile number."""

    @abstractmethod
    def send(self, phone: str, body: str, *, purpose: str, code: str | None = None) -> None:
        """Send `body` to `phone`; raise app.errors.UpstreamError / ServiceUnavailable on failure."""


class OutboxSmsSender(SmsSender):
    """Development sender: keeps messages in the `sms_outbox` table instead of sending them."""

    def send(self, phone, body, *, purpose, code=None):
        db.session.add(SmsOutbox(phone_index=phone_index(phone), purpose=purpose, code=code, body=body,
                                 phone_enc=pii_cipher().encrypt(phone, context="sms-outbox:phone")))
        logger.info("sms kept in the development outbox for %s", mask_phone(phone))


def sender() -> SmsSender:
    cache = current_app.extensions.setdefault("identity_adapters", {})
    if "SMS_SENDER" not in cache:
        path = current_app.config.get("SMS_SENDER") or DEFAULT_SENDER
        module, _, name = path.partition(":")
        cache["SMS_SENDER"] = getattr(importlib.import_module(module), name)()
    return cache["SMS_SENDER"]


def last_outbox_code(phone: str) -> str | None:
    """The newest code in the development outbox for `phone` (development and tests)."""
    return db.session.scalar(select(SmsOutbox.code).where(SmsOutbox.phone_index == phone_index(phone))
                             .order_by(SmsOutbox.id.desc()).limit(1))


# ---- codes


def _code_key(purpose: str, phone: str) -> str:
    return f"sms:code:{purpose}:{phone_index(phone)}"


def _digest(code: str, purpose: str, phone: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{purpose}\x00{phone_index(phone)}\x00{code}".encode(), hashlib.sha256).hexdigest()


def code_ttl() -> int:
    """Seconds a code lives (SMS_CODE_TTL, 300 by default)."""
    return int(current_app.config.get("SMS_CODE_TTL", CODE_TTL))


def new_code(phone: str, purpose: str) -> str:
    """Make and remember a fresh code for (phone, purpose), replacing any earlier one."""
    code = f"{secrets.randbelow(10 ** CODE_LENGTH):0{CODE_LENGTH}d}"
    key = _code_key(purpose, phone)
    store.delete(key + ":tries")
    entry = json.dumps({"h": _digest(code, purpose, phone), "n": secrets.token_hex(8)})
    store.set(key, entry, ttl=code_ttl())
    return code


@dataclass(frozen=True)
class ProvenCode:
    """A code that was right when checked; `consume` uses it up (True for one caller only)."""

    key: str
    entry: str

    def consume(self) -> bool:
        if not store.delete_if_equal(self.key, self.entry):
            return False
        store.delete(self.key + ":tries")
        return True


def prove(phone: str, purpose: str, code) -> ProvenCode | None:
    """Check a code without using it up; every check counts, at most MAX_ATTEMPTS per code, and
    the last allowed check burns a wrong code. None when wrong, expired, used or burnt."""
    try:
        phone = normalize_phone(phone)
    except IdentifierError:
        return None
    key = _code_key(purpose, phone)
    entry = store.get(key)
    if entry is None:
        return None
    tries = store.incr(key + ":tries", code_ttl())
    if tries > MAX_ATTEMPTS:  # left in place: a right check made before may still consume it
        return None
    if isinstance(code, str) and hmac.compare_digest(json.loads(entry)["h"], _digest(code, purpose, phone)):
        return ProvenCode(key, entry)
    if tries == MAX_ATTEMPTS and store.delete_if_equal(key, entry):
        audit.record("sms.code_burned", details={"purpose": purpose, "phone": mask_phone(phone),
                                                 "attempts": tries})
        db.session.commit()
    return None


def require(phone: str, purpose: str, code, *, field: str = "sms_code") -> ProvenCode:
    """`prove`, or 422 naming `field`."""
    proven = prove(phone, purpose, code)
    if proven is None:
        raise ValidationFailed(CODE_INVALID, errors={field: [CODE_INVALID]})
    return proven


def consume(proven: ProvenCode, *, field: str = "sms_code") -> None:
    """Use a proven code up, or 422 naming `field` when a concurrent request used it first."""
    if not proven.consume():
        db.session.rollback()
        raise ValidationFailed(CODE_INVALID, errors={field: [CODE_INVALID]})


def check_code(phone: str, purpose: str, code) -> bool:
    """True once for the right, unexpired code (proved and used up at once)."""
    proven = prove(phone, purpose, code)
    return proven is not None and proven.consume()


def verify_sms_code(phone: str, purpose: str, code) -> bool:
    """`check_code` for a phone as typed."""
    return check_code(phone, purpose, code)


# ---- sending


def _limits(setting: str, default: str) -> list[str]:
    configured = str(current_app.config.get(setting) or default)
    return [part.strip() for part in configured.replace(",", ";").split(";") if part.strip()]


def resend_after() -> int:
    """Seconds before the same phone may ask again (the tightest per-phone limit)."""
    items = [parse_limit(limit) for limit in _limits("SMS_RATE_LIMIT", PHONE_LIMIT)]
    return min((item.get_expiry() + item.amount - 1) // item.amount for item in items) if items else 0


def body_for(purpose: str, code: str) -> str:
    minutes = max(1, code_ttl() // 60)
    return f"【爱山东】您的{PURPOSE_TEXT[purpose]}验证码为 {code}，{minutes}分钟内有效。请勿泄露给他人。"


def send_sms_code(*, phone: str, purpose: str, address: str | None = None) -> None:
    """Send a one-time code within the per-address and per-phone limits (429 beyond them).

    For `login` and `reset_password`, a phone without an account gets a notice instead of the
    code; the caller's answer is the same.
    """
    if purpose not in PURPOSES:
        raise ValidationFailed.field("purpose", "用途应为 " + "、".join(PURPOSES))
    phone = field_phone(phone)
    for limit in _limits("SMS_ADDRESS_RATE_LIMIT", ADDRESS_LIMIT):
        limiter.hit(limit, "sms-address", address or "unknown", detail="获取验证码过于频繁，请稍后再试")
    for limit in _limits("SMS_RATE_LIMIT", PHONE_LIMIT):
        limiter.hit(limit, "sms-phone", phone_index(phone), detail="该手机号获取验证码过于频繁，请稍后再试")
    code = new_code(phone, purpose)
    known = purpose not in ACCOUNT_PURPOSES or persons.find_person_by_phone(phone) is not None
    body = body_for(purpose, code) if known else NO_ACCOUNT_NOTICE.format(action=PURPOSE_TEXT[purpose])
    try:
        sender().send(phone, body, purpose=purpose, code=code if known else None)
        db.session.commit()
    except Exception:
        db.session.rollback()
        store.delete(_code_key(purpose, phone))
        raise
