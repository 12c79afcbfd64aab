"""Sign-in sessions: listing them, ending one (its tokens stop at once, on every worker), logout with
the access token alone, and a sign-in that raced a credentials change."""
from __future__ import annotations

import jwt
from sqlalchemy import select

from app.extensions import db
from app.identity import grants, sessions
from app.identity.models import AuthSession, Person
from app.security.models import AuditEvent
from tests.support.helpers import API, another_worker, auth_headers, issue_sms_code, login, needs_redis, register_person


def _sessions(client, headers):
    response = client.get(f"{API}/me/sessions", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def _refresh(client, refresh_token):
    return client.post(f"{API}/auth/token", json={"grant_type": "refresh_token", "refresh_token": refresh_token})


def _sid(token):
    return jwt.decode(token, options={"verify_signature": False})["sid"]


def test_one_session_per_sign_in_with_the_current_one_marked(client, app):
    person = register_person(client, app, name="秦一")
    other = login(client, person["phone"])
    items = _sessions(client, person["headers"])
    assert len(items) == 2
    assert set(items[0]) == {"session_id", "created_at", "last_used_at", "channel", "current", "acting_for"}
    assert {item["session_id"] for item in items} == {_sid(person["access_token"]), _sid(other["access_token"])}
    current = [item for item in items if item["current"]]
    assert [item["session_id"] for item in current] == [_sid(person["access_token"])]
    assert all(item["channel"] == "app" and item["created_at"].endswith("Z") for item in items)
    refreshed = _refresh(client, other["refresh_token"]).get_json()
    assert _sid(refreshed["access_token"]) == _sid(other["access_token"])  # a refresh stays in its session
    items = _sessions(client, person["headers"])
    assert len(items) == 2 and items[0]["session_id"] == _sid(other["access_token"])  # most recently used first
    assert items[0]["last_used_at"] >= items[0]["created_at"]


def test_ending_a_session_stops_its_tokens_at_once(client, app):
    person = register_person(client, app, name="秦二")
    other = login(client, person["id_number"])
    response = client.delete(f"{API}/me/sessions/{_sid(other['access_token'])}", headers=person["headers"])
    assert response.status_code == 204
    gone = client.get(f"{API}/me", headers=auth_headers(other["access_token"]))
    assert gone.status_code == 401 and gone.mimetype == "application/problem+json"
    assert _refresh(client, other["refresh_token"]).status_code == 401
    assert client.get(f"{API}/me", headers=person["headers"]).status_code == 200
    assert [item["session_id"] for item in _sessions(client, person["headers"])] == [_sid(person["access_token"])]
    again = client.delete(f"{API}/me/sessions/{_sid(other['access_token'])}", headers=person["headers"])
    assert again.status_code == 404
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "session.ended"))
        assert event.subject_id == person["subject_id"]


def test_another_persons_session_is_404_and_stays(client, app):
    alice, bob = register_person(client, app, name="秦三"), register_person(client, app, name="秦四")
    response = client.delete(f"{API}/me/sessions/{_sid(bob['access_token'])}", headers=alice["headers"])
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert client.delete(f"{API}/me/sessions/no-such-session", headers=alice["headers"]).status_code == 404
    assert client.get(f"{API}/me", headers=bob["headers"]).status_code == 200
    assert _sid(bob["access_token"]) not in {item["session_id"] for item in _sessions(client, alice["headers"])}


def test_logout_with_the_access_token_alone_ends_the_session(client, app):
    person = register_person(client, app, name="秦五")
    response = client.post(f"{API}/auth/logout", headers=person["headers"])
    assert response.status_code == 204
    assert client.get(f"{API}/me", headers=person["headers"]).status_code == 401
    assert _refresh(client, person["refresh_token"]).status_code == 401
    nothing = client.post(f"{API}/auth/logout", json={})
    assert nothing.status_code == 401 and nothing.mimetype == "application/problem+json"


@needs_redis("a session ended on one worker is seen by another only through Redis")
def test_a_session_ended_on_one_worker_is_refused_by_another(app):
    with another_worker(app) as first, another_worker(app) as second:
        person = register_person(first.test_client(), first, name="秦六")
        other = login(first.test_client(), person["id_number"])
        assert second.test_client().get(f"{API}/me", headers=auth_headers(other["access_token"])).status_code == 200
        assert first.test_client().delete(f"{API}/me/sessions/{_sid(other['access_token'])}",
                                          headers=person["headers"]).status_code == 204
        assert second.test_client().get(f"{API}/me", headers=auth_headers(other["access_token"])).status_code == 401
        reset = first.test_client().post(f"{API}/auth/password-resets", json={
            "phone": person["phone"], "sms_code": issue_sms_code(first, person["phone"], "reset_password"),
            "new_password": "Renewed2026pw"})
        assert reset.status_code == 204
        assert second.test_client().get(f"{API}/me", headers=person["headers"]).status_code == 401


def test_a_sign_in_that_raced_a_reset_is_dead(client, app, monkeypatch):
    """A login that read the credentials version before a reset and committed after it: its access
    token and its refresh token are both refused."""
    person = register_person(client, app, name="秦七")
    with app.app_context():
        stale = db.session.scalar(select(Person.credentials_version).where(Person.subject_id == person["subject_id"]))
    assert client.post(f"{API}/auth/password-resets", json={
        "phone": person["phone"], "sms_code": issue_sms_code(app, person["phone"], "reset_password"),
        "new_password": "Renewed2026pw"}).status_code == 204
    monkeypatch.setattr(sessions, "_credentials_version", lambda person_id: stale)
    with app.app_context():
        raced = grants.password_grant(username=person["id_number"], password="Renewed2026pw")
    monkeypatch.undo()
    assert client.get(f"{API}/me", headers=auth_headers(raced["access_token"])).status_code == 401
    assert _refresh(client, raced["refresh_token"]).status_code == 401
    fresh = login(client, person["id_number"], "Renewed2026pw")
    assert client.get(f"{API}/me", headers=auth_headers(fresh["access_token"])).status_code == 200


def test_company_sessions_are_listed_with_whom_they_act_for(client, app):
    from tests.support.helpers import add_registry_entity, valid_credit_code
    person = register_person(client, app, name="秦八")
    code = valid_credit_code()
    add_registry_entity(app, credit_code=code, name="秦八商贸有限公司", representative_id_number=person["id_number"])
    assert client.post(f"{API}/enterprises", json={"credit_code": code, "name": "秦八商贸有限公司"},
                       headers=person["headers"]).status_code == 201
    company = client.post(f"{API}/auth/act-as", json={"credit_code": code}, headers=person["headers"]).get_json()
    items = _sessions(client, person["headers"])
    acting = [item for item in items if item["acting_for"]]
    assert len(items) == 2 and len(acting) == 1 and acting[0]["acting_for"].startswith("e_")
    company_tokens = client.get(f"{API}/me/sessions", headers=auth_headers(company["access_token"]))
    assert company_tokens.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(AuthSession).where(
            AuthSession.session_id == _sid(company["access_token"]))).actor_id == person["subject_id"]


def test_a_disabled_account_cannot_refresh_and_its_session_ends(client, app):
    person = register_person(client, app, name="停用测试")
    with app.app_context():
        db.session.scalar(select(Person).where(Person.subject_id == person["subject_id"])).active = False
        db.session.commit()
    refused = _refresh(client, person["refresh_token"])
    assert refused.status_code == 401 and refused.get_json()["detail"] == "登录会话已失效，请重新登录"
    with app.app_context():
        db.session.scalar(select(Person).where(Person.subject_id == person["subject_id"])).active = True
        db.session.commit()
        assert db.session.scalar(select(AuthSession.revoked_at).where(
            AuthSession.session_id == _sid(person["access_token"]))) is not None
    assert _refresh(client, person["refresh_token"]).status_code == 401  # the session stays ended
