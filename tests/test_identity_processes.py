"""Account security across processes: gunicorn with several workers on PostgreSQL + Redis of our own
(started by this module in both runs of `make test`), hit by concurrent HTTP clients.

- 50 concurrent password resets with one SMS code: exactly one succeeds;
- the per-phone SMS limit counts across workers;
- a session ended on one worker is refused by every other at once.
"""
from __future__ import annotations

from collections import Counter

import pytest
import requests

from tests.support.helpers import API, issue_sms_code, register_person, valid_phone
from tests.support.procs import process_tools_missing, served_stack
from tests.support.storm import SPREAD, TIMEOUT, storm, workers_of

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(process_tools_missing()), reason=str(process_tools_missing()))]

CONCURRENT = 50


@pytest.fixture(scope="module")
def stack():
    with served_stack("ias-acc-", "ias_accounts", workers=3,
                      overrides={"AUTH_RATE_LIMIT": "100000/minute", "SMS_ADDRESS_RATE_LIMIT": "100000/minute"}) as stack:
        yield stack


def test_fifty_concurrent_resets_with_one_code_succeed_once(stack):
    app, base = stack["app"], stack["server"].url
    person = register_person(app.test_client(), app, name="孔一")
    code = issue_sms_code(app, person["phone"], "reset_password")
    responses = storm(CONCURRENT, lambda i: requests.post(
        f"{base}{API}/auth/password-resets", headers=SPREAD, timeout=TIMEOUT,
        json={"phone": person["phone"], "sms_code": code, "new_password": f"Storm{i:02d}pass"}))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {204: 1, 422: CONCURRENT - 1}, [(r.status_code, r.text[:200]) for r in responses
                                                       if r.status_code not in (204, 422)]
    assert len(workers_of(responses)) >= 2
    winner = next(i for i, r in enumerate(responses) if r.status_code == 204)
    login = requests.post(f"{base}{API}/auth/token", timeout=TIMEOUT, json={
        "grant_type": "password", "username": person["phone"], "password": f"Storm{winner:02d}pass"})
    assert login.status_code == 200
    assert requests.get(f"{base}{API}/me", headers=person["headers"], timeout=TIMEOUT).status_code == 401


def test_the_per_phone_sms_limit_counts_across_workers(stack):
    base, phone = stack["server"].url, valid_phone()
    responses = storm(10, lambda i: requests.post(f"{base}{API}/auth/sms-codes", headers=SPREAD, timeout=TIMEOUT,
                                                   json={"phone": phone, "purpose": "register"}))
    assert Counter(r.status_code for r in responses) == {202: 1, 429: 9}
    assert len(workers_of(responses)) >= 2
    assert all(1 <= int(r.headers["Retry-After"]) <= 61 for r in responses if r.status_code == 429)


def test_an_ended_session_is_refused_by_every_worker(stack):
    app, base = stack["app"], stack["server"].url
    person = register_person(app.test_client(), app, name="孔二")
    sessions = requests.get(f"{base}{API}/me/sessions", headers=person["headers"], timeout=TIMEOUT).json()["items"]
    assert requests.delete(f"{base}{API}/me/sessions/{sessions[0]['session_id']}", headers=person["headers"],
                           timeout=TIMEOUT).status_code == 204
    responses = storm(12, lambda _i: requests.get(f"{base}{API}/me", headers={**person["headers"], **SPREAD},
                                                   timeout=TIMEOUT))
    assert {r.status_code for r in responses} == {401}
    assert len(workers_of(responses)) >= 2
