"""Client authentication and the token lifecycle seen from other systems: private_key_jwt (client
assertions signed with PyJWT), revocation (RFC 7009), introspection (RFC 7662) for resource
servers, RP-initiated logout with exact post-logout URIs and back-channel logout, key rotation,
and the operator command that registers a relying party."""
from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from app.extensions import db
from app.oidc.settings import ID_TOKEN_TTL
from app.security.models import SigningKey
from app.timeutil import as_aware
from tests.support.oidc import (BACKCHANNEL_EVENT, authorization_request, authorize, code_from, exchange,
                                new_person, oic_client, page_sign_in, register_client, run_queued_jobs, sign_in,
                                token_request, userinfo, verify_with_jwks)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def person(provider):
    return new_person(provider, name="孙八")


def _assertion(key, client_id: str, audience: str, *, jti: str | None = None, kid: str = "rp-key-1") -> str:
    now = int(time.time())
    return jwt.encode({"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 60,
                       "jti": jti or secrets.token_urlsafe(12)}, key, algorithm="ES256", headers={"kid": kid})


def test_private_key_jwt_clients_authenticate_with_a_signed_assertion(provider, rp_server, person, reset_provider):
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    client_id, secret = register_client(provider, redirect_uris=[rp_server.callback], jwks={"keys": [
        {**public, "kid": "rp-key-1", "use": "sig", "alg": "ES256"}]}, token_endpoint_auth_method="private_key_jwt")
    assert secret is None
    rp = oic_client(provider, client_id, None, rp_server.callback)
    token_url = provider.url("/oauth/token")

    def exchange_with(assertion):
        params, verifier, code = authorize(provider, rp, person)
        return token_request(provider, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                        "redirect_uri": params["redirect_uri"], "client_id": client_id,
                                        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}), params

    answer, params = exchange_with(_assertion(key, client_id, token_url, jti="once"))
    assert answer.status_code == 200, answer.text
    claims = verify_with_jwks(provider, answer.json()["id_token"], audience=client_id)
    assert claims["nonce"] == params["nonce"]

    replayed, _ = exchange_with(_assertion(key, client_id, token_url, jti="once"))
    assert replayed.status_code in (400, 401) and replayed.json()["error"] == "invalid_client"
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged, _ = exchange_with(_assertion(stranger, client_id, token_url))
    assert forged.json()["error"] == "invalid_client"
    elsewhere, _ = exchange_with(_assertion(key, client_id, "https://other.example/token"))
    assert elsewhere.json()["error"] == "invalid_client"
    params, verifier, code = authorize(provider, rp, person)
    with_secret = token_request(provider, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                           "redirect_uri": params["redirect_uri"]}, auth=(client_id, "guess"))
    assert with_secret.status_code == 401 and with_secret.json()["error"] == "invalid_client"


def test_resource_servers_introspect_and_clients_revoke(provider, relying_party, person):
    _, tokens = sign_in(provider, relying_party["rp"], person)
    resource = register_client(provider, redirect_uris=[], resource_server=True, name="市政务数据共享平台")
    other = register_client(provider, redirect_uris=[relying_party["rp"].redirect_uris[0]], name="另一个系统")

    def introspect(token, auth):
        answer = requests.post(provider.url("/oauth/introspect"), data={"token": token}, auth=auth, timeout=10)
        assert answer.status_code == 200
        return answer.json()

    active = introspect(tokens["access_token"], resource)
    assert active["active"] is True and active["client_id"] == relying_party["client_id"]
    assert active["sub"] == tokens["id_token"]["sub"] and active["scope"] == "openid profile"
    assert active["token_type"] == "Bearer" and active["iss"] == provider.base and active["exp"] > time.time()
    assert active["acr"] == "L2"
    assert introspect(tokens["refresh_token"], resource)["active"] is True
    assert introspect(tokens["access_token"], other) == {"active": False}  # not its token, not a resource server
    assert introspect("oat_unknown", resource) == {"active": False}

    revoke = requests.post(provider.url("/oauth/revoke"), timeout=10, data={
        "token": tokens["refresh_token"], "token_type_hint": "refresh_token",
        "client_id": relying_party["client_id"], "client_secret": relying_party["secret"]})  # client_secret_post
    assert revoke.status_code == 200
    assert introspect(tokens["access_token"], resource) == {"active": False}
    assert introspect(tokens["refresh_token"], resource) == {"active": False}
    assert userinfo(provider, tokens["access_token"]).status_code == 401
    unknown = requests.post(provider.url("/oauth/revoke"), data={"token": "nothing"}, auth=relying_party["auth"],
                            timeout=10)
    assert unknown.status_code == 200
    anonymous = requests.post(provider.url("/oauth/revoke"), data={"token": "nothing"}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"


def test_rp_initiated_logout_redirects_exactly_and_tells_every_client_of_the_session(
        provider, relying_party, person, rp_server):
    rp = relying_party["rp"]
    params, verifier = authorization_request(rp)
    session, location = page_sign_in(provider, person, params)
    from oic.oic.message import AuthorizationResponse
    code = rp.parse_response(AuthorizationResponse, info=location.split("?", 1)[1], sformat="urlencoded")["code"]
    tokens = exchange(rp, params, verifier, code)
    id_token = tokens["id_token"]
    assert id_token["sid"] and id_token["amr"] == ["pwd"]

    stray = session.get(provider.url("/oauth/logout?" + urlencode({
        "id_token_hint": id_token.jwt, "post_logout_redirect_uri": rp_server.base + "/not-registered"})),
        allow_redirects=False, timeout=10)
    assert stray.status_code == 200 and "Location" not in stray.headers and "已退出" in stray.text
    run_queued_jobs(provider)
    assert rp_server.logout_tokens() and userinfo(provider, tokens["access_token"]).status_code == 401

    params, verifier = authorization_request(rp)
    session, location = page_sign_in(provider, person, params)  # signed in again (the cookie was cleared)
    code = rp.parse_response(AuthorizationResponse, info=location.split("?", 1)[1], sformat="urlencoded")["code"]
    tokens = exchange(rp, params, verifier, code)
    rp_server.logouts.clear()
    out = session.get(provider.url("/oauth/logout?" + urlencode({
        "id_token_hint": tokens["id_token"].jwt, "post_logout_redirect_uri": rp_server.after_logout,
        "state": "bye-123"})), allow_redirects=False, timeout=10)
    assert out.status_code == 302 and out.headers["Location"] == rp_server.after_logout + "?state=bye-123"
    run_queued_jobs(provider)
    [logout_token] = rp_server.logout_tokens()
    claims = verify_with_jwks(provider, logout_token, audience=relying_party["client_id"], typ="logout+jwt")
    assert claims["sid"] == tokens["id_token"]["sid"] and claims["sub"] == tokens["id_token"]["sub"]
    assert BACKCHANNEL_EVENT in claims["events"]
    refresh = token_request(provider, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                            auth=relying_party["auth"])
    assert refresh.json()["error"] == "invalid_grant"
    login_again = session.get(provider.url("/oauth/authorize?" + urlencode(authorization_request(rp)[0])), timeout=10)
    assert 'id="login-form"' in login_again.text


def test_logout_without_a_hint_asks_first(provider, relying_party, person):
    params, _ = authorization_request(relying_party["rp"])
    session, _ = page_sign_in(provider, person, params)
    ask = session.get(provider.url("/oauth/logout?" + urlencode({"client_id": relying_party["client_id"]})),
                      timeout=10)
    assert ask.status_code == 200 and 'id="logout-form"' in ask.text and "济南市公安局户政系统" in ask.text
    done = session.post(provider.url("/oauth/logout"), data={"client_id": relying_party["client_id"]}, timeout=10,
                        allow_redirects=False)
    assert done.status_code == 200 and "已退出" in done.text
    fresh, _ = authorization_request(relying_party["rp"])  # (the first request's nonce is spent)
    assert 'id="login-form"' in session.get(provider.url("/oauth/authorize?" + urlencode(fresh)), timeout=10).text


def test_prompt_none_answers_login_required_without_a_page(provider, relying_party):
    params, _ = authorization_request(relying_party["rp"], prompt="none")
    answer = requests.get(provider.url("/oauth/authorize?" + urlencode(params)), allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and code_from(answer.headers["Location"])["error"] == "login_required"


def test_id_tokens_signed_before_a_key_rotation_still_verify(provider, relying_party, person):
    _, before = sign_in(provider, relying_party["rp"], person)
    result = provider.app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    provider.app.extensions.pop("signing_key_cache", None)
    rp = oic_client(provider, relying_party["client_id"], relying_party["secret"], relying_party["rp"].redirect_uris[0])
    _, after = sign_in(provider, rp, person)
    old_kid = jwt.get_unverified_header(before["id_token"].jwt)["kid"]
    new_kid = jwt.get_unverified_header(after["id_token"].jwt)["kid"]
    assert old_kid != new_kid and old_kid.startswith("oidc-") and new_kid.startswith("oidc-")
    for tokens in (before, after):
        verify_with_jwks(provider, tokens["id_token"].jwt, audience=relying_party["client_id"])
    with provider.app.app_context():  # the retired key stays published only as long as its ID tokens live
        retired = db.session.scalar(select(SigningKey).where(SigningKey.kid == old_kid))
        window = (as_aware(retired.publish_until) - as_aware(retired.retired_at)).total_seconds()
        assert window == provider.app.config.get("OIDC_ID_TOKEN_TTL", ID_TOKEN_TTL) + 60


def test_the_clients_command_registers_an_oidc_client_that_works(provider, rp_server, person, reset_provider,
                                                                 tmp_path):
    result = provider.app.test_cli_runner().invoke(args=[
        "clients", "create", "--kind", "oidc", "--name", "青岛市医保局经办系统", "--redirect-uri", rp_server.callback,
        "--redirect-uri", rp_server.base + "/second", "--scope", "phone"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert set(created) == {"client_id", "client_secret"} and created["client_id"].startswith("oc_")
    rp = oic_client(provider, created["client_id"], created["client_secret"], rp_server.callback)
    _, tokens = sign_in(provider, rp, person, scope=("openid", "phone"))
    assert tokens["id_token"]["phone_masked"].startswith(person["phone"][:3])

    refused = provider.app.test_cli_runner().invoke(args=[
        "clients", "create", "--kind", "oidc", "--name", "坏的", "--redirect-uri", "http://example.com/cb"])
    assert refused.exit_code != 0 and "https" in refused.output

    key = ec.generate_private_key(ec.SECP256R1())
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))]}))
    keyed = provider.app.test_cli_runner().invoke(args=[
        "clients", "create", "--kind", "oidc", "--name", "省人社厅", "--redirect-uri", rp_server.callback,
        "--token-auth-method", "private_key_jwt", "--jwks-file", str(jwks_file), "--acr-min", "L3"])
    assert keyed.exit_code == 0, keyed.output
    assert json.loads(keyed.output)["client_secret"] is None
    private = jwks_file.with_name("private.json")
    private.write_text(json.dumps({"keys": [json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))]}))
    leaked = provider.app.test_cli_runner().invoke(args=[
        "clients", "create", "--kind", "oidc", "--name", "省人社厅", "--redirect-uri", rp_server.callback,
        "--token-auth-method", "private_key_jwt", "--jwks-file", str(private)])
    assert leaked.exit_code != 0 and "私钥" in leaked.output
