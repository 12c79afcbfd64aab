"""Broken authentication (OWASP API2): forged, altered, expired, foreign and malformed access tokens
are 401 problem+json with WWW-Authenticate on every protected endpoint, never 500, never accepted."""
from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.extensions import db
from app.security import keys
from app.security import tokens as access_tokens
from app.security.models import SigningKey
from app.security.tokens import ACCESS_PURPOSE, issue_access_token
from app.timeutil import utcnow
from tests.support.helpers import API
from tests.support.world import build_world, is_problem


@pytest.fixture
def world(app, client):
    return build_world(app, client)


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _parts(token: str):
    head, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(head))), json.loads(base64.urlsafe_b64decode(pad(payload))),
            signature)


def _mint(app, **claims_and_ttl) -> str:
    ttl = claims_and_ttl.pop("ttl", None)
    with app.app_context():
        token, _ = issue_access_token(claims_and_ttl.pop("sub"), roles=claims_and_ttl.pop("roles", ["citizen"]),
                                      extra={"sub_type": "person", "channel": "app", **claims_and_ttl}, ttl=ttl)
    return token


def _hostile_tokens(app, world) -> dict[str, str]:
    """Each a token that must not be accepted."""
    alice = world.alice
    good = alice["access_token"]
    head, payload, signature = _parts(good)
    other_key = ec.generate_private_key(ec.SECP256R1())
    with app.app_context():
        kid, _private = keys.active_key(ACCESS_PURPOSE)
        public_pem = keys.public_key(kid).public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {**payload, "iat": now, "nbf": now, "exp": now + 600}
    escalated = {**payload, "roles": ["citizen", "platform_admin", "issuer", "hall_admin"]}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{_b64(payload)}.",
        "alg none, no kid": f"{_b64({'alg': 'none'})}.{_b64(payload)}.",
        "alg None spelled oddly": f"{_b64({'alg': 'nOnE', 'typ': 'at+jwt', 'kid': kid})}.{_b64(payload)}.",
        "tampered payload (roles)": f"{_b64(head)}.{_b64(escalated)}.{signature}",
        "tampered payload (subject)": f"{_b64(head)}.{_b64({**payload, 'sub': world.bob['subject_id']})}.{signature}",
        "tampered header (kid)": f"{_b64({**head, 'kid': head['kid'] + 'x'})}.{_b64(payload)}.{signature}",
        "signature dropped": f"{_b64(head)}.{_b64(payload)}.",
        "signature of another token": f"{_b64(head)}.{_b64(payload)}.{_parts(world.bob['access_token'])[2]}",
        "expired (our key)": _mint(app, sub=alice["subject_id"], ttl=-3600),
        "expired just now (beyond leeway)": _mint(app, sub=alice["subject_id"], ttl=-30),
        "not yet valid": jwt.encode({**claims, "nbf": now + 3600, "iat": now + 3600},
                                    _private, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}),
        "unknown key, our kid": jwt.encode(claims, other_key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}),
        "unknown key, unknown kid": jwt.encode(claims, other_key, algorithm="ES256",
                                               headers={"kid": "access-19700101-deadbeef", "typ": "at+jwt"}),
        "HS256 with the public key as secret": jwt.encode(
            claims, public_pem.decode(), algorithm="HS256", headers={"kid": kid, "typ": "at+jwt"})
        if hasattr(jwt, "encode") and _hmac_with_pem_allowed() else "x.y.z",
        "RS256 own key": jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"}),
        "embedded jwk header": jwt.encode(claims, other_key, algorithm="ES256", headers={
            "kid": kid, "typ": "at+jwt", "jwk": {"kty": "EC", "crv": "P-256"}}),
        "jku header": jwt.encode(claims, other_key, algorithm="ES256", headers={
            "kid": kid, "typ": "at+jwt", "jku": "http://127.0.0.1:9/jwks.json"}),
        "wrong typ (not an access token)": jwt.encode(claims, _private, algorithm="ES256",
                                                      headers={"kid": kid, "typ": "dc+sd-jwt"}),
        "wrong issuer": jwt.encode({**claims, "iss": "https://evil.example"}, _private, algorithm="ES256",
                                   headers={"kid": kid, "typ": "at+jwt"}),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, _private, algorithm="ES256",
                             headers={"kid": kid, "typ": "at+jwt"}),
        "no jti": jwt.encode({k: v for k, v in claims.items() if k != "jti"}, _private, algorithm="ES256",
                             headers={"kid": kid, "typ": "at+jwt"}),
        "kid with SQL": jwt.encode(claims, other_key, algorithm="ES256",
                                   headers={"kid": "' OR 1=1 --", "typ": "at+jwt"}),
        "kid path traversal": jwt.encode(claims, other_key, algorithm="ES256",
                                         headers={"kid": "../../../../dev/null", "typ": "at+jwt"}),
        "exp 1e309": f"{_b64(head)}.{_b64(json.dumps(payload).replace(str(payload['exp']), '1e309').encode())}."
                     f"{signature}",
        "not base64": "eyJ!!!.eyJ$$$.sig",
        "two parts": f"{_b64(head)}.{_b64(payload)}",
        "garbage": "not-a-jwt",
        "huge": "a" * 8000,
        "control characters": good[:20] + "\u0007\u001b" + good[22:],
        "refresh token instead": alice["refresh_token"],
    }


def _hmac_with_pem_allowed() -> bool:
    """PyJWT refuses to HMAC with a PEM key (the classic confusion); then there is nothing to send."""
    try:
        jwt.encode({"a": 1}, "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----", algorithm="HS256")
        return True
    except jwt.InvalidKeyError:
        return False


PROTECTED = [("GET", f"{API}/me", None), ("GET", f"{API}/wallet/licenses", None), ("GET", f"{API}/applications", None),
             ("POST", f"{API}/applications", {"service_code": "x", "form": {}, "materials": []}),
             ("GET", f"{API}/inbox", None), ("POST", f"{API}/auth/act-as", {"credit_code": "x"}),
             ("POST", f"{API}/licenses", {"license_type": "x"}), ("GET", f"{API}/halls/370102/applications", None)]


def test_hostile_tokens_are_401_everywhere(client, app, world):
    wrong = []
    for name, token in _hostile_tokens(app, world).items():
        for method, url, body in PROTECTED:
            try:
                response = client.open(url, method=method, json=body,
                                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k"})
            except ValueError:  # a header the client cannot even send
                continue
            if response.status_code != 401 or not is_problem(response, 401) \
                    or "Bearer" not in response.headers.get("WWW-Authenticate", ""):
                wrong.append((name, method, url, response.status_code))
    assert not wrong, wrong
    assert client.get(f"{API}/me", headers=world.alice["headers"]).status_code == 200


def test_optional_auth_endpoints_refuse_bad_tokens_instead_of_ignoring_them(client, app, world):
    """A bad token on an endpoint where a token is optional is still 401 (not silently anonymous)."""
    tokens = _hostile_tokens(app, world)
    for name in ("alg none", "tampered payload (roles)", "expired (our key)", "unknown key, our kid"):
        for method, url, body in (("GET", f"{API}/halls", None), ("GET", f"{API}/services", None),
                                  ("POST", f"{API}/verifications", {"code": world.ids["code"]})):
            response = client.open(url, method=method, json=body, headers={"Authorization": f"Bearer {tokens[name]}"})
            assert response.status_code == 401 and is_problem(response, 401), (name, url, response.status_code)
    # and the online code was not consumed by those refused attempts
    assert client.post(f"{API}/verifications", json={"code": world.ids["code"]}).get_json()["valid"] is True


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer", "Bearer ", "bearer", "Token abc",
                                    "Bearer a b c", "Digest username=x", "Bearer " + "x" * 20000])
def test_malformed_authorization_headers_are_401(client, header):
    response = client.get(f"{API}/me", headers={"Authorization": header})
    assert response.status_code == 401 and is_problem(response, 401)


def test_a_logged_out_token_stays_dead(client, app, world):
    alice = world.alice
    assert client.post(f"{API}/auth/logout", json={"refresh_token": alice["refresh_token"]},
                       headers=alice["headers"]).status_code == 204
    assert client.get(f"{API}/me", headers=alice["headers"]).status_code == 401
    refreshed = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                       "refresh_token": alice["refresh_token"]})
    assert refreshed.status_code == 401 and is_problem(refreshed, 401)


def test_a_token_whose_signature_was_checked_once_still_expires(client, app, world, monkeypatch):
    alice = world.alice
    assert client.get(f"{API}/me", headers=alice["headers"]).status_code == 200  # verified and remembered
    lifetime = app.config["ACCESS_TOKEN_TTL"] + access_tokens.LEEWAY_SECONDS + 1
    later = time.time() + lifetime
    monkeypatch.setattr(access_tokens.time, "time", lambda: later)
    response = client.get(f"{API}/me", headers=alice["headers"])
    assert response.status_code == 401 and response.get_json()["detail"] == "访问令牌已过期"


def test_client_tokens_have_no_refresh_token_and_cannot_be_refreshed(client, app, world):
    client_id, secret = world.issuer_credentials
    body = client.post(f"{API}/auth/token", json={"grant_type": "client_credentials", "client_id": client_id,
                                                  "client_secret": secret}).get_json()
    assert "refresh_token" not in body or not body["refresh_token"]
    wrong = client.post(f"{API}/auth/token", json={"grant_type": "client_credentials", "client_id": client_id,
                                                   "client_secret": secret[:-1] + ("a" if secret[-1] != "a" else "b")})
    assert wrong.status_code == 401 and is_problem(wrong, 401)



def test_a_key_stops_being_published_when_its_publication_ends_though_a_worker_read_it(app, monkeypatch, clock):
    def end_publication(kid, after_seconds):  # what a rotation in another process does
        db.session.get(SigningKey, kid).publish_until = utcnow() + timedelta(seconds=after_seconds)
        db.session.commit()

    with app.app_context():
        monkeypatch.setattr(keys, "ACTIVE_CACHE_SECONDS", 0)  # the worker reads keys again at once
        kid, _ = keys.active_key(ACCESS_PURPOSE)
        assert keys.published_key(kid)[0] == ACCESS_PURPOSE
        end_publication(kid, -1)
        assert keys.published_key(kid) is None and keys.public_key(kid) is None
        monkeypatch.setattr(keys, "ACTIVE_CACHE_SECONDS", 3600)  # read once, kept for an hour
        kid, _ = keys.active_key("issuer:c_test")
        end_publication(kid, 1)
        assert keys.published_key(kid) is not None
        clock.advance(1.1)
        assert keys.published_key(kid) is None  # the end is checked on every call


def test_an_issued_access_token_is_an_es256_jwt_that_pyjwt_verifies_with_the_published_key(app):
    """Access tokens are signed by `jose.es256_sign_with_header` under a header kept per key: PyJWT, an
    independent implementation, reads the header and verifies signature and claims with the JWKS key."""
    with app.app_context():
        first, claims = issue_access_token("p_0123456789abcdef0123", roles=["citizen", "citizen"],
                                           extra={"sid": "s1", "channel": "app"})
        second, _ = issue_access_token("p_fedcba9876543210fedc", roles=["hall_staff"])
        kid, _private = keys.active_key(ACCESS_PURPOSE)
        public = keys.public_key(kid)
    assert jwt.get_unverified_header(first) == {"alg": "ES256", "kid": kid, "typ": "at+jwt"}
    assert first.split(".")[0] == second.split(".")[0]  # one header per key
    verified = jwt.decode(first, public, algorithms=["ES256"], options={"verify_aud": False})
    assert verified == claims and verified["roles"] == ["citizen"] and verified["sid"] == "s1"
    assert verified["exp"] - verified["iat"] == app.config["ACCESS_TOKEN_TTL"]
    assert jwt.decode(second, public, algorithms=["ES256"])["sub"] == "p_fedcba9876543210fedc"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(first[:-6] + ("AAAAAA" if not first.endswith("AAAAAA") else "BBBBBB"), public, algorithms=["ES256"])
