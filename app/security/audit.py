"""Append-only audit log of security events, hash-chained so that changes and removals show.

Each row's `hash` is SHA-256 over the canonical JSON of the row (sequence number, time,
event, subject, actor, IP, details) together with the previous row's hash. `audit_head`
keeps the newest (seq, hash) so that rows cut from the end are noticed too.

`record()` appends inside the caller's transaction (the caller commits). Appends are
serialised so the chain never forks: on PostgreSQL with a transaction-scoped advisory
lock; on SQLite by taking the single writer lock before the head is read. The unique `prev_hash` column is a
second line of defence: two rows can never claim the same predecessor.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson
from flask import has_request_context, request
from sqlalchemy import select, text

from ..bulk import insert_rows
from ..extensions import db
from ..observability import mask_pii
from ..timeutil import as_aware, utcnow
from .models import AuditEvent, AuditHead

logger = logging.getLogger("app.audit")

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# pg_advisory_xact_lock key: "ias-audt" as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"ias-audt", "big", signed=True)


def _clean(value):
    """JSON-safe copy of `value` with anything that looks like an ID or phone number masked: text, numbers
    other than int (floats included) as text, lists, and objects with text keys."""
    if isinstance(value, str):  # the most common value first
        return mask_pii(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_clean(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (bool, int)):
        return value
    return mask_pii(str(value))


@functools.lru_cache(maxsize=4)  # a batch's events share one time
def _timestamp(value: datetime) -> str:
    return as_aware(value).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(*, seq: int, at: datetime, event: str, subject_id: str | None,
                    actor: str | None, ip: str | None, details: dict, prev_hash: str) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8) of one row and its predecessor's hash: the standard
    library's `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, written by orjson, whose
    output is the same for details as `_clean` leaves them (every row's, since the chain began: no floats,
    which the two spell differently), and by the standard library where orjson refuses."""
    body = {"seq": int(seq), "at": _timestamp(at), "event": event, "subject_id": subject_id,
            "actor": actor, "ip": ip, "details": details or {}, "prev_hash": prev_hash}
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # an integer past 64 bits, a lone surrogate
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(**values) -> str:
    """The hash a row with these values (`canonical_bytes`' arguments) carries."""
    return hashlib.sha256(canonical_bytes(**values)).hexdigest()


def row_hash(row: AuditEvent) -> str:
    """Recompute the hash a row should carry."""
    return chain_hash(seq=row.seq, at=row.at, event=row.event, subject_id=row.subject_id, actor=row.actor,
                      ip=row.ip, details=row.details, prev_hash=row.prev_hash)


def _lock_chain(session) -> None:
    """Hold the chain until this transaction ends."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        # a write first takes SQLite's single writer lock (waiting up to busy_timeout), so the
        # head read below is the newest one; a no-op when the transaction already writes
        session.execute(text("UPDATE audit_head SET seq = seq WHERE id = :id"), {"id": HEAD_ID})


def _client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def record(event: str, *, subject_id: str | None = None, actor: str | None = None,
           details: dict | None = None, ip: str | None = None) -> AuditEvent:
    """Append one event in the current session (the caller commits or rolls back).

    `details` must not carry plaintext personal data; strings that look like ID or phone
    numbers are masked anyway. `ip` defaults to the current request's client address.
    """
    return AuditEvent(**record_many([dict(event=event, subject_id=subject_id, actor=actor, details=details,
                                          ip=ip if ip is not None else _client_ip())])[0])


def record_many(events: list[dict]) -> list[dict]:
    """Append several events (keyword dicts as `record` takes, `ip` as given) holding the chain
    once, as one multi-row insert: what a batch writer uses instead of one lock, head update and
    insert per event. Returns the rows as written (column -> value)."""
    session = db.session
    session.flush()
    _lock_chain(session)
    head = session.get(AuditHead, HEAD_ID, populate_existing=True)
    seq = head.seq if head else 0
    prev_hash = head.hash if head else GENESIS_HASH
    at, rows = utcnow(), []
    for item in events:
        seq += 1
        row = {"seq": seq, "at": at, "event": item["event"], "subject_id": item.get("subject_id"),
               "actor": item.get("actor"), "ip": item.get("ip"), "details": _clean(item.get("details") or {}),
               "prev_hash": prev_hash}
        row["hash"] = prev_hash = chain_hash(**row)
        rows.append(row)
    insert_rows(AuditEvent.__table__, rows)
    if head is None:
        session.add(AuditHead(id=HEAD_ID, seq=seq, hash=prev_hash))
    else:
        head.seq, head.hash = seq, prev_hash
    session.flush()
    _log(rows)
    return rows


def _log(rows: list[dict]) -> None:
    """One log line per event, or per kind of event for a batch (the chain holds each one)."""
    if len(rows) == 1:
        logger.info("audit %s", rows[0]["event"], extra={"event": rows[0]["event"], "subject": rows[0]["subject_id"]})
        return
    kinds: dict[str, list[int]] = {}
    for row in rows:
        kinds.setdefault(row["event"], []).append(row["seq"])
    for event, seqs in kinds.items():
        logger.info("audit %s x%d (seq %d-%d)", event, len(seqs), seqs[0], seqs[-1],
                    extra={"event": event, "count": len(seqs)})


@dataclass
class VerifyResult:
    """Outcome of a chain check: rows checked and the problems found (empty when intact)."""

    count: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(*, batch_size: int = 1000) -> VerifyResult:
    """Walk the whole chain in order and report every changed, inserted or removed row."""
    result = VerifyResult()
    expected_seq, prev_hash = 1, GENESIS_HASH
    query = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    for row in db.session.scalars(query):
        result.count += 1
        if row.seq != expected_seq:
            result.problems.append(f"第 {expected_seq} 至 {row.seq - 1} 条记录缺失"
                                   if row.seq > expected_seq else f"第 {row.seq} 条记录序号重复或乱序")
        if row.prev_hash != prev_hash:
            result.problems.append(f"第 {row.seq} 条记录的前序哈希与上一条不符")
        if row_hash(row) != row.hash:
            result.problems.append(f"第 {row.seq} 条记录内容被修改")
        expected_seq, prev_hash = row.seq + 1, row.hash
    head = db.session.get(AuditHead, HEAD_ID)
    last_seq = expected_seq - 1
    if head is None:
        if result.count:
            result.problems.append("审计链头记录缺失")
    elif head.seq != last_seq or head.hash != prev_hash:
        result.problems.append(f"审计链头指向第 {head.seq} 条记录，但最后一条为第 {last_seq} 条或其哈希不符"
                               "（末尾记录可能被删除）")
    return result
