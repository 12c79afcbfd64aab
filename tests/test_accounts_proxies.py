"""Family proxies (亲友代办): a person lets a relative apply and show licenses for them, within
scopes and until an end date; the relative acts through POST /auth/act-as {"subject_id"}."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.identity.account_models import ProxyGrant
from app.identity.proxies import PROXY_ENDPOINTS
from app.security.models import AuditEvent
from tests.support.helpers import API, add_registry_person, auth_headers, minor_id_number, valid_credit_code, valid_id_number
from tests.support.applications import apply, hukou_body, id_card, person_in
from tests.support.world import is_problem
from tests.support.wallet import access_log, present, verifier_headers, verify
from tests.support.proxies import ALL, _future, act_for, grant

@pytest.fixture
def family(client, app):
    """(grandma, son): two registered people in 济南."""
    return person_in(client, app, name="李奶奶"), person_in(client, app, name="李建国")


def test_a_grant_is_visible_to_both_with_the_relatives_number_masked(client, family):
    grandma, son = family
    created = grant(client, grandma, son, scopes=["licenses:present", "applications:submit"])
    assert created["status"] == "active" and created["scopes"] == ["applications:submit", "licenses:present"]
    assert created["grantee_id_number_masked"] == son["id_number"][:6] + "********" + son["id_number"][-4:]
    assert son["id_number"] not in str(created)
    mine = client.get(f"{API}/me/proxies", headers=grandma["headers"]).get_json()
    assert [item["proxy_id"] for item in mine["granted"]] == [created["proxy_id"]] and mine["received"] == []
    theirs = client.get(f"{API}/me/proxies", headers=son["headers"]).get_json()
    assert theirs["granted"] == []
    assert theirs["received"] == [{"proxy_id": created["proxy_id"], "grantor_subject_id": grandma["subject_id"],
                                   "grantor_name": "李**", "scopes": created["scopes"],
                                   "expires_at": created["expires_at"], "created_at": created["created_at"],
                                   "status": "active"}]


def test_grants_are_checked_against_the_registry_and_the_rules(client, app, family):
    grandma, son = family
    response = client.post(f"{API}/me/proxies", headers=grandma["headers"], json={
        "id_number": son["id_number"], "name": "李建军", "scopes": ALL, "expires_at": _future()})
    assert is_problem(response, 422) and set(response.get_json()["errors"]) == {"id_number", "name"}
    assert "id_number" in grant(client, grandma, grandma, expect=422)["errors"]
    child = {"id_number": minor_id_number(), "name": "李小宝"}
    add_registry_person(app, id_number=child["id_number"], name=child["name"])
    assert "代办人须为年满18周岁" in grant(client, grandma, child, expect=422)["errors"]["id_number"][0]
    assert "expires_at" in grant(client, grandma, son, expires_at=_future(400), expect=422)["errors"]
    assert "expires_at" in grant(client, grandma, son, expires_at=_future(-1), expect=422)["errors"]
    assert [key for key in grant(client, grandma, son, scopes=["evaluations:write"], expect=422)["errors"]
            if key.startswith("scopes")]
    grant(client, grandma, son)
    assert grant(client, grandma, son, expect=409)["status"] == 409
    # a relative in the registry without an account can be named too (they register later)
    cousin = {"id_number": valid_id_number(region="370102"), "name": "李表哥"}
    add_registry_person(app, id_number=cousin["id_number"], name=cousin["name"])
    assert grant(client, grandma, cousin)["grantee_name"] == "李表哥"


def test_the_proxy_token_names_the_grantor_as_subject_and_the_relative_as_actor(client, family):
    grandma, son = family
    grant(client, grandma, son, scopes=["licenses:read"])
    pair = act_for(client, son, grandma)
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["sub"] == grandma["subject_id"] and claims["act"] == {"sub": son["subject_id"]}
    assert claims["scopes"] == ["licenses:read"] and claims["roles"] == ["citizen"] and "halls" not in claims
    me = client.get(f"{API}/me", headers=auth_headers(pair["access_token"])).get_json()
    assert me["subject_id"] == son["subject_id"]
    assert me["acting_for"] == {"subject_id": grandma["subject_id"], "name": "李**", "role": "proxy",
                                "scopes": ["licenses:read"]}
    # refreshing gives a proxy token again, never the grantor's own token
    refreshed = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                       "refresh_token": pair["refresh_token"]}).get_json()
    again = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
    assert again["sub"] == grandma["subject_id"] and again["act"] == {"sub": son["subject_id"]}
    assert again["scopes"] == ["licenses:read"]


def test_act_as_needs_a_live_grant_and_exactly_one_target(client, app, family):
    grandma, son = family
    stranger = person_in(client, app, name="王五")
    grant(client, grandma, son)
    response = client.post(f"{API}/auth/act-as", headers=stranger["headers"], json={"subject_id": grandma["subject_id"]})
    assert is_problem(response, 404)
    assert act_for(client, grandma, son, expect=404)["status"] == 404  # the grant goes one way
    both = client.post(f"{API}/auth/act-as", headers=son["headers"],
                       json={"subject_id": grandma["subject_id"], "credit_code": valid_credit_code()})
    neither = client.post(f"{API}/auth/act-as", headers=son["headers"], json={})
    for response in (both, neither):
        assert response.status_code == 422 and {"credit_code", "subject_id"} <= set(response.get_json()["errors"])
    malformed = client.post(f"{API}/auth/act-as", headers=son["headers"], json={"subject_id": "grandma"})
    assert malformed.status_code == 422 and "subject_id" in malformed.get_json()["errors"]
    proxy = auth_headers(act_for(client, son, grandma)["access_token"])
    chained = client.post(f"{API}/auth/act-as", headers=proxy, json={"subject_id": grandma["subject_id"]})
    assert chained.status_code == 403  # a proxy token cannot be used to act again


def test_the_relative_applies_for_the_grantor_and_the_timeline_says_who(client, app, family):
    grandma, son = family
    own = apply(client, grandma["headers"], hukou_body(grandma, app)).get_json()["application_id"]
    own_detail = client.get(f"{API}/applications/{own}", headers=grandma["headers"]).get_json()
    assert own_detail["timeline"] and all(event["shown_by"] is None for event in own_detail["timeline"])
    grant(client, grandma, son, scopes=["applications:submit", "applications:read"])
    proxy = auth_headers(act_for(client, son, grandma)["access_token"])
    shown_by = {"role": "proxy", "subject_id": son["subject_id"], "name_masked": "李**"}
    # he withdraws the one she started and applies again for her, with scans he uploads
    assert client.post(f"{API}/applications/{own}/withdraw", headers=proxy).status_code == 200
    withdrawn = client.get(f"{API}/applications/{own}", headers=grandma["headers"]).get_json()
    assert withdrawn["timeline"][-1]["action"] == "withdraw" and withdrawn["timeline"][-1]["shown_by"] == shown_by
    submitted = apply(client, proxy, hukou_body({**grandma, "headers": proxy}, app))
    assert submitted.status_code == 201, submitted.get_json()
    application_id = submitted.get_json()["application_id"]
    mine = client.get(f"{API}/applications", headers=grandma["headers"]).get_json()
    assert {item["application_id"] for item in mine["items"]} == {own, application_id}
    assert client.get(f"{API}/applications", headers=son["headers"]).get_json()["total"] == 0
    detail = client.get(f"{API}/applications/{application_id}", headers=grandma["headers"]).get_json()
    assert detail["applicant"]["subject_id"] == grandma["subject_id"]
    submit = next(event for event in detail["timeline"] if event["action"] == "submit")
    assert submit["shown_by"] == shown_by
    by_proxy = client.get(f"{API}/applications/{application_id}", headers=proxy).get_json()
    assert by_proxy["application_id"] == application_id and "*" in by_proxy["form"]["id_number"]
    reveal = client.get(f"{API}/applications/{application_id}?reveal=true", headers=proxy)
    assert reveal.status_code == 403 and is_problem(reveal, 403)


def test_the_relative_shows_the_grantors_license_and_the_access_log_says_shown_by(client, app, family):
    grandma, son = family
    card = id_card(app, grandma)
    grant(client, grandma, son, scopes=["licenses:present"])
    proxy = auth_headers(act_for(client, son, grandma)["access_token"])
    listed = client.get(f"{API}/wallet/licenses", headers=proxy).get_json()
    assert [item["license_id"] for item in listed["items"]] == [card]
    shown = present(client, proxy, card, mode="online", disclose=["name"], purpose="医院就诊登记")
    hotel = verifier_headers(app, client, name="济南市第一人民医院")
    assert verify(client, hotel, code=shown["code"])["valid"] is True
    log = access_log(client, grandma["headers"], card)
    assert log["items"][0]["shown_by"] == {"role": "proxy", "subject_id": son["subject_id"], "name_masked": "李**",
                                           "acting_for": grandma["subject_id"]}
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "license.presented")).all()
        assert [(e.subject_id, e.actor, e.details["role"]) for e in events] == [
            (grandma["subject_id"], son["subject_id"], "proxy")]
    # his own wallet is not hers
    assert client.get(f"{API}/wallet/licenses", headers=son["headers"]).get_json()["total"] == 0


def test_scopes_are_enforced_on_every_use(client, app, family):
    grandma, son = family
    card = id_card(app, grandma)
    grant(client, grandma, son, scopes=["licenses:read"])
    proxy = auth_headers(act_for(client, son, grandma)["access_token"])
    assert client.get(f"{API}/wallet/licenses/{card}", headers=proxy).status_code == 200
    refused = [apply(client, proxy, hukou_body(grandma, app)),
               client.get(f"{API}/applications", headers=proxy),
               client.post(f"{API}/wallet/licenses/{card}/presentations", headers=proxy,
                           json={"purpose": "入住登记", "mode": "online", "disclose": ["name"]})]
    assert [response.status_code for response in refused] == [403, 403, 403]
    assert all(is_problem(response, 403) for response in refused)
    # outside 办件 and 亮证 a proxy token opens nothing of the grantor's
    for method, path in (("GET", "/inbox"), ("GET", "/appointments"), ("GET", "/complaints"),
                         ("GET", "/me/proxies"), ("POST", "/me/data-exports"), ("GET", "/enterprises")):
        response = client.open(f"{API}{path}", method=method, headers=proxy)
        assert response.status_code == 403 and is_problem(response, 403), (path, response.get_json())
    # where a token is optional it simply counts as none: the catalogue is browsed as anyone
    assert client.get(f"{API}/services?q=户口", headers=proxy).status_code == 200


def test_a_revoked_grant_ends_the_relatives_sessions_at_once(client, app, family):
    grandma, son = family
    created = grant(client, grandma, son)
    pair = act_for(client, son, grandma)
    proxy = auth_headers(pair["access_token"])
    assert client.get(f"{API}/wallet/licenses", headers=proxy).status_code == 200
    other = person_in(client, app, name="外人")
    assert client.delete(f"{API}/me/proxies/{created['proxy_id']}", headers=other["headers"]).status_code == 404
    assert client.delete(f"{API}/me/proxies/{created['proxy_id']}", headers=grandma["headers"]).status_code == 204
    assert client.get(f"{API}/wallet/licenses", headers=proxy).status_code == 401
    assert client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                  "refresh_token": pair["refresh_token"]}).status_code == 401
    act_for(client, son, grandma, expect=404)
    listed = client.get(f"{API}/me/proxies", headers=grandma["headers"]).get_json()["granted"]
    assert listed[0]["status"] == "revoked" and listed[0]["revoked_at"]
    assert client.get(f"{API}/me/proxies", headers=son["headers"]).get_json()["received"] == []
    assert client.get(f"{API}/me", headers=son["headers"]).status_code == 200  # his own session lives on


def test_an_expired_grant_is_refused_even_with_a_token_still_running(client, app, family):
    grandma, son = family
    created = grant(client, grandma, son)
    pair = act_for(client, son, grandma)
    proxy = auth_headers(pair["access_token"])
    with app.app_context():
        db.session.execute(update(ProxyGrant).where(ProxyGrant.proxy_id == created["proxy_id"])
                           .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        db.session.commit()
    refused = apply(client, proxy, hukou_body(grandma, app))
    assert refused.status_code == 403 and "到期" in refused.get_json()["detail"]
    assert client.get(f"{API}/wallet/licenses", headers=proxy).status_code == 403
    act_for(client, son, grandma, expect=404)
    assert client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                  "refresh_token": pair["refresh_token"]}).status_code == 401
    assert client.get(f"{API}/me/proxies", headers=grandma["headers"]).get_json()["granted"][0]["status"] == "expired"


def test_every_endpoint_a_proxy_may_call_exists(app):
    """The allow-list names endpoints: a renamed view must not silently drop out of it."""
    routes = {(rule.endpoint, method) for rule in app.url_map.iter_rules() for method in rule.methods}
    assert sorted(PROXY_ENDPOINTS - routes) == []


def test_proxy_operations_are_in_the_openapi_document(client):
    spec = client.get("/openapi.json").get_json()
    for path, method in (("/api/v1/me/proxies", "get"), ("/api/v1/me/proxies", "post"),
                         ("/api/v1/me/proxies/{proxy_id}", "delete")):
        operation = spec["paths"][path][method]
        assert operation["summary"] and operation["security"] == [{"bearerAuth": []}]
    act_as = spec["paths"]["/api/v1/auth/act-as"]["post"]["requestBody"]["content"]["application/json"]
    assert set(act_as["examples"]) == {"company", "family_proxy"}
