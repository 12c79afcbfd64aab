"""Redis Cluster and Sentinel: the store's multi-key scripts keep their keys in one hash slot, reads
of keys spread over the cluster still answer, and the store finds its master through a real Sentinel.

The cluster is the real three-master one scripts/services.sh starts (TEST_REDIS_CLUSTER_URL); the
Sentinel is started here, watching the suite's Redis. `make test` also runs every test marked
`redis` with the whole app on that cluster (scripts/test.sh, third pass).
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
import subprocess
import tempfile

import pytest
import redis
from redis.cluster import RedisCluster, key_slot

from app.identity import held_sessions
from app.journal import DEAD_LETTERS, JOURNAL, LOCK
from app.redis_topology import JOURNAL_SHARDS, ClusterStore, queue_url, redis_store, slot_tagged
from app.redis_store import JOURNAL_PUSH, RedisStore
from app.wallet.presentations import basic_key, code_key
from tests.support.procs import _stop_process, free_port, redis_server_bin, wait_for

CLUSTER_URL = os.environ.get("TEST_REDIS_CLUSTER_URL")
needs_cluster = pytest.mark.skipif(not CLUSTER_URL, reason="needs the Redis Cluster of scripts/services.sh "
                                                          "(TEST_REDIS_CLUSTER_URL)")
CODE = "Q" * 32


def _slot(name: str) -> int:
    return key_slot(name.encode())


@pytest.fixture
def cluster_store():
    store = redis_store(CLUSTER_URL, {}, prefix=f"sc{os.getpid()}:")
    store.flush()
    yield store
    store.flush()
    store.client.close()


def _nodes(store) -> int:
    return len(store.client.get_primaries())


@needs_cluster
def test_the_cluster_url_gives_a_cluster_store_on_three_masters(cluster_store):
    assert isinstance(cluster_store, ClusterStore) and isinstance(cluster_store.client, RedisCluster)
    assert _nodes(cluster_store) == 3
    assert cluster_store.client.cluster_info()["cluster_state"] == "ok"


def _beside(key: str) -> str:
    return ClusterStore.journal_beside(None, JOURNAL, key)


def test_keys_changed_together_share_a_hash_tag_and_others_are_left_alone():
    journals = ClusterStore.journal_lists(None, JOURNAL)
    assert JOURNAL in journals and len(journals) == len(set(journals)) == JOURNAL_SHARDS
    slots = sorted(_slot("ias:" + slot_tagged(name)) for name in journals)
    gaps = [after - before for before, after in zip(slots, [*slots[1:], slots[0] + 16384])]
    assert all(abs(gap - 16384 // JOURNAL_SHARDS) <= 40 for gap in gaps), gaps  # a slot each, evenly spaced
    for name in journals:
        group = [name, f"{name}:seq", f"{name}:awake", f"{name}:lock"]
        assert len({_slot("ias:" + slot_tagged(key)) for key in group}) == 1
    # a code is consumed in the step that journals its answer: in the journal's own slot, as is all but rotations
    names = [JOURNAL, f"{JOURNAL}:seq", DEAD_LETTERS, f"{DEAD_LETTERS}:seq", LOCK, code_key(CODE), basic_key(CODE)]
    assert len({_slot("ias:" + slot_tagged(name)) for name in names}) == 1
    assert slot_tagged(JOURNAL) == "{journal}journal" and _beside(code_key(CODE)) == _beside(None) == JOURNAL
    placed = set()
    for n in range(200):  # a held session sits beside the list its id picks
        key = held_sessions.key(f"{n:032x}")
        assert _slot("ias:" + slot_tagged(key)) == _slot("ias:" + slot_tagged(_beside(key) + ":seq"))
        placed.add(_beside(key))
    assert placed == set(journals) - {JOURNAL}  # and the ids spread over every list but the journal's own
    assert slot_tagged("ratelimit:verify:1.2.3.4") == "ratelimit:verify:1.2.3.4"
    assert slot_tagged("{mine}key") == "{mine}key"
    assert slot_tagged("journalist") == "journalist" and slot_tagged("journal.x:seq") == "journal.x:seq"


@needs_cluster
def test_the_rotation_lists_and_the_held_sessions_beside_them_spread_over_every_master(cluster_store):
    owners = Counter(cluster_store.client.get_node_from_key(cluster_store._k(name)).name
                     for name in cluster_store.journal_lists(JOURNAL))
    assert len(owners) == _nodes(cluster_store) == 3
    assert sorted(owners.values()) == [5, 5, 6]  # the slots split evenly: 16 lists, 5 or 6 a master
    rotations = Counter(cluster_store.client.get_node_from_key(cluster_store._k(name)).name
                        for name in cluster_store.journal_lists(JOURNAL)[1:])
    keys = [held_sessions.key(f"{n:032x}") for n in range(3000)]
    held = Counter(cluster_store.client.get_node_from_key(cluster_store._k(key)).name for key in keys)
    assert len(held) == 3 and all(abs(held[name] / 3000 - rotations[name] / 15) < 0.04 for name in held), held


@needs_cluster
def test_consuming_a_code_and_journalling_the_answer_is_one_script_on_the_cluster(cluster_store):
    journal = cluster_store.journal_beside(JOURNAL, code_key(CODE))
    cluster_store.set(code_key(CODE), "sealed", ttl=60)
    first = cluster_store.journal_push(journal, "valid", consume=code_key(CODE), entry_if_absent="used")
    again = cluster_store.journal_push(journal, "valid", consume=code_key(CODE), entry_if_absent="used")
    assert (first.consumed, again.consumed) == (True, False) and (first.wake, again.wake) == (True, False)
    assert cluster_store.journal_head(JOURNAL, 10) == [(1, "valid"), (2, "used")]
    assert cluster_store.get(code_key(CODE)) is None
    # the same script with the keys as they were named before hash tags: the cluster refuses it
    prefix = cluster_store.prefix
    untagged = [prefix + JOURNAL, prefix + JOURNAL + ":seq", prefix + JOURNAL + ":awake", prefix + code_key(CODE)]
    assert len({_slot(name) for name in untagged}) > 1
    node = cluster_store.client.get_node_from_key(untagged[0]).redis_connection  # past the client's own check
    with pytest.raises(redis.ResponseError, match="don.t hash to the same slot"):  # CROSSSLOT
        node.eval(JOURNAL_PUSH, len(untagged), *untagged, "valid", "used", 30)


@needs_cluster
def test_held_sessions_in_different_slots_are_held_released_and_rotated_beside_their_lists(cluster_store):
    sessions = [f"{n:032x}" for n in range(12)]
    keys = [held_sessions.key(session) for session in sessions]
    assert len({_slot(cluster_store._k(key)) for key in keys}) > 3  # one call could not hold them all
    fields = {"gen": 0, "hash": "h0", "exp": "9999999999.0", "sub": "p_x", "ch": "app", "ver": 0, "staff": ""}
    cluster_store.session_hold({key: fields for key in keys}, 600)
    for key in keys[:6]:
        done = cluster_store.session_rotate(key, cluster_store.journal_beside(JOURNAL, key), generation=0,
                                            presented_hash="h0", next_hash="h1", now=1.0, until=2.0,
                                            entry=key, awake_ttl=30, hold_ttl=600)
        assert done.status == "rotated" and done.held["gen"] == 1
        assert cluster_store.journal_head(cluster_store.journal_beside(JOURNAL, key), 10)[-1][1] == key
    cluster_store.session_release(keys, 600)
    for key in keys:
        assert cluster_store.session_rotate(key, cluster_store.journal_beside(JOURNAL, key), generation=1,
                                            presented_hash="h1", next_hash="h2", now=1.0, until=2.0,
                                            entry="{}", awake_ttl=30, hold_ttl=600).status == "database"
    lengths = cluster_store.journal_lengths(cluster_store.journal_lists(JOURNAL))
    assert sum(lengths) == 6 and sum(1 for length in lengths if length) > 1  # in several lists, read in one call


@needs_cluster
def test_a_rate_limit_hit_reads_keys_on_other_masters_in_one_call(cluster_store):
    keys = [f"spread:{n}" for n in range(30)]
    owners = {cluster_store.client.get_node_from_key(cluster_store.prefix + key).name for key in keys}
    assert len(owners) == 3  # the keys read really live on every master
    for n, key in enumerate(keys[:20]):
        cluster_store.set(key, str(n))
    count, reset_in, values = cluster_store.count_and_get("ratelimit:x", 60, keys)
    assert (count, reset_in) == (1, 60) and values == [str(n) for n in range(20)] + [None] * 10
    count, reset_in, _ = cluster_store.count_and_get("ratelimit:x", 5, keys[:1])
    assert count == 2 and 55 <= reset_in <= 60 and 55 <= cluster_store.ttl("ratelimit:x") <= 60
    assert cluster_store.get_many(*keys[18:22]) == ["18", "19", None, None]
    assert cluster_store.delete(*keys) == 20
    assert cluster_store.incr("counter", 60) == 1 and cluster_store.incr("counter", 5) == 2
    assert cluster_store.ttl("counter") > 5


@needs_cluster
def test_flush_empties_the_namespace_on_every_master_and_nothing_else(cluster_store):
    other = redis_store(CLUSTER_URL, {}, prefix=f"other{os.getpid()}:")
    try:
        other.set("kept", "1")
        for n in range(30):
            cluster_store.set(f"k{n}", "x")
        cluster_store.flush()
        assert cluster_store.get_many(*[f"k{n}" for n in range(30)]) == [None] * 30
        assert other.get("kept") == "1"
    finally:
        other.flush()
        other.client.close()


def test_the_job_queue_needs_a_plain_redis_when_the_store_is_a_cluster():
    with pytest.raises(RuntimeError, match="RQ_REDIS_URL"):
        queue_url({"REDIS_URL": "redis+cluster://127.0.0.1:7000/0"})
    with pytest.raises(RuntimeError, match="RQ_REDIS_URL"):
        queue_url({"REDIS_URL": "redis://127.0.0.1:7000/0", "REDIS_CLUSTER": "1"})
    assert queue_url({"REDIS_URL": "redis+cluster://c:7000/0", "RQ_REDIS_URL": "redis://q:6379/1"}) == \
        "redis://q:6379/1"
    assert queue_url({"REDIS_URL": "redis://r:6379/0"}) == "redis://r:6379/0"


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_PORT") or not redis_server_bin(),
                    reason="needs the suite's plain Redis (TEST_REDIS_PORT) and redis-server for a Sentinel")
def test_the_store_finds_its_master_through_a_sentinel():
    directory = tempfile.mkdtemp(prefix="ias-sentinel-")
    port = free_port()
    config = os.path.join(directory, "sentinel.conf")
    with open(config, "w") as handle:
        handle.write(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                     f"sentinel monitor iasmaster 127.0.0.1 {os.environ['TEST_REDIS_PORT']} 1\n")
    sentinel = subprocess.Popen([redis_server_bin(), config, "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        probe = redis.Redis(port=port, socket_timeout=0.5)
        assert wait_for(lambda: probe.sentinel_master("iasmaster")["port"] == int(os.environ["TEST_REDIS_PORT"]),
                        10), "the sentinel never saw the master"
        store = redis_store("redis://unused-host/3", {"REDIS_SENTINELS": f"127.0.0.1:{port}",
                                                       "REDIS_SENTINEL_MASTER": "iasmaster"},
                            prefix=f"sentinel{os.getpid()}:")
        assert type(store) is RedisStore
        store.set("found", "yes", ttl=30)
        direct = redis.Redis(port=int(os.environ["TEST_REDIS_PORT"]), db=3, decode_responses=True)
        assert direct.get(f"sentinel{os.getpid()}:found") == "yes"  # on the master, in database 3
        store.flush()
        assert direct.get(f"sentinel{os.getpid()}:found") is None
        direct.close()
        probe.close()
    finally:
        _stop_process(sentinel)
        shutil.rmtree(directory, ignore_errors=True)


def test_an_app_on_a_cluster_needs_a_plain_redis_for_jobs_and_starts_while_the_cluster_is_down(app_factory):
    with pytest.raises(RuntimeError, match="RQ_REDIS_URL"):
        app_factory(REDIS_URL="redis+cluster://127.0.0.1:9/0")  # refused at start, not at the first job
    down = app_factory(REDIS_URL="redis+cluster://127.0.0.1:9/0", RQ_REDIS_URL="redis://127.0.0.1:9/1")
    client = down.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["redis"] == "down"
    answer = client.post("/api/v1/verifications", json={"code": CODE})  # needs the store: fails closed
    assert answer.status_code == 503 and answer.headers["Content-Type"].startswith("application/problem+json")
