"""The shared store: the same behaviour from Redis and from the in-process stand-in."""
from __future__ import annotations

import os
import threading
import time

import pytest

from app.redis_topology import redis_store
from app.redis_store import RedisStore
from app.store import MemoryStore, StoreUnavailable, UseClaim, claim_key
from tests.support.helpers import needs_redis

# the Redis pass runs these on one server, the cluster pass (`-m redis`) on a three-master cluster
BACKENDS = ["memory"] + ([pytest.param("redis", marks=pytest.mark.redis)] if os.environ.get("TEST_REDIS_URL") else [])


@pytest.fixture(params=BACKENDS)
def shared(request):
    yield from _emptied(MemoryStore() if request.param == "memory" else _on_redis())


@pytest.fixture
def on_redis():
    """The Redis store alone (one server, or the cluster in the cluster pass): for what only Redis does."""
    yield from _emptied(_on_redis())


def _on_redis():
    return redis_store(os.environ["TEST_REDIS_URL"], {}, prefix=f"t{os.getpid()}:")


def _emptied(store):
    store.flush()
    yield store
    store.flush()


def test_set_get_delete(shared):
    assert shared.get("a") is None
    shared.set("a", "1")
    assert shared.get("a") == "1"
    assert shared.delete("a") == 1
    assert shared.get("a") is None


def test_ttl_expires(shared, clock):
    shared.set("short", "x", ttl=1)
    assert 0 <= shared.ttl("short") <= 1
    clock.advance(1.2, shared)
    assert shared.get("short") is None


def test_the_clock_fixture_moves_expiry_forward_without_sleeping(clock):
    store, started = MemoryStore(), time.monotonic()
    store.set("code", "x", ttl=300)
    store.set("kept", "y")
    clock.advance(299)
    assert store.get("code") == "x" and store.ttl("code") == 1
    clock.advance(1)
    assert store.get("code") is None and store.ttl("code") is None
    assert store.get("kept") == "y"  # no TTL: kept however long
    assert time.monotonic() - started < 1  # five minutes passed for the store, not for the test


def test_set_if_absent_only_once(shared):
    assert shared.set_if_absent("nx", "first", ttl=60) is True
    assert shared.set_if_absent("nx", "second", ttl=60) is False
    assert shared.get("nx") == "first"


def test_pop_is_consumed_once_under_concurrency(shared):
    shared.set("code", "payload", ttl=60)
    winners = []
    barrier = threading.Barrier(16)

    def take():
        barrier.wait()
        value = shared.pop("code")
        if value is not None:
            winners.append(value)

    threads = [threading.Thread(target=take) for _ in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert winners == ["payload"]


def test_incr_counts_and_keeps_first_ttl(shared):
    assert shared.incr("n", ttl=60) == 1
    assert shared.incr("n", ttl=5) == 2
    assert shared.ttl("n") > 5


def test_redis_down_raises_store_unavailable():
    store = RedisStore("redis://127.0.0.1:1/0")
    assert store.ping() is False
    with pytest.raises(StoreUnavailable) as info:
        store.get("x")
    assert info.value.status == 503


def test_get_many_and_touch(shared, clock):
    shared.set("a", "1")
    assert shared.get_many("a", "missing") == ["1", None]
    assert shared.touch("missing", 5) is False
    shared.set("b", "2", ttl=1)
    assert shared.touch("b", 60) is True
    clock.advance(1.2, shared)
    assert shared.get("b") == "2"


def test_count_and_get_counts_a_fixed_window_and_reads_in_the_same_call(shared, clock):
    shared.set("code", "sealed")
    assert shared.count_and_get("hits", 60, ["code", "missing"]) == (1, 60, ["sealed", None])
    count, reset_in, values = shared.count_and_get("hits", 5, [])
    assert (count, values) == (2, [])
    assert 55 <= reset_in <= 60  # the window started with the first hit
    shared.set("short", "0")
    assert shared.count_and_get("short", 1, ["short"])[0] == 1  # a counter without a TTL gets one
    assert 0 <= shared.ttl("short") <= 1
    clock.advance(1.2, shared)
    assert shared.count_and_get("short", 1, [])[0] == 1


def test_delete_if_equal_releases_only_ones_own_lock(shared):
    shared.set("lock", "mine", ttl=60)
    assert shared.delete_if_equal("lock", "theirs") is False
    assert shared.get("lock") == "mine"
    assert shared.delete_if_equal("lock", "mine") is True
    assert shared.get("lock") is None


J, CODE = "{j}j", "{j}code"  # a key a journal push consumes shares the journal's hash tag (one cluster slot)


def test_journal_keeps_order_and_sequence_and_wakes_once(shared):
    pushes = [shared.journal_push(J, f"entry {n}") for n in range(3)]
    assert [p.sequence for p in pushes] == [1, 2, 3]
    assert [p.wake for p in pushes] == [True, False, False]
    assert shared.journal_head(J, 2) == [(1, "entry 0"), (2, "entry 1")]
    shared.journal_drop(J, 2)
    assert shared.journal_head(J, 10) == [(3, "entry 2")]
    assert shared.journal_sequence(J) == 3
    shared.delete(J + ":awake")
    assert shared.journal_push(J, "entry 3").wake is True


def test_values_read_after_the_journal_say_whether_an_entry_was_pending(shared):
    shared.set("{j}a", "1")
    other = J + ".1"
    assert shared.get_many_after_journal([J, other], ["{j}a", "{j}b"]) == (True, ["1", None])
    shared.journal_push(other, "pending")
    assert shared.journal_lengths([J, other]) == [0, 1]
    assert shared.get_many_after_journal([J, other], ["{j}a"]) == (False, ["1"])
    assert shared.get_many_after_journal([J], ["{j}a"]) == (True, ["1"])
    shared.journal_drop(other, 1)
    assert shared.get_many_after_journal([J, other], ["{j}a"]) == (True, ["1"])


def test_one_journal_read_with_values_sees_an_entry_until_it_is_dropped(shared):
    shared.set("{j}a", "1")
    assert shared.get_many_after_journal([J], ["{j}a", "{j}b"]) == (True, ["1", None])
    shared.journal_push(J, "first")
    shared.journal_push(J, "second")
    assert shared.get_many_after_journal([J], ["{j}a"]) == (False, ["1"])
    shared.journal_drop(J, 1)
    assert shared.get_many_after_journal([J], ["{j}a"]) == (False, ["1"])
    shared.journal_drop(J, 1)
    assert shared.get_many_after_journal([J], ["{j}a"]) == (True, ["1"])
    shared.journal_push(J, "third")
    assert shared.get_many_after_journal([J], ["{j}a"]) == (False, ["1"])


def test_a_reader_marked_by_an_entry_waits_for_that_entry_alone(shared):
    """An entry sets its readers' marks to its sequence number; a read with a mark is written once the drop
    has passed it (the drop deletes the marks it passed), whatever else the list holds."""
    alice, bob = "{j}pending:alice", "{j}pending:bob"
    shared.journal_push(J, "for alice", marks=[alice])
    shared.journal_push(J, "for alice and bob", marks=[alice, bob])
    shared.journal_push(J, "for no one")
    assert shared.get_many(alice, bob) == ["2", "2"]
    assert shared.get_many_after_journal([J], ["{j}a"], mark="{j}pending:carol") == (True, [None])
    assert shared.get_many_after_journal([J], ["{j}a"], mark=alice) == (False, [None])
    shared.journal_drop(J, 1, marks=[alice])
    assert shared.get(alice) == "2"  # newer than what was written: kept
    assert shared.get_many_after_journal([J], [], mark=alice) == (False, [])
    shared.journal_drop(J, 1, marks=[alice, bob])
    assert shared.get_many(alice, bob) == [None, None] and shared.journal_lengths([J]) == [1]
    assert shared.get_many_after_journal([J], [], mark=alice) == (True, [])
    assert shared.get_many_after_journal([J], []) == (False, [])  # the list itself is not empty
    shared.journal_push(J, "for bob", marks=[bob])
    assert shared.get_many_after_journal([J], [], mark=bob) == (False, [])
    assert shared.ttl(bob) > 24 * 3600  # a mark outlives any drain it waits for


@needs_redis("a journal emptied before the written mark existed")
def test_a_journal_emptied_without_the_written_mark_reads_as_empty(on_redis):
    """Entries an earlier release removed (LTRIM alone, no mark): the one-MGET read cannot tell, so it asks the
    list's length; an entry pushed since is still seen."""
    on_redis.journal_push(J, "written by an older release")
    on_redis.client.ltrim(on_redis._k(J), 1, -1)
    assert on_redis.get_many_after_journal([J], ["{j}a"]) == (True, [None])
    on_redis.journal_push(J, "pending")
    assert on_redis.get_many_after_journal([J], ["{j}a"]) == (False, [None])


@needs_redis("the commands a Redis server counts")
def test_after_a_drop_one_server_answers_the_read_without_asking_the_lists_length(on_redis):
    """On one server the read is a single MGET once the drainer has marked what it wrote; a cluster, whose
    journal sits in another slot than the values, still asks the length."""
    on_redis.journal_push(J, "entry")
    on_redis.journal_drop(J, 1)
    before = _length_reads(on_redis)
    assert on_redis.get_many_after_journal([J], ["{j}a"]) == (True, [None])
    assert _length_reads(on_redis) - before == (0 if on_redis.name == "redis" else 1)


def _length_reads(shared) -> int:
    if shared.name == "redis-cluster":
        per_node = shared.client.info("commandstats", target_nodes=shared.client.ALL_NODES).values()
    else:
        per_node = [shared.client.info("commandstats")]
    return sum(int(node.get("cmdstat_llen", {}).get("calls", 0)) for node in per_node)


def test_journal_consume_is_won_by_one_caller_under_concurrency(shared):
    shared.set(CODE, "payload", ttl=60)
    results = []
    barrier = threading.Barrier(16)

    def take(n):
        barrier.wait()
        results.append(shared.journal_push(J, f"won {n}", consume=CODE, entry_if_absent=f"lost {n}"))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sum(r.consumed for r in results) == 1
    entries = [text for _, text in shared.journal_head(J, 100)]
    assert len(entries) == 16 and sum(text.startswith("won") for text in entries) == 1
    assert shared.get(CODE) is None
    assert sorted(seq for seq, _ in shared.journal_head(J, 100)) == list(range(1, 17))


BASIC = "{j}code:basic"


def _claim(token: str, types=("T",)) -> UseClaim:
    return UseClaim(CODE, BASIC, frozenset(types), token, "{j}j:awake")


def test_a_use_is_claimed_by_one_caller_and_consumed_by_its_holder_whatever_came_between(shared):
    shared.set(CODE, "sealed", ttl=60)
    shared.set(BASIC, "T", ttl=60)  # the basic use names the license type
    mine = shared.claim_use(_claim("mine"))
    assert (mine.use, mine.held) == ("full", True)
    theirs = shared.claim_use(_claim("theirs"))
    assert (theirs.use, theirs.held) == ("full", False)
    unclaimed = shared.journal_push(J, "two steps", consume=CODE, entry_if_absent="lost")
    assert not unclaimed.consumed and shared.get(CODE) == "sealed"  # no one consumes a use another holds
    shared.set(claim_key(CODE), "a later claimant", ttl=30)  # ours lapsed (a worker stalled past its life)
    pushed = shared.journal_push(J, "mine", consume=CODE, entry_if_absent="lost", claimed=True)
    assert pushed.consumed and shared.get(CODE) is None and shared.get(claim_key(CODE)) is None  # answered: written
    assert [text for _, text in shared.journal_head(J, 10)] == ["lost", "mine"]
    basic = shared.claim_use(_claim("anyone", types=()))
    assert (basic.use, basic.held) == ("", False)  # the code's entry is gone: nothing to claim


def test_a_claim_takes_the_basic_use_for_another_type_and_nothing_without_a_type(shared):
    shared.set(CODE, "sealed", ttl=60)
    shared.set(BASIC, "T", ttl=60)
    basic = shared.claim_use(_claim("anonymous", types=()))
    assert (basic.use, basic.held) == ("basic", True) and shared.get(claim_key(BASIC)) == "anonymous"
    assert shared.get(claim_key(CODE)) is None
    assert shared.journal_push(J, "basic", consume=BASIC, claimed=True).consumed
    assert shared.get(BASIC) is None and shared.get(claim_key(BASIC)) is None and shared.get(CODE) == "sealed"
    nameless = shared.claim_use(_claim("verifier"))
    assert (nameless.use, nameless.held) == ("", False)  # the basic use is gone: the type is unknown


def test_count_get_and_claim_claims_nothing_past_the_limit_or_with_a_guard_set(shared):
    shared.set(CODE, "sealed", ttl=60)
    shared.set(BASIC, "T", ttl=60)
    count, _, values, claimed = shared.count_get_and_claim("{h}hits", 60, 2, ["{g}revoked", CODE], 1, _claim("a"))
    assert (count, values, claimed.use, claimed.held) == (1, [None, "sealed"], "full", True)
    shared.delete(claim_key(CODE))
    shared.set("{g}revoked", "1")
    *_, guarded = shared.count_get_and_claim("{h}hits", 60, 2, ["{g}revoked", CODE], 1, _claim("b"))
    assert not guarded.held and shared.get(claim_key(CODE)) is None
    shared.delete("{g}revoked")
    count, *_, limited = shared.count_get_and_claim("{h}hits", 60, 2, ["{g}revoked", CODE], 1, _claim("c"))
    assert count == 3 and not limited.held and shared.get(claim_key(CODE)) is None


def test_a_push_sent_later_is_written_before_the_callers_next_read(shared):
    replies = []
    shared.journal_push_later(J, "later", awake_ttl=30, then=replies.append)
    assert [text for _, text in shared.journal_head(J, 10)] == ["later"]
    assert len(replies) == 1 and replies[0].sequence == 1 and replies[0].wake


def test_the_store_proxy_reaches_the_current_apps_store_and_none_outside_an_app(app):
    """`extensions.store` is looked up in the app whose context is current, on each access (as a LocalProxy
    over current_app would be); outside any app context it raises RuntimeError, as current_app does."""
    from flask import Flask

    from app.extensions import store
    with pytest.raises(RuntimeError):
        store.get("anything")
    other = Flask("other")
    other.extensions["shared_store"] = MemoryStore()
    with app.app_context():
        store.set("proxy:key", "app's", 60)
        assert store.get("proxy:key") == "app's"
        with other.app_context():
            assert store.get("proxy:key") is None
            store.set("proxy:key", "other's", 60)
        assert store.get("proxy:key") == "app's"
    with other.app_context():
        assert store.get("proxy:key") == "other's"
