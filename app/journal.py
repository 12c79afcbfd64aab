"""Write-behind journal: records that must not be lost but need not be written inside the request.

An entry is appended to a sequenced list in the shared store atomically with the action it
describes (consuming a one-time code, say) before the caller answers, and a job writes the
entries to the database in batches, one transaction per batch. Readers that must see every entry
made before them (the holder's access log, the inbox) call `catch_up()` first. On Redis the held
sessions' rotations go to lists of their own (one on a single server; on a Redis Cluster several,
each beside a group of held sessions: `lists`, `beside`); every other entry goes to the journal's own
list, so a reader that needs no rotation checks that one (`catch_up(rotations=False)`) and finds it
empty while refreshes go on. One queued drainer writes every list.

Handlers (`HANDLERS`, kind -> "module:function") receive a batch of entries inside the journal's
transaction and must skip entries they already wrote (each has a unique `id`): a crash between
the commit and the removal from the list replays the batch. An entry a handler cannot write moves
to the dead-letter list with the error logged, instead of holding up the ones after it.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Collection

from flask import current_app
from sqlalchemy.exc import InterfaceError, OperationalError

from .extensions import db, store
from .jobs import enqueue, resolve, runs_inline
from .json_output import json_read, json_text
from .store import StoreUnavailable

logger = logging.getLogger("app.journal")

JOURNAL = "journal"
DEAD_LETTERS = "journal:dead"
LOCK = "journal:lock"  # the first list's; each list has its own (`{list}:lock`)
DRAINER = "journal:drainer"  # with several lists: held by the one queued drainer of them all
LOCK_SECONDS = 30
AWAKE_SECONDS = 30  # a drainer that died stops holding the flags after this
BATCH = 500
IDLE_SECONDS = 2.0  # how long a queued drainer waits for more entries before it ends
GATHER_SECONDS = 0.1  # after a short batch, let the next one gather (one transaction per batch)
LOCK_WAIT_SECONDS = 5.0
TRANSIENT = (OperationalError, InterfaceError)
HANDLERS = {"wallet.access": "app.wallet.access_log:write_journal_entries",
            "auth.rotation": "app.identity.held_sessions:write_entries"}


def entry(kind: str, *, readers: Collection[str] = (), **data) -> str:
    """A journal entry: unique id, kind, time and the handler's data, as one JSON line; `readers`: the
    subjects whose reads it feeds (their inboxes), who wait for it alone (`push`, `catch_up`)."""
    if kind not in HANDLERS:
        raise ValueError(f"no journal handler for {kind!r}")
    if readers:
        data["readers"] = list(readers)
    return json_text({"id": secrets.token_hex(16), "kind": kind, "at": time.time(), **data}, default=None)


def load_handlers() -> None:
    """Import every handler's module (the job worker does before it forks, so that each work horse that
    drains the journal starts with them loaded, their models mapped)."""
    for path in HANDLERS.values():
        resolve(path)


def pending_mark(subject_id: str) -> str:
    """The key that keeps the sequence number of the newest entry feeding the subject's reads, until written."""
    return f"{JOURNAL}:pending:{subject_id}"


def lists(*, rotations: bool = True) -> list[str]:
    """The lists the journal is spread over, its own first (`redis_store`, `redis_topology`); without
    `rotations`, the one every entry but a held session's rotation goes to."""
    return store.journal_lists(JOURNAL) if rotations else [JOURNAL]


def beside(key: str | None) -> str:
    """The journal list that one store step can change together with `key` (a code, a held session;
    None: the journal's own)."""
    return store.journal_beside(JOURNAL, key)


def awake_flag(key: str | None) -> str:
    """The awake flag of the list beside `key` (`beside`): whoever claims it wakes a drainer."""
    return f"{beside(key)}:awake"


def backlog() -> int:
    """How many entries wait to be written, over every list."""
    return sum(store.journal_lengths(lists()))


def push(line: str, *, consume: str | None = None, line_if_absent: str | None = None,
         readers: Collection[str] = ()) -> bool:
    """Append an entry (with `consume`: atomically with deleting that key, `line_if_absent` when
    another caller deleted it first) and wake a drainer; True when this call deleted `consume`.
    `readers`: the entry's (`entry`), whose marks it sets in the same step.

    Call it outside a transaction: without Redis the drain runs right here and commits."""
    result = store.journal_push(beside(consume), line, consume=consume, entry_if_absent=line_if_absent,
                                awake_ttl=AWAKE_SECONDS, marks=[pending_mark(reader) for reader in readers])
    _woken(result)
    return result.consumed


def push_claimed(line: str, *, use: str, readers: Collection[str] = ()) -> None:
    """Append an entry atomically with consuming `use`, which this caller holds a claim on (`store.UseClaim`); on a single Redis sent without waiting for the reply (the claim already decided the
    use, and woke a drainer), so that a verification waits for one round trip."""
    app = current_app._get_current_object()  # the reply may be read where no app is current
    store.journal_push_later(beside(use), line, consume=use, claimed=True, awake_ttl=AWAKE_SECONDS,
                             marks=[pending_mark(reader) for reader in readers],
                             then=lambda result: _woken(result, app))


def _woken(result, app=None) -> None:
    if result.wake and app is None:
        wake()
    elif result.wake:
        with app.app_context():
            wake()


def wake() -> None:
    """Queue the drainer for a list whose awake flag an append just claimed, unless it is queued or
    running for another list already."""
    if len(lists()) == 1 or store.set_if_absent(DRAINER, "1", AWAKE_SECONDS):
        enqueue("app.journal:drain_job")


def catch_up(*, rotations: bool = True, reader: str | None = None) -> int:
    """Write every entry appended so far (without `rotations`: but the held sessions' rotations);
    what a reader calls before reading what they feed. With `reader` (a subject; no rotations), only
    when an entry feeding that subject's reads waits (its mark): the others' need not hold them up.
    With the store unreachable there is nothing to catch up with: the database answers alone. An
    empty journal (or no mark) is one round trip: entries leave it only after their batch is committed."""
    return _catch_up(lists(rotations=rotations and reader is None), reader)[0]


def caught_up(*, rotations: bool = True, reader: str | None = None) -> bool:
    """`catch_up()`, and whether every entry appended before the call is now written (False when the
    store could not be read, or another drainer held the lock past the wait)."""
    return _catch_up(lists(rotations=rotations and reader is None), reader)[1]


def _catch_up(journals: list[str], reader: str | None = None) -> tuple[int, bool]:
    try:
        if reader is not None and store.get_many_after_journal(journals, [], mark=pending_mark(reader))[0]:
            return 0, True
        written, complete = 0, True
        for journal in _waiting(journals):
            count, done = _drain(journal, until=store.journal_sequence(journal), wait_seconds=LOCK_WAIT_SECONDS)
            written, complete = written + count, complete and done
        return written, complete
    except StoreUnavailable:
        logger.warning("journal: shared store unavailable, reading without the latest entries")
        return 0, False


def drain(*, wait_seconds: float = 0.0) -> int:
    """Write the pending entries of every list, batch by batch; returns how many."""
    return sum(_drain(journal, until=None, wait_seconds=wait_seconds)[0] for journal in _waiting(lists()))


def _waiting(journals: list[str]) -> list[str]:
    return [journal for journal, length in zip(journals, store.journal_lengths(journals)) if length]


def _drain(journal: str, *, until: int | None, wait_seconds: float) -> tuple[int, bool]:
    written, lock = 0, f"{journal}:lock"
    while True:
        token = _lock(lock, wait_seconds)
        if token is None:
            logger.warning("journal: another drainer holds %s; %s entries written", lock, written)
            return written, False
        try:
            batch = store.journal_head(journal, BATCH)
            if until is not None:
                batch = [(sequence, line) for sequence, line in batch if sequence <= until]
            if batch:
                entries = _write([line for _, line in batch])
                store.journal_drop(journal, len(batch), marks={pending_mark(reader) for item in entries
                                                                for reader in item.get("readers", ())})
        finally:
            store.delete_if_equal(lock, token)
        written += len(batch)
        if len(batch) < BATCH:
            return written, True


def drain_job() -> int:
    """The queued drainer of every list: write until the journal stays empty for IDLE_SECONDS (at once
    when it runs inside a request), then hand the awake flags back (and take them again if an entry
    slipped in meanwhile)."""
    idle_seconds = 0.0 if runs_inline() else IDLE_SECONDS
    written, idle_since, held_since = 0, time.monotonic(), None
    while True:
        if held_since is None or time.monotonic() - held_since >= AWAKE_SECONDS / 3:
            for flag in _flags():  # appends to any list now leave the waking to this drainer
                store.set(flag, "1", AWAKE_SECONDS)
            held_since = time.monotonic()
        count = drain(wait_seconds=LOCK_WAIT_SECONDS)
        written += count
        if count:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_seconds:
            store.delete(*_flags())
            if not backlog() or not store.set_if_absent(_flags()[-1], "1", AWAKE_SECONDS):
                return written
            held_since = None
        if count < BATCH:
            time.sleep(min(GATHER_SECONDS, idle_seconds))


def _flags() -> list[str]:
    """The awake flag of each list, then the drainer's when there are several: the last is the one
    whose claim makes a drainer."""
    journals = lists()
    return [f"{journal}:awake" for journal in journals] + ([DRAINER] if len(journals) > 1 else [])


def _lock(lock: str, wait_seconds: float) -> str | None:
    token, deadline = secrets.token_hex(8), time.monotonic() + wait_seconds
    while not store.set_if_absent(lock, token, LOCK_SECONDS):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)
    return token


def _write(lines: list[str]) -> list[dict]:
    """One transaction for the batch; when it fails, entry by entry, dead-lettering the bad ones.
    A database that cannot be reached is not the entries' fault: they stay for the next drain.
    Returns the entries (an unreadable line: none)."""
    try:
        entries = [json_read(line) for line in lines]
        _apply(entries)
        db.session.commit()
        return entries
    except TRANSIENT:
        db.session.rollback()
        raise
    except Exception:  # noqa: BLE001 - find the entries that fail below, keep the others
        db.session.rollback()
    entries = []
    for line in lines:
        try:
            item = json_read(line)
            entries += [item] if isinstance(item, dict) else []
            _apply([item])
            db.session.commit()
        except TRANSIENT:
            db.session.rollback()
            raise
        except Exception:  # noqa: BLE001
            db.session.rollback()
            logger.exception("journal: entry moved to the dead letters: %s", line[:200])
            store.journal_push(DEAD_LETTERS, line, awake_ttl=1)
    return entries  # a dead letter's readers wait for it no longer


def _apply(entries: list[dict]) -> None:
    by_kind: dict[str, list[dict]] = {}
    for item in entries:
        by_kind.setdefault(item["kind"], []).append(item)
    for kind, items in by_kind.items():
        resolve(HANDLERS[kind])(items)
