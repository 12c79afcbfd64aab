"""The shared store: the same behaviour from Redis and from the in-process stand-in."""
from __future__ import annotations

import os
import threading
import time

import pytest

from app.store import MemoryStore, RedisStore, StoreUnavailable

BACKENDS = ["memory"] + (["redis"] if os.environ.get("TEST_REDIS_URL") else [])


@pytest.fixture(params=BACKENDS)
def shared(request):
    if request.param == "memory":
        store = MemoryStore()
    else:
        store = RedisStore(os.environ["TEST_REDIS_URL"], prefix=f"t{os.getpid()}:")
    store.flush()
    yield store
    store.flush()


def test_set_get_delete(shared):
    assert shared.get("a") is None
    shared.set("a", "1")
    assert shared.get("a") == "1"
    assert shared.delete("a") == 1
    assert shared.get("a") is None


def test_ttl_expires(shared):
    shared.set("short", "x", ttl=1)
    assert 0 <= shared.ttl("short") <= 1
    time.sleep(1.2)
    assert shared.get("short") is None


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
