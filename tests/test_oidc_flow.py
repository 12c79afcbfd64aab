"""The authorization code flow end to end, driven by an independent relying-party library (pyoidc,
which reads our discovery document and JWKS and verifies ID tokens itself) and checked again with
PyJWT: discovery, PKCE S256 only, one-time codes, redirect URIs, code expiry, nonce, refresh
rotation, userinfo per scope, the audited ID number and the real-name level (acr)."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.identity.models import Person
from app.security import audit
from app.security.models import AuditEvent
from tests.support.oidc import (app_consent, authorization_request, authorize, code_from, exchange, new_person,
                                oic_client, register_client, sign_in, token_request, userinfo, verify_with_jwks)


@pytest.fixture(autouse=True)
def _reset(reset_provider):
    yield


@pytest.fixture
def person(provider):
    return new_person(provider, name="张三")


def test_discovery_is_what_pyoidc_reads_and_names_our_endpoints(provider):
    doc = requests.get(provider.url("/.well-known/openid-configuration"), timeout=10).json()
    assert doc["issuer"] == provider.base
    assert doc["authorization_endpoint"] == provider.url("/oauth/authorize")
    assert doc["token_endpoint"] == provider.url("/oauth/token")
    assert doc["jwks_uri"] == provider.url("/.well-known/jwks.json")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["subject_types_supported"] == ["pairwise"]
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert doc["backchannel_logout_supported"] is True and doc["end_session_endpoint"].startswith(provider.base)
    jwks = requests.get(doc["jwks_uri"], timeout=10).json()
    assert any(key["kid"].startswith("oidc-") and key["alg"] == "ES256" for key in jwks["keys"])

    from oic.oic import Client
    rp = Client()
    rp.provider_config(provider.base)  # pyoidc checks the issuer matches the URL it fetched
    assert rp.token_endpoint == doc["token_endpoint"] and rp.provider_info["issuer"] == provider.base


def test_sign_in_gives_an_id_token_pyoidc_and_pyjwt_verify_with_the_nonce_echoed(provider, relying_party, person):
    rp = relying_party["rp"]
    params, tokens = sign_in(provider, rp, person)
    id_token = tokens["id_token"]  # pyoidc verified signature, iss, aud, exp and the nonce
    assert id_token["nonce"] == params["nonce"]
    claims = verify_with_jwks(provider, id_token.jwt, audience=relying_party["client_id"])
    assert claims["nonce"] == params["nonce"]
    assert claims["iss"] == provider.base and claims["aud"] == relying_party["client_id"]
    assert claims["acr"] == "L2" and claims["amr"] == ["app"] and claims["auth_time"] <= claims["iat"]
    assert claims["name"] == "张三" and claims["real_name_level"] == 2
    assert claims["sub"] != person["subject_id"] and person["subject_id"] not in id_token.jwt
    assert "id_number" not in claims and "phone_masked" not in claims
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"].startswith("ort_")


def test_a_code_works_once_and_its_second_use_revokes_the_tokens_of_the_first(provider, relying_party, person):
    rp = relying_party["rp"]
    params, verifier, code = authorize(provider, rp, person)
    tokens = exchange(rp, params, verifier, code)
    assert userinfo(provider, tokens["access_token"]).status_code == 200

    again = token_request(provider, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                     "redirect_uri": params["redirect_uri"]},
                          auth=(relying_party["client_id"], relying_party["secret"]))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert again.headers["Content-Type"].startswith("application/json")
    answer = userinfo(provider, tokens["access_token"])
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
    refreshed = token_request(provider, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                              auth=(relying_party["client_id"], relying_party["secret"]))
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    with provider.app.app_context():
        events = db.session.scalars(select(AuditEvent.event).where(AuditEvent.event == "oidc.code_reused")).all()
    assert events == ["oidc.code_reused"]


def test_a_wrong_pkce_verifier_or_redirect_uri_is_invalid_grant(provider, relying_party, person, rp_server):
    rp, auth = relying_party["rp"], (relying_party["client_id"], relying_party["secret"])
    params, verifier, code = authorize(provider, rp, person)
    wrong = token_request(provider, {"grant_type": "authorization_code", "code": code,
                                     "code_verifier": "x" * 43 if verifier != "x" * 43 else "y" * 43,
                                     "redirect_uri": params["redirect_uri"]}, auth=auth)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    params, verifier, code = authorize(provider, rp, person)
    moved = token_request(provider, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                     "redirect_uri": rp_server.base + "/elsewhere"}, auth=auth)
    assert moved.status_code == 400 and moved.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("pkce", [{"code_challenge_method": "plain"}, {"code_challenge": None,
                                                                      "code_challenge_method": None}])
def test_plain_or_no_pkce_is_refused(provider, relying_party, person, pkce):
    params, _ = authorization_request(relying_party["rp"])
    if pkce.get("code_challenge_method") == "plain":
        params["code_challenge"] = "p" * 43  # a plain challenge is the verifier itself
    params = {key: value for key, value in {**params, **pkce}.items() if value is not None}
    answer = requests.get(provider.url("/oauth/authorize?" + urlencode(params)), allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    back = code_from(answer.headers["Location"])
    assert answer.headers["Location"].startswith(params["redirect_uri"])
    assert back["error"] == "invalid_request" and back["state"] == params["state"] and "code" not in back

    api = app_consent(provider, person, params)
    assert api.status_code == 422 and api.headers["Content-Type"].startswith("application/problem+json")
    assert set(api.json()["errors"]) & {"code_challenge", "code_challenge_method"}


def test_an_unregistered_redirect_uri_gets_our_error_page_and_no_redirect(provider, relying_party, person, rp_server):
    params, _ = authorization_request(relying_party["rp"])
    params["redirect_uri"] = rp_server.base + "/callback/../evil"
    answer = requests.get(provider.url("/oauth/authorize?" + urlencode(params)), allow_redirects=False, timeout=10)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert answer.headers["Content-Type"].startswith("text/html") and "无法登录" in answer.text
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]

    api = app_consent(provider, person, params)
    assert api.status_code == 422 and "redirect_uri" in api.json()["errors"]


def test_an_expired_code_is_invalid_grant(provider, relying_party, person):
    provider.app.config["OIDC_CODE_TTL"] = 0  # born expired: no sleeping
    rp = relying_party["rp"]
    params, verifier, code = authorize(provider, rp, person)
    answer = token_request(provider, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                      "redirect_uri": params["redirect_uri"]},
                           auth=(relying_party["client_id"], relying_party["secret"]))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_refresh_tokens_rotate_and_a_reused_one_ends_the_family(provider, relying_party, person):
    auth = (relying_party["client_id"], relying_party["secret"])
    _, tokens = sign_in(provider, relying_party["rp"], person)
    first = token_request(provider, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=auth)
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"] and rotated["scope"] == "openid profile"
    assert userinfo(provider, tokens["access_token"]).status_code == 401  # the old access token went with it
    assert userinfo(provider, rotated["access_token"]).status_code == 200

    replay = token_request(provider, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=auth)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert userinfo(provider, rotated["access_token"]).status_code == 401
    after = token_request(provider, {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}, auth=auth)
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_userinfo_releases_what_the_scopes_allow_with_the_phone_masked(provider, rp_server, person):
    client_id, secret = register_client(provider, redirect_uris=[rp_server.callback])
    rp = oic_client(provider, client_id, secret, rp_server.callback)
    _, tokens = sign_in(provider, rp, person, scope=("openid", "phone"))
    info = userinfo(provider, tokens["access_token"])
    assert info.status_code == 200 and info.headers["Cache-Control"] == "no-store"
    body = info.json()
    phone = person["phone"]
    assert body["phone_masked"] == phone[:3] + "****" + phone[-4:] and phone not in info.text
    assert "name" not in body and "id_number" not in body
    assert body["sub"] == tokens["id_token"]["sub"]

    unknown = requests.get(provider.url("/oauth/userinfo"), headers={"Authorization": "Bearer oat_nothing"}, timeout=10)
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_token"
    assert "WWW-Authenticate" in unknown.headers


def test_the_full_id_number_only_for_a_registered_client_and_each_release_is_audited(provider, rp_server, person):
    plain_id, plain_secret = register_client(provider, redirect_uris=[rp_server.callback], name="某市公积金中心")
    params, _ = authorization_request(oic_client(provider, plain_id, plain_secret, rp_server.callback),
                                      scope=("openid", "id_number"))
    refused = app_consent(provider, person, params)
    assert refused.status_code == 422 and "scope" in refused.json()["errors"]
    page = requests.get(provider.url("/oauth/authorize?" + urlencode(params)), allow_redirects=False, timeout=10)
    assert code_from(page.headers["Location"])["error"] == "invalid_scope"

    police_id, police_secret = register_client(provider, redirect_uris=[rp_server.callback], scopes=["id_number"],
                                               name="济南市公安局户政系统")
    rp = oic_client(provider, police_id, police_secret, rp_server.callback)
    _, tokens = sign_in(provider, rp, person, scope=("openid", "profile", "id_number"))
    assert tokens["id_token"]["id_number"] == person["id_number"]
    assert userinfo(provider, tokens["access_token"]).json()["id_number"] == person["id_number"]
    with provider.app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "oidc.id_number_released")
                                  .order_by(AuditEvent.seq)).all()
        assert [(row.actor, row.details["via"]) for row in rows] == [(police_id, "id_token"), (police_id, "userinfo")]
        assert {row.subject_id for row in rows} == {person["subject_id"]}
        assert all(person["id_number"] not in str(row.details) for row in rows)
        assert audit.verify().ok


def test_a_client_minimum_real_name_level_refuses_lower_levels(provider, rp_server, person):
    client_id, secret = register_client(provider, redirect_uris=[rp_server.callback], acr_minimum="L3")
    rp = oic_client(provider, client_id, secret, rp_server.callback)
    params, _ = authorization_request(rp)
    refused = app_consent(provider, person, params)
    assert refused.status_code == 403 and "实名认证等级" in refused.json()["detail"]
    back = code_from(refused.json()["redirect_to"])
    assert back["error"] == "access_denied" and back["state"] == params["state"] and "code" not in back

    with provider.app.app_context():
        db.session.execute(db.update(Person).where(Person.subject_id == person["subject_id"]).values(real_name_level=3))
        db.session.commit()
    params, verifier, code = authorize(provider, rp, person)
    assert exchange(rp, params, verifier, code)["id_token"]["acr"] == "L3"


def test_acr_values_in_the_request_raise_the_level_needed(provider, relying_party, person):
    params, _ = authorization_request(relying_party["rp"], acr_values="L3")
    refused = app_consent(provider, person, params)
    assert refused.status_code == 403
    params, verifier, code = authorize(provider, relying_party["rp"], person, acr_values="L2")
    assert exchange(relying_party["rp"], params, verifier, code)["id_token"]["acr"] == "L2"


def test_token_endpoint_errors_are_rfc6749_json_not_problem_details(provider, relying_party):
    wrong = token_request(provider, {"grant_type": "authorization_code", "code": "x"},
                          auth=(relying_party["client_id"], "not-the-secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["Content-Type"] == "application/json" and "WWW-Authenticate" in wrong.headers
    unknown = token_request(provider, {"grant_type": "password", "username": "a", "password": "b"},
                            auth=(relying_party["client_id"], relying_party["secret"]))
    assert unknown.status_code == 400 and unknown.json()["error"] == "unsupported_grant_type"
    bad_code = token_request(provider, {"grant_type": "authorization_code", "code": "nope", "code_verifier": "v" * 43,
                                        "redirect_uri": relying_party["rp"].redirect_uris[0]},
                             auth=(relying_party["client_id"], relying_party["secret"]))
    assert bad_code.json() == {"error": "invalid_grant", "error_description": "Invalid 'code' in request."}
