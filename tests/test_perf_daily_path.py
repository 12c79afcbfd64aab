"""The daily path does little per request: catalogue reads cached per catalogue version with
ETag / 304 and CDN-friendly Cache-Control, a refresh in one write, the wallet list in
one read, and an online verification without checking signatures again (they were checked when
the presentation was made and sealed with it). Statements are counted, never timed."""
from __future__ import annotations



from app.catalogue import publishing
from app.catalogue.kept_reads import url_key
from app.catalogue.index import catalogue_index
from app import journal
from app.extensions import db, store
from app.identity import held_sessions, persons, sessions
from app.notifications.service import notify
from app.wallet import collection, issuer_trust, verification
from tests.support.helpers import API
from tests.support.statements import statements
from tests.support.wallet import issue, present, verifier_headers, verify


def _some_service(client) -> str:
    return client.get(f"{API}/services?page_size=1").get_json()["items"][0]["code"]


def _republish(app) -> None:
    with app.app_context():
        publishing.next_catalogue_version()
        db.session.commit()
        catalogue_index(app).changed()


def test_service_detail_is_cached_per_catalogue_version_with_etag_and_304(app, client):
    code = _some_service(client)
    first = client.get(f"{API}/services/{code}")
    assert first.status_code == 200 and first.get_json()["code"] == code
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, max-age=60"
    assert "Authorization" in first.headers["Vary"]
    with statements(app) as seen:
        again = client.get(f"{API}/services/{code}")
    assert again.get_json() == first.get_json() and again.headers["ETag"] == etag
    assert not [s for s in seen if "FROM services" in s], seen  # answered from the worker's cache
    not_modified = client.get(f"{API}/services/{code}", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.get_data() == b""
    assert not_modified.headers["ETag"] == etag
    _republish(app)
    changed = client.get(f"{API}/services/{code}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.get_json() == first.get_json()


def test_rendered_reads_share_a_byte_budget_that_a_flood_of_searches_cannot_take_from_the_hall_tree(
        app, client, monkeypatch):
    from app.catalogue import index as index_module
    monkeypatch.setattr(index_module, "RESPONSE_CACHE_BYTES", 20_000)
    code = _some_service(client)
    index = catalogue_index(app)
    built = []

    def tree():
        built.append("tree")
        return [{"code": "370000", "children": []}]

    assert index.cached_response(("hall_tree", None), tree) == tree()
    built.clear()
    for n in range(50):  # fifty rendered search pages of 1,000 bytes
        index.cached_response(("services", n), lambda: b"x" * 1_000)
    assert index._response_bytes <= 20_000 and len(index._responses) == 20
    assert ("services", 49) in index._responses and ("services", 0) not in index._responses
    assert index.cached_response(("hall_tree", None), tree) == [{"code": "370000", "children": []}]
    assert built == []  # still the version's own, not rebuilt
    detail = client.get(f"{API}/services/{code}")
    assert detail.status_code == 200 and url_key(f"{API}/services/{code}", "", None) in index._responses  # anonymous
    kept_pages = len(index._responses) - 1  # the oldest pages made room for the detail
    assert index._response_bytes == kept_pages * 1_000 + len(detail.get_data()) <= 20_000
    assert ("services", 49) in index._responses and ("services", 49 - kept_pages) not in index._responses


def test_a_withdrawn_service_is_gone_after_republishing(app, client):
    code = _some_service(client)
    assert client.get(f"{API}/services/{code}").status_code == 200
    with app.app_context():
        from app.catalogue.models import Service
        db.session.get(Service, code).status = "withdrawn"
        publishing.next_catalogue_version()
        db.session.commit()
        catalogue_index(app).changed()
    try:
        assert client.get(f"{API}/services/{code}").status_code == 404
    finally:
        with app.app_context():
            from app.catalogue.models import Service
            db.session.get(Service, code).status = "published"
            db.session.commit()
        _republish(app)


def test_a_callers_catalogue_answer_is_private_and_personal_routes_carry_no_cache_headers(client, alice):
    code = _some_service(client)
    mine = client.get(f"{API}/services/{code}", headers=alice["headers"])
    assert mine.status_code == 200 and mine.headers["Cache-Control"].startswith("private")
    for path in ("/wallet/licenses", "/inbox", "/applications", "/me"):
        response = client.get(f"{API}{path}", headers=alice["headers"])
        assert response.status_code == 200, (path, response.get_json())
        assert "public" not in response.headers.get("Cache-Control", ""), path
        assert "ETag" not in response.headers, path


def test_a_refresh_is_one_store_step_or_one_write_and_one_statement(app, client, alice, monkeypatch):
    monkeypatch.setattr(journal, "enqueue", lambda path: None)  # the journal is written by a catch-up below
    with app.app_context():
        person = persons.find_person_by_id_number(alice["id_number"])
        token = sessions.issue_person_pair(person, "app")["refresh_token"]
        db.session.commit()
    with statements(app) as seen:
        held = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token", "refresh_token": token})
    assert held.status_code == 200 and seen == []  # the store holds the session: check, swap and journal
    with app.app_context():
        journal.catch_up()
        store.delete(held_sessions.key(sessions.parse_refresh_token(token)[0]))  # as if the store lost it
    token = held.get_json()["refresh_token"]
    with statements(app) as seen:
        response = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token", "refresh_token": token})
    assert response.status_code == 200, response.get_json()
    sql = [s for s in seen if s.split()[0] in ("SELECT", "UPDATE", "INSERT", "DELETE")]
    assert sql[0].startswith("UPDATE auth_sessions") and "RETURNING" in sql[0], sql
    writes = [s for s in sql if not s.startswith("SELECT")]
    assert len(writes) == 1, writes  # was 3: claim the token, extend the session, insert the next token
    assert len(sql) == 1 and "FROM staff_assignments" in sql[0], sql  # the rotation reads the person and the roles
    again = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token", "refresh_token": token})
    assert again.status_code == 401  # reuse still ends the session
    newer = response.get_json()["refresh_token"]
    assert client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                  "refresh_token": newer}).status_code == 401


def test_the_wallet_list_is_one_read_and_an_unchanged_opening_none(app, client, alice, police):
    issue(client, police, holder_id_number=alice["id_number"])
    first = client.get(f"{API}/wallet/licenses", headers=alice["headers"])
    assert first.status_code == 200 and first.get_json()["total"] == 1
    with statements(app) as seen:
        again = client.get(f"{API}/wallet/licenses", headers=alice["headers"])
    assert again.data == first.data
    assert seen == []  # the page kept for this version of her wallet (app/personal_pages.py)
    with statements(app) as seen:
        paged = client.get(f"{API}/wallet/licenses?page=1&page_size=20", headers=alice["headers"])
    assert paged.get_json() == first.get_json()
    assert len(seen) == 1 and "JOIN persons" in seen[0], seen


def test_the_wallet_list_reads_its_collection_marker_with_the_token(app, client, alice, police, monkeypatch):
    issue(client, police, holder_id_number=alice["id_number"])
    with app.app_context():
        shared = store._get_current_object()
    calls = []
    for name in ("get", "get_many", "set", "set_if_absent"):
        real = getattr(shared, name)
        monkeypatch.setattr(shared, name, lambda *args, _real=real, _name=name, **kw: (
            calls.append((_name, args)), _real(*args, **kw))[1])
    marker = collection.collected_key(alice["subject_id"])

    def marker_calls():
        return [name for name, args in calls if marker in args]

    first = client.get(f"{API}/wallet/licenses?page=1", headers=alice["headers"])
    assert first.status_code == 200
    assert [name for name, _ in calls] == ["get_many", "set_if_absent"], calls  # the marker was absent: pull
    assert marker in calls[0][1]
    calls.clear()
    again = client.get(f"{API}/wallet/licenses?page=1", headers=alice["headers"])
    assert again.get_json() == first.get_json()
    assert [name for name, _ in calls] == ["get_many"], calls  # marker set: no write, one round trip
    calls.clear()
    client.get(f"{API}/wallet/licenses", headers=alice["headers"])
    calls.clear()
    kept = client.get(f"{API}/wallet/licenses", headers=alice["headers"])
    assert kept.get_json() == first.get_json()
    assert [name for name, _ in calls] == ["get_many"], calls  # the kept page: one round trip, no write
    with app.app_context():
        shared.delete(marker)
    calls.clear()
    client.get(f"{API}/wallet/licenses", headers=alice["headers"])
    assert marker_calls() == ["get_many", "set_if_absent"], calls  # gone: due again, kept page or not


def test_the_inbox_page_is_one_read_and_an_empty_journal_one_round_trip(app, client, alice, monkeypatch):
    with app.app_context():
        for index in range(3):
            notify(alice["subject_id"], kind="application_status", title=f"办件 {index}")
        db.session.commit()
        shared = store._get_current_object()
    assert client.post(f"{API}/inbox/read", headers=alice["headers"], json={"kind": "application_status"}).status_code == 200
    with app.app_context():
        notify(alice["subject_id"], kind="license_access", title="亮证记录")
        db.session.commit()
    heads, marks = [], []
    real_lengths, real_after = shared.journal_lengths, shared.get_many_after_journal
    monkeypatch.setattr(shared, "journal_lengths", lambda *a: (heads.append(a), real_lengths(*a))[1])
    monkeypatch.setattr(shared, "get_many_after_journal",
                        lambda *a, **k: (marks.append((a, k)), real_after(*a, **k))[1])
    with statements(app) as seen:
        page = client.get(f"{API}/inbox?page_size=2", headers=alice["headers"]).get_json()
    assert [item["title"] for item in page["items"]] == ["亮证记录", "办件 2"]
    assert (page["total"], page["unread_count"]) == (4, 1)
    assert len(seen) == 1, seen
    # nothing of hers pending: one read of her mark; no list's length, lock or sequence read
    assert heads == [] and marks == [((["journal"], []), {"mark": journal.pending_mark(alice["subject_id"])})]
    read = client.get(f"{API}/inbox?unread=false", headers=alice["headers"]).get_json()
    assert (read["total"], read["unread_count"], len(read["items"])) == (3, 1, 3)
    beyond = client.get(f"{API}/inbox?page=3&page_size=2", headers=alice["headers"]).get_json()
    assert (beyond["items"], beyond["total"], beyond["unread_count"]) == ([], 4, 1)


def test_a_persons_application_list_is_one_read_and_an_unchanged_opening_none(app, client):
    from tests.support.applications import apply, id_card, person_in, residence_body
    person = person_in(client, app)
    license_id = id_card(app, person)
    for _ in range(2):
        assert apply(client, person["headers"], residence_body(person, license_id)).status_code == 201
    with statements(app) as seen:
        page = client.get(f"{API}/applications", headers=person["headers"]).get_json()
    assert page["total"] == 2 and len(page["items"]) == 2
    assert len(seen) == 1 and "JOIN persons" in seen[0], seen
    with statements(app) as seen:
        again = client.get(f"{API}/applications", headers=person["headers"]).get_json()
    assert again == page and seen == []  # the page kept for this version of the list (app/personal_pages.py)
    assert all(item["parent_application_id"] is None and item["status_label"] for item in page["items"])
    empty = client.get(f"{API}/applications?status=rejected", headers=person["headers"]).get_json()
    assert (empty["items"], empty["total"]) == ([], 0)


def test_an_online_verification_checks_no_signature_and_an_offline_one_does(app, client, alice, police,
                                                                            monkeypatch):
    card = issue(client, police, holder_id_number=alice["id_number"])
    calls = []
    real = verification.verify_presentation

    def counting(*args, **kwargs):
        calls.append(kwargs.get("expected_nonce"))
        return real(*args, **kwargs)

    monkeypatch.setattr(verification, "verify_presentation", counting)
    monkeypatch.setattr(issuer_trust, "verify_presentation", counting)
    online = present(client, alice["headers"], card["license_id"], disclose=["name"], mode="online")
    assert len(calls) == 1  # checked once, when the presentation was made
    hotel = verifier_headers(app, client)
    answer = verify(client, hotel, code=online["code"])
    assert answer["valid"] is True and answer["disclosed"] == {"name": "张三"}
    assert len(calls) == 1
    offline = present(client, alice["headers"], card["license_id"], disclose=["name"], mode="offline")
    assert verify(client, hotel, sd_jwt=offline["sd_jwt"])["valid"] is True
    assert len(calls) == 2
    tampered = offline["sd_jwt"].replace("~", "~x", 1)
    assert verify(client, sd_jwt=tampered)["valid"] is False


def test_a_revoked_license_and_a_cancelled_presentation_still_answer_so(app, client, alice, police):
    card = issue(client, police, holder_id_number=alice["id_number"])
    shown = present(client, alice["headers"], card["license_id"])
    cancelled = present(client, alice["headers"], card["license_id"])
    assert client.delete(f"{API}/wallet/licenses/{card['license_id']}/presentations/"
                         f"{cancelled['presentation_id']}", headers=alice["headers"]).status_code == 204
    assert verify(client, code=cancelled["code"])["reason"] == "cancelled"
    assert client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "revoked", "reason": "遗失"},
                       headers=police).status_code == 200
    assert verify(client, code=shown["code"])["reason"] == "revoked"
