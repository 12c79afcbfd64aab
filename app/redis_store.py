"""The shared store on Redis: the Lua scripts that change several keys at once, and the client wrapper
whose connection errors become StoreUnavailable. Imported only when `REDIS_URL` is set."""
from __future__ import annotations

import logging

import redis

from .redis_connection import HeldConnection
from .store import (HELD_FIELDS, HELD_PREFIX, MARK_SECONDS, Claimed, JournalPush, SessionRotation, SharedStore,
                    StoreUnavailable, UseClaim, claim_key, mark_written, parse_journal_entry)

logger = logging.getLogger("app.store")


DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _counted(counter: str, window: str, allowed: str | None = None) -> str:
    """Lua that counts a hit in the fixed window whose key and seconds are `counter` and `window`
    (the TTL starts with the first hit), leaving `count` and `ttl`; given the hits `allowed`, `ttl` is
    read only for a hit past them (the only one that needs it) and is the window's seconds otherwise."""
    if allowed is None:
        return f"""
local count = redis.call('INCR', {counter})
local ttl = redis.call('TTL', {counter})
if ttl < 0 then
  redis.call('EXPIRE', {counter}, {window})
  ttl = tonumber({window})
end"""
    return f"""
local count, ttl = redis.call('INCR', {counter}), tonumber({window})
if count == 1 then
  redis.call('EXPIRE', {counter}, {window})
elseif count > tonumber({allowed}) then
  ttl = redis.call('TTL', {counter})
  if ttl < 0 then
    redis.call('EXPIRE', {counter}, {window})
    ttl = tonumber({window})
  end
end"""


# KEYS: counter, keys to read; ARGV: window seconds
COUNT_AND_GET = _counted("KEYS[1]", "ARGV[1]") + """
local values = {}
if #KEYS > 1 then values = redis.call('MGET', unpack(KEYS, 2)) end
return {count, ttl, values}
"""


# A function that claims a use of a code (`store.UseClaim`): its keys from KEYS[k] (entry, basic use, their claims,
# awake flag), its arguments from ARGV[a] (token, claim TTL, awake TTL, the caller's types...), whether the entry
# is there and the type the basic use names. Returns the use chosen ('' when none), 1 when claimed, 1 when the
# awake flag was claimed with it.
CLAIM_USE = """
local function claim_use(k, a, present, named)
  if not present or not named then return {'', 0, 0} end
  local full = false
  for i = a + 3, #ARGV do if ARGV[i] == named then full = true end end
  local use = full and 'full' or 'basic'
  if not redis.call('SET', KEYS[full and k + 2 or k + 3], ARGV[a], 'NX', 'EX', tonumber(ARGV[a + 1])) then
    return {use, 0, 0}
  end
  return {use, 1, redis.call('SET', KEYS[k + 4], '1', 'NX', 'EX', tonumber(ARGV[a + 2])) and 1 or 0}
end
"""

# KEYS: the claim's (CLAIM_USE); ARGV: the claim's
CLAIM = CLAIM_USE + "return claim_use(1, 1, redis.call('EXISTS', KEYS[1]) == 1, redis.call('GET', KEYS[2]))"

# COUNT_AND_GET, then the claim unless the hit passed the limit or one of the first keys read holds a value.
# KEYS: counter, keys to read, the claim's; ARGV: window seconds, how many keys to read, hits allowed, how many
# of them must be absent, the claim's
COUNT_GET_CLAIM = CLAIM_USE + _counted("KEYS[1]", "ARGV[1]", "ARGV[3]") + """
local n, claimed = tonumber(ARGV[2]), {'', 0, 0}
local values = redis.call('MGET', unpack(KEYS, 2, n + 3))  -- and the claim's entry and basic use
local named, present = table.remove(values), table.remove(values)
local clear = count <= tonumber(ARGV[3])
for i = 1, tonumber(ARGV[4]) do if values[i] then clear = false end end
if clear then claimed = claim_use(n + 2, 5, present, named) end
return {count, ttl, values, unpack(claimed)}
"""


def _journalled(journal: str, sequence: str, awake: str, entry: str, awake_ttl: str) -> str:
    """Lua that appends `entry` to the journal list under its next sequence number and claims the
    journal's awake flag when no drainer holds it, leaving `sequence` and `wake` (1: wake one)."""
    return f"""
local sequence = redis.call('INCR', {sequence})
redis.call('RPUSH', {journal}, sequence .. ' ' .. {entry})
local wake = redis.call('SET', {awake}, '1', 'NX', 'EX', tonumber({awake_ttl})) and 1 or 0"""


# KEYS: list, sequence, awake flag[, key to consume, its claim], marks; ARGV: entry, entry if the key was absent
# (or claimed by another), awake TTL, 1 when a key to consume is given (2: by the holder of its claim, which
# consumes it and frees the claim whatever came between), the marks' TTL. Each mark is set to the entry's sequence
# number.
JOURNAL_PUSH = """
local entry, consumed, marks = ARGV[1], 0, 4
if ARGV[4] == '2' then
  redis.call('DEL', KEYS[4], KEYS[5])
  consumed, marks = 1, 6
elseif ARGV[4] == '1' then
  if redis.call('EXISTS', KEYS[5]) == 0 then consumed = redis.call('DEL', KEYS[4]) end
  if consumed == 0 then entry = ARGV[2] end
  marks = 6
end""" + _journalled("KEYS[1]", "KEYS[2]", "KEYS[3]", "entry", "ARGV[3]") + """
for i = marks, #KEYS do redis.call('SET', KEYS[i], sequence, 'EX', tonumber(ARGV[5])) end
return {sequence, consumed, wake}
"""

# KEYS: list, written mark, marks of the removed entries; ARGV: how many of the oldest entries to remove. The
# written mark keeps the sequence number of the newest entry written, so that a reader can tell an empty
# journal from the sequence and the mark in one MGET; a mark no newer than it is deleted.
JOURNAL_DROP = """
local last = redis.call('LINDEX', KEYS[1], tonumber(ARGV[1]) - 1)
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
if last then
  local written = string.match(last, '^%d+')
  redis.call('SET', KEYS[2], written)
  for i = 3, #KEYS do
    local pending = redis.call('GET', KEYS[i])
    if pending and tonumber(pending) <= tonumber(written) then redis.call('DEL', KEYS[i]) end
  end
end
return 0
"""

# a hit counted (COUNT_AND_GET's count), store.held_outcome, then the rotation and its journal entry.
# KEYS: session, journal list, sequence, awake flag[, counter]; ARGV: generation, presented hash, next
# hash, now, until, entry, awake TTL, hold TTL[, window seconds, hits allowed]. Reply: status, a number
# (the window's reset when limited, the awake flag's claim when rotated, else 0), the HELD_FIELDS
# (which begin with gen, hash and exp and end with released).
SESSION_ROTATE = """
if KEYS[5] then""" + _counted("KEYS[5]", "ARGV[9]", "ARGV[10]") + """
  if count > tonumber(ARGV[10]) then return {'limited', ttl} end
end
local held = redis.call('HMGET', KEYS[1], """ + ", ".join(f"'{name}'" for name in HELD_FIELDS) + f""")
local released = held[{len(HELD_FIELDS)}]""" + """
if not held[1] then return {'database', 0} end
local known, generation = tonumber(held[1]), tonumber(ARGV[1])
if generation < known then return {'reused', 0, unpack(held)} end
if generation > known then
  if not released then redis.call('DEL', KEYS[1]) end
  return {'database', 0}
end
if held[2] ~= ARGV[2] or released or tonumber(held[3]) <= tonumber(ARGV[4]) then return {'database', 0} end
redis.call('HSET', KEYS[1], 'gen', generation + 1, 'hash', ARGV[3], 'exp', ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))""" + _journalled("KEYS[2]", "KEYS[3]", "KEYS[4]", "ARGV[6]", "ARGV[7]") + """
held[1], held[2], held[3] = generation + 1, ARGV[3], ARGV[5]
return {'rotated', wake, unpack(held)}
"""

# KEYS: sessions; ARGV: TTL, then for each key its field count and fields (name, value, ...)
SESSION_HOLD = """
local at = 2
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, unpack(ARGV, at + 1, at + count))
    redis.call('EXPIRE', key, tonumber(ARGV[1]))
  end
  at = at + count + 1
end
return 0
"""

# KEYS: sessions; ARGV: TTL
SESSION_RELEASE = """
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, 'released', '1')
  redis.call('EXPIRE', key, tonumber(ARGV[1]))
end
return 0
"""

ROTATIONS = ".rotations"  # on one server, the held sessions' rotations go to `<journal>.rotations`
CLIENT_OPTIONS = dict(socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)
# a server, a Sentinel's master or a cluster's slot owner that cannot answer now
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError,
               redis.exceptions.RedisClusterException, OSError)


class NothingHeld:
    """A store whose scripts go through a client that holds no connection of ours (a cluster's): nothing pending."""

    @staticmethod
    def pending() -> bool:
        return False


class RedisStore(SharedStore):
    """Redis-backed store shared by every worker; connection errors become StoreUnavailable."""

    name = "redis"
    SCRIPTS = {"_delete_if_equal": DELETE_IF_EQUAL, "_journal_push": JOURNAL_PUSH, "_journal_drop": JOURNAL_DROP,
               "_count_and_get": COUNT_AND_GET, "_count_get_claim": COUNT_GET_CLAIM, "_claim": CLAIM, "_session_rotate": SESSION_ROTATE, "_session_hold": SESSION_HOLD,
               "_session_release": SESSION_RELEASE}  # attribute -> Lua, registered with the client

    def __init__(self, url: str, prefix: str = "ias:", *, client=None):
        self.url = url
        self.prefix = prefix
        self.client = client if client is not None else redis.Redis.from_url(
            url, **CLIENT_OPTIONS, health_check_interval=30)
        for name, source in self.SCRIPTS.items():
            setattr(self, name, self.client.register_script(source))
        self._held = HeldConnection(self.client)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _script(self, script, keys, args):
        """One of `SCRIPTS`, run on this thread's held connection (`redis_connection`)."""
        return self._call(self._held.script, script, keys, args)

    def _read(self, *names):
        """The values of these (prefixed) keys in one MGET on the held connection."""
        return self._call(self._held.command, "MGET", *names)

    def _call(self, fn, *args, **kwargs):
        try:
            if self._held.pending():  # a reply this thread has yet to read: what it sent comes first
                self._held.settle()
            return fn(*args, **kwargs)
        except UNREACHABLE as exc:
            logger.warning("redis unavailable: %s", exc.__class__.__name__)
            raise StoreUnavailable() from exc

    def get(self, key):
        return self._call(self.client.get, self._k(key))

    def set(self, key, value, ttl=None):
        self._call(self.client.set, self._k(key), str(value), ex=ttl or None)

    def set_if_absent(self, key, value, ttl):
        return bool(self._call(self.client.set, self._k(key), str(value), ex=ttl, nx=True))

    def pop(self, key):
        return self._call(self.client.getdel, self._k(key))

    def delete(self, *keys):
        if not keys:
            return 0
        return int(self._call(self.client.delete, *[self._k(k) for k in keys]))

    def incr(self, key, ttl):
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(self._k(key))
        pipe.expire(self._k(key), ttl, nx=True)
        count, _ = self._call(pipe.execute)
        return int(count)

    def ttl(self, key):
        value = self._call(self.client.ttl, self._k(key))
        return None if value is None or value < 0 else int(value)

    def get_many(self, *keys):
        return self._read(*map(self._k, keys))

    def count_and_get(self, counter, window, keys):
        count, ttl, values = self._script(self._count_and_get, [self._k(counter), *map(self._k, keys)], [window])
        return int(count), int(ttl), list(values)

    def count_get_and_claim(self, counter, window, allowed, keys, guards, claim):
        names = [self._k(counter), *map(self._k, keys), *map(self._k, claim.keys)]
        count, ttl, values, *claimed = self._script(self._count_get_claim, names, [
            window, len(keys), allowed, guards, *self._claim_args(claim)])
        return int(count), int(ttl), list(values), self._claimed(claimed)

    def claim_use(self, claim):
        return self._claimed(self._script(self._claim, [self._k(key) for key in claim.keys], self._claim_args(claim)))

    @staticmethod
    def _claim_args(claim: UseClaim) -> list:
        return [claim.token, claim.ttl, claim.awake_ttl, *claim.types]

    @staticmethod
    def _claimed(reply) -> Claimed:
        use, held, wake = reply
        return Claimed(use, bool(held), bool(wake))

    def delete_if_equal(self, key, value):
        return bool(self._script(self._delete_if_equal, [self._k(key)], [value]))

    def touch(self, key, ttl):
        return bool(self._call(self.client.expire, self._k(key), ttl, xx=True))

    def journal_push(self, journal, entry, *, consume=None, entry_if_absent=None, awake_ttl=30, marks=(),
                     claimed=False):
        return self._pushed(self._script(self._journal_push, *self._push(
            journal, entry, consume, entry_if_absent, awake_ttl, marks, claimed)))

    def journal_push_later(self, journal, entry, *, then, consume=None, entry_if_absent=None, awake_ttl=30,
                           marks=(), claimed=False):
        keys, args = self._push(journal, entry, consume, entry_if_absent, awake_ttl, marks, claimed)
        self._call(self._held.send_later, self._journal_push, keys, args, lambda reply: then(self._pushed(reply)))

    def _push(self, journal, entry, consume, entry_if_absent, awake_ttl, marks, claimed) -> tuple[list, list]:
        """JOURNAL_PUSH's keys and arguments."""
        base = self._k(journal)
        keys = [base, base + ":seq", base + ":awake"]
        if consume is not None:
            keys += [self._k(consume), self._k(claim_key(consume))]
        keys += map(self._k, marks)
        mode = 0 if consume is None else 2 if claimed else 1
        return keys, [entry, entry_if_absent or "", awake_ttl, mode, MARK_SECONDS]

    @staticmethod
    def _pushed(reply) -> JournalPush:
        sequence, consumed, wake = reply
        return JournalPush(int(sequence), bool(consumed), bool(wake))

    def session_rotate(self, key, journal, *, generation, presented_hash, next_hash, now, until, entry,
                       awake_ttl, hold_ttl, counter=None):
        base = self._k(journal)
        keys = [self._k(key), base, base + ":seq", base + ":awake"]
        args = [generation, presented_hash, next_hash, repr(now), repr(until), entry, awake_ttl, hold_ttl]
        if counter is not None:
            keys.append(self._k(counter[0]))
            args += [counter[1], counter[2]]
        status, number, *fields = self._script(self._session_rotate, keys, args)
        held = {name: value for name, value in zip(HELD_FIELDS, fields) if value is not None}
        return SessionRotation(status, held, wake=status == "rotated" and bool(number),
                               reset_in=int(number) if status == "limited" else 0)

    def session_hold(self, entries, ttl):
        if not entries:
            return
        args = [ttl]
        for fields in entries.values():
            pairs = [str(item) for pair in fields.items() for item in pair]
            args += [len(pairs), *pairs]
        self._script(self._session_hold, [self._k(key) for key in entries], args)

    def session_release(self, keys, ttl):
        if keys:
            self._script(self._session_release, [self._k(key) for key in keys], [ttl])

    def journal_lists(self, journal):
        return [journal, journal + ROTATIONS]

    def journal_beside(self, journal, key):
        """Rotations go to a list of their own, so that a reader of everything else (the inbox, the access
        log) finds its list empty while refreshes go on."""
        return journal + ROTATIONS if key is not None and key.startswith(HELD_PREFIX) else journal

    def journal_head(self, journal, count):
        return [parse_journal_entry(item) for item in self._call(self.client.lrange, self._k(journal), 0, count - 1)]

    def journal_lengths(self, journals):
        pipe = self.client.pipeline(transaction=False)
        for journal in journals:
            pipe.llen(self._k(journal))
        return [int(length) for length in self._call(pipe.execute)]

    def get_many_after_journal(self, journals, keys, *, mark=None):
        if mark is not None:  # one MGET: the mark's entries are written when it is no newer than the written mark
            written, pending, *values = self._read(self._k(journals[0]) + ":written", self._k(mark),
                                                   *map(self._k, keys))
            return mark_written(pending, written), values
        if len(journals) == 1:  # one MGET: the journal is empty when its newest entry is the newest written
            base = self._k(journals[0])
            newest, written, *values = self._read(base + ":seq", base + ":written", *map(self._k, keys))
            if written is not None or newest is None:  # else emptied before the mark existed: ask the length
                return newest == written, values
        pipe = self.client.pipeline(transaction=False)  # one connection: Redis runs them in this order
        for journal in journals:
            pipe.llen(self._k(journal))
        pipe.mget([self._k(key) for key in keys])
        *lengths, values = self._call(pipe.execute)
        return not any(lengths), values

    def journal_drop(self, journal, count, *, marks=()):
        base = self._k(journal)
        self._script(self._journal_drop, [base, base + ":written", *map(self._k, marks)], [count])

    def journal_sequence(self, journal):
        return int(self._call(self.client.get, self._k(journal) + ":seq") or 0)

    def ping(self):
        try:
            return bool(self.client.ping())
        except UNREACHABLE:
            return False

    def flush(self):
        cursor = 0
        while True:
            cursor, keys = self._call(self.client.scan, cursor, match=self.prefix + "*", count=500)
            if keys:
                self._call(self.client.delete, *keys)
            if cursor == 0:
                break
