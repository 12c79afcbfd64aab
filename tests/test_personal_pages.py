"""A person's first page of their wallet, their applications and their inbox is kept rendered in the
shared store and never outlives what it shows: an issuer's status change, a new license, a superseded
one, a renamed license type, the day a license expires, a new or changed application, a notice written
by the journal behind a verification, read marks, a page read before a commit and kept after it
(app/personal_pages.py)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from app.extensions import db, store
from app.json_output import json_text
from app.store import StoreUnavailable
from app import journal, personal_pages
from app.notifications.service import notify
from app.applications.models import Application
from app.identity.models import Person
from app.wallet import models, service
from app.wallet.models import LicenseType
from tests.support.applications import apply, id_card, person_in, residence_body
from tests.support.helpers import API
from tests.support.statements import statements
from tests.support.wallet import (ID_CARD, id_card_fields, issue, person_id_number, present, register_person, today,
                                  verifier_headers, verify)

WALLET = f"{API}/wallet/licenses"
APPLICATIONS = f"{API}/applications"
pytestmark = pytest.mark.redis  # on every backend, and once more on the Redis Cluster (versions and pages span slots)


def _opened_twice(app, client, person, path=WALLET) -> dict:
    """The person's first page, asserting the second opening came from the kept page."""
    first = client.get(path, headers=person["headers"])
    assert first.status_code == 200, first.get_json()
    with statements(app) as seen:
        again = client.get(path, headers=person["headers"])
    assert again.data == first.data and seen == []
    return again.get_json()


def _statuses(client, person) -> dict:
    return {item["license_id"]: item["status"] for item in client.get(WALLET, headers=person["headers"]).get_json()["items"]}


def test_an_issuers_status_change_shows_at_the_next_opening(app, client, alice, police):
    card = issue(client, police, holder_id_number=alice["id_number"])
    assert _opened_twice(app, client, alice)["items"][0]["status"] == "valid"
    changed = client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "suspended"}, headers=police)
    assert changed.status_code == 200, changed.get_json()
    assert _statuses(client, alice) == {card["license_id"]: "suspended"}
    assert _opened_twice(app, client, alice)["items"][0]["status"] == "suspended"


def test_a_new_license_and_the_one_it_supersedes_show_at_the_next_opening(app, client, alice, police):
    old = issue(client, police, holder_id_number=alice["id_number"])
    _opened_twice(app, client, alice)
    new = issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields(address="济南市市中区经四路1号"))
    assert _statuses(client, alice) == {old["license_id"]: "revoked", new["license_id"]: "valid"}


def test_a_renamed_license_type_shows_at_the_next_opening(app, client, alice, police):
    issue(client, police, holder_id_number=alice["id_number"])
    assert _opened_twice(app, client, alice)["items"][0]["name"] == "居民身份证"
    with app.app_context():
        db.session.get(LicenseType, ID_CARD).name = "居民身份证（新版）"
        db.session.commit()
    try:
        assert client.get(WALLET, headers=alice["headers"]).get_json()["items"][0]["name"] == "居民身份证（新版）"
    finally:
        with app.app_context():
            db.session.get(LicenseType, ID_CARD).name = "居民身份证"
            db.session.commit()


def test_a_license_shows_expired_from_the_day_after_its_last_valid_day(app, client, alice, police, monkeypatch):
    issue(client, police, holder_id_number=alice["id_number"], valid_until=today())
    assert _opened_twice(app, client, alice)["items"][0]["status"] == "valid"
    tomorrow = today() + timedelta(days=1)
    for module in (personal_pages, models, service):
        monkeypatch.setattr(module, "beijing_today", lambda: tomorrow)
    assert _opened_twice(app, client, alice)["items"][0]["status"] == "expired"


def test_a_page_read_before_a_commit_is_never_served_after_it(app, client, alice, police):
    card = issue(client, police, holder_id_number=alice["id_number"])
    before = _opened_twice(app, client, alice)
    keys = personal_pages.keys("wallet", alice["subject_id"])
    with app.test_request_context():
        slow_reader = personal_pages.Opening.read("wallet", alice["subject_id"], dict(zip(keys, store.get_many(*keys))))
        assert slow_reader.body is not None and slow_reader.claim()  # it read the rows of the valid card...
    client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "revoked"}, headers=police)
    with app.test_request_context():
        slow_reader.keep(json_text(before))  # ...and keeps them after the revocation was committed
    assert _statuses(client, alice) == {card["license_id"]: "revoked"}


def test_each_holder_gets_their_own_page(app, client, alice, police):
    bob = register_person(client, app, name="李四", id_number=person_id_number(male=True))
    issue(client, police, holder_id_number=alice["id_number"])
    issue(client, police, holder_id_number=bob["id_number"], fields=id_card_fields("李四"))
    alices = _opened_twice(app, client, alice)
    bobs = _opened_twice(app, client, bob)
    assert alices["total"] == bobs["total"] == 1 and alices["items"][0]["license_id"] != bobs["items"][0]["license_id"]


def test_filtered_and_later_pages_are_read_from_the_database(app, client, alice, police):
    issue(client, police, holder_id_number=alice["id_number"])
    _opened_twice(app, client, alice)
    for query in ("?status=valid", "?page=2", f"?license_type={ID_CARD}"):
        with statements(app) as seen:
            assert client.get(WALLET + query, headers=alice["headers"]).status_code == 200
        assert seen, query


def test_a_store_outage_at_commit_loses_no_write_and_is_logged(app, client, alice, police, monkeypatch, caplog):
    card = issue(client, police, holder_id_number=alice["id_number"])
    _opened_twice(app, client, alice)
    with app.app_context():
        shared = store._get_current_object()

    def unavailable(*_keys):
        raise StoreUnavailable()

    monkeypatch.setattr(shared, "delete", unavailable)
    caplog.set_level(logging.WARNING, logger="app.pages")
    changed = client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "suspended"}, headers=police)
    assert changed.status_code == 200
    assert any("may show old rows" in record.getMessage() for record in caplog.records)
    with app.app_context():
        assert db.session.scalar(db.select(models.License.status).where(
            models.License.license_id == card["license_id"])) == "suspended"


def test_a_new_application_and_a_changed_one_show_at_the_next_opening(app, client):
    person = person_in(client, app)
    license_id = id_card(app, person)
    assert apply(client, person["headers"], residence_body(person, license_id)).status_code == 201
    assert _opened_twice(app, client, person, APPLICATIONS)["total"] == 1
    assert apply(client, person["headers"], residence_body(person, license_id)).status_code == 201
    listed = _opened_twice(app, client, person, APPLICATIONS)
    assert listed["total"] == 2
    with app.app_context():
        changed = db.session.scalar(db.select(Application).where(
            Application.application_id == listed["items"][0]["application_id"]))
        changed.status = "rejected"
        db.session.commit()
    assert _opened_twice(app, client, person, APPLICATIONS)["items"][0]["status"] == "rejected"


def test_a_filtered_application_list_reads_the_database(app, client):
    person = person_in(client, app)
    apply(client, person["headers"], residence_body(person, id_card(app, person)))
    _opened_twice(app, client, person, APPLICATIONS)
    with statements(app) as seen:
        assert client.get(APPLICATIONS + "?status=approved", headers=person["headers"]).status_code == 200
    assert seen


def test_a_deactivated_account_is_not_answered_from_a_kept_page(app, client, alice, police):
    issue(client, police, holder_id_number=alice["id_number"])
    _opened_twice(app, client, alice)
    with app.app_context():
        db.session.scalar(db.select(Person).where(Person.subject_id == alice["subject_id"])).active = False
        db.session.commit()
    read = client.get(WALLET + "?page=1", headers=alice["headers"])
    opened = client.get(WALLET, headers=alice["headers"])
    assert read.status_code == opened.status_code == 401
    assert opened.get_json()["detail"] == read.get_json()["detail"] == "账号不存在或已停用"


def test_a_kept_page_is_sealed_and_opens_for_its_holder_only(app, client, alice, police):
    bob = register_person(client, app, name="李四", id_number=person_id_number(male=True))
    card = issue(client, police, holder_id_number=alice["id_number"])
    issue(client, police, holder_id_number=bob["id_number"], fields=id_card_fields("李四"))
    _opened_twice(app, client, alice)
    _opened_twice(app, client, bob)
    alices_key, bobs_key = (personal_pages.page_key("wallet", person["subject_id"]) for person in (alice, bob))
    with app.app_context():
        kept = store.get(alices_key)
        assert card["license_id"] not in kept and "居民身份证" not in kept  # sealed at rest
        tag, bobs_sealed = kept.partition("\n")[0], store.get(bobs_key).partition("\n")[2]
        store.set(alices_key, f"{tag}\n{bobs_sealed}", 60)  # bob's page under alice's key and tag
    with statements(app) as seen:
        opened = client.get(WALLET, headers=alice["headers"]).get_json()
    assert [item["license_id"] for item in opened["items"]] == [card["license_id"]] and seen


INBOX = f"{API}/inbox"


def _inbox(client, person) -> dict:
    return client.get(INBOX, headers=person["headers"]).get_json()


def test_a_verification_journalled_behind_the_answer_shows_at_the_next_inbox_opening(app, client, alice, police):
    card = issue(client, police, holder_id_number=alice["id_number"])
    before = _opened_twice(app, client, alice, INBOX)
    code = present(client, alice["headers"], card["license_id"], disclose=["name"], mode="online")["code"]
    assert verify(client, verifier_headers(app, client), code=code)["valid"] is True  # its notice: journalled
    opened = _opened_twice(app, client, alice, INBOX)
    assert (opened["total"], opened["unread_count"]) == (before["total"] + 1, before["unread_count"] + 1)
    assert opened["items"][0]["kind"] == "license_access"


def test_notices_and_read_marks_show_at_the_next_inbox_opening(app, client, alice):
    with app.app_context():
        for index in range(2):
            notify(alice["subject_id"], kind="application_status", title=f"办件 {index}")
        db.session.commit()
    first = _opened_twice(app, client, alice, INBOX)
    assert (first["total"], first["unread_count"]) == (2, 2)
    assert client.post(f"{INBOX}/{first['items'][0]['id']}/read", headers=alice["headers"]).status_code == 200
    assert _opened_twice(app, client, alice, INBOX)["unread_count"] == 1  # one marked read (the ORM)
    assert client.post(f"{INBOX}/read", headers=alice["headers"], json={}).status_code == 200
    assert _opened_twice(app, client, alice, INBOX)["unread_count"] == 0  # all marked read (one UPDATE)
    with app.app_context():
        notify(alice["subject_id"], kind="license_status", title="您的居民身份证已被暂停使用")
        db.session.commit()
    assert _inbox(client, alice)["items"][0]["title"] == "您的居民身份证已被暂停使用"


def test_an_inbox_that_could_not_catch_up_is_read_from_the_database(app, client, alice, monkeypatch):
    with app.app_context():
        notify(alice["subject_id"], kind="application_status", title="办件")
        db.session.commit()
    _opened_twice(app, client, alice, INBOX)
    monkeypatch.setattr(journal, "LOCK_WAIT_SECONDS", 0.05)
    with app.app_context():  # an entry for her is pending and another drainer holds the lock past the wait
        store.journal_push(journal.JOURNAL, "pending", awake_ttl=journal.AWAKE_SECONDS,
                           marks=[journal.pending_mark(alice["subject_id"])])
        store.set(journal.LOCK, "another drainer", journal.LOCK_SECONDS)
    try:
        with statements(app) as seen:
            assert _inbox(client, alice)["total"] == 1
        assert seen
    finally:
        with app.app_context():
            store.journal_drop(journal.JOURNAL, 1)
            store.delete(journal.LOCK)
