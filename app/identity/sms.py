"""SMS: the sender interface, the development outbox sender, and one-time codes.

Codes are 6 digits, live 5 minutes (SMS_CODE_TTL), allow 5 attempts and are single use. Only a keyed
hash of the code is kept, in the shared store, so every worker sees the same state.
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

from flask import current_app
from sqlalchemy import select

from ..extensions import db, store
from ..security.ciphers import pii_cipher
from ..security.pii import mask_phone
from .models import SmsOutbox, phone_index

logger = logging.getLogger("app.identity.sms")

PURPOSES = ("login", "register", "bind")
CODE_LENGTH = 6
CODE_TTL = 300
MAX_ATTEMPTS = 5
RESEND_INTERVAL = 60
DAILY_LIMIT_PER_PHONE = "10/day"
PURPOSE_TEXT = {"login": "登录", "register": "注册", "bind": "绑定账号"}
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
    store.set(key, json.dumps({"h": _digest(code, purpose, phone)}), ttl=code_ttl())
    return code


def check_code(phone: str, purpose: str, code: str) -> bool:
    """True once for the right code; every attempt counts, the 5th wrong one kills the code."""
    key = _code_key(purpose, phone)
    stored = store.get(key)
    if stored is None:
        return False
    tries = store.incr(key + ":tries", code_ttl())
    if tries > MAX_ATTEMPTS:
        store.delete(key, key + ":tries")
        return False
    expected = json.loads(stored)["h"]
    if not isinstance(code, str) or not hmac.compare_digest(expected, _digest(code, purpose, phone)):
        if tries >= MAX_ATTEMPTS:
            store.delete(key, key + ":tries")
        return False
    # single use: of two concurrent right answers only the one that removes the code wins
    if store.pop(key) is None:
        return False
    store.delete(key + ":tries")
    return True


def body_for(purpose: str, code: str) -> str:
    minutes = max(1, code_ttl() // 60)
    return f"【爱山东】您的{PURPOSE_TEXT[purpose]}验证码为 {code}，{minutes}分钟内有效。请勿泄露给他人。"
