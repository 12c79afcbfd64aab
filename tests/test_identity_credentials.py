"""Password reset by SMS, password change (and a first password for mini-program accounts), phone
change proving both numbers: what each ends, what it answers, and what it leaves in the audit chain."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app.extensions import db
from app.identity import channels
from app.identity.models import Person
from app.identity.sessions import issue_token_pair
from app.security.models import AuditEvent
from app.security.passwords import verify_password
from tests.support.helpers import (API, DEFAULT_PASSWORD, add_registry_person, auth_headers, issue_sms_code, login,
                           needs_redis, register_person, valid_id_number, valid_phone)

NEW_PASSWORD = "Renewed2026pw"


def _events(app, name):
    with app.app_context():
        return db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)).all()


def _me(client, token):
    return client.get(f"{API}/me", headers=auth_headers(token))


def _refresh(client, refresh_token):
    return client.post(f"{API}/auth/token", json={"grant_type": "refresh_token", "refresh_token": refresh_token})


def _reset(client, phone, code, password=NEW_PASSWORD):
    return client.post(f"{API}/auth/password-resets", json={"phone": phone, "sms_code": code,
                                                            "new_password": password})


def _outbox_code(app, phone):
    from app.identity import sms
    with app.app_context():
        return sms.last_outbox_code(phone)


# ---- reset


def test_a_reset_ends_every_session_including_one_opened_a_second_earlier(client, app, clock):
    person = register_person(client, app, name="柳一")
    second = login(client, person["phone"])
    assert client.post(f"{API}/auth/sms-codes", json={"phone": person["phone"], "purpose": "reset_password"}
                       ).status_code == 202
    code = _outbox_code(app, person["phone"])
    clock.advance(1, app)
    last = login(client, person["id_number"])  # a second before the reset
    response = _reset(client, person["phone"], code)
    assert response.status_code == 204 and response.headers["Cache-Control"] == "no-store"
    for tokens in (person, second, last):
        assert _me(client, tokens["access_token"]).status_code == 401
        assert _refresh(client, tokens["refresh_token"]).status_code == 401
    assert client.post(f"{API}/auth/token", json={"grant_type": "password", "username": person["id_number"],
                                                  "password": DEFAULT_PASSWORD}).status_code == 401
    fresh = login(client, person["id_number"], NEW_PASSWORD)
    assert _me(client, fresh["access_token"]).status_code == 200
    assert _refresh(client, fresh["refresh_token"]).status_code == 200
    [event] = _events(app, "auth.password_reset")
    assert event.subject_id == person["subject_id"] and event.details["sessions_ended"] == 3
    assert event.details["oidc_tokens_revoked"] == 0
    assert _reset(client, person["phone"], code, "Another2026x").status_code == 422  # the code worked once


def test_a_wrong_code_and_an_unknown_phone_answer_alike(client, app):
    person = register_person(client, app, name="柳二")
    stranger = valid_phone()
    for phone in (person["phone"], stranger):
        assert client.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": "reset_password"}
                           ).status_code == 202
    code = _outbox_code(app, person["phone"])
    wrong = _reset(client, person["phone"], f"{(int(code) + 1) % 1000000:06d}")
    unknown = _reset(client, stranger, code)
    assert wrong.status_code == unknown.status_code == 422
    assert wrong.get_json()["errors"] == unknown.get_json()["errors"] == {"sms_code": ["短信验证码错误或已失效，请重新获取"]}
    assert wrong.get_json()["detail"] == unknown.get_json()["detail"]
    assert login(client, person["id_number"])["access_token"]  # nothing changed


def test_the_new_password_must_meet_the_policy(client, app):
    person = register_person(client, app, name="柳三")
    response = _reset(client, person["phone"], issue_sms_code(app, person["phone"], "reset_password"), "short")
    assert response.status_code == 422
    assert response.get_json()["errors"]["new_password"] == ["密码至少8位，且须同时包含字母和数字"]


def test_a_reset_lifts_the_login_lock(client, app):
    person = register_person(client, app, name="柳四")
    for attempt in range(5):
        client.post(f"{API}/auth/token", json={"grant_type": "password", "username": person["id_number"],
                                               "password": f"Wrong-{attempt}-pw"})
    assert client.post(f"{API}/auth/token", json={"grant_type": "password", "username": person["id_number"],
                                                  "password": DEFAULT_PASSWORD}).status_code == 423
    assert _reset(client, person["phone"], issue_sms_code(app, person["phone"], "reset_password")).status_code == 204
    assert login(client, person["id_number"], NEW_PASSWORD)["access_token"]


@needs_redis("fifty concurrent resets across threads need PostgreSQL and Redis")
def test_fifty_concurrent_resets_with_one_code_succeed_once(app):
    client = app.test_client()
    person = register_person(client, app, name="柳五")
    code = issue_sms_code(app, person["phone"], "reset_password")
    barrier = threading.Barrier(50)

    def reset(index):
        barrier.wait(30)
        return app.test_client().post(f"{API}/auth/password-resets", json={
            "phone": person["phone"], "sms_code": code, "new_password": f"Concurrent{index:02d}pw"}).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = Counter(pool.map(reset, range(50)))
    assert statuses == {204: 1, 422: 49}, statuses
    assert len(_events(app, "auth.password_reset")) == 1
    with app.app_context():
        stored = db.session.scalar(select(Person.password_hash).where(Person.subject_id == person["subject_id"]))
        winners = [index for index in range(50) if verify_password(stored, f"Concurrent{index:02d}pw")]
    assert len(winners) == 1


# ---- change


def test_a_change_keeps_the_callers_session_and_ends_the_others(client, app):
    person = register_person(client, app, name="柳六")
    other = login(client, person["id_number"])
    response = client.post(f"{API}/me/password", headers=person["headers"],
                           json={"old_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 204
    assert _me(client, person["access_token"]).status_code == 200
    assert _refresh(client, person["refresh_token"]).status_code == 200
    assert _me(client, other["access_token"]).status_code == 401
    assert _refresh(client, other["refresh_token"]).status_code == 401
    assert login(client, person["phone"], NEW_PASSWORD)["access_token"]
    [event] = _events(app, "auth.password_changed")
    assert event.details == {"method": "old_password", "sessions_ended": 1}


def test_a_wrong_old_password_is_422_and_counts_toward_the_lock(client, app):
    person = register_person(client, app, name="柳七")
    answers = [client.post(f"{API}/me/password", headers=person["headers"],
                           json={"old_password": f"Wrong-{i}-pw", "new_password": NEW_PASSWORD}) for i in range(5)]
    assert [a.status_code for a in answers] == [422] * 4 + [423]
    assert answers[0].get_json()["errors"] == {"old_password": ["原密码不正确"]}
    assert int(answers[-1].headers["Retry-After"]) > 0
    locked = client.post(f"{API}/me/password", headers=person["headers"],
                         json={"old_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD})
    assert locked.status_code == 423  # not even the right password while the lock lasts
    missing = client.post(f"{API}/me/password", headers=person["headers"], json={"new_password": NEW_PASSWORD})
    assert missing.status_code == 422 and missing.get_json()["errors"] == {"old_password": ["请填写原密码"]}
    both = client.post(f"{API}/me/password", headers=person["headers"],
                       json={"old_password": "x", "sms_code": "123456", "new_password": NEW_PASSWORD})
    assert both.status_code == 422 and "sms_code" in both.get_json()["errors"]


def test_an_account_made_through_a_mini_program_sets_a_first_password_after_an_sms_check(client, app):
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="柳八")
    with app.app_context():
        person = channels.register_or_link_person(
            id_number=id_number, name="柳八", phone=phone, sms_code=issue_sms_code(app, phone, "bind"),
            channel="wechat", app_id="wx-app", open_id="o-liuba")
        assert person.password_hash is None
        tokens = issue_token_pair(person, channel="wechat")
    headers = auth_headers(tokens["access_token"])
    without = client.post(f"{API}/me/password", headers=headers,
                          json={"old_password": "anything1", "new_password": NEW_PASSWORD})
    assert without.status_code == 422 and "reset_password" in without.get_json()["errors"]["sms_code"][0]
    wrong = client.post(f"{API}/me/password", headers=headers, json={"sms_code": "000000", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 422
    code = issue_sms_code(app, phone, "reset_password")
    assert client.post(f"{API}/me/password", headers=headers,
                       json={"sms_code": code, "new_password": NEW_PASSWORD}).status_code == 204
    assert login(client, id_number, NEW_PASSWORD)["access_token"]
    assert _me(client, tokens["access_token"]).status_code == 200  # the caller's session stays
    assert _events(app, "auth.password_changed")[0].details["method"] == "sms"


# ---- phone


def _change_phone(client, headers, **body):
    return client.post(f"{API}/me/phone", headers=headers, json=body)


def test_a_phone_change_proves_both_numbers_and_ends_the_other_sessions(client, app):
    person = register_person(client, app, name="柳九")
    other = login(client, person["id_number"])
    new_phone = valid_phone()
    old_code = issue_sms_code(app, person["phone"], "change_phone")
    new_code = issue_sms_code(app, new_phone, "change_phone")
    missing_old = _change_phone(client, person["headers"], phone=new_phone, sms_code=new_code)
    assert missing_old.status_code == 422 and list(missing_old.get_json()["errors"]) == ["old_sms_code"]
    wrong_new = _change_phone(client, person["headers"], old_sms_code=old_code, phone=new_phone, sms_code="000000")
    assert wrong_new.status_code == 422 and list(wrong_new.get_json()["errors"]) == ["sms_code"]
    response = _change_phone(client, person["headers"], old_sms_code=old_code, phone=new_phone, sms_code=new_code)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"phone_masked": new_phone[:3] + "****" + new_phone[-4:]}
    assert login(client, new_phone)["access_token"]
    assert client.post(f"{API}/auth/token", json={"grant_type": "password", "username": person["phone"],
                                                  "password": DEFAULT_PASSWORD}).status_code == 401
    assert _me(client, person["access_token"]).status_code == 200
    assert _me(client, other["access_token"]).status_code == 401
    [event] = _events(app, "person.phone_changed")
    assert event.details["to"] == new_phone[:3] + "****" + new_phone[-4:] and event.details["sessions_ended"] == 1
    assert new_phone not in str(event.details) and person["phone"] not in str(event.details)


def test_a_phone_of_another_account_is_409_and_the_same_phone_422(client, app):
    alice, bob = register_person(client, app, name="柳十"), register_person(client, app, name="柳十一")
    taken = _change_phone(client, alice["headers"], old_sms_code=issue_sms_code(app, alice["phone"], "change_phone"),
                          phone=bob["phone"], sms_code=issue_sms_code(app, bob["phone"], "change_phone"))
    assert taken.status_code == 409
    same = _change_phone(client, alice["headers"], old_sms_code="123456", phone=alice["phone"], sms_code="123456")
    assert same.status_code == 422 and "phone" in same.get_json()["errors"]
    with app.app_context():
        assert db.session.scalar(select(Person).where(Person.subject_id == alice["subject_id"])).phone == alice["phone"]


def test_a_reset_revokes_the_tokens_relying_parties_hold(client, app):
    from datetime import timedelta

    from app.oidc.models import OidcToken
    from app.timeutil import utcnow
    person = register_person(client, app, name="柳十二")
    with app.app_context():
        db.session.add(OidcToken(family_id="f1", client_id="c_rp", subject_id=person["subject_id"], scope="openid",
                                 access_token_hash="a" * 64, auth_time=0, acr="L2", amr=["pwd"],
                                 access_expires_at=utcnow() + timedelta(minutes=10)))
        db.session.commit()
    assert _reset(client, person["phone"], issue_sms_code(app, person["phone"], "reset_password")).status_code == 204
    with app.app_context():
        assert db.session.scalar(select(OidcToken.revoked_at)) is not None
    assert _events(app, "auth.password_reset")[0].details["oidc_tokens_revoked"] == 1
