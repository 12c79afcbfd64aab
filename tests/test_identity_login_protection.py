"""Account lock after failed passwords and per-IP rate limits, also across two workers."""
from __future__ import annotations

from app.extensions import db
from tests.support.helpers import API, another_worker, needs_redis, register_person, valid_id_number, valid_phone

SHARED = needs_redis("workers share failure counters and locks through Redis")


def _password(client, username, password, ip="10.0.0.1"):
    return client.post(f"{API}/auth/token", json={"grant_type": "password", "username": username,
                                                  "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_five_failures_lock_the_account_even_for_the_right_password(client, app):
    person = register_person(client, app)
    for attempt in range(4):
        assert _password(client, person["id_number"], f"Wrong{attempt}pass").status_code == 401
    fifth = _password(client, person["phone"], "Wrong5pass")
    assert fifth.status_code == 423
    assert fifth.mimetype == "application/problem+json"
    assert 840 <= int(fifth.headers["Retry-After"]) <= 900
    right = _password(client, person["id_number"], person["password"])
    assert right.status_code == 423
    assert 0 < int(right.headers["Retry-After"]) <= 900
    assert "锁定" in right.get_json()["detail"]
    # the lock is on the account, whichever username is used, and from any address
    assert _password(client, person["phone"], person["password"], ip="10.9.9.9").status_code == 423
    # the existing session keeps working; only the password grant is blocked
    assert client.get(f"{API}/me", headers=person["headers"]).status_code == 200


def test_lock_ends_when_its_time_is_up(app, clock):
    with another_worker(app, LOGIN_LOCK_SECONDS=1) as short:
        web = short.test_client()
        person = register_person(web, short)
        for attempt in range(5):
            _password(web, person["id_number"], f"Wrong{attempt}pass", ip="10.3.3.3")
        assert _password(web, person["id_number"], person["password"], ip="10.3.3.3").status_code == 423
        clock.advance(1.6, short)
        assert _password(web, person["id_number"], person["password"], ip="10.3.3.3").status_code == 200


def test_success_clears_the_failure_count(client, app):
    person = register_person(client, app)
    for attempt in range(4):
        _password(client, person["id_number"], f"Wrong{attempt}pass")
    assert _password(client, person["id_number"], person["password"]).status_code == 200
    for attempt in range(4):
        assert _password(client, person["id_number"], f"Again{attempt}pass").status_code == 401
    assert _password(client, person["id_number"], person["password"]).status_code == 200


def test_failures_on_one_account_do_not_lock_another(client, app):
    alice = register_person(client, app, name="爱丽丝")
    bob = register_person(client, app, name="鲍勃")
    for attempt in range(5):
        _password(client, alice["id_number"], f"Wrong{attempt}pass")
    assert _password(client, alice["id_number"], alice["password"]).status_code == 423
    assert _password(client, bob["id_number"], bob["password"]).status_code == 200


def test_unknown_accounts_lock_too_so_423_reveals_nothing(client, app):
    unknown = valid_id_number()
    statuses = [_password(client, unknown, f"Wrong{attempt}pass").status_code for attempt in range(6)]
    assert statuses == [401, 401, 401, 401, 423, 423]


def test_login_failures_and_lock_are_audited(client, app):
    person = register_person(client, app)
    for attempt in range(5):
        _password(client, person["id_number"], f"Wrong{attempt}pass")
    with app.app_context():
        rows = db.session.execute(db.text(
            "SELECT event, subject_id FROM audit_events ORDER BY seq")).all()
    events = [event for event, subject in rows if subject == person["subject_id"]]
    assert events.count("auth.login_failed") == 5
    assert "auth.account_locked" in events and "auth.login_succeeded" in events


def test_per_ip_rate_limit_on_auth_endpoints_is_429_with_retry_after(client, app):
    with another_worker(app, AUTH_RATE_LIMIT="3/minute") as limited:
        web = limited.test_client()
        body = {"grant_type": "password", "username": valid_phone(), "password": "whatever1"}
        ip = {"REMOTE_ADDR": "10.1.2.3"}
        statuses = [web.post(f"{API}/auth/token", json=body, environ_base=ip).status_code for _ in range(2)]
        statuses.append(web.post(f"{API}/auth/register", json={}, environ_base=ip).status_code)
        assert statuses == [401, 401, 422]  # malformed requests count too
        assert web.post(f"{API}/auth/sms-codes", json={"phone": valid_phone(), "purpose": "login"},
                        environ_base=ip).status_code == 429
        over = web.post(f"{API}/auth/token", json=body, environ_base={"REMOTE_ADDR": "10.1.2.3"})
        assert over.status_code == 429
        assert over.mimetype == "application/problem+json"
        assert 0 < int(over.headers["Retry-After"]) <= 61
        other_ip = web.post(f"{API}/auth/token", json=body, environ_base={"REMOTE_ADDR": "10.1.2.4"})
        assert other_ip.status_code == 401


@SHARED
def test_lock_holds_across_two_workers(client, app):
    """Two app instances (as two gunicorn workers would be) sharing PostgreSQL and Redis."""
    person = register_person(client, app)
    with another_worker(app) as other:
        workers = [client, other.test_client()]
        for attempt in range(4):
            response = _password(workers[attempt % 2], person["id_number"], f"Wrong{attempt}pass")
            assert response.status_code == 401
        assert _password(workers[1], person["id_number"], "Wrong9pass").status_code == 423
        assert _password(workers[0], person["id_number"], person["password"]).status_code == 423
        assert _password(workers[1], person["id_number"], person["password"]).status_code == 423


@SHARED
def test_rate_limit_and_token_revocation_are_shared_by_two_workers(client, app):
    with another_worker(app, AUTH_RATE_LIMIT="4/minute") as first, \
            another_worker(app, AUTH_RATE_LIMIT="4/minute") as second:
        person = register_person(client, app)
        workers = [first.test_client(), second.test_client()]
        body = {"grant_type": "password", "username": person["id_number"], "password": person["password"]}
        ip = {"REMOTE_ADDR": "10.7.7.7"}
        tokens = workers[0].post(f"{API}/auth/token", json=body, environ_base=ip).get_json()
        assert workers[1].post(f"{API}/auth/logout", json={"refresh_token": tokens["refresh_token"]},
                               headers={"Authorization": f"Bearer {tokens['access_token']}"},
                               environ_base=ip).status_code == 204
        assert workers[0].get(f"{API}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
                              ).status_code == 401
        statuses = [workers[i % 2].post(f"{API}/auth/token", json=body, environ_base=ip).status_code
                    for i in range(3)]
        assert statuses == [200, 200, 429]
