"""Which Redis the shared store and the job queue use: one server, a master found through Sentinel,
or a Redis Cluster, whose multi-key scripts keep their keys in one hash slot.

Settings: `REDIS_URL` (one server; `redis+cluster://host:port` or `REDIS_CLUSTER=1` for a cluster,
any node as the entry point), `REDIS_SENTINELS` (`host:port,host:port`) with `REDIS_SENTINEL_MASTER`
(the master's name; `REDIS_URL` then gives only password, database and TLS), and `RQ_REDIS_URL` for
the job queue (RQ needs one plain server: required with a cluster, default `REDIS_URL`).
"""
from __future__ import annotations

import functools
import logging
import threading
import zlib
from urllib.parse import urlsplit, urlunsplit

import redis
from flask import current_app
from redis.cluster import RedisCluster, key_slot

from .redis_store import CLAIM, CLIENT_OPTIONS, COUNT_AND_GET, UNREACHABLE, NothingHeld, RedisStore
from .store import HELD_PREFIX, Claimed, SessionRotation, SharedStore, StoreUnavailable, claim_key

logger = logging.getLogger("app.store")
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# Keys one script changes together must share a hash slot on a cluster. A one-time code is deleted
# in the step that journals its answer (`journal_push(consume=...)`), so codes live in the journal's
# slot (`{journal}`), where every entry but a rotation goes: the readers of verifications (inbox,
# access log) check that one list, which rotations never reach. A held session's rotation is
# journalled in its step, and the held sessions are many (a day of daily users) and refreshed often,
# so the rotations are spread over the JOURNAL_SHARDS - 1 other lists, each in its own slot
# (`{journal.7}journal.7:seq`), and a held session lives in the slot of the list its id hashes to.
# The lists keep the names they had when the journal's own list took rotations too, so that a
# drainer after the upgrade writes what they held. Everything else is untagged.
JOURNAL_SHARDS = 16
CODES = "wallet:code:"  # beside the journal's own list
SLOTS = 16384


def journal_shard(key: str) -> int | None:
    """The journal list a held session's key lives beside (by its session id; never the journal's own, 0),
    or None."""
    if not key.startswith(HELD_PREFIX):
        return None
    return 1 + zlib.crc32(key[len(HELD_PREFIX):].encode()) % (JOURNAL_SHARDS - 1)


def shard_list(journal: str, shard: int) -> str:
    return _spread_names(journal)[shard]


@functools.cache
def _spread_names(journal: str) -> tuple[str, ...]:
    """JOURNAL_SHARDS list names, `journal` itself and then `journal.<n>`, whose hash slots lie evenly
    spaced around the slot space: a cluster whose slots are split evenly (as `redis-cli --cluster
    create` splits them) gives each master an even share of the lists."""
    first, names, number = key_slot(journal.encode()), [journal], 0
    for shard in range(1, JOURNAL_SHARDS):
        target = (first + shard * SLOTS // JOURNAL_SHARDS) % SLOTS
        while True:
            number += 1
            distance = abs(key_slot(f"{journal}.{number}".encode()) - target)
            if min(distance, SLOTS - distance) <= SLOTS // JOURNAL_SHARDS // 64:
                break
        names.append(f"{journal}.{number}")
    return tuple(names)


def slot_tagged(key: str) -> str:
    """`key` with the hash tag of its group (`{journal}wallet:code:…`, `{journal.7}journal.7:seq`,
    `{journal.7}auth:held:…`), or unchanged."""
    if "{" in key:
        return key
    shard = journal_shard(key)
    if shard is not None:
        return "{" + shard_list("journal", shard) + "}" + key
    if key.startswith(CODES):
        return "{journal}" + key
    head = key.partition(":")[0]
    if head == "journal" or (head.startswith("journal.") and head[len("journal."):].isdigit()):
        return "{" + head + "}" + key
    return key


def is_cluster(url: str, config) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES or str(config.get("REDIS_CLUSTER") or "0").lower() in (
        "1", "true", "yes")


def _plain(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)))


def _sentinel_master(url: str, config, **options) -> redis.Redis:
    from redis.sentinel import Sentinel
    hosts = [(host.strip(), int(port)) for host, _, port in
             (item.strip().rpartition(":") for item in str(config["REDIS_SENTINELS"]).split(",") if item.strip())]
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0)
    sentinel = Sentinel(hosts, socket_timeout=options.get("socket_timeout", 1.0),
                        sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 1.0})
    return sentinel.master_for(config.get("REDIS_SENTINEL_MASTER") or "mymaster", db=database,
                               username=parts.username or None, password=parts.password or None,
                               ssl=parts.scheme == "rediss", **options)


def redis_store(url: str, config, prefix: str = "ias:") -> RedisStore:
    """The shared store on the Redis that `url` and `config` name."""
    if config.get("REDIS_SENTINELS"):
        return RedisStore(url, prefix, client=_sentinel_master(url, config, **CLIENT_OPTIONS))
    if is_cluster(url, config):
        return ClusterStore(url, prefix)
    return RedisStore(url, prefix)


def queue_url(config) -> str | None:
    """The plain Redis the job queue uses (RQ does not support Redis Cluster)."""
    url = config.get("RQ_REDIS_URL") or config.get("REDIS_URL")
    if url and not config.get("RQ_REDIS_URL") and is_cluster(url, config):
        raise RuntimeError("RQ 不支持 Redis Cluster：请设置 RQ_REDIS_URL 指向一个普通 Redis")
    return url


def queue_connection() -> redis.Redis:
    """The job queue's connection (bytes, as RQ expects), one pool per app."""
    app = current_app._get_current_object()
    connection = app.extensions.get("rq_connection")
    if connection is None:
        if app.config.get("REDIS_SENTINELS") and not app.config.get("RQ_REDIS_URL"):
            connection = _sentinel_master(app.config["REDIS_URL"], app.config)
        else:
            connection = redis.Redis.from_url(queue_url(app.config))
        connection = app.extensions.setdefault("rq_connection", connection)
    return connection


class ClusterStore(RedisStore):
    """The store on a Redis Cluster: co-located keys carry hash tags, reads of several keys are
    split by slot (non-atomic, as a plain MGET's reads need not be), and a rate-limit count with
    reads elsewhere is one pipeline over the nodes involved. The client learns the cluster's slots
    on first use (a cluster that is down then is a 503, as a lost server is, not a failed start)."""

    name = "redis-cluster"
    _held = NothingHeld()  # the cluster client routes every command; nothing is sent without waiting
    journal_push_later = SharedStore.journal_push_later

    def __init__(self, url: str, prefix: str = "ias:"):
        self.url, self.prefix = url, prefix
        self._client, self._connecting = None, threading.Lock()

    @property
    def client(self) -> RedisCluster:
        if self._client is None:
            with self._connecting:
                if self._client is None:
                    try:
                        client = RedisCluster.from_url(_plain(self.url), **CLIENT_OPTIONS)
                    except UNREACHABLE as exc:
                        logger.warning("redis cluster unreachable: %s", exc.__class__.__name__)
                        raise StoreUnavailable() from exc
                    for name, source in self.SCRIPTS.items():
                        self.__dict__[name] = client.register_script(source)
                    self._client = client
        return self._client

    def __getattr__(self, name):  # the scripts, registered once the cluster answers
        if name in ClusterStore.SCRIPTS:
            self.client  # noqa: B018 - connects and registers them
            return self.__dict__[name]
        raise AttributeError(name)

    def ping(self):
        try:
            return super().ping()
        except StoreUnavailable:
            return False

    def _k(self, key: str) -> str:
        return self.prefix + slot_tagged(key)

    def _read(self, *names):  # keys in several slots: one MGET per slot
        return self._call(self.client.mget_nonatomic, list(names))

    def _script(self, script, keys, args):  # the cluster client routes each script to its slot's master
        return self._call(script, keys=keys, args=args)

    def journal_lists(self, journal):
        return list(_spread_names(journal))

    def journal_beside(self, journal, key):
        shard = journal_shard(key) if key is not None else None
        return journal if shard is None else shard_list(journal, shard)

    def get_many_after_journal(self, journals, keys, *, mark=None):  # across nodes, a pipeline keeps no order
        return SharedStore.get_many_after_journal(self, journals, keys, mark=mark)

    def count_and_get(self, counter, window, keys):
        names = [self._k(counter), *map(self._k, keys)]
        if len({key_slot(name.encode()) for name in names}) == 1:
            return super().count_and_get(counter, window, keys)
        (count, ttl, _), *values = self._call(self._counting(names, window).execute)
        return int(count), int(ttl), values

    def _counting(self, names: list[str], window: int):
        """A pipeline that counts a hit in `names[0]` (COUNT_AND_GET, in its slot) and reads the others."""
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command("EVAL", COUNT_AND_GET, 1, names[0], window)
        for name in names[1:]:
            pipe.get(name)
        return pipe

    def count_get_and_claim(self, counter, window, allowed, keys, guards, claim):
        """One pipeline over the nodes involved: the count, the reads and the claim in the code's slot, which
        cannot see the others; a claim the count or the reads refuse is given back at once."""
        pipe = self._counting([self._k(counter), *map(self._k, keys)], window)
        claim_names = [self._k(key) for key in claim.keys]
        pipe.execute_command("EVAL", CLAIM, len(claim_names), *claim_names, *self._claim_args(claim))
        (count, ttl, _), *values, claimed = self._call(pipe.execute)
        claimed = self._claimed(claimed)
        if claimed.held and (int(count) > allowed or any(values[:guards])):
            use = claim.entry if claimed.use == "full" else claim.basic
            self.delete_if_equal(claim_key(use), claim.token)
            claimed = Claimed(wake=claimed.wake)  # the awake flag it took still needs its drainer
        return int(count), int(ttl), values, claimed

    def session_rotate(self, key, journal, *, counter=None, **rotation):
        if counter is not None and key_slot(self._k(counter[0]).encode()) != key_slot(self._k(key).encode()):
            count, reset_in, _ = self.count_and_get(counter[0], counter[1], [])  # the counter lives elsewhere
            if count > counter[2]:
                return SessionRotation("limited", {}, reset_in=reset_in)
            counter = None
        return super().session_rotate(key, journal, counter=counter, **rotation)

    def session_hold(self, entries, ttl):
        for keys in self._by_slot(entries):
            super().session_hold({key: entries[key] for key in keys}, ttl)

    def session_release(self, keys, ttl):
        for group in self._by_slot(keys):
            super().session_release(group, ttl)

    def _by_slot(self, keys) -> list[list[str]]:
        """`keys` grouped by hash slot, for scripts that change several at once."""
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(key_slot(self._k(key).encode()), []).append(key)
        return list(groups.values())

    def flush(self):
        batch = []
        for key in self._call(self.client.scan_iter, match=self.prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                self._call(self.client.delete, *batch)
                batch = []
        if batch:
            self._call(self.client.delete, *batch)
