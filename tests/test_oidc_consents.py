"""Who a client sees and what the person keeps control of: pairwise subjects (per client, shared
within a sector), consents remembered, listed and revoked (refresh stops, back-channel logout to a
fake relying party, the logout token checked with PyJWT), a closed account, company logins with
the agent in `act`, and the app's one-call consent refusing bad input in problem+json."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode, urljoin

import pytest
import requests

from app.extensions import db
from app.identity.models import Person
from app.oidc.consents import consents_for_export, revoke_all_for_subject
from app.timeutil import beijing_today
from tests.support.helpers import API, add_registry_entity, auth_headers, valid_credit_code
from tests.support.oidc import (BACKCHANNEL_EVENT, authorization_request, exchange, form_fields, new_person,
                                oic_client, page_sign_in, register_client, run_queued_jobs, sign_in, token_request,
                                userinfo, verify_with_jwks)


@pytest.fixture
def person(provider):
    return new_person(provider, name="李四")


def _client(provider, rp_server, **kwargs):
    client_id, secret = register_client(provider, redirect_uris=[rp_server.callback], **kwargs)
    return client_id, oic_client(provider, client_id, secret, rp_server.callback)


def test_pairwise_subjects_differ_between_clients_and_match_within_a_sector(provider, rp_server, person,
                                                                           reset_provider):
    subs = {}
    for label, sector in (("a", None), ("b", None), ("c", "jinan-gaj"), ("d", "jinan-gaj")):
        _, rp = _client(provider, rp_server, sector_identifier=sector, name=f"系统{label}")
        _, tokens = sign_in(provider, rp, person)
        subs[label] = tokens["id_token"]["sub"]
        assert userinfo(provider, tokens["access_token"]).json()["sub"] == subs[label]
    assert len({subs["a"], subs["b"], subs["c"]}) == 3
    assert subs["c"] == subs["d"]
    other = new_person(provider, name="王五")
    _, rp = _client(provider, rp_server, sector_identifier="jinan-gaj")
    assert sign_in(provider, rp, other)[1]["id_token"]["sub"] != subs["c"]


def test_consent_is_remembered_listed_and_the_page_is_skipped_next_time(provider, relying_party, person, rp_server):
    params, _ = authorization_request(relying_party["rp"])
    session, location = page_sign_in(provider, person, params)
    assert location.startswith(rp_server.callback) and "code=" in location

    listing = requests.get(provider.url(f"{API}/me/consents"), headers=person["headers"], timeout=10).json()
    assert listing["total"] == 1 and listing["page"] == 1
    item = listing["items"][0]
    assert item["client_id"] == relying_party["client_id"] and item["client_name"] == "济南市公安局户政系统"
    assert item["scopes"] == ["openid", "profile"] and item["granted_at"].endswith("Z")
    with provider.app.app_context():
        assert consents_for_export(person["subject_id"])[0]["client_id"] == relying_party["client_id"]

    params, _ = authorization_request(relying_party["rp"])  # signed in and consented: straight back
    again = session.get(provider.url("/oauth/authorize?" + urlencode(params)), allow_redirects=False, timeout=10)
    assert again.status_code == 302 and again.headers["Location"].startswith(rp_server.callback)
    params, _ = authorization_request(relying_party["rp"], scope=("openid", "profile", "phone"))
    wider = session.get(provider.url("/oauth/authorize?" + urlencode(params)), allow_redirects=False, timeout=10)
    assert wider.status_code == 200 and 'id="consent-form"' in wider.text and "手机号码" in wider.text


def test_denying_consent_sends_access_denied_back(provider, relying_party, person, rp_server):
    params, _ = authorization_request(relying_party["rp"])
    _, location = page_sign_in(provider, person, params, decision="deny")
    assert location.startswith(rp_server.callback) and "error=access_denied" in location
    assert f"state={params['state']}" in location and "code=" not in location


def test_revoking_consent_stops_refresh_and_logs_the_client_out_over_the_back_channel(
        provider, relying_party, person, rp_server):
    _, tokens = sign_in(provider, relying_party["rp"], person)
    revoked = requests.delete(provider.url(f"{API}/me/consents/{relying_party['client_id']}"),
                              headers=person["headers"], timeout=10)
    assert revoked.status_code == 204
    refresh = token_request(provider, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                            auth=relying_party["auth"])
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert userinfo(provider, tokens["access_token"]).status_code == 401

    run_queued_jobs(provider)
    [logout_token] = rp_server.logout_tokens()
    claims = verify_with_jwks(provider, logout_token, audience=relying_party["client_id"], typ="logout+jwt")
    assert claims["sub"] == tokens["id_token"]["sub"] and claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims and claims["jti"] and claims["exp"] > claims["iat"]

    assert requests.get(provider.url(f"{API}/me/consents"), headers=person["headers"], timeout=10).json()["total"] == 0
    again = requests.delete(provider.url(f"{API}/me/consents/{relying_party['client_id']}"),
                            headers=person["headers"], timeout=10)
    assert again.status_code == 404 and again.headers["Content-Type"].startswith("application/problem+json")


def test_someone_elses_consent_is_not_theirs_to_revoke(provider, relying_party, person):
    sign_in(provider, relying_party["rp"], person)
    stranger = new_person(provider, name="赵六")
    answer = requests.delete(provider.url(f"{API}/me/consents/{relying_party['client_id']}"),
                             headers=stranger["headers"], timeout=10)
    assert answer.status_code == 404
    assert requests.get(provider.url(f"{API}/me/consents"), headers=person["headers"], timeout=10).json()["total"] == 1


def test_a_closed_accounts_tokens_fail_everywhere_and_clients_are_told(provider, relying_party, person, rp_server):
    _, tokens = sign_in(provider, relying_party["rp"], person)
    resource_id, resource_secret = register_client(provider, redirect_uris=[], resource_server=True, name="资源服务")
    with provider.app.app_context():  # what the account-closure work does in its transaction
        db.session.execute(db.update(Person).where(Person.subject_id == person["subject_id"]).values(active=False))
        assert revoke_all_for_subject(person["subject_id"]) == 1
        db.session.commit()
        assert consents_for_export(person["subject_id"]) == []
    assert userinfo(provider, tokens["access_token"]).status_code == 401
    introspected = requests.post(provider.url("/oauth/introspect"), data={"token": tokens["access_token"]},
                                 auth=(resource_id, resource_secret), timeout=10)
    assert introspected.json() == {"active": False}
    refresh = token_request(provider, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                            auth=relying_party["auth"])
    assert refresh.json()["error"] == "invalid_grant"
    run_queued_jobs(provider)
    [logout_token] = rp_server.logout_tokens()
    assert verify_with_jwks(provider, logout_token, audience=relying_party["client_id"],
                            typ="logout+jwt")["sub"] == tokens["id_token"]["sub"]


def _company(provider, representative) -> tuple[str, str]:
    code = valid_credit_code()
    add_registry_entity(provider.app, credit_code=code, name="济南泉城科技有限公司",
                        representative_id_number=representative["id_number"])
    claimed = requests.post(provider.url(f"{API}/enterprises"), json={"credit_code": code, "name": "济南泉城科技有限公司"},
                            headers=representative["headers"], timeout=10)
    assert claimed.status_code == 201, claimed.text
    return code, claimed.json()["subject_id"]


def _acting(provider, person, code) -> dict:
    answer = requests.post(provider.url(f"{API}/auth/act-as"), json={"credit_code": code}, headers=person["headers"],
                           timeout=10)
    assert answer.status_code == 200, answer.text
    return {**person, "headers": auth_headers(answer.json()["access_token"])}


def test_a_company_agent_signs_in_as_the_company_with_the_agent_in_act(provider, relying_party, person):
    rp = relying_party["rp"]
    code, _ = _company(provider, person)
    agent = new_person(provider, name="钱七")
    granted = requests.post(provider.url(f"{API}/enterprises/{code}/agents"), headers=person["headers"], timeout=10,
                            json={"id_number": agent["id_number"], "scopes": ["applications:read"],
                                  "expires_at": (beijing_today() + timedelta(days=90)).isoformat() + "T00:00:00+08:00"})
    assert granted.status_code == 201, granted.text
    own = sign_in(provider, rp, agent)[1]["id_token"]

    _, tokens = sign_in(provider, rp, _acting(provider, agent, code))
    claims = tokens["id_token"]
    assert claims["sub"] != own["sub"] and claims["act"]["sub"] == own["sub"]
    assert claims["act"]["name"] == "钱七" and claims["agent_scopes"] == ["applications:read"]
    assert claims["name"] == "济南泉城科技有限公司" and claims["credit_code"] == code
    assert claims["subject_type"] == "legal" and "real_name_level" not in claims

    removed = requests.delete(provider.url(f"{API}/enterprises/{code}/agents/{granted.json()['agent_id']}"),
                              headers=person["headers"], timeout=10)
    assert removed.status_code == 204
    refresh = token_request(provider, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                            auth=relying_party["auth"])
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_the_representative_chooses_the_company_on_the_consent_page(provider, relying_party, person, rp_server):
    code, company_subject = _company(provider, person)
    params, verifier = authorization_request(relying_party["rp"], prompt="select_account")
    session = requests.Session()
    page = session.get(provider.url("/oauth/authorize?" + urlencode(params)), timeout=10)
    login = session.post(provider.url("/oauth/authorize/login"), allow_redirects=False, timeout=10, data={
        **form_fields(page.text), "username": person["phone"], "password": person["password"]})
    consent = session.get(urljoin(provider.base, login.headers["Location"]), timeout=10)
    assert "济南泉城科技有限公司（法定代表人）" in consent.text and f'value="{company_subject}"' in consent.text
    answer = session.post(provider.url("/oauth/authorize/consent"), allow_redirects=False, timeout=10, data={
        **form_fields(consent.text), "decision": "allow", "identity": company_subject})
    location = answer.headers["Location"]
    from oic.oic.message import AuthorizationResponse
    code_param = relying_party["rp"].parse_response(AuthorizationResponse, info=location.split("?", 1)[1],
                                                    sformat="urlencoded")["code"]
    claims = exchange(relying_party["rp"], params, verifier, code_param)["id_token"]
    assert claims["credit_code"] == code and claims["act"]["sub"] and claims["amr"] == ["pwd"]

    forged = authorization_request(relying_party["rp"], prompt="consent")[0]
    page = session.get(provider.url("/oauth/authorize?" + urlencode(forged)), timeout=10)
    stranger = session.post(provider.url("/oauth/authorize/consent"), allow_redirects=False, timeout=10, data={
        **form_fields(page.text), "decision": "allow", "identity": "e_" + "0" * 20})
    assert stranger.status_code == 400 and "Location" not in stranger.headers


def test_the_apps_one_call_consent_refuses_bad_input_in_problem_json(provider, relying_party, person):
    params, _ = authorization_request(relying_party["rp"])
    url = provider.url(f"{API}/oauth/authorizations")
    body = {key: params[key] for key in ("client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
                                         "code_challenge_method")}
    assert requests.post(url, json=body, timeout=10).status_code == 401
    cases = [({"client_id": "oc_missing"}, "client_id"), ({"scope": "profile"}, "scope"),
             ({"response_mode": "fragment"}, "response_mode"), ({"code_challenge": "short"}, "code_challenge")]
    for change, field in cases:
        answer = requests.post(url, json={**body, **change}, headers=person["headers"], timeout=10)
        assert answer.status_code == 422, (change, answer.text)
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert field in answer.json()["errors"]
    ok = requests.post(url, json=body, headers=person["headers"], timeout=10)
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"
    assert ok.json()["redirect_to"].startswith(params["redirect_uri"] + "?code=")
