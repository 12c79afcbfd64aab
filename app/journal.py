"""Write-behind journal: records that must not be lost but need not be written inside the request.

An entry is appended to a sequenced list in the shared store atomically with the action it
describes (consuming a one-time code, say) before the caller answers, and a job writes the
entries to the database in batches, one transaction per batch. Readers that must see every
entry made before them (the holder's access log, the inbox) call `catch_up()` first.

Handlers (`HANDLERS`, kind -> "module:function") receive a batch of entries inside the journal's
transaction and must skip entries they already wrote (each has a unique `id`): a crash between
the commit and the removal from the list replays the batch. An entry a handler cannot write moves
to the dead-letter list with the error logged, instead of holding up the ones after it.
"""
from __future__ import annotations

import importlib
import json
import logging
import secrets
import time
import uuid

from sqlalchemy.exc import InterfaceError, OperationalError

from .extensions import db, store
from .jobs import enqueue, runs_inline
from .store import StoreUnavailable

logger = logging.getLogger("app.journal")

JOURNAL = "journal"
DEAD_LETTERS = "journal:dead"
LOCK = "journal:lock"
LOCK_SECONDS = 30
AWAKE_SECONDS = 30  # a drainer that died stops holding the flag after this
BATCH = 500
IDLE_SECONDS = 2.0  # how long a queued drainer waits for more entries before it ends
GATHER_SECONDS = 0.1  # after a short batch, let the next one gather (one transaction per batch)
LOCK_WAIT_SECONDS = 5.0
TRANSIENT = (OperationalError, InterfaceError)
HANDLERS = {"wallet.access": "app.wallet.access_log:write_journal_entries",
            "auth.rotation": "app.identity.held_sessions:write_entries"}


def entry(kind: str, **data) -> str:
    """A journal entry: unique id, kind, time and the handler's data, as one JSON line."""
    if kind not in HANDLERS:
        raise ValueError(f"no journal handler for {kind!r}")
    return json.dumps({"id": uuid.uuid4().hex, "kind": kind, "at": time.time(), **data},
                      ensure_ascii=False, separators=(",", ":"))


def push(line: str, *, consume: str | None = None, line_if_absent: str | None = None) -> bool:
    """Append an entry (with `consume`: atomically with deleting that key, `line_if_absent` when
    another caller deleted it first) and wake a drainer; True when this call deleted `consume`.

    Call it outside a transaction: without Redis the drain runs right here and commits."""
    result = store.journal_push(JOURNAL, line, consume=consume, entry_if_absent=line_if_absent,
                                awake_ttl=AWAKE_SECONDS)
    if result.wake:
        enqueue("app.journal:drain_job")
    return result.consumed


def catch_up() -> int:
    """Write every entry appended so far; what a reader calls before reading what they feed.
    With the store unreachable there is nothing to catch up with: the database answers alone. An
    empty list is one round trip: entries leave it only after their batch is committed."""
    return _catch_up()[0]


def caught_up() -> bool:
    """`catch_up()`, and whether every entry appended before the call is now written (False when the
    store could not be read, or another drainer held the lock past the wait)."""
    return _catch_up()[1]


def _catch_up() -> tuple[int, bool]:
    try:
        if not store.journal_head(JOURNAL, 1):
            return 0, True
        return _drain(until=store.journal_sequence(JOURNAL), wait_seconds=LOCK_WAIT_SECONDS)
    except StoreUnavailable:
        logger.warning("journal: shared store unavailable, reading without the latest entries")
        return 0, False


def drain(*, until: int | None = None, wait_seconds: float = 0.0) -> int:
    """Write pending entries (up to sequence `until`) batch by batch; returns how many."""
    return _drain(until=until, wait_seconds=wait_seconds)[0]


def _drain(*, until: int | None, wait_seconds: float) -> tuple[int, bool]:
    written = 0
    while True:
        token = _lock(wait_seconds)
        if token is None:
            logger.warning("journal: another drainer holds the lock; %s entries written", written)
            return written, False
        try:
            batch = store.journal_head(JOURNAL, BATCH)
            if until is not None:
                batch = [(sequence, line) for sequence, line in batch if sequence <= until]
            if batch:
                _write([line for _, line in batch])
                store.journal_drop(JOURNAL, len(batch))
        finally:
            store.delete_if_equal(LOCK, token)
        written += len(batch)
        if len(batch) < BATCH:
            return written, True


def drain_job() -> int:
    """The queued drainer: write until the journal stays empty for IDLE_SECONDS (at once when it
    runs inside a request), then hand the awake flag back (and take it again if an entry slipped
    in meanwhile)."""
    idle_seconds = 0.0 if runs_inline() else IDLE_SECONDS
    written, idle_since = 0, time.monotonic()
    while True:
        count = drain(wait_seconds=LOCK_WAIT_SECONDS)
        written += count
        store.touch(f"{JOURNAL}:awake", AWAKE_SECONDS)
        if count:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_seconds:
            store.delete(f"{JOURNAL}:awake")
            if not store.journal_head(JOURNAL, 1) or not store.set_if_absent(f"{JOURNAL}:awake", "1",
                                                                             AWAKE_SECONDS):
                return written
        if count < BATCH:
            time.sleep(min(GATHER_SECONDS, idle_seconds))


def _lock(wait_seconds: float) -> str | None:
    token, deadline = secrets.token_hex(8), time.monotonic() + wait_seconds
    while not store.set_if_absent(LOCK, token, LOCK_SECONDS):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)
    return token


def _write(lines: list[str]) -> None:
    """One transaction for the batch; when it fails, entry by entry, dead-lettering the bad ones.
    A database that cannot be reached is not the entries' fault: they stay for the next drain."""
    try:
        _apply([json.loads(line) for line in lines])
        db.session.commit()
        return
    except TRANSIENT:
        db.session.rollback()
        raise
    except Exception:  # noqa: BLE001 - find the entries that fail below, keep the others
        db.session.rollback()
    for line in lines:
        try:
            _apply([json.loads(line)])
            db.session.commit()
        except TRANSIENT:
            db.session.rollback()
            raise
        except Exception:  # noqa: BLE001
            db.session.rollback()
            logger.exception("journal: entry moved to the dead letters: %s", line[:200])
            store.journal_push(DEAD_LETTERS, line, awake_ttl=1)


def _apply(entries: list[dict]) -> None:
    by_kind: dict[str, list[dict]] = {}
    for item in entries:
        by_kind.setdefault(item["kind"], []).append(item)
    for kind, items in by_kind.items():
        module, _, name = HANDLERS[kind].partition(":")
        getattr(importlib.import_module(module), name)(items)
