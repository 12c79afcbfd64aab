"""The connection the shared store holds per process and thread for its hot commands (app/redis_connection.py):
its own per thread and beside the pool (closed when the thread ends), a new one after a fork, made again once when the server dropped it, scripts by digest
and by source when the server forgot them, and a store that cannot reach Redis is unavailable."""
from __future__ import annotations

import gc
import os
import socket
import threading

import pytest
import redis

from app.redis_connection import HeldConnection
from app.redis_store import RedisStore
from app.store import StoreUnavailable

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"),
                                reason="a plain Redis server's connections; runs with TEST_REDIS_URL")

COUNT = "return redis.call('INCR', KEYS[1])"


@pytest.fixture
def client():
    made = redis.Redis.from_url(os.environ["TEST_REDIS_URL"], decode_responses=True)
    yield made
    made.delete("held:count", "held:a", "held:b")
    made.close()


def _client_id(held: HeldConnection) -> int:
    return held.command("CLIENT", "ID")


def test_a_thread_keeps_its_connection_and_another_thread_gets_its_own(client):
    held = HeldConnection(client)
    mine = _client_id(held)
    assert _client_id(held) == mine and held.connection() is held.connection()
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(_client_id(held)))
    thread.start()
    thread.join()
    assert theirs and theirs[0] != mine
    assert _client_id(held) == mine


def test_threads_connections_take_nothing_from_the_pool_and_close_when_their_threads_end(client):
    small = redis.Redis.from_url(os.environ["TEST_REDIS_URL"], decode_responses=True, max_connections=2)
    held = HeldConnection(small)
    before = len(client.client_list())
    ids = []
    threads = [threading.Thread(target=lambda: ids.append(_client_id(held))) for _ in range(6)]
    for thread in threads:
        thread.start()
        thread.join()
    assert len(set(ids)) == 6  # six threads, six connections, past the pool's limit of two
    assert small.get("held:a") is None  # the pool's own callers still get theirs
    gc.collect()
    assert len(client.client_list()) <= before + 1  # the threads' connections closed (the pool keeps one)
    small.close()


def test_a_forked_child_makes_its_own_connection_and_leaves_the_parents_working(client):
    held = HeldConnection(client)
    parent = _client_id(held)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id, never touch the parent's socket
        try:
            os.write(write, str(_client_id(held)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = int(os.read(read, 64) or 0)
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child != parent
    assert _client_id(held) == parent  # the child's exit did not close the parent's connection


def test_a_connection_the_server_dropped_is_made_again_once(client):
    held = HeldConnection(client)
    first = _client_id(held)
    client.client_kill_filter(_id=first)
    client.set("held:a", "1")
    assert held.command("MGET", "held:a", "held:b") == ["1", None]
    assert _client_id(held) != first


def test_a_script_runs_by_digest_and_by_source_after_the_server_forgot_it(client):
    held = HeldConnection(client)
    script = client.register_script(COUNT)
    assert held.script(script, ["held:count"], []) == 1
    client.script_flush()
    assert held.script(script, ["held:count"], []) == 2  # NOSCRIPT: sent by source, which loads it again
    assert client.script_exists(script.sha) == [True]
    assert held.script(script, ["held:count"], []) == 3


def test_a_script_error_is_raised_and_leaves_the_connection_in_step(client):
    held = HeldConnection(client)
    first = _client_id(held)
    broken = client.register_script("return redis.call('NO_SUCH_COMMAND')")
    with pytest.raises(redis.ResponseError):
        held.script(broken, [], [])
    assert _client_id(held) == first and held.command("MGET", "held:a") == [None]


def test_a_script_sent_later_is_answered_before_the_threads_next_command(client):
    held, replies = HeldConnection(client), []
    script = client.register_script(COUNT)
    held.script(script, ["held:count"], [])
    held.send_later(script, ["held:count"], [], replies.append)
    held.send_later(script, ["held:count"], [], replies.append)
    assert held.pending() and replies == []
    assert held.command("GET", "held:count") == "3" and replies == [2, 3] and not held.pending()


def test_a_script_sent_later_that_the_server_forgot_is_sent_again_by_its_source(client):
    held, replies = HeldConnection(client), []
    script = client.register_script(COUNT)
    client.script_flush()
    held.send_later(script, ["held:count"], [], replies.append)
    held.settle()
    assert replies == [1] and client.get("held:count") == "1" and not held.pending()


def test_scripts_sent_later_on_a_connection_the_server_dropped_run_once_each(client):
    held, replies = HeldConnection(client), []
    script = client.register_script(COUNT)
    client.client_kill_filter(_id=_client_id(held))
    held.send_later(script, ["held:count"], [], replies.append)  # sent to a closed peer, or sent again
    held.send_later(script, ["held:count"], [], replies.append)
    assert held.command("GET", "held:count") == "2" and replies == [1, 2]


def test_a_store_sends_the_reply_it_owes_before_any_other_command(client):
    store, replies = RedisStore(os.environ["TEST_REDIS_URL"], prefix="held:"), []
    store.journal_push_later("journal", "entry", then=replies.append)
    assert store._held.pending()
    assert store.journal_lengths(["journal"]) == [1] and len(replies) == 1 and replies[0].sequence == 1
    store.client.delete("held:journal", "held:journal:seq", "held:journal:awake")


def test_a_store_whose_redis_is_gone_is_unavailable_for_reads_and_scripts():
    store = RedisStore(f"redis://127.0.0.1:{_closed_port()}/0")
    with pytest.raises(StoreUnavailable):
        store.get_many("a", "b")
    with pytest.raises(StoreUnavailable):
        store.count_and_get("counter", 60, ["a"])


def _closed_port() -> int:
    """A loopback port that was free a moment ago (nothing accepts on it)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port
