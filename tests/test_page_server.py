"""The page server answers a person's plain opening of their wallet, applications or inbox from the
page kept for them, before the framework, and only as the framework would: same body and headers, the
same refusals (which it leaves to the framework), the same access log line and metrics, one round
trip to the shared store whether it answers or passes on (app/page_server.py)."""
from __future__ import annotations

import logging

import pytest

from app import journal
from app.extensions import db, store
from app.notifications.service import notify
from app.observability import REQUESTS
from app.personal_pages import OPENINGS
from tests.support.applications import apply, id_card, person_in, residence_body
from tests.support.framework import without_page_server
from tests.support.helpers import API, needs_redis
from tests.support.proxies import act_for, grant
from tests.support.statements import statements
from tests.support.wallet import issue, present, register_person, verify

pytestmark = pytest.mark.redis  # on every backend, and once more on the Redis Cluster (the inbox reads the journal first)

WALLET, APPLICATIONS, INBOX = f"{API}/wallet/licenses", f"{API}/applications", f"{API}/inbox"
BEHIND_THE_ANSWER = needs_redis("only Redis keeps entries behind the answer (without it the journal is written in "
                                "the request)")


def _answer(response) -> tuple:
    headers = sorted((name, value) for name, value in response.headers.items() if name != "X-Request-ID")
    return response.status_code, headers, response.data


@pytest.fixture
def person(app, client, police):
    """A person with a license, an application and a notice: all three lists have a first page."""
    someone = person_in(client, app)
    issue(client, police, holder_id_number=someone["id_number"])
    assert apply(client, someone["headers"], residence_body(someone, id_card(app, someone))).status_code == 201
    with app.app_context():
        notify(someone["subject_id"], kind="application_status", title="办件已受理")
        db.session.commit()
    return someone


@pytest.mark.parametrize("path", [WALLET, APPLICATIONS, INBOX])
def test_a_kept_page_is_answered_before_the_framework_as_the_framework_answers_it(app, client, person, monkeypatch,
                                                                                  entered, path):
    first = client.get(path, headers=person["headers"])
    assert first.status_code == 200 and first.get_json()["total"] >= 1
    entered.clear()
    with statements(app) as seen:
        early = client.get(path, headers=person["headers"])
    assert entered == [] and seen == []
    without_page_server(app, monkeypatch)
    with statements(app) as seen:
        framework = client.get(path, headers=person["headers"])
    assert len(entered) == 1 and seen == []  # the framework opened the same kept page
    assert _answer(early) == _answer(framework)
    assert early.headers["Cache-Control"] == "no-store" and early.headers["X-Request-ID"]


def test_an_early_answer_is_logged_and_counted_under_its_route(app, client, person, caplog):
    client.get(WALLET, headers=person["headers"])
    counter = REQUESTS.labels("GET", "/api/v1/wallet/licenses", "200")
    before = counter._value.get()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.access"):
        assert client.get(WALLET, headers=person["headers"]).status_code == 200
    assert counter._value.get() == before + 1
    lines = [record for record in caplog.records if record.name == "app.access"]
    assert [(line.path, line.status) for line in lines] == [("/api/v1/wallet/licenses", 200)]


def _requests(client, app, person) -> dict:
    """Openings the page server must leave to the framework, each with what makes it so."""
    logged_out = register_person(client, app)
    client.get(WALLET, headers=logged_out["headers"])
    assert client.post(f"{API}/auth/logout", headers=logged_out["headers"],
                       json={"refresh_token": logged_out["refresh_token"]}).status_code in (200, 204)
    grantor = register_person(client, app)
    grant(client, grantor, person)
    proxy = act_for(client, person, grantor)["access_token"]
    token = person["headers"]["Authorization"]
    return {
        "ended session": ({"Authorization": logged_out["headers"]["Authorization"]}, ""),
        "forged signature": ({"Authorization": token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")}, ""),
        "not a token": ({"Authorization": "Bearer x.y.z"}, ""),
        "another scheme": ({"Authorization": token.replace("Bearer", "Basic")}, ""),
        "no token": ({}, ""),
        "a proxy's token": ({"Authorization": f"Bearer {proxy}"}, ""),
        "query arguments": ({"Authorization": token}, "?page=1&page_size=5"),
        "an unknown argument": ({"Authorization": token}, "?colour=red"),
    }


@pytest.mark.parametrize("path", [WALLET, APPLICATIONS, INBOX])
def test_what_the_page_server_passes_on_the_framework_answers_as_before(app, client, person, monkeypatch, path):
    cases = _requests(client, app, person)
    client.get(path, headers=person["headers"])  # her page is kept: only the request decides
    def answers() -> dict:  # each case under one request id: a problem names it in `instance`
        return {name: _answer(client.get(path + query, headers={**headers, "X-Request-ID": f"case{number:028d}"}))
                for number, (name, (headers, query)) in enumerate(cases.items())}

    early = answers()
    without_page_server(app, monkeypatch)
    framework = answers()
    assert early == framework
    assert {name: answer[0] for name, answer in early.items() if answer[0] != 200} == {
        "ended session": 401, "forged signature": 401, "not a token": 401, "another scheme": 401, "no token": 401,
        "an unknown argument": 422, **({"a proxy's token": 403} if path == INBOX else {})}


@pytest.mark.parametrize("path, kind", [(APPLICATIONS, "applications"), (INBOX, "inbox")])
def test_an_opening_it_cannot_answer_reads_the_store_once(app, client, person, monkeypatch, path, kind):
    with app.app_context():
        shared = store._get_current_object()
    calls, depth = [], [0]  # the store's own calls inside get_many_after_journal (memory, cluster) are not the caller's

    def recorded(name, real):
        def call(*args, **kwargs):
            if not depth[0]:
                calls.append((name, args))
            depth[0] += 1
            try:
                return real(*args, **kwargs)
            finally:
                depth[0] -= 1
        return call

    for name in ("get_many", "get_many_after_journal", "journal_head"):
        monkeypatch.setattr(shared, name, recorded(name, getattr(shared, name)))
    kept, read = (OPENINGS.labels(kind, outcome) for outcome in ("kept", "read"))
    counted = kept._value.get(), read._value.get()
    one_read = "get_many_after_journal" if path == INBOX else "get_many"  # the inbox's after the journal's head
    with statements(app) as seen:
        first = client.get(path, headers=person["headers"])
    assert first.status_code == 200 and seen  # no page kept yet: the framework read the database
    assert [name for name, _ in calls] == [one_read], calls  # ... with what the page server read for it
    keys_read = calls[0][1][1] if path == INBOX else calls[0][1]  # (journal, keys) or the keys
    assert any(key.startswith("revoked:jti:") for key in keys_read)
    calls.clear()
    assert client.get(path, headers=person["headers"]).data == first.data
    assert [name for name, _ in calls] == [one_read]
    assert (kept._value.get(), read._value.get()) == (counted[0] + 1, counted[1] + 1)  # the metric a capacity model needs
    client.get(path + "?page=1", headers=person["headers"])
    assert (kept._value.get(), read._value.get()) == (counted[0] + 1, counted[1] + 1)  # not an opening: not counted


@BEHIND_THE_ANSWER
def test_refreshes_waiting_in_the_journal_leave_the_inbox_opening_to_the_page_server(app, client, person, entered):
    """Rotations go to lists of their own: the inbox checks the journal's own list, empty while refreshes go on."""
    kept = client.get(INBOX, headers=person["headers"])
    for _ in range(3):
        refreshed = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                           "refresh_token": person["refresh_token"]})
        assert refreshed.status_code == 200
        person["refresh_token"] = refreshed.get_json()["refresh_token"]
    with app.app_context():
        lengths = store.journal_lengths(journal.lists())
        assert journal.lists()[0] == journal.JOURNAL and lengths[0] == 0 and sum(lengths) == 3
    entered.clear()
    with statements(app) as seen:
        early = client.get(INBOX, headers=person["headers"])
    assert entered == [] and seen == [] and early.data == kept.data
    with app.app_context():
        assert sum(store.journal_lengths(journal.lists())) == 3  # the opening wrote none of them


@BEHIND_THE_ANSWER
def test_an_opening_waits_for_the_persons_own_journalled_notices_alone(app, client, person, police, entered):
    """Another holder's verification waiting in the journal leaves her opening early; her own makes it wait
    for that entry, which it then shows."""
    other = person_in(client, app)
    theirs = issue(client, police, holder_id_number=other["id_number"])
    mine = issue(client, police, holder_id_number=person["id_number"])
    kept = client.get(INBOX, headers=person["headers"])
    assert verify(client, code=present(client, other["headers"], theirs["license_id"])["code"])["valid"]
    with app.app_context():
        assert store.journal_lengths([journal.JOURNAL]) == [1]
    entered.clear()
    with statements(app) as seen:
        early = client.get(INBOX, headers=person["headers"])
    assert entered == [] and seen == [] and early.data == kept.data
    assert verify(client, code=present(client, person["headers"], mine["license_id"])["code"])["valid"]
    entered.clear()
    opened = client.get(INBOX, headers=person["headers"])
    assert len(entered) == 1 and opened.get_json()["total"] == kept.get_json()["total"] + 1
    assert opened.get_json()["items"][0]["kind"] == "license_access"
    with app.app_context():
        assert store.journal_lengths([journal.JOURNAL]) == [0]
