"""Shared key-value store for what processes must share: Redis, or an in-process stand-in."""
from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import click

from .errors import ServiceUnavailable
from .timeutil import monotonic

logger = logging.getLogger("app.store")


class StoreUnavailable(ServiceUnavailable):
    """The shared store cannot be reached; callers answer 503 instead of guessing."""

    def __init__(self, detail: str | None = None):
        super().__init__(detail or "共享存储暂不可用，请稍后重试", retry_after=5)


@dataclass(frozen=True)
class JournalPush:
    """What a journal append did: the entry's sequence number, whether `consume` was deleted by
    this call, and whether this call claimed the awake flag (so it must wake a drainer)."""

    sequence: int
    consumed: bool
    wake: bool


@dataclass(frozen=True)
class SessionRotation:
    """What a held session's rotation did: `rotated` (with the session's `held` fields, and `wake` as
    for a journal append), `reused` (an older generation; `held` names the subject), `database` (the
    store cannot decide: not held, released, another secret, expired; the database must) or `limited`
    (the hit counted with it passed its limit; nothing else done; the window resets in `reset_in`)."""

    status: str
    held: dict
    wake: bool = False
    reset_in: int = 0


@dataclass(frozen=True)
class UseClaim:
    """A claim on one use of a one-time code, asked for in the round trip that reads the code: the full use
    (`entry`, the code's entry) when the license type that `basic` (the basic use) names is one of `types`,
    else the basic use; held by `token` for `ttl` seconds, until the answer's journal entry consumes it
    (`journal_push(claimed=True)`). `awake`: the awake flag of the list that entry goes to, claimed with
    the use so that a drainer is woken before the entry is sent."""

    entry: str
    basic: str
    types: frozenset[str]
    token: str
    awake: str
    ttl: int = 30
    awake_ttl: int = 30

    @property
    def keys(self) -> list[str]:
        return [self.entry, self.basic, claim_key(self.entry), claim_key(self.basic), self.awake]


@dataclass(frozen=True)
class Claimed:
    """What a `UseClaim` did: the use it chose (`full`, `basic`; empty when it asked for none: no code, no
    license type beside it, a refused caller), whether this caller now holds it, and `wake` as for a
    journal append."""

    use: str = ""
    held: bool = False
    wake: bool = False


NOT_CLAIMED = Claimed()


def claim_key(use: str) -> str:
    """Where the holder of a claim on `use` keeps its token."""
    return use + ":claim"


MARK_SECONDS = 7 * 24 * 3600  # a mark outlives any drain it waits for; the drain deletes it


def mark_written(pending: str | None, written: str | None) -> bool:
    """Whether the entries that set a mark (`pending`: the newest one's sequence number) are written, by
    the list's `written` sequence number; no mark: nothing pending."""
    return pending is None or (written is not None and int(pending) <= int(written))


# a held session's key begins so (`held_sessions.key`); its fields, in the order redis_store.SESSION_ROTATE reads them
HELD_PREFIX = "auth:held:"
HELD_FIELDS = ("gen", "hash", "exp", "sub", "ch", "ver", "staff", "released")


def held_outcome(held: dict, generation: int, presented_hash: str, now: float) -> str:
    """The rotation's outcome for a session's `held` fields (what the Redis script decides too);
    `stale` (a newer generation than the store knows: it lost writes) drops the entry."""
    if held.get("gen") is None:
        return "database"
    known = int(held["gen"])
    if generation < known:
        return "reused"
    if generation > known:
        return "database" if held.get("released") else "stale"
    if held.get("hash") != presented_hash or held.get("released") or float(held["exp"]) <= now:
        return "database"
    return "rotated"


def parse_journal_entry(item: str) -> tuple[int, str]:
    number, _, text = item.partition(" ")
    return int(number), text


class SharedStore(ABC):
    """Operations every store offers; values are strings, TTLs are seconds."""

    name = "abstract"

    @abstractmethod
    def get(self, key: str) -> str | None: ...

    @abstractmethod
    def set(self, key: str, value: str, ttl: int | None = None) -> None: ...

    @abstractmethod
    def set_if_absent(self, key: str, value: str, ttl: int) -> bool: ...

    @abstractmethod
    def pop(self, key: str) -> str | None:
        """Atomically read and delete: the first caller wins."""

    @abstractmethod
    def delete(self, *keys: str) -> int: ...

    @abstractmethod
    def incr(self, key: str, ttl: int) -> int:
        """Increment; the TTL starts when the key is created."""

    @abstractmethod
    def ttl(self, key: str) -> int | None: ...

    @abstractmethod
    def get_many(self, *keys: str) -> list[str | None]:
        """Several values in one round trip."""

    def count_and_get(self, counter: str, window: int, keys: list[str]) -> tuple[int, int, list[str | None]]:
        """Count a hit in a fixed window (the TTL starts with the first hit) and read `keys`: the
        count, the seconds until the window resets, and the values (one round trip on Redis)."""
        count, reset_in = self.incr(counter, window), self.ttl(counter)
        if reset_in is None:
            self.touch(counter, window)
        return count, window if reset_in is None else reset_in, self.get_many(*keys) if keys else []

    def count_get_and_claim(self, counter: str, window: int, allowed: int, keys: list[str], guards: int,
                            claim: UseClaim) -> tuple[int, int, list[str | None], Claimed]:
        """`count_and_get`, and `claim` in the same step unless the hit passed the `allowed` hits or one of
        the first `guards` keys read holds a value (one round trip on a single Redis)."""
        count, reset_in, values = self.count_and_get(counter, window, keys)
        if count > allowed or any(values[:guards]):
            return count, reset_in, values, NOT_CLAIMED
        return count, reset_in, values, self.claim_use(claim)

    @abstractmethod
    def claim_use(self, claim: UseClaim) -> Claimed:
        """Claim the use `claim` chooses while the code's entry and that use are there and no one holds it."""

    @abstractmethod
    def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete `key` only while it still holds `value` (releasing a lock one owns)."""

    @abstractmethod
    def touch(self, key: str, ttl: int) -> bool:
        """Restart an existing key's TTL."""

    @abstractmethod
    def journal_push(self, journal: str, entry: str, *, consume: str | None = None,
                     entry_if_absent: str | None = None, awake_ttl: int = 30,
                     marks: Iterable[str] = (), claimed: bool = False) -> JournalPush:
        """Append `entry` to a sequenced list, atomically with deleting `consume` when given (the
        first caller wins, and no one wins while another holds a claim on it (`UseClaim`); the others
        append `entry_if_absent`; with `claimed` (this caller holds a claim on `consume`): it
        consumes it, frees the claim and appends `entry` whatever happened since), and claim the journal's `awake`
        flag when no drainer holds it. Each key of `marks` is set to the entry's sequence number (for
        MARK_SECONDS): a reader of what the entry feeds waits for it alone (`mark_written`)."""

    def journal_push_later(self, journal: str, entry: str, *, then, **push) -> None:
        """`journal_push`, its reply handed to `then` (a JournalPush); a single Redis sends it without waiting
        for the reply, which it reads before its next command (`redis_connection.HeldConnection.send_later`)."""
        then(self.journal_push(journal, entry, **push))

    @abstractmethod
    def journal_head(self, journal: str, count: int) -> list[tuple[int, str]]:
        """The oldest entries, as (sequence, entry)."""

    def journal_lists(self, journal: str) -> list[str]:
        """The lists `journal` is spread over, its own first: itself here (the drain runs in the request); on
        Redis the held sessions' rotations go to lists of their own (`redis_store`, `redis_topology`)."""
        return [journal]

    def journal_beside(self, journal: str, key: str | None) -> str:
        """The list of `journal` that one script can change together with `key` (with None: `journal`)."""
        return journal

    @abstractmethod
    def journal_lengths(self, journals: list[str]) -> list[int]:
        """How many entries each list holds (one round trip on Redis)."""

    def get_many_after_journal(self, journals: list[str], keys: list[str], *,
                               mark: str | None = None) -> tuple[bool, list[str | None]]:
        """Whether every list of `journals` held no entry (with `mark`: whether the first list has written
        every entry that set the mark), and the values of `keys` read after that (one round trip on a
        single Redis): a reader whose view must not miss what the journal has yet to write."""
        if mark is not None:
            newest_written, pending = self.get_many(journals[0] + ":written", mark)
            written = mark_written(pending, newest_written)
        else:
            written = not any(self.journal_lengths(journals))
        return written, self.get_many(*keys)

    @abstractmethod
    def journal_drop(self, journal: str, count: int, *, marks: Iterable[str] = ()) -> None:
        """Remove the `count` oldest entries, keep the newest removed one's sequence number as the list's
        `:written`, and delete the `marks` no newer than it."""

    @abstractmethod
    def journal_sequence(self, journal: str) -> int:
        """The sequence number of the newest entry ever appended (0 when none)."""

    @abstractmethod
    def session_rotate(self, key: str, journal: str, *, generation: int, presented_hash: str, next_hash: str,
                       now: float, until: float, entry: str, awake_ttl: int, hold_ttl: int,
                       counter: tuple[str, int, int] | None = None) -> SessionRotation:
        """Swap a held session's refresh-token hash for the next generation's (and extend it to `until`)
        when `held_outcome` says `rotated`, appending `entry` to `journal` in the same step; first, a hit
        counted in `counter` (key, window seconds, hits allowed), as `count_and_get` counts."""

    @abstractmethod
    def session_hold(self, entries: dict[str, dict], ttl: int) -> None:
        """Hold each session (key -> fields) that the store holds nothing of yet (a release wins)."""

    @abstractmethod
    def session_release(self, keys: list[str], ttl: int) -> None:
        """Mark sessions released for `ttl` seconds: the database decides their rotations, and a
        hold that raced the release does not take."""

    @abstractmethod
    def ping(self) -> bool: ...

    @abstractmethod
    def flush(self) -> None:
        """Remove every key of this store's namespace (tests only)."""


class MemoryStore(SharedStore):
    """In-process store: correct for one process only."""

    name = "memory"

    def __init__(self):
        self._data: dict[str, tuple[str, float | None]] = {}
        self._lists: dict[str, deque[str]] = {}
        self._sequences: dict[str, int] = {}
        self._lock = threading.Lock()

    def _live(self, key: str):
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= monotonic():
            del self._data[key]
            return None
        return item

    @staticmethod
    def _expiry(ttl):
        return monotonic() + ttl if ttl else None

    def get(self, key):
        with self._lock:
            item = self._live(key)
            return item[0] if item else None

    def set(self, key, value, ttl=None):
        with self._lock:
            self._data[key] = (str(value), self._expiry(ttl))

    def set_if_absent(self, key, value, ttl):
        with self._lock:
            if self._live(key):
                return False
            self._data[key] = (str(value), self._expiry(ttl))
            return True

    def pop(self, key):
        with self._lock:
            item = self._live(key)
            if item is None:
                return None
            del self._data[key]
            return item[0]

    def delete(self, *keys):
        with self._lock:
            return sum(1 for key in keys if self._live(key) and self._data.pop(key, None))

    def incr(self, key, ttl):
        with self._lock:
            item = self._live(key)
            if item is None:
                self._data[key] = ("1", self._expiry(ttl))
                return 1
            value = int(item[0]) + 1
            self._data[key] = (str(value), item[1])
            return value

    def ttl(self, key):
        with self._lock:
            item = self._live(key)
            if item is None or item[1] is None:
                return None
            return max(0, int(round(item[1] - monotonic())))

    def get_many(self, *keys):
        with self._lock:
            return [item[0] if (item := self._live(key)) else None for key in keys]

    def delete_if_equal(self, key, value):
        with self._lock:
            item = self._live(key)
            if item is None or item[0] != value:
                return False
            del self._data[key]
            return True

    def touch(self, key, ttl):
        with self._lock:
            item = self._live(key)
            if item is None:
                return False
            self._data[key] = (item[0], self._expiry(ttl))
            return True

    def claim_use(self, claim):
        with self._lock:
            if self._live(claim.entry) is None or (named := self._live(claim.basic)) is None:
                return NOT_CLAIMED
            use = "full" if named[0] in claim.types else "basic"
            key = claim_key(claim.entry if use == "full" else claim.basic)
            if self._live(key) is not None:
                return Claimed(use, False)
            self._data[key] = (claim.token, self._expiry(claim.ttl))
            return Claimed(use, True)  # its pushes are never deferred: the entry's own wakes the drainer

    def journal_push(self, journal, entry, *, consume=None, entry_if_absent=None, awake_ttl=30, marks=(),
                     claimed=False):
        with self._lock:
            consumed = False
            if consume is not None:
                if claimed:
                    consumed = True
                    self._data.pop(claim_key(consume), None)
                elif self._live(claim_key(consume)) is None:
                    consumed = self._live(consume) is not None
                if consumed:
                    self._data.pop(consume, None)
                entry = entry if consumed else entry_if_absent
            sequence, wake = self._append(journal, entry, awake_ttl)
            for mark in marks:
                self._data[mark] = (str(sequence), self._expiry(MARK_SECONDS))
            return JournalPush(sequence, consumed, wake)

    def _append(self, journal, entry, awake_ttl):
        sequence = self._sequences.get(journal, 0) + 1
        self._sequences[journal] = sequence
        self._lists.setdefault(journal, deque()).append(f"{sequence} {entry}")
        wake = self._live(f"{journal}:awake") is None
        if wake:
            self._data[f"{journal}:awake"] = ("1", self._expiry(awake_ttl))
        return sequence, wake

    def session_rotate(self, key, journal, *, generation, presented_hash, next_hash, now, until, entry,
                       awake_ttl, hold_ttl, counter=None):
        if counter is not None:
            count, reset_in, _ = self.count_and_get(counter[0], counter[1], [])
            if count > counter[2]:
                return SessionRotation("limited", {}, reset_in=reset_in)
        with self._lock:
            item = self._live(key)
            held = json.loads(item[0]) if item else {}
            outcome = held_outcome(held, generation, presented_hash, now)
            if outcome == "stale":
                del self._data[key]
            if outcome != "rotated":
                return SessionRotation("reused" if outcome == "reused" else "database", held)
            held.update(gen=generation + 1, hash=next_hash, exp=until)
            self._data[key] = (json.dumps(held), self._expiry(hold_ttl))
            return SessionRotation("rotated", held, self._append(journal, entry, awake_ttl)[1])

    def session_hold(self, entries, ttl):
        with self._lock:
            for key, fields in entries.items():
                if not self._live(key):
                    self._data[key] = (json.dumps(fields), self._expiry(ttl))

    def session_release(self, keys, ttl):
        with self._lock:
            for key in keys:
                item = self._live(key)
                held = {**(json.loads(item[0]) if item else {}), "released": 1}
                self._data[key] = (json.dumps(held), self._expiry(ttl))

    def journal_head(self, journal, count):
        with self._lock:
            items = self._lists.get(journal, ())
            return [parse_journal_entry(item) for item in list(items)[:count]]

    def journal_lengths(self, journals):
        with self._lock:
            return [len(self._lists.get(journal, ())) for journal in journals]

    def journal_drop(self, journal, count, *, marks=()):
        with self._lock:
            items = self._lists.get(journal)
            removed = [items.popleft() for _ in range(min(count, len(items or ())))]
            if not removed:
                return
            written = parse_journal_entry(removed[-1])[0]
            self._data[f"{journal}:written"] = (str(written), None)
            for mark in marks:
                item = self._live(mark)
                if item is not None and int(item[0]) <= written:
                    del self._data[mark]

    def journal_sequence(self, journal):
        with self._lock:
            return self._sequences.get(journal, 0)

    def ping(self):
        return True

    def flush(self):
        with self._lock:
            self._data.clear()
            self._lists.clear()
            self._sequences.clear()


def build_store(redis_url: str | None, config=None) -> SharedStore:
    """Redis when configured (one server, a Sentinel's master or a cluster: `app.redis_topology`),
    otherwise the in-process store, with a warning when the app is built to serve (a `flask` command
    is one process, where the in-process store is correct)."""
    if redis_url:
        from .redis_topology import queue_url, redis_store
        queue_url({"REDIS_URL": redis_url, **(config or {})})  # a cluster without RQ_REDIS_URL fails here, at start
        return redis_store(redis_url, config or {})
    if click.get_current_context(silent=True) is None:
        logger.warning("REDIS_URL is not set: using the in-process store, which serves one process only")
    return MemoryStore()
