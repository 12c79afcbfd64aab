"""Sessions held in the shared store (app/identity/held_sessions.py): a held session's refresh runs no SQL
and reaches its row through the journal; the store ends a session whose older token comes back before the
row shows its successor; an ended session, a new role or a deactivation hands the decision back to the
database; a session the store lost or holds stale is decided by its row."""
from __future__ import annotations

import jwt
import pytest
from sqlalchemy import select

from app import journal
from app.extensions import db, store
from app.identity import held_sessions, persons
from app.identity.common import sha256_hex
from app.identity.models import AuthSession, Person
from app.identity.sessions import parse_refresh_token
from app.timeutil import as_aware
from tests.support.helpers import API, another_worker, auth_headers, register_person
from tests.support.statements import statements

pytestmark = pytest.mark.redis

TOKEN = f"{API}/auth/token"


def _refresh(client, token):
    return client.post(TOKEN, json={"grant_type": "refresh_token", "refresh_token": token})


def _row(app, token: str) -> AuthSession:
    with app.app_context():
        row = db.session.scalar(select(AuthSession).where(AuthSession.session_id == parse_refresh_token(token)[0]))
        db.session.expunge(row)
        return row


@pytest.fixture
def unwritten(monkeypatch):
    """No drainer wakes for a held rotation: its journal entry waits for a `journal.catch_up()`."""
    woken = []
    monkeypatch.setattr(journal, "enqueue", woken.append)
    return woken


def test_a_held_refresh_runs_no_sql_and_reaches_the_row_through_the_journal(app, client, unwritten):
    person = register_person(client, app)
    before = _row(app, person["refresh_token"])
    with statements(app) as seen:
        response = _refresh(client, person["refresh_token"])
    assert response.status_code == 200 and seen == []
    pair = response.get_json()
    assert client.get(f"{API}/me", headers=auth_headers(pair["access_token"])).status_code == 200
    assert _row(app, person["refresh_token"]).refresh_generation == 0  # not written yet
    with app.app_context():
        assert journal.catch_up() >= 1
    row = _row(app, person["refresh_token"])
    assert row.refresh_generation == 1 and row.refresh_hash == sha256_hex(pair["refresh_token"])
    assert row.last_used_at > before.last_used_at and row.expires_at > before.expires_at


def test_an_older_token_back_before_the_row_shows_its_successor_ends_the_session(app, client, unwritten):
    person = register_person(client, app)
    pair = _refresh(client, person["refresh_token"]).get_json()
    assert _row(app, person["refresh_token"]).refresh_generation == 0
    reused = _refresh(client, person["refresh_token"])
    assert reused.status_code == 401 and "已被使用过" in reused.get_json()["detail"]
    assert _refresh(client, pair["refresh_token"]).status_code == 401
    assert client.get(f"{API}/me", headers=auth_headers(pair["access_token"])).status_code == 401
    row = _row(app, person["refresh_token"])
    assert row.revoked_at is not None and row.refresh_generation == 1  # the journal caught up on the way


def test_logging_out_with_a_refresh_token_the_row_does_not_show_yet(app, client, unwritten):
    person = register_person(client, app)
    pair = _refresh(client, person["refresh_token"]).get_json()
    assert client.post(f"{API}/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    ended = _refresh(client, pair["refresh_token"])
    assert ended.status_code == 401 and ended.get_json()["detail"] == "刷新令牌已注销，请重新登录"


def test_a_new_role_and_a_deactivation_hand_the_refresh_back_to_the_database(app, client):
    person = register_person(client, app)
    pair = _refresh(client, person["refresh_token"]).get_json()
    assert jwt.decode(pair["access_token"], options={"verify_signature": False})["roles"] == ["citizen"]
    with app.app_context():
        persons.create_staff(role="hall_staff", hall_code="370102", id_number=person["id_number"], name=person["name"])
    pair = _refresh(client, pair["refresh_token"]).get_json()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert "hall_staff" in claims["roles"] and claims["halls"] == {"370102": "hall_staff"}
    pair = _refresh(client, pair["refresh_token"]).get_json()  # held again, roles and all
    assert "hall_staff" in jwt.decode(pair["access_token"], options={"verify_signature": False})["roles"]
    with app.app_context():
        db.session.scalar(select(Person).where(Person.subject_id == person["subject_id"])).active = False
        db.session.commit()
    refused = _refresh(client, pair["refresh_token"])
    assert refused.status_code == 401 and refused.get_json()["detail"] == "登录会话已失效，请重新登录"


def test_a_session_the_store_lost_is_decided_by_its_row_and_held_again(app, client, unwritten):
    person = register_person(client, app)
    session_id = parse_refresh_token(person["refresh_token"])[0]
    with app.app_context():
        store.delete(held_sessions.key(session_id))
    with statements(app) as seen:
        pair = _refresh(client, person["refresh_token"]).get_json()
    assert any("UPDATE auth_sessions" in statement for statement in seen)
    with statements(app) as seen:
        assert _refresh(client, pair["refresh_token"]).status_code == 200
    assert seen == []


def test_a_store_that_lost_a_rotation_defers_to_the_row(app, client):
    """A failover to a replica that missed a rotation: the store holds the generation before the one
    presented; it drops what it holds and the row (written behind) decides."""
    person = register_person(client, app)
    first = _refresh(client, person["refresh_token"]).get_json()
    with app.app_context():
        journal.catch_up()
    row = _row(app, first["refresh_token"])
    assert row.refresh_generation == 1
    with app.app_context():
        store.delete(held_sessions.key(row.session_id))
        store.session_hold({held_sessions.key(row.session_id): {
            "gen": 0, "hash": sha256_hex(person["refresh_token"]), "exp": repr(as_aware(row.expires_at).timestamp()),
            "sub": person["subject_id"], "ch": "app", "ver": 0, "staff": ""}}, 600)
    second = _refresh(client, first["refresh_token"])
    assert second.status_code == 200
    assert _refresh(client, second.get_json()["refresh_token"]).status_code == 200


def test_a_hold_that_races_a_release_does_not_take(app):
    with app.app_context():
        entry = held_sessions.key("f" * 32)
        store.session_release([entry], 600)
        store.session_hold({entry: {"gen": 0, "hash": sha256_hex("rt_x"), "exp": "9999999999.0", "sub": "p_x",
                                    "ch": "app", "ver": 0, "staff": ""}}, 600)
        done = store.session_rotate(entry, journal.beside(entry), generation=0, presented_hash=sha256_hex("rt_x"),
                                    next_hash=sha256_hex("rt_y"), now=1.0, until=2.0, entry="{}", awake_ttl=30,
                                    hold_ttl=600)
        assert done.status == "database"
        assert store.session_rotate(entry, journal.beside(entry), generation=0, presented_hash=sha256_hex("rt_x"),
                                    next_hash=sha256_hex("rt_y"), now=1.0, until=2.0, entry="{}", awake_ttl=30,
                                    hold_ttl=600).status == "database"  # still released, nothing journalled
        assert journal.backlog() == 0


def test_a_held_session_past_its_end_is_refused_by_the_row(app, clock):
    with another_worker(app, REFRESH_TOKEN_TTL=60, REFRESH_HOLD_SECONDS=3600) as worker:
        web = worker.test_client()
        person = register_person(web, worker)
        clock.advance(61, worker)
        expired = _refresh(web, person["refresh_token"])
    assert expired.status_code == 401 and expired.get_json()["detail"] == "刷新令牌已过期，请重新登录"


def test_the_write_behind_keeps_the_newest_generation(app, client):
    person = register_person(client, app)
    session_id = parse_refresh_token(person["refresh_token"])[0]
    line = {"session": session_id, "used": 1.0e9, "until": 2.0e9}
    with app.app_context():
        held_sessions.write_entries([{**line, "generation": 3, "hash": "c" * 64},
                                     {**line, "generation": 2, "hash": "b" * 64}])
        db.session.commit()
        held_sessions.write_entries([{**line, "generation": 1, "hash": "a" * 64}])  # a replayed batch
        db.session.commit()
    row = _row(app, person["refresh_token"])
    assert row.refresh_generation == 3 and row.refresh_hash == "c" * 64


def test_a_refresh_past_the_rate_limit_rotates_nothing(app, clock):
    """The address's hit is counted in the store's step of the rotation: past the limit, the step stops there."""
    with another_worker(app, AUTH_RATE_LIMIT="2/minute") as worker:
        person = register_person(app.test_client(), app)
        web = worker.test_client()
        pair = _refresh(web, person["refresh_token"]).get_json()
        pair = _refresh(web, pair["refresh_token"]).get_json()
        limited = _refresh(web, pair["refresh_token"])
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        clock.advance(61, worker)
        again = _refresh(web, pair["refresh_token"])  # the refused request did not use it up
        assert again.status_code == 200 and again.get_json()["refresh_token"] != pair["refresh_token"]


def test_a_released_session_whose_row_is_behind_the_store_is_rotated_after_a_catch_up(app, client, unwritten):
    person = register_person(client, app)
    pair = _refresh(client, person["refresh_token"]).get_json()
    assert _row(app, person["refresh_token"]).refresh_generation == 0  # the rotation waits in the journal
    with app.app_context():
        held_sessions.release([parse_refresh_token(pair["refresh_token"])[0]])
    with statements(app) as seen:
        again = _refresh(client, pair["refresh_token"])
    assert again.status_code == 200, again.get_json()
    updates = [statement for statement in seen if statement.lstrip().startswith("UPDATE auth_sessions ")]
    assert len(updates) == 3  # refused, caught up (the journal's write-behind), rotated
    assert _row(app, person["refresh_token"]).refresh_generation == 2
