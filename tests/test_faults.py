"""Faults, on real processes of our own (Redis, a PostgreSQL cluster, gunicorn with two workers) so
that stopping them never disturbs the rest of the suite; runs in both runs of `make test`.

(a) Redis stops mid-run: what needs it answers 503 problem+json at once (verification codes are
    never accepted, the login lock is never skipped: login is 503, not a password check without
    the lock), the catalogue keeps serving, /readyz is 503; Redis comes back on the same port and
    everything recovers without restarting the app.
(b) PostgreSQL restarts: a request waiting in the database ends cleanly (a 5xx problem, or its
    answer when the read completed first; not a hang, not the server's HTML page), and the pools
    recover (pool_pre_ping); while PostgreSQL is down, requests fail fast with a problem.
(c) Workers are SIGKILLed while application submissions are half written: no application is
    half there, and retrying each Idempotency-Key yields exactly one application per key.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.helpers import API, DEFAULT_PASSWORD, register_person
from tests.support.procs import process_tools_missing, served_stack, wait_for
from tests.support.applications import certificate_body, hukou_body, person_in
from tests.support.wallet import ID_CARD, id_card_fields, issue, issuer_headers

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(process_tools_missing()), reason=str(process_tools_missing()))]

PROBLEM = "application/problem+json"
TIMEOUT = 30
FAST = 5  # seconds within which a request must be answered while a dependency is down


@pytest.fixture(scope="module")
def stack():
    # a crashed request's idempotency reservation lapses after 3 s instead of 60 s (see test (c))
    with served_stack("ias-faults-", "ias_faults", workers=2,
                      overrides={"IDEMPOTENCY_LOCK_SECONDS": 3}) as stack:
        yield stack


def _timed(method, url, **kwargs):
    started = time.monotonic()
    response = requests.request(method, url, timeout=TIMEOUT, **kwargs)
    return response, time.monotonic() - started


def _is_problem(response, status=None) -> bool:
    if not response.headers.get("Content-Type", "").startswith(PROBLEM):
        return False
    body = response.json()
    return body.get("status") == response.status_code and (status is None or response.status_code == status)


def _verify(base, code):
    return requests.post(f"{base}{API}/verifications", json={"code": code}, timeout=TIMEOUT)


def _present(base, headers, license_id):
    response = requests.post(f"{base}{API}/wallet/licenses/{license_id}/presentations", headers=headers,
                             json={"purpose": "酒店入住登记", "mode": "online"}, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()["code"]


def _login(base, username, password):
    return requests.post(f"{base}{API}/auth/token", timeout=TIMEOUT,
                         json={"grant_type": "password", "username": username, "password": password})


# ------------------------------------------------------------------------------- (a) Redis


def test_redis_outage_fails_closed_where_needed_and_recovers_without_restart(stack):
    app, server, redis_server = stack["app"], stack["server"], stack["redis"]
    base = server.url
    client = app.test_client()
    alice = register_person(client, app, name="张三")
    bob = register_person(client, app, name="李四")
    card = issue(client, issuer_headers(app, client, types=(ID_CARD,)), holder_id_number=alice["id_number"],
                 fields=id_card_fields())
    used_code, fresh_code = _present(base, alice["headers"], card["license_id"]), \
        _present(base, alice["headers"], card["license_id"])
    assert _verify(base, used_code).json()["valid"] is True
    for attempt in range(4):  # four failures: the fifth would lock bob
        assert _login(base, bob["id_number"], f"Wrong-{attempt}").status_code == 401
    assert requests.get(f"{base}/readyz", timeout=TIMEOUT).json() == {"database": "ok", "redis": "ok"}
    workers_before = set(server.worker_pids())
    application = hukou_body(alice, app)  # its scans uploaded while Redis is up

    redis_server.stop()
    try:
        ready, took = _timed("GET", f"{base}/readyz")
        assert ready.status_code == 503 and ready.json() == {"database": "ok", "redis": "down"} and took < FAST
        assert requests.get(f"{base}/healthz", timeout=TIMEOUT).status_code == 200
        # the catalogue keeps serving, searches included
        for url in (f"{API}/halls", f"{API}/services", f"{API}/services?q=营业执照", f"{API}/topics",
                    f"{API}/services/370102-000705006000", f"{API}/license-types", f"{API}/halls/370102"):
            response, took = _timed("GET", base + url)
            assert response.status_code == 200 and took < FAST, (url, response.status_code, response.text[:200])
        # what needs the shared store: 503 problem+json with Retry-After, quickly
        refused = {
            "right password": ("POST", f"{API}/auth/token", {"json": {
                "grant_type": "password", "username": alice["id_number"], "password": DEFAULT_PASSWORD}}),
            "fifth wrong password": ("POST", f"{API}/auth/token", {"json": {
                "grant_type": "password", "username": bob["id_number"], "password": "Wrong-4"}}),
            "bob's right password": ("POST", f"{API}/auth/token", {"json": {
                "grant_type": "password", "username": bob["id_number"], "password": DEFAULT_PASSWORD}}),
            "refresh": ("POST", f"{API}/auth/token", {"json": {
                "grant_type": "refresh_token", "refresh_token": alice["refresh_token"]}}),
            "sms code": ("POST", f"{API}/auth/sms-codes", {"json": {"phone": alice["phone"], "purpose": "login"}}),
            "fresh code": ("POST", f"{API}/verifications", {"json": {"code": fresh_code}}),
            "used code": ("POST", f"{API}/verifications", {"json": {"code": used_code}}),
            "authenticated read": ("GET", f"{API}/me", {"headers": alice["headers"]}),
            "presentation": ("POST", f"{API}/wallet/licenses/{card['license_id']}/presentations",
                             {"headers": alice["headers"], "json": {"purpose": "入住", "mode": "online"}}),
            "submission": ("POST", f"{API}/applications", {"headers": {**alice["headers"], "Idempotency-Key": "k-1"},
                                                           "json": application}),
        }
        for name, (method, url, kwargs) in refused.items():
            response, took = _timed(method, base + url, **kwargs)
            assert response.status_code == 503 and _is_problem(response, 503), (name, response.status_code,
                                                                                response.text[:300])
            assert int(response.headers["Retry-After"]) >= 1 and took < FAST, (name, took)
    finally:
        redis_server.start()  # the same port

    # recovery without an app restart: the same workers
    assert wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, 15, 0.2)
    assert set(server.worker_pids()) == workers_before
    for _ in range(4):  # every worker, not only one
        assert requests.get(f"{base}/readyz", timeout=TIMEOUT).json() == {"database": "ok", "redis": "ok"}
    # no code was accepted during the outage, none twice after it (the restarted Redis kept nothing)
    assert _verify(base, used_code).json()["valid"] is False
    assert _verify(base, fresh_code).json()["valid"] is False
    new_code = _present(base, alice["headers"], card["license_id"])
    assert _verify(base, new_code).json()["valid"] is True
    assert _verify(base, new_code).json() | {"detail": None} == {"valid": False, "reason": "used", "detail": None}
    # logins, refresh, authenticated requests and the lock work again
    assert _login(base, alice["id_number"], DEFAULT_PASSWORD).status_code == 200
    refreshed = requests.post(f"{base}{API}/auth/token", timeout=TIMEOUT, json={
        "grant_type": "refresh_token", "refresh_token": alice["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert requests.get(f"{base}{API}/me", headers=alice["headers"], timeout=TIMEOUT).status_code == 200
    statuses = [_login(base, bob["id_number"], f"Wrong-again-{i}").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 423]
    locked = _login(base, bob["id_number"], DEFAULT_PASSWORD)
    assert locked.status_code == 423 and int(locked.headers["Retry-After"]) > 0
    submitted = requests.post(f"{base}{API}/applications", json=application, timeout=TIMEOUT,
                              headers={**alice["headers"], "Idempotency-Key": "k-1"})
    assert submitted.status_code == 201, submitted.text


# -------------------------------------------------------------------------- (b) PostgreSQL


def test_postgres_restart_fails_the_request_in_flight_cleanly_and_the_pool_recovers(stack):
    app, server, cluster = stack["app"], stack["server"], stack["cluster"]
    base = server.url
    alice = person_in(app.test_client(), app, name="王五")
    first = requests.post(f"{base}{API}/applications", json=hukou_body(alice, app), timeout=TIMEOUT,
                          headers={**alice["headers"], "Idempotency-Key": str(uuid.uuid4())})
    assert first.status_code == 201, first.text
    listing = f"{base}{API}/applications?page=1"  # with an argument: read from PostgreSQL, never a kept page
    spread = {**alice["headers"], "X-Test-Delay": "0.1"}
    with ThreadPoolExecutor(4) as pool:  # every worker has pooled connections now
        assert [r.status_code for r in pool.map(lambda _: requests.get(listing, headers=spread, timeout=TIMEOUT),
                                                range(8))] == [200] * 8

    # hold a lock the listing needs, so that a request waits inside PostgreSQL
    locker = cluster.connect(stack["database"])
    locker.execute("LOCK TABLE applications IN ACCESS EXCLUSIVE MODE")
    outcome = {}

    def in_flight():
        outcome["response"], outcome["took"] = _timed("GET", listing, headers=alice["headers"])

    thread = threading.Thread(target=in_flight)
    thread.start()
    try:
        assert wait_for(lambda: _waiting_on_lock(cluster, stack["database"]), 10), "the request never waited"
        cluster.restart("fast")  # terminates every session, the waiting one included
    finally:
        try:
            locker.close()
        except Exception:  # noqa: BLE001 - its server went away
            pass
        thread.join(TIMEOUT)
    assert not thread.is_alive(), "the request in flight hung"
    response = outcome["response"]
    # either the shutdown released the lock before ending the request's session and the read completed
    # (200), or the request's session ended first (a 5xx problem); never a hang, never an HTML page
    assert response.status_code == 200 or (500 <= response.status_code < 600 and _is_problem(response)), (
        response.status_code, response.text[:300])
    assert "Traceback" not in response.text and "psycopg" not in response.text

    # the pools recover: stale connections are replaced (pool_pre_ping), on every worker
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: requests.get(listing, headers=spread, timeout=TIMEOUT), range(8)))
    assert [r.status_code for r in statuses] == [200] * 8, [(r.status_code, r.text[:200]) for r in statuses]
    assert len({r.headers["X-Test-Worker"] for r in statuses}) == 2
    assert requests.get(f"{base}/readyz", timeout=TIMEOUT).status_code == 200

    # while PostgreSQL is down: readiness says so, requests fail fast with a problem, then recover
    cluster.stop("fast")
    try:
        ready, took = _timed("GET", f"{base}/readyz")
        assert ready.status_code == 503 and ready.json()["database"] == "down" and took < 10
        response, took = _timed("GET", listing, headers=alice["headers"])
        assert 500 <= response.status_code < 600 and _is_problem(response) and took < 10, (
            response.status_code, took, server.log_tail(6000))
    finally:
        cluster.start()
    assert wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, 20, 0.2)
    assert requests.get(listing, headers=alice["headers"], timeout=TIMEOUT).status_code == 200


def _waiting_on_lock(cluster, database) -> bool:
    with cluster.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND query ILIKE '%applications%'").fetchone()
    return row[0] >= 1


# ---------------------------------------------------------------- (c) workers killed mid-write


SUBMISSIONS = 16


def test_workers_killed_mid_submission_leave_no_half_written_application(stack):
    app, server, cluster = stack["app"], stack["server"], stack["cluster"]
    base = server.url
    alice = person_in(app.test_client(), app, name="赵六")
    body = certificate_body(alice, app)  # a service of which one person may have several in progress
    keys = [str(uuid.uuid4()) for _ in range(SUBMISSIONS)]
    for marker in server.inflight_markers():
        os.remove(os.path.join(server.marker_dir, marker))

    def submit(key):
        try:
            return requests.post(f"{base}{API}/applications", json=body, timeout=TIMEOUT, headers={
                **alice["headers"], "Idempotency-Key": key, "X-Test-Slow-Submit": "0.6"})
        except requests.ConnectionError as exc:  # the worker died under this request
            return exc

    killed = []
    with ThreadPoolExecutor(SUBMISSIONS) as pool:
        futures = [pool.submit(submit, key) for key in keys]
        for _round in range(2):  # twice: each time both workers are inside a transaction
            seen = len(server.inflight_markers())
            assert wait_for(lambda: len(server.inflight_markers()) >= seen + 2, 20, 0.01), server.log_tail()
            killed += server.kill_workers()
        results = [future.result() for future in futures]
    assert server.wait_for_workers(2, timeout=60)
    assert len(killed) >= 4
    broken = [key for key, result in zip(keys, results) if isinstance(result, Exception)]
    answered = {key: result for key, result in zip(keys, results) if not isinstance(result, Exception)}
    assert len(broken) >= 2, "no request was cut off by the kills"
    print(f"killed {len(killed)} workers; {len(broken)} submissions cut off, {len(answered)} answered")
    assert all(r.status_code in (201, 409) for r in answered.values()), \
        [(r.status_code, r.text[:200]) for r in answered.values()]

    _assert_nothing_half_written(cluster, stack["database"], alice["subject_id"])

    # every key retried (a client that got no answer does): exactly one application per key
    final = {}
    deadline = time.monotonic() + 60
    for key in keys:
        while True:
            response = requests.post(f"{base}{API}/applications", json=body, timeout=TIMEOUT,
                                     headers={**alice["headers"], "Idempotency-Key": key})
            if response.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        assert response.status_code == 201, (key, response.status_code, response.text[:200])
        final[key] = response.json()["application_id"]
    for key, response in answered.items():
        if response.status_code == 201:
            assert final[key] == response.json()["application_id"]
    assert len(set(final.values())) == SUBMISSIONS
    _assert_nothing_half_written(cluster, stack["database"], alice["subject_id"])
    with cluster.connect(stack["database"]) as conn:
        count = conn.execute("SELECT count(*) FROM applications WHERE subject_id = %s",
                             (alice["subject_id"],)).fetchone()[0]
    assert count == SUBMISSIONS


def _assert_nothing_half_written(cluster, database, subject_id):
    """Every application has its three materials, its submission event and its idempotency key
    with the stored answer; no key row points nowhere."""
    with cluster.connect(database) as conn:
        rows = conn.execute("""
            SELECT a.application_id,
                   (SELECT count(*) FROM application_materials m WHERE m.application_id = a.id),
                   (SELECT count(*) FROM application_events e WHERE e.application_id = a.id AND e.action = 'submit'),
                   (SELECT count(*) FROM idempotency_keys k WHERE k.application_id = a.application_id
                                                              AND k.response IS NOT NULL)
            FROM applications a WHERE a.subject_id = %s""", (subject_id,)).fetchall()
        keys = conn.execute("""
            SELECT count(*) FROM idempotency_keys k WHERE k.subject_id = %s AND (k.response IS NULL OR NOT EXISTS
                   (SELECT 1 FROM applications a WHERE a.application_id = k.application_id))""",
                            (subject_id,)).fetchone()[0]
    assert rows, "no application at all"
    incomplete = [row for row in rows if row[1:] != (2, 1, 1)]
    assert not incomplete, incomplete
    assert keys == 0


# ---------------------------------------------------------------- regression (in-process)


def test_a_connection_lost_at_teardown_does_not_replace_the_answer(app, client, monkeypatch):
    """Finding (seen under (b), about 1 run in 5): when PostgreSQL dropped the connection, the
    rollback of Flask-SQLAlchemy's session at teardown raised out of the WSGI app, and gunicorn
    answered its own HTML 500 instead of the problem+json the error handler had produced."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session
    original, failures = Session.close, []

    def close(self):
        if not failures:
            failures.append(1)
            raise OperationalError("ROLLBACK", {}, Exception("server closed the connection unexpectedly"))
        return original(self)

    monkeypatch.setattr(Session, "close", close)
    response = client.get(f"{API}/halls")
    assert failures and response.status_code == 200
    assert client.get(f"{API}/halls").status_code == 200  # and the next request has a working session
