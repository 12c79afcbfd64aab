"""Concurrency across processes: gunicorn with several workers on PostgreSQL + Redis of our own
(started by this module in both runs of `make test`), hit by concurrent HTTP clients.

- one online code verified by 50 concurrent requests: exactly one `valid: true`; by a registered
  verifier and anonymous callers at once: one full check and at most one basic check;
- 50 concurrent submissions with one Idempotency-Key: exactly one application;
- the login lock and the rate limits count across workers (X-Test-Worker shows who answered).
"""
from __future__ import annotations

import uuid
from collections import Counter

import pytest
import requests

from tests.support.helpers import API, DEFAULT_PASSWORD, register_person
from tests.support.procs import process_tools_missing, served_stack
from tests.support.applications import hukou_body, person_in
from tests.support.wallet import ID_CARD, id_card_fields, issue, issuer_headers, verifier_headers
from tests.support.storm import SPREAD, TIMEOUT, storm, workers_of

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(process_tools_missing()), reason=str(process_tools_missing()))]

CONCURRENT = 50
SEARCH_LIMIT = 20


@pytest.fixture(scope="module")
def stack():
    """Own Redis + PostgreSQL and gunicorn with 4 sync workers, so that concurrent requests spread
    over processes."""
    with served_stack("ias-conc-", "ias_concurrency", workers=4,
                      overrides={"SEARCH_RATE_LIMIT": f"{SEARCH_LIMIT}/minute"}) as stack:
        yield stack


def _scalar(stack, sql: str, *params):
    with stack["cluster"].connect(stack["database"]) as conn:
        return conn.execute(sql, params).fetchone()[0]


def test_one_online_code_is_valid_exactly_once_across_workers(stack):
    app, base = stack["app"], stack["server"].url
    client = app.test_client()
    alice = register_person(client, app, name="张三")
    card = issue(client, issuer_headers(app, client, types=(ID_CARD,)), holder_id_number=alice["id_number"],
                 fields=id_card_fields())
    shown = requests.post(f"{base}{API}/wallet/licenses/{card['license_id']}/presentations", timeout=TIMEOUT,
                          headers=alice["headers"], json={"purpose": "酒店入住登记", "mode": "online"})
    assert shown.status_code == 201, shown.text
    code = shown.json()["code"]
    responses = storm(CONCURRENT, lambda _i: requests.post(f"{base}{API}/verifications", json={"code": code},
                                                            headers=SPREAD, timeout=TIMEOUT))
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    results = Counter("valid" if r.json()["valid"] else r.json()["reason"] for r in responses)
    assert results == {"valid": 1, "used": CONCURRENT - 1}, results
    assert len(workers_of(responses)) >= 2
    log = requests.get(f"{base}{API}/wallet/licenses/{card['license_id']}/access-log", headers=alice["headers"],
                       params={"page_size": 100}, timeout=TIMEOUT).json()
    assert Counter(item["result"] for item in log["items"]) == {"valid": 1, "used": CONCURRENT - 1}


def test_a_registered_verifier_and_anonymous_callers_take_one_use_each_across_workers(stack):
    """Half the storm carries a hotel's verifier token (its check takes the full use), half none (the basic
    use): each use is claimed by one request in the read that fetches the code, the others answer `used`.
    The full check consumes the code's entry, so an anonymous read after it finds nothing to claim."""
    app, base = stack["app"], stack["server"].url
    client = app.test_client()
    alice = register_person(client, app, name="李四")
    card = issue(client, issuer_headers(app, client, types=(ID_CARD,)), holder_id_number=alice["id_number"],
                 fields=id_card_fields(name="李四"))
    hotel = verifier_headers(app, client)
    shown = requests.post(f"{base}{API}/wallet/licenses/{card['license_id']}/presentations", timeout=TIMEOUT,
                          headers=alice["headers"], json={"purpose": "酒店入住登记", "mode": "online"})
    assert shown.status_code == 201, shown.text
    code = shown.json()["code"]
    responses = storm(CONCURRENT, lambda i: requests.post(f"{base}{API}/verifications", json={"code": code},
                                                           headers={**SPREAD, **(hotel if i % 2 else {})},
                                                           timeout=TIMEOUT))
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    answers = Counter(r.json().get("disclosure") if r.json()["valid"] else r.json()["reason"] for r in responses)
    basic = answers["basic"]  # none when the full check consumed the code before any anonymous read found it
    assert answers == Counter(full=1, basic=basic, used=CONCURRENT - 1 - basic) and basic <= 1, answers
    log = requests.get(f"{base}{API}/wallet/licenses/{card['license_id']}/access-log", headers=alice["headers"],
                       params={"page_size": 100}, timeout=TIMEOUT).json()
    assert Counter(item["result"] for item in log["items"]) == {"valid": 1 + basic, "used": CONCURRENT - 1 - basic}


def test_fifty_submissions_with_one_key_make_one_application(stack):
    app, base = stack["app"], stack["server"].url
    alice = person_in(app.test_client(), app, name="李四")
    key, body = str(uuid.uuid4()), hukou_body(alice, app)
    responses = storm(CONCURRENT, lambda _i: requests.post(
        f"{base}{API}/applications", json=body, timeout=TIMEOUT,
        headers={**alice["headers"], **SPREAD, "Idempotency-Key": key}))
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [(r.status_code, r.text[:200]) for r in responses if r.status_code not in (201, 409)]
    assert statuses[201] >= 1
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["application_id"] for r in created}) == 1
    assert sum(1 for r in created if r.headers.get("Idempotent-Replayed") != "true") == 1
    assert all(r.headers.get("Retry-After") for r in responses if r.status_code == 409)
    assert len(workers_of(responses)) >= 2
    assert _scalar(stack, "SELECT count(*) FROM applications WHERE subject_id = %s", alice["subject_id"]) == 1
    assert _scalar(stack, "SELECT count(*) FROM idempotency_keys WHERE subject_id = %s", alice["subject_id"]) == 1
    again = requests.post(f"{base}{API}/applications", json=body, timeout=TIMEOUT,
                          headers={**alice["headers"], "Idempotency-Key": key})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def _login(base, username, password):
    return requests.post(f"{base}{API}/auth/token", timeout=TIMEOUT, headers=SPREAD,
                         json={"grant_type": "password", "username": username, "password": password})


def test_the_login_lock_counts_failures_across_workers(stack):
    app, base = stack["app"], stack["server"].url
    for attempt in range(3):  # until the five failures were answered by at least two workers
        person = register_person(app.test_client(), app, name="王五")
        wrong = storm(5, lambda i: _login(base, person["id_number"], f"Wrong-password-{i}"))
        assert all(r.status_code in (401, 423) for r in wrong), [r.status_code for r in wrong]
        if len(workers_of(wrong)) >= 2:
            break
    else:
        pytest.fail("five concurrent logins were always answered by one worker")
    right = [_login(base, person["id_number"], DEFAULT_PASSWORD) for _ in range(6)]
    assert len(workers_of(wrong + right)) >= 2
    for response in right:
        assert response.status_code == 423, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    by_phone = _login(base, person["phone"], DEFAULT_PASSWORD)
    assert by_phone.status_code == 423  # the lock is on the account, whatever the username


def test_rate_limits_count_across_workers(stack):
    base = stack["server"].url
    total = SEARCH_LIMIT + 10
    responses = storm(total, lambda i: requests.get(f"{base}{API}/services", params={"q": f"营业执照{i}"},
                                                     headers=SPREAD, timeout=TIMEOUT))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: SEARCH_LIMIT, 429: total - SEARCH_LIMIT}, statuses
    assert len(workers_of(responses)) >= 2
    for response in responses:
        if response.status_code == 429:
            assert response.headers["Content-Type"].startswith("application/problem+json")
            assert 1 <= int(response.headers["Retry-After"]) <= 61
    # the rest of the catalogue is not the limited path
    assert requests.get(f"{base}{API}/halls", timeout=TIMEOUT).status_code == 200


def test_the_workers_logged_no_personal_data(stack):
    """Whatever the tests above sent, the workers' JSON logs hold no full ID number or phone."""
    import re
    text = open(stack["server"].log_path, encoding="utf-8", errors="replace").read()
    assert "app.access" in text  # the workers did log
    assert not re.search(r"(?<![0-9A-Za-z])[1-9]\d{16}[0-9Xx](?![0-9A-Za-z])", text)
    assert not re.search(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])", text)
    assert "Traceback" not in text
