"""Token grants, refresh rotation and reuse, logout, JWKS and key rotation, clients, grant validation."""
from __future__ import annotations

import jwt
from sqlalchemy import text

from app.extensions import db
from app.identity import persons
from app.security import tokens
from tests.support.helpers import (API, DEFAULT_PASSWORD, auth_headers, client_token, create_client, create_staff, login,
                           register_person, valid_id_number)

ID_CARD, DRIVING = "11100000000013100M001", "11100000000013100M009"  # seeded license types


def _token(client, **body):
    return client.post(f"{API}/auth/token", json=body)


def _refresh(client, refresh_token):
    return _token(client, grant_type="refresh_token", refresh_token=refresh_token)


def _me(client, access_token):
    return client.get(f"{API}/me", headers=auth_headers(access_token))


def _verify_with_jwks(client, token):
    header = jwt.get_unverified_header(token)
    keys = {key["kid"]: key for key in client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert header["kid"] in keys
    public = jwt.PyJWK(keys[header["kid"]]).key
    return header, jwt.decode(token, public, algorithms=["ES256"], issuer="http://localhost")


def test_password_grant_by_id_number_and_by_phone(client, app):
    person = register_person(client, app)
    for username in (person["id_number"], person["phone"]):
        body = login(client, username)
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 900
        assert body["refresh_token"].startswith("rt_")


def test_access_token_is_es256_with_kid_and_subject_not_id_number(client, app):
    person = register_person(client, app)
    header, claims = _verify_with_jwks(client, person["access_token"])
    assert header["alg"] == "ES256" and header["kid"]
    assert claims["sub"] == person["subject_id"]
    assert person["id_number"] not in person["access_token"]
    assert person["id_number"] not in str(claims)
    assert claims["roles"] == ["citizen"]
    assert claims["sub_type"] == "person" and claims["channel"] == "app"
    assert claims["jti"] and claims["exp"] - claims["iat"] == 900
    assert len(claims["sid"]) == 32 and claims["ver"] == 0  # the session, the credentials version


def test_wrong_password_is_401_problem(client, app):
    person = register_person(client, app)
    response = _token(client, grant_type="password", username=person["id_number"], password="Wrong12345")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "用户名或密码错误"
    unknown = _token(client, grant_type="password", username=valid_id_number(), password="Wrong12345")
    assert unknown.status_code == 401 and unknown.get_json()["detail"] == "用户名或密码错误"


def test_refresh_rotates_and_reuse_revokes_the_family(client, app):
    person = register_person(client, app)
    first = _refresh(client, person["refresh_token"])
    assert first.status_code == 200
    second_pair = first.get_json()
    assert second_pair["refresh_token"] != person["refresh_token"]
    assert _me(client, second_pair["access_token"]).status_code == 200

    reuse = _refresh(client, person["refresh_token"])
    assert reuse.status_code == 401
    assert "注销" in reuse.get_json()["detail"]
    # the whole family is gone: the rotated refresh token and the access tokens issued with it
    assert _refresh(client, second_pair["refresh_token"]).status_code == 401
    assert _me(client, second_pair["access_token"]).status_code == 401
    assert _me(client, person["access_token"]).status_code == 401
    # another session of the same person is untouched
    other = login(client, person["id_number"])
    assert _me(client, other["access_token"]).status_code == 200
    assert _refresh(client, other["refresh_token"]).status_code == 200
    with app.app_context():
        events = db.session.execute(text("SELECT event FROM audit_events ORDER BY seq")).scalars().all()
        assert "auth.refresh_reused" in events


def test_refresh_tokens_are_stored_hashed(client, app):
    person = register_person(client, app)
    rotated = _refresh(client, person["refresh_token"]).get_json()
    with app.app_context():
        stored = db.session.execute(text("SELECT refresh_hash FROM auth_sessions")).scalars().all()
    assert stored and not {person["refresh_token"], rotated["refresh_token"]} & set(stored)
    assert all(len(value) == 64 for value in stored)


def test_a_token_of_the_live_generation_that_is_not_the_stored_one_is_refused_without_ending_the_session(client, app):
    person = register_person(client, app)
    session_id, generation, _secret = person["refresh_token"].removeprefix("rt_").split(".")
    forged = _refresh(client, f"rt_{session_id}.{generation}.guessed")
    assert forged.status_code == 401 and forged.get_json()["detail"] == "刷新令牌无效"
    ahead = _refresh(client, f"rt_{session_id}.{int(generation) + 5}.guessed")
    assert ahead.status_code == 401 and ahead.get_json()["detail"] == "刷新令牌无效"
    assert _me(client, person["access_token"]).status_code == 200
    assert _refresh(client, person["refresh_token"]).status_code == 200


def test_an_old_style_refresh_token_is_honoured_once_and_its_session_holds_the_next(client, app):
    from datetime import timedelta

    from app.identity.common import sha256_hex
    from app.identity.models import AuthSession, RefreshToken
    from app.timeutil import utcnow
    person = register_person(client, app)
    session_id = person["refresh_token"].removeprefix("rt_").split(".")[0]
    legacy = "rt_" + "L" * 43  # the format sessions issued before they held their own token
    with app.app_context():
        row = db.session.query(AuthSession).filter_by(session_id=session_id).one()
        row.refresh_hash, row.refresh_generation = None, 0  # as the migration leaves a session
        now = utcnow()
        db.session.add(RefreshToken(token_hash=sha256_hex(legacy), family_id=session_id, subject_id=row.subject_id,
                                    channel="app", access_jti="j", access_exp=0, created_at=now,
                                    expires_at=now + timedelta(days=1)))
        db.session.commit()
    first = _refresh(client, legacy)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["refresh_token"].startswith(f"rt_{session_id}.1.")
    assert _refresh(client, first.get_json()["refresh_token"]).status_code == 200
    again = _refresh(client, legacy)  # used before: the session ends
    assert again.status_code == 401 and "注销" in again.get_json()["detail"]
    assert _me(client, first.get_json()["access_token"]).status_code == 401


def test_unknown_refresh_token_is_401(client, app):
    response = _refresh(client, "rt_not-a-real-token")
    assert response.status_code == 401


def test_logout_kills_the_access_token_and_the_family(client, app):
    person = register_person(client, app)
    rotated = _refresh(client, person["refresh_token"]).get_json()
    response = client.post(f"{API}/auth/logout", json={"refresh_token": rotated["refresh_token"]},
                           headers=auth_headers(rotated["access_token"]))
    assert response.status_code == 204
    assert _me(client, rotated["access_token"]).status_code == 401
    assert _me(client, rotated["access_token"]).get_json()["detail"] == "访问令牌已注销"
    assert _refresh(client, rotated["refresh_token"]).status_code == 401
    assert _me(client, person["access_token"]).status_code == 401


def test_logout_with_only_the_refresh_token_still_ends_the_session(client, app):
    person = register_person(client, app)
    response = client.post(f"{API}/auth/logout", json={"refresh_token": person["refresh_token"]},
                           headers={"Authorization": "Bearer expired.or.garbage"})
    assert response.status_code == 204
    assert _me(client, person["access_token"]).status_code == 401
    assert _refresh(client, person["refresh_token"]).status_code == 401


def test_logout_needs_an_access_or_a_refresh_token(client, app):
    response = client.post(f"{API}/auth/logout", json={"refresh_token": "rt_not-a-real-token"})
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    person = register_person(client, app)
    response = client.post(f"{API}/auth/logout", json={}, headers=person["headers"])
    assert response.status_code == 204
    assert _me(client, person["access_token"]).status_code == 401
    assert _refresh(client, person["refresh_token"]).status_code == 401


def test_tampered_or_missing_token_is_401(client, app):
    person = register_person(client, app)
    head, payload, signature = person["access_token"].split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"citizen"', b'"platform_admin"')).decode()
    assert _me(client, f"{head}.{forged_payload}.{signature}").status_code == 401
    missing = client.get(f"{API}/me")
    assert missing.status_code == 401 and missing.mimetype == "application/problem+json"


def test_key_rotation_keeps_old_tokens_valid_and_publishes_both_keys(client, app):
    person = register_person(client, app)
    old_kid = jwt.get_unverified_header(person["access_token"])["kid"]
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    app.extensions.pop("signing_key_cache", None)
    fresh = login(client, person["id_number"])
    new_kid = jwt.get_unverified_header(fresh["access_token"])["kid"]
    assert new_kid != old_kid
    kids = {key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert {old_kid, new_kid} <= kids
    assert _me(client, person["access_token"]).status_code == 200
    _verify_with_jwks(client, fresh["access_token"])


def test_client_credentials_grant(client, app):
    client_id, secret = create_client(app, "issuer", license_types=[ID_CARD, DRIVING])
    response = _token(client, grant_type="client_credentials", client_id=client_id, client_secret=secret)
    assert response.status_code == 200
    body = response.get_json()
    assert "refresh_token" not in body
    _, claims = _verify_with_jwks(client, body["access_token"])
    assert claims["sub"] == client_id and claims["client_id"] == client_id
    assert claims["sub_type"] == "client" and claims["client_kind"] == "issuer"
    assert claims["roles"] == ["issuer"] and claims["license_types"] == [ID_CARD, DRIVING]
    assert "sid" not in claims and "ver" not in claims
    assert len(claims["credit_code"]) == 18
    wrong = _token(client, grant_type="client_credentials", client_id=client_id, client_secret=secret + "x")
    assert wrong.status_code == 401
    with app.app_context():
        stored = db.session.execute(text("SELECT secret_hash FROM api_clients")).scalar()
    assert stored != secret and secret not in stored


def test_third_party_and_verifier_clients(client, app):
    tp_id, tp_secret = create_client(app, "third_party", scopes=["licenses:verify"], channel="wechat")
    claims = jwt.decode(client_token(client, tp_id, tp_secret), options={"verify_signature": False})
    assert claims["roles"] == ["third_party"] and claims["scopes"] == ["licenses:verify"]
    assert claims["channel"] == "wechat" and "license_types" not in claims
    v_id, v_secret = create_client(app, "verifier", license_types=[ID_CARD])
    me = client.get(f"{API}/me", headers=auth_headers(client_token(client, v_id, v_secret))).get_json()
    assert me["subject_type"] == "client" and me["subject_id"] == v_id and me["roles"] == ["verifier"]


def test_staff_tokens_carry_roles_and_halls(client, app):
    headers = create_staff(app, "370100", "hall_admin")
    claims = jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})
    assert set(claims["roles"]) == {"citizen", "hall_admin"}
    assert claims["halls"] == {"370100": "hall_admin"}
    admin = create_staff(app, None, "platform_admin")
    claims = jwt.decode(admin["Authorization"][7:], options={"verify_signature": False})
    assert "platform_admin" in claims["roles"] and "halls" not in claims


def test_a_refresh_carries_the_staff_roles_and_halls_of_that_moment(client, app):
    id_number = valid_id_number()
    with app.app_context():
        persons.create_staff(role="hall_staff", hall_code="370102", id_number=id_number, name="李工作",
                             password=DEFAULT_PASSWORD)
        db.session.commit()
    signed_in = login(client, id_number)
    with app.app_context():
        persons.create_staff(role="hall_admin", hall_code="370100", id_number=id_number, name="李工作")
        db.session.commit()
    refreshed = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                       "refresh_token": signed_in["refresh_token"]}).get_json()
    before, after = (jwt.decode(body["access_token"], options={"verify_signature": False})
                     for body in (signed_in, refreshed))
    assert before["halls"] == {"370102": "hall_staff"} and set(before["roles"]) == {"citizen", "hall_staff"}
    assert after["halls"] == {"370102": "hall_staff", "370100": "hall_admin"}
    assert set(after["roles"]) == {"citizen", "hall_staff", "hall_admin"}


def test_each_grant_validates_its_own_fields(client, app):
    missing = _token(client, grant_type="password", username="13800138000")
    assert missing.status_code == 422
    assert missing.get_json()["errors"] == {"password": ["使用 password 授权方式时必须提供密码"]}
    foreign = _token(client, grant_type="refresh_token", refresh_token="rt_x", client_secret="s")
    assert foreign.status_code == 422
    assert foreign.get_json()["errors"] == {"client_secret": ["refresh_token 授权方式不接受客户端密钥"]}
    bad_grant = _token(client, grant_type="implicit")
    assert bad_grant.status_code == 422 and "grant_type" in bad_grant.get_json()["errors"]
    bad_code = _token(client, grant_type="sms", phone="13800138000", code="12ab")
    assert bad_code.get_json()["errors"] == {"code": ["验证码应为6位数字"]}
    unknown = _token(client, grant_type="password", username="a", password="b", scope="all")
    assert unknown.status_code == 422 and unknown.get_json()["errors"]["scope"] == ["不允许的字段"]
    assert _token(client).get_json()["errors"]["grant_type"] == ["缺少必填字段：授权方式"]


def test_token_responses_are_not_cached(client, app):
    person = register_person(client, app)
    response = _refresh(client, person["refresh_token"])
    assert response.headers["Cache-Control"] == "no-store"


def test_expired_access_token_is_401(client, app):
    person = register_person(client, app)
    with app.app_context():
        token, _ = tokens.issue_access_token(person["subject_id"], roles=["citizen"], ttl=-60)
    response = _me(client, token)
    assert response.status_code == 401 and response.get_json()["detail"] == "访问令牌已过期"


def test_password_is_hashed_with_argon2id(client, app):
    register_person(client, app)
    with app.app_context():
        stored = db.session.execute(text("SELECT password_hash FROM persons")).scalar()
    assert stored.startswith("$argon2id$") and DEFAULT_PASSWORD not in stored


def test_the_access_token_key_is_published_before_any_login(app_factory, tmp_path):
    """A fresh database and a fresh app: the JWKS already holds the access-token key, and the first
    token is signed with it (a relying party caching the set at start-up can verify it)."""
    from app.schema_migrations import upgrade_schema

    from app.cli import SEEDERS
    fresh = app_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with fresh.app_context():
            upgrade_schema()
            assert db.session.execute(text("SELECT COUNT(*) FROM signing_keys")).scalar() == 0
        web = fresh.test_client()
        keys = web.get("/.well-known/jwks.json").get_json()["keys"]
        assert [key["kid"].split("-")[0] for key in keys] == ["access"]
        with fresh.app_context():
            from app.security.tokens import issue_access_token
            token, _ = issue_access_token("p_test", roles=["citizen"])
        assert jwt.get_unverified_header(token)["kid"] == keys[0]["kid"]
        assert web.get("/.well-known/jwks.json").get_json()["keys"] == keys  # made once
        assert ("access-token key", "app.security.keys:ensure_access_key") in SEEDERS
    finally:
        with fresh.app_context():
            db.session.remove()
            db.engine.dispose()
