"""Idempotency under concurrency: 50 simultaneous submissions with one Idempotency-Key create
exactly one application, in one app instance (threads) and across two instances sharing the
database (and Redis when the suite runs with it); in-flight duplicates wait or get 409."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from app.applications import idempotency
from app.applications import submission
from app.applications.models import Application, IdempotencyKey
from app.store import StoreUnavailable
from tests.support.helpers import API, another_worker
from tests.support.applications import apply, count_rows, hukou_body, new_key, person_in

THREADS = 50


def storm(clients, headers, body, key):
    barrier = threading.Barrier(THREADS)

    def one(index):
        client = clients[index % len(clients)]
        barrier.wait()
        response = apply(client, headers, body, key=key)
        return response.status_code, response.get_json(), response.headers.get("Idempotent-Replayed")

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def _assert_exactly_one(app, results):
    statuses = [status for status, _body, _replayed in results]
    assert statuses == [201] * THREADS, statuses
    ids = {body["application_id"] for _status, body, _replayed in results}
    assert len(ids) == 1
    fresh = [replayed for _status, _body, replayed in results if replayed != "true"]
    assert len(fresh) == 1  # one request did the work, 49 replayed its answer
    bodies = {repr(sorted(body.items())) for _status, body, _replayed in results}
    assert len(bodies) == 1
    assert count_rows(app, Application) == 1 and count_rows(app, IdempotencyKey) == 1


def test_fifty_concurrent_submissions_with_one_key_create_one_application(client, app):
    alice = person_in(client, app)
    clients = [app.test_client() for _ in range(THREADS)]
    results = storm(clients, alice["headers"], hukou_body(alice, app), new_key())
    _assert_exactly_one(app, results)


def test_two_app_instances_share_the_key(client, app):
    alice = person_in(client, app)
    with another_worker(app) as worker:
        clients = [app.test_client() for _ in range(THREADS // 2)] + [worker.test_client() for _ in range(THREADS // 2)]
        results = storm(clients, alice["headers"], hukou_body(alice, app), new_key())
    _assert_exactly_one(app, results)


def test_a_duplicate_arriving_in_flight_waits_then_409(client, app, monkeypatch):
    alice = person_in(client, app)
    body, key = hukou_body(alice, app), new_key()
    entered, release = threading.Event(), threading.Event()
    original = submission.service_spec

    def slow_spec(code):
        entered.set()
        release.wait(10)
        return original(code)

    monkeypatch.setattr(submission, "service_spec", slow_spec)
    monkeypatch.setitem(app.config, "IDEMPOTENCY_WAIT_SECONDS", 0.3)
    first = {}
    thread = threading.Thread(target=lambda: first.update(r=apply(app.test_client(), alice["headers"], body, key=key)))
    thread.start()
    assert entered.wait(10)
    busy = apply(client, alice["headers"], body, key=key)
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    other = apply(client, alice["headers"], hukou_body(alice, app, move_to_address="别处"), key=key)
    assert other.status_code == 422
    release.set()
    thread.join(10)
    assert first["r"].status_code == 201
    monkeypatch.setattr(submission, "service_spec", original)
    replay = apply(client, alice["headers"], body, key=key)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first["r"].get_json()
    assert count_rows(app, Application) == 1


def test_waiting_duplicates_get_the_answer(client, app, monkeypatch):
    alice = person_in(client, app)
    body, key = hukou_body(alice, app), new_key()
    entered = threading.Event()
    original = submission.service_spec

    def slow_spec(code):
        entered.set()
        threading.Event().wait(0.5)
        return original(code)

    monkeypatch.setattr(submission, "service_spec", slow_spec)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(lambda: apply(app.test_client(), alice["headers"], body, key=key))
        assert entered.wait(10)
        second = pool.submit(lambda: apply(app.test_client(), alice["headers"], body, key=key))
        a, b = first.result(), second.result()
    assert a.status_code == b.status_code == 201
    assert b.headers["Idempotent-Replayed"] == "true" and a.get_json() == b.get_json()


def test_without_the_shared_store_the_database_still_guards(client, app, monkeypatch):
    """The shared store fails between authentication and the reservation (a Redis blip)."""
    alice = person_in(client, app)

    class DownStore:
        def __getattr__(self, _name):
            def down(*_args, **_kwargs):
                raise StoreUnavailable()
            return down

    monkeypatch.setattr(idempotency, "store", DownStore())
    body, key = hukou_body(alice, app), new_key()
    first = apply(client, alice["headers"], body, key=key)
    assert first.status_code == 201, first.get_json()
    again = apply(client, alice["headers"], body, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert apply(client, alice["headers"], hukou_body(alice, app, move_to_address="别处"), key=key).status_code == 422
    withdrawn = client.post(f"{API}/applications/{first.get_json()['application_id']}/withdraw", headers=alice["headers"])
    assert withdrawn.status_code == 200  # one open 户口迁移 at a time
    clients = [app.test_client() for _ in range(10)]
    barrier = threading.Barrier(10)
    fresh_key = new_key()

    def one(index):
        barrier.wait()
        return apply(clients[index], alice["headers"], body, key=fresh_key)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(10)))
    created = [r for r in results if r.status_code == 201]
    assert all(r.status_code in (201, 409) for r in results)
    assert len({r.get_json()["application_id"] for r in created}) == 1
    assert count_rows(app, Application) == 2
    assert f"{API}" in first.headers["Location"]
