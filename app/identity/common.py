"""Helpers the identity modules share: new ids, hashes, commit-or-409 and field-level input checks."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..timeutil import BEIJING, utcnow
from .identifiers import IdentifierError, normalize_id_number, normalize_phone

REGISTRY_MISMATCH = "身份核验未通过：姓名、身份证号码与户籍登记信息不一致"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def commit(conflict_detail: str) -> None:
    """Commit, turning a unique-constraint race into 409."""
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(conflict_detail) from exc


def field_id_number(value: str, field: str = "id_number") -> str:
    try:
        return normalize_id_number(value)
    except IdentifierError as exc:
        raise ValidationFailed.field(field, exc.message) from None


def field_phone(value: str, field: str = "phone") -> str:
    try:
        return normalize_phone(value)
    except IdentifierError as exc:
        raise ValidationFailed.field(field, exc.message) from None


def registry_mismatch() -> ValidationFailed:
    # the same answer whether the ID number is unknown or the name is wrong
    return ValidationFailed(REGISTRY_MISMATCH, errors={"id_number": [REGISTRY_MISMATCH],
                                                       "name": [REGISTRY_MISMATCH]})


def grant_terms(*, scopes: list[str], allowed: tuple[str, ...], expires_at: datetime, max_days: int
                ) -> tuple[list[str], datetime]:
    """A delegation's scopes (sorted, each one of `allowed`) and its end in UTC (naive input is
    Beijing time; later than now, at most `max_days` ahead); 422 naming the field otherwise."""
    if not scopes or set(scopes) - set(allowed):
        raise ValidationFailed.field("scopes", "授权范围应为以下之一：" + "、".join(allowed))
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=BEIJING)
    expires_at = expires_at.astimezone(timezone.utc)
    if expires_at <= utcnow():
        raise ValidationFailed.field("expires_at", "授权截止时间应晚于当前时间")
    if expires_at > utcnow() + timedelta(days=max_days):
        raise ValidationFailed.field("expires_at", f"授权期限不能超过{max_days}天")
    return sorted(set(scopes)), expires_at
