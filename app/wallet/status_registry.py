"""Status lists (IETF Token Status List, 2 bits: 0 valid, 1 invalid, 2 suspended).

A license takes the next free index of an open list when it is issued. Statuses are read
from the licenses when a list is published, and every change moves the list's `version`,
so a signed `statuslist+jwt` can be cached (in the shared store) per version.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import time

from flask import current_app
from sqlalchemy import select, update

from ..errors import NotFound, ServiceUnavailable
from ..extensions import db, store
from ..security import keys
from ..store import StoreUnavailable
from ..timeutil import epoch, utcnow
from .models import License, StatusListRecord
from .status_list_codec import INVALID, SUSPENDED, VALID, StatusList, sign_status_list_jwt, status_list_jwt_payload

logger = logging.getLogger("app.wallet.status")

BITS = 2
DEFAULT_SIZE = 1 << 17  # 131072 entries, 32 KiB before compression
STATUS_PURPOSE = "status"
STATUS_VALUES = {"valid": VALID, "revoked": INVALID, "suspended": SUSPENDED}
CACHE_SECONDS = 60  # Cache-Control max-age and the token's `ttl`
TOKEN_LIFETIME = 24 * 3600
VERSION_KEY = "wallet:status:version"
VERSION_TTL = 30 * 24 * 3600
ALLOCATION_ATTEMPTS = 10


def list_uri(list_id: str) -> str:
    """The public URL of a status list (the `uri` credentials carry and the token's `sub`)."""
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/api/v1/status-lists/{list_id}"


def allocate() -> tuple[str, int]:
    """Take the next free index of an open list (opening a new list when all are full).

    Runs in the caller's transaction; the conditional UPDATE makes the claim atomic across
    workers (PostgreSQL re-checks the condition after waiting for a concurrent claim)."""
    size = int(current_app.config.get("WALLET_STATUS_LIST_SIZE") or DEFAULT_SIZE)
    for _ in range(ALLOCATION_ATTEMPTS):
        row_id = db.session.scalar(select(StatusListRecord.id)
                                   .where(StatusListRecord.next_idx < StatusListRecord.size)
                                   .order_by(StatusListRecord.id).limit(1))
        if row_id is None:
            record = StatusListRecord(list_id=secrets.token_hex(4), bits=BITS, size=size, next_idx=1,
                                      version=1, created_at=utcnow(), updated_at=utcnow())
            db.session.add(record)
            db.session.flush()
            return record.list_id, 0
        claimed = db.session.execute(
            update(StatusListRecord)
            .where(StatusListRecord.id == row_id, StatusListRecord.next_idx < StatusListRecord.size)
            .values(next_idx=StatusListRecord.next_idx + 1, updated_at=utcnow())
            .returning(StatusListRecord.list_id, StatusListRecord.next_idx)
            .execution_options(synchronize_session=False)).first()
        if claimed is not None:
            return claimed.list_id, claimed.next_idx - 1
    raise ServiceUnavailable("证照状态列表繁忙，请稍后重试", retry_after=1)


def changed(list_id: str) -> None:
    """A status on the list changed: move its version (caller's transaction)."""
    db.session.execute(update(StatusListRecord).where(StatusListRecord.list_id == list_id)
                       .values(version=StatusListRecord.version + 1, updated_at=utcnow())
                       .execution_options(synchronize_session=False))


def announce_change() -> None:
    """A status moved: call before the commit (a store failure then aborts the change) and again
    after it (`announce_committed`), so that no worker keeps a copy read in between."""
    store.incr(VERSION_KEY, VERSION_TTL)


def announce_committed() -> None:
    try:
        store.incr(VERSION_KEY, VERSION_TTL)
    except StoreUnavailable:
        logger.warning("status change committed but not announced; worker copies refresh within %ss",
                       CACHE_SECONDS)


def current_version() -> str:
    """The announced version (started at a random value if the store lost it)."""
    store.set_if_absent(VERSION_KEY, str(secrets.randbelow(1 << 40) + 1), VERSION_TTL)
    return store.get(VERSION_KEY) or "0"


def status_at(list_id: str, idx: int, version: str | None) -> str:
    """valid / revoked / suspended at a list index, from this worker's copy of the list: read
    again when the announced `version` moved or the copy is older than the published token's
    `ttl` (the staleness any relying party caching the token accepts anyway)."""
    version = version or current_version()
    now = time.monotonic()
    copies = current_app.extensions.setdefault("status_list_copies", {})
    copy = copies.get(list_id)
    if copy is None or copy[0] != version or now - copy[1] > CACHE_SECONDS:
        rows = db.session.execute(select(License.status_idx, License.status).where(
            License.status_list_id == list_id, License.status != "valid"))
        copy = copies[list_id] = (version, now, {idx: status for idx, status in rows})
    return copy[2].get(idx, "valid")


def build(record: StatusListRecord) -> StatusList:
    """The list's statuses as they stand in the database."""
    status_list = StatusList(record.bits, record.size)
    rows = db.session.execute(select(License.status_idx, License.status).where(
        License.status_list_id == record.list_id, License.status != "valid"))
    for idx, status in rows:
        status_list.set(idx, STATUS_VALUES[status])
    return status_list


def _cache_get(key: str) -> str | None:
    try:
        return store.get(key)
    except StoreUnavailable:
        return None


def _cache_set(key: str, value: str) -> None:
    try:
        store.set(key, value, ttl=CACHE_SECONDS)
    except StoreUnavailable:
        logger.warning("status list cache unavailable; serving an uncached token")


def published_token(list_id: str) -> tuple[str, str]:
    """(signed statuslist+jwt, strong ETag) for a list; 404 for an unknown list."""
    record = db.session.scalar(select(StatusListRecord).where(StatusListRecord.list_id == list_id))
    if record is None:
        raise NotFound("状态列表不存在")
    cache_key = f"wallet:statuslist:{record.list_id}:{record.version}"
    token = _cache_get(cache_key)
    if token is None:
        now = epoch()
        payload = status_list_jwt_payload(sub_uri=list_uri(record.list_id), lst=build(record).encode(),
                                          bits=record.bits, iat=now, exp=now + TOKEN_LIFETIME,
                                          ttl=CACHE_SECONDS)
        kid, key = keys.active_key(STATUS_PURPOSE)
        token = sign_status_list_jwt(payload, key=key, kid=kid)
        _cache_set(cache_key, token)
    etag = '"' + hashlib.sha256(token.encode("ascii")).hexdigest()[:32] + '"'
    return token, etag
