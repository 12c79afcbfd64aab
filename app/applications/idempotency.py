"""`Idempotency-Key` for POST /applications and POST /bundles/{code}/applications.

Semantics (after draft-ietf-httpapi-idempotency-key-header):
- the header is required (400 naming `Idempotency-Key` when absent or malformed);
- a key is scoped to the subject (person or company) and kept 24 hours;
- the same key with the same request (path + JSON body) returns the first response again:
  201 with the same body and `Idempotent-Replayed: true`;
- the same key with another request is 422;
- a request arriving while the first one with its key is still being processed waits for it
  (up to IDEMPOTENCY_WAIT_SECONDS, default 10 s) and then replays its answer; when the first
  one is still not finished, 409 with `Retry-After: 1`;
- requests that fail (4xx/5xx) are not remembered: the key can be used again.

Two guards, so that 50 concurrent submissions with one key create exactly one application,
across workers too:
1. a reservation in the shared store (`set_if_absent`, Redis when configured) lets one request
   do the work while the others wait for its outcome;
2. the unique (subject_id, key_hash) row in `idempotency_keys`, inserted first in the same
   transaction as the application, is the final guard when the store is not shared (no
   Redis, or the store lost the key): the loser's insert fails, it rolls back and replays.
When the shared store is unavailable the database guard alone still holds (callers may then
see a 409 or a replay instead of waiting).

Key and request fingerprint are stored as HMAC-SHA256 (IDEMPOTENCY_HMAC_KEY) so neither the
key nor the body (which carries personal data) can be recovered from the table or Redis.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select

from ..errors import BadRequest, Conflict, ValidationFailed
from ..extensions import db, store
from ..store import StoreUnavailable
from ..timeutil import as_aware, utcnow
from .models import IdempotencyKey

logger = logging.getLogger("app.applications.idempotency")

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255
PENDING, DONE = "pending", "done"


@dataclass
class Reservation:
    """What `reserve` found: a fresh claim to do the work, or a replayable earlier answer."""

    subject_id: str
    key_hash: str
    fingerprint: str
    store_key: str
    replay: dict | None = None
    held: bool = False  # this request holds the shared-store reservation


def _hmac(value: str, purpose: str) -> str:
    secret = current_app.config["IDEMPOTENCY_HMAC_KEY"].encode("utf-8")
    return hmac.new(secret, f"{purpose}\x00{value}".encode("utf-8"), hashlib.sha256).hexdigest()


def require_key(headers) -> str:
    """The request's Idempotency-Key; 400 naming the header when it is absent or malformed."""
    raw = headers.get(HEADER)
    if raw is None or not raw.strip():
        raise BadRequest(f"缺少请求头 {HEADER}：提交申请须携带幂等键（如 UUID）",
                         errors={HEADER: ["缺少必填请求头"]})
    key = raw.strip()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(f"请求头 {HEADER} 格式不正确", errors={HEADER: [f"应为 1 至 {MAX_KEY_LENGTH} 个可打印字符"]})
    return key


def fingerprint(path: str, body) -> str:
    """HMAC of the canonical JSON of the request (path + body)."""
    canonical = json.dumps({"path": path, "body": body}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return _hmac(canonical, "fingerprint")


def _mismatch() -> ValidationFailed:
    return ValidationFailed(f"该 {HEADER} 已用于另一份不同内容的请求，请为新的申请使用新的幂等键",
                            errors={HEADER: ["幂等键已用于不同的请求内容"]})


def _ttl(name: str, default: int) -> int:
    return int(current_app.config.get(name, default))


def _stored_row(subject_id: str, key_hash: str) -> IdempotencyKey | None:
    row = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.subject_id == subject_id,
                                                         IdempotencyKey.key_hash == key_hash))
    if row is not None and as_aware(row.expires_at) <= utcnow():
        return None  # expired: `claim` replaces it
    return row


def _answer_from_row(row: IdempotencyKey, fp: str) -> dict:
    if row.fingerprint != fp:
        raise _mismatch()
    if row.response is None:  # pragma: no cover - rows are written with their response
        raise Conflict("相同幂等键的请求正在处理中，请稍后重试", headers={"Retry-After": "1"})
    return row.response


def reserve(*, subject_id: str, key: str, fp: str) -> Reservation:
    """Claim the key for this request, or wait for and return the earlier answer.

    Returns a Reservation with `replay` set (the stored body) when the key was already used
    with the same request; raises 422 for another request, 409 when the first request is
    still running after the wait.
    """
    key_hash = _hmac(key, "key")
    reservation = Reservation(subject_id=subject_id, key_hash=key_hash, fingerprint=fp,
                              store_key=f"idem:{subject_id}:{key_hash}")
    deadline = time.monotonic() + float(current_app.config.get("IDEMPOTENCY_WAIT_SECONDS", 10))
    pause = 0.02
    while True:
        try:
            held = store.set_if_absent(reservation.store_key, f"{PENDING}:{fp}",
                                       _ttl("IDEMPOTENCY_LOCK_SECONDS", 60))
            value = None if held else store.get(reservation.store_key)
        except StoreUnavailable:
            logger.warning("shared store unavailable: idempotency relies on the database constraint only")
            held, value = False, None
            row = _stored_row(subject_id, key_hash)
            if row is not None:
                reservation.replay = _answer_from_row(row, fp)
            return reservation
        if held:
            reservation.held = True
            row = _stored_row(subject_id, key_hash)  # the store may have forgotten a finished request
            if row is not None:
                reservation.replay = _answer_from_row(row, fp)
                _remember(reservation, row.application_id)
            return reservation
        if value is None:  # released between our two calls: try again at once
            continue
        state, _, rest = value.partition(":")
        stored_fp = rest.split(":", 1)[0]
        if stored_fp != fp:
            raise _mismatch()
        if state == DONE:
            row = _stored_row(subject_id, key_hash)
            if row is not None:
                reservation.replay = _answer_from_row(row, fp)
                return reservation
            # the row expired or was purged while the store still remembers it: start afresh
            _forget(reservation.store_key)
            continue
        if time.monotonic() >= deadline:
            raise Conflict("相同幂等键的请求正在处理中，请稍后重试", headers={"Retry-After": "1"})
        db.session.rollback()  # end any read transaction so the next look sees new commits
        time.sleep(pause)
        pause = min(pause * 1.5, 0.25)


def claim(reservation: Reservation) -> IdempotencyKey:
    """Insert the key row in the current transaction (first, so a racing request blocks here).

    The caller flushes; an IntegrityError on flush or commit means another request won.
    """
    db.session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.subject_id == reservation.subject_id, IdempotencyKey.key_hash == reservation.key_hash,
        IdempotencyKey.expires_at <= utcnow()))
    row = IdempotencyKey(subject_id=reservation.subject_id, key_hash=reservation.key_hash,
                         fingerprint=reservation.fingerprint, created_at=utcnow(),
                         expires_at=utcnow() + timedelta(seconds=KEY_TTL_SECONDS))
    db.session.add(row)
    db.session.flush()
    return row


def winner_answer(reservation: Reservation) -> dict:
    """After losing the insert race: the answer of the request that won (422 if it differs)."""
    row = _stored_row(reservation.subject_id, reservation.key_hash)
    if row is None:
        raise Conflict("相同幂等键的请求正在处理中，请稍后重试", headers={"Retry-After": "1"})
    _remember(reservation, row.application_id)
    return _answer_from_row(row, reservation.fingerprint)


def _remember(reservation: Reservation, application_id: str | None) -> None:
    try:
        store.set(reservation.store_key, f"{DONE}:{reservation.fingerprint}:{application_id or ''}",
                  KEY_TTL_SECONDS)
    except StoreUnavailable:
        logger.warning("shared store unavailable: idempotency key not cached")


def complete(reservation: Reservation, application_id: str) -> None:
    """After the commit: let waiting requests replay the answer."""
    _remember(reservation, application_id)


def release(reservation: Reservation) -> None:
    """The request failed: free the key so it can be used again."""
    if reservation.held:
        _forget(reservation.store_key)


def _forget(store_key: str) -> None:
    try:
        store.delete(store_key)
    except StoreUnavailable:
        logger.warning("shared store unavailable: idempotency reservation not released")


def purge_expired() -> int:
    """Delete key rows older than 24 hours; returns how many (commits)."""
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    db.session.commit()
    return result.rowcount or 0
