"""Companies: claiming, agents with scopes and end dates, revocation, act-as tokens, ownership (404)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import text

from app.extensions import db
from tests.support.helpers import API, add_registry_entity, auth_headers, register_person, valid_credit_code

COMPANY = "山东齐鲁测试有限公司"


def _future(days=30):
    return (datetime.now(timezone.utc) + timedelta(days=days)).isoformat()


@pytest.fixture
def company(client, app):
    """A representative who has claimed a company, and the company's credit code."""
    rep = register_person(client, app, name="法人甲")
    code = valid_credit_code()
    add_registry_entity(app, credit_code=code, name=COMPANY, representative_id_number=rep["id_number"])
    response = client.post(f"{API}/enterprises", json={"credit_code": code, "name": COMPANY}, headers=rep["headers"])
    assert response.status_code == 201, response.get_json()
    return rep, code


def _grant(client, rep, code, agent, scopes=("applications:submit",), expires_at=None):
    return client.post(f"{API}/enterprises/{code}/agents", headers=rep["headers"],
                       json={"id_number": agent["id_number"], "scopes": list(scopes),
                             "expires_at": expires_at or _future()})


def _act_as(client, person, code):
    return client.post(f"{API}/auth/act-as", json={"credit_code": code}, headers=person["headers"])


def test_claim_makes_the_caller_representative(client, app, company):
    rep, code = company
    listing = client.get(f"{API}/enterprises", headers=rep["headers"]).get_json()["items"]
    assert len(listing) == 1
    item = listing[0]
    assert item["credit_code"] == code and item["name"] == COMPANY and item["role"] == "representative"
    assert item["subject_id"].startswith("e_")
    assert "applications:submit" in item["scopes"]
    again = client.post(f"{API}/enterprises", json={"credit_code": code, "name": COMPANY}, headers=rep["headers"])
    assert again.status_code == 409


def test_claim_mismatches_are_422_without_saying_which(client, app):
    rep = register_person(client, app, name="法人乙")
    stranger = register_person(client, app, name="路人")
    code = valid_credit_code()
    add_registry_entity(app, credit_code=code, name=COMPANY, representative_id_number=rep["id_number"])
    answers = [
        client.post(f"{API}/enterprises", json={"credit_code": code, "name": COMPANY}, headers=stranger["headers"]),
        client.post(f"{API}/enterprises", json={"credit_code": code, "name": "别的公司"}, headers=rep["headers"]),
        client.post(f"{API}/enterprises", json={"credit_code": valid_credit_code(), "name": COMPANY},
                    headers=rep["headers"]),
    ]
    assert [a.status_code for a in answers] == [422, 422, 422]
    assert len({a.get_json()["detail"] for a in answers}) == 1
    bad = client.post(f"{API}/enterprises", json={"credit_code": code[:17] + ("0" if code[17] != "0" else "1"),
                                                  "name": COMPANY}, headers=rep["headers"])
    assert bad.status_code == 422 and bad.get_json()["errors"]["credit_code"] == ["统一社会信用代码校验码错误"]
    assert client.post(f"{API}/enterprises", json={"credit_code": code, "name": COMPANY}).status_code == 401


def test_agent_grant_and_act_as(client, app, company):
    rep, code = company
    agent = register_person(client, app, name="经办人")
    response = _grant(client, rep, code, agent, scopes=["applications:submit", "applications:read"])
    assert response.status_code == 201
    grant = response.get_json()
    assert grant["agent_id"].startswith("ag_") and grant["status"] == "active"
    assert grant["id_number_masked"] == agent["id_number"][:6] + "********" + agent["id_number"][-4:]
    assert agent["id_number"] not in response.get_data(as_text=True)
    assert grant["scopes"] == ["applications:read", "applications:submit"]

    mine = client.get(f"{API}/enterprises", headers=agent["headers"]).get_json()["items"]
    assert [(i["credit_code"], i["role"]) for i in mine] == [(code, "agent")]

    pair = _act_as(client, agent, code)
    assert pair.status_code == 200
    tokens = pair.get_json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"].startswith("e_") and claims["sub_type"] == "legal"
    assert claims["act"] == {"sub": agent["subject_id"]}
    assert claims["roles"] == ["enterprise_agent"] and claims["credit_code"] == code
    assert claims["scopes"] == ["applications:read", "applications:submit"]
    assert claims["enterprise_role"] == "agent"

    me = client.get(f"{API}/me", headers=auth_headers(tokens["access_token"])).get_json()
    assert me["subject_id"] == agent["subject_id"]
    assert me["acting_for"]["credit_code"] == code and me["acting_for"]["role"] == "agent"

    refreshed = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                       "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    claims = jwt.decode(refreshed.get_json()["access_token"], options={"verify_signature": False})
    assert claims["act"] == {"sub": agent["subject_id"]} and claims["sub_type"] == "legal"


def test_representative_acts_as_with_every_scope(client, app, company):
    rep, code = company
    claims = jwt.decode(_act_as(client, rep, code).get_json()["access_token"], options={"verify_signature": False})
    assert claims["enterprise_role"] == "representative" and "licenses:read" in claims["scopes"]


def test_revoking_an_agent_ends_their_company_sessions(client, app, company):
    rep, code = company
    agent = register_person(client, app, name="经办人")
    agent_id = _grant(client, rep, code, agent).get_json()["agent_id"]
    tokens = _act_as(client, agent, code).get_json()
    response = client.delete(f"{API}/enterprises/{code}/agents/{agent_id}", headers=rep["headers"])
    assert response.status_code == 204
    assert client.get(f"{API}/me", headers=auth_headers(tokens["access_token"])).status_code == 401
    refresh = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                     "refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert _act_as(client, agent, code).status_code == 404
    listing = client.get(f"{API}/enterprises/{code}/agents", headers=rep["headers"]).get_json()["items"]
    assert [g["status"] for g in listing] == ["revoked"]
    # the agent's own session as a person is untouched
    assert client.get(f"{API}/me", headers=agent["headers"]).status_code == 200


def test_other_subjects_objects_are_404(client, app, company):
    rep, code = company
    stranger = register_person(client, app, name="路人")
    agent = register_person(client, app, name="经办人")
    agent_id = _grant(client, rep, code, agent).get_json()["agent_id"]
    assert client.get(f"{API}/enterprises/{code}", headers=stranger["headers"]).status_code == 404
    assert client.get(f"{API}/enterprises/{code}/agents", headers=stranger["headers"]).status_code == 404
    assert _grant(client, stranger, code, agent).status_code == 404
    assert client.delete(f"{API}/enterprises/{code}/agents/{agent_id}",
                         headers=stranger["headers"]).status_code == 404
    # an agent may see the company but not manage its agents
    assert client.get(f"{API}/enterprises/{code}", headers=agent["headers"]).status_code == 200
    assert client.get(f"{API}/enterprises/{code}/agents", headers=agent["headers"]).status_code == 404
    assert client.delete(f"{API}/enterprises/{code}/agents/{agent_id}",
                         headers=agent["headers"]).status_code == 404
    assert _act_as(client, stranger, code).status_code == 404
    # another company's grant id under this company is 404 too
    assert client.delete(f"{API}/enterprises/{code}/agents/ag_doesnotexist",
                         headers=rep["headers"]).status_code == 404


def test_grant_validation(client, app, company):
    rep, code = company
    agent = register_person(client, app, name="经办人")
    past = _grant(client, rep, code, agent, expires_at="2020-01-01T00:00:00+08:00")
    assert past.status_code == 422 and "expires_at" in past.get_json()["errors"]
    too_far = _grant(client, rep, code, agent, expires_at=_future(days=400))
    assert too_far.status_code == 422
    bad_scope = _grant(client, rep, code, agent, scopes=["everything"])
    assert bad_scope.status_code == 422 and "scopes.0" in bad_scope.get_json()["errors"]
    assert _grant(client, rep, code, agent, scopes=[]).status_code == 422
    assert _grant(client, rep, code, rep).status_code == 422
    naive_beijing = (datetime.now(timezone(timedelta(hours=8))) + timedelta(days=3)).replace(tzinfo=None)
    first = _grant(client, rep, code, agent, expires_at=naive_beijing.isoformat())
    assert first.status_code == 201
    assert _grant(client, rep, code, agent).status_code == 409


def test_expired_grants_do_not_count(client, app, company):
    rep, code = company
    agent = register_person(client, app, name="经办人")
    _grant(client, rep, code, agent)
    with app.app_context():
        db.session.execute(text("UPDATE agent_grants SET expires_at = :t"),
                           {"t": datetime.now(timezone.utc) - timedelta(minutes=1)})
        db.session.commit()
    assert _act_as(client, agent, code).status_code == 404
    status = client.get(f"{API}/enterprises/{code}/agents", headers=rep["headers"]).get_json()["items"][0]["status"]
    assert status == "expired"


def test_company_tokens_cannot_manage_companies(client, app, company):
    rep, code = company
    company_token = _act_as(client, rep, code).get_json()["access_token"]
    response = client.get(f"{API}/enterprises", headers=auth_headers(company_token))
    assert response.status_code == 403
    assert _act_as(client, {"headers": auth_headers(company_token)}, code).status_code == 403


def test_agent_grants_are_audited(client, app, company):
    rep, code = company
    agent = register_person(client, app, name="经办人")
    agent_id = _grant(client, rep, code, agent).get_json()["agent_id"]
    client.delete(f"{API}/enterprises/{code}/agents/{agent_id}", headers=rep["headers"])
    with app.app_context():
        rows = db.session.execute(text("SELECT event, actor, details FROM audit_events ORDER BY seq")).all()
    events = [row.event for row in rows]
    assert "enterprise.claimed" in events and "enterprise.agent_granted" in events
    assert "enterprise.agent_revoked" in events
    assert all(agent["id_number"] not in str(row.details) for row in rows)
