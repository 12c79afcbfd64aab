"""Showing a license for someone else: a guardian for a minor child, a company's representative
and agents (scope `licenses:present`); the access log says who showed it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.helpers import (API, add_registry_entity, add_registry_person, auth_headers, minor_id_number,
                           register_person, valid_credit_code, valid_id_number)
from tests.support.wallet import (BUSINESS, ID_CARD, access_log, business_fields, id_card_fields, issue,
                                          issuer_headers, present, verifier_headers, verify)


@pytest.fixture
def police(app, client):
    return issuer_headers(app, client, types=(ID_CARD,))


def _guardian(app, client, child_id):
    parent_id = valid_id_number()
    add_registry_person(app, id_number=parent_id, name="张父", guardian_of=(child_id,))
    return register_person(client, app, name="张父", id_number=parent_id)


def test_guardian_shows_a_minor_childs_license(app, client, police):
    child_id = minor_id_number(age=10)
    add_registry_person(app, id_number=child_id, name="张小明")
    card = issue(client, police, holder_id_number=child_id, fields=id_card_fields("张小明", birth_date=child_id[6:10]
                                                                                 + "-" + child_id[10:12] + "-" + child_id[12:14]))
    parent = _guardian(app, client, child_id)
    stranger = register_person(client, app, name="路人")
    # the guardian finds the child's licenses by the child's ID number
    listed = client.get(f"{API}/wallet/licenses", headers=parent["headers"],
                        query_string={"holder_id_number": child_id}).get_json()
    assert [item["license_id"] for item in listed["items"]] == [card["license_id"]]
    assert client.get(f"{API}/wallet/licenses", headers=parent["headers"]).get_json()["total"] == 0
    assert client.get(f"{API}/wallet/licenses", headers=stranger["headers"],
                      query_string={"holder_id_number": child_id}).status_code == 404
    detail = client.get(f"{API}/wallet/licenses/{card['license_id']}", headers=parent["headers"]).get_json()
    assert detail["viewer_role"] == "guardian"
    assert client.get(f"{API}/wallet/licenses/{card['license_id']}", headers=stranger["headers"]).status_code == 404
    school = verifier_headers(app, client, types=(ID_CARD,), name="历下区实验小学")
    shown = present(client, parent["headers"], card["license_id"], purpose="入学报名", disclose=["name", "birth_date"])
    result = verify(client, school, code=shown["code"])
    assert result["valid"] is True and result["disclosed"]["name"] == "张小明"
    assert result["shown_by"] == {"role": "guardian", "name_masked": "张*"}
    # the child has no account yet: the guardian, who showed it, is told (his inbox waits for the entry naming him)
    inbox = client.get(f"{API}/inbox", headers=parent["headers"]).get_json()["items"]
    assert any(note["kind"] == "license_access" for note in inbox)
    log = access_log(client, parent["headers"], card["license_id"])["items"]
    assert log[0]["verifier"] == "历下区实验小学" and log[0]["purpose"] == "入学报名"
    assert log[0]["shown_by"]["role"] == "guardian" and log[0]["shown_by"]["subject_id"] == parent["subject_id"]
    assert client.post(f"{API}/wallet/licenses/{card['license_id']}/presentations", headers=stranger["headers"],
                       json={"purpose": "冒用"}).status_code == 404


def test_guardianship_ends_at_eighteen(app, client, police):
    adult_child = valid_id_number()
    add_registry_person(app, id_number=adult_child, name="张大明")
    card = issue(client, police, holder_id_number=adult_child, fields=id_card_fields("张大明"))
    parent = _guardian(app, client, adult_child)
    assert client.get(f"{API}/wallet/licenses/{card['license_id']}", headers=parent["headers"]).status_code == 404
    assert client.get(f"{API}/wallet/licenses", headers=parent["headers"],
                      query_string={"holder_id_number": adult_child}).status_code == 404


@pytest.fixture
def company(app, client):
    """A claimed company with a business license; returns its people and the license."""
    boss = register_person(client, app, name="王总")
    code = valid_credit_code()
    add_registry_entity(app, credit_code=code, name="山东示例科技有限公司", representative_id_number=boss["id_number"])
    assert client.post(f"{API}/enterprises", json={"credit_code": code, "name": "山东示例科技有限公司"},
                       headers=boss["headers"]).status_code == 201
    issuer = issuer_headers(app, client, types=(BUSINESS,), name="济南市市场监督管理局")
    lic = issue(client, issuer, license_type=BUSINESS, holder_credit_code=code,
                fields=business_fields(legal_representative="王总"))
    return {"boss": boss, "code": code, "license": lic, "issuer": issuer}


def _agent(app, client, company, scopes, name="李经办"):
    agent = register_person(client, app, name=name)
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
    response = client.post(f"{API}/enterprises/{company['code']}/agents", headers=company["boss"]["headers"],
                           json={"id_number": agent["id_number"], "scopes": scopes, "expires_at": expires})
    assert response.status_code == 201, response.get_json()
    return agent


def _act_as(client, person, code):
    response = client.post(f"{API}/auth/act-as", json={"credit_code": code}, headers=person["headers"])
    assert response.status_code == 200, response.get_json()
    return auth_headers(response.get_json()["access_token"])


def test_company_agent_with_licenses_present_shows_the_business_license(app, client, company):
    license_id = company["license"]["license_id"]
    agent = _agent(app, client, company, ["licenses:present"])
    as_company = _act_as(client, agent, company["code"])
    items = client.get(f"{API}/wallet/licenses", headers=as_company).get_json()["items"]
    assert [item["license_id"] for item in items] == [license_id]
    bank = verifier_headers(app, client, types=(BUSINESS,), name="齐鲁银行")
    shown = present(client, as_company, license_id, purpose="对公开户")
    result = verify(client, bank, code=shown["code"])
    assert result["valid"] is True and result["disclosed"]["entity_name"] == "山东示例科技有限公司"
    assert result["disclosed"]["credit_code"] == company["code"]
    boss_company = _act_as(client, company["boss"], company["code"])
    log = access_log(client, boss_company, license_id)["items"]
    assert log[0]["verifier"] == "齐鲁银行" and log[0]["shown_by"]["role"] == "agent"
    assert log[0]["shown_by"]["subject_id"] == agent["subject_id"] and log[0]["shown_by"]["name_masked"] == "李**"
    own = present(client, boss_company, license_id, purpose="招投标")
    verify(client, code=own["code"])
    assert access_log(client, boss_company, license_id)["items"][0]["shown_by"]["role"] == "representative"
    # the company's license is not in anybody's personal wallet
    assert client.get(f"{API}/wallet/licenses/{license_id}", headers=company["boss"]["headers"]).status_code == 404
    assert client.get(f"{API}/wallet/licenses/{license_id}", headers=agent["headers"]).status_code == 404


def test_agents_without_licenses_present_cannot_show(app, client, company):
    license_id = company["license"]["license_id"]
    reader = _act_as(client, _agent(app, client, company, ["licenses:read"], name="赵只读"), company["code"])
    assert client.get(f"{API}/wallet/licenses/{license_id}", headers=reader).status_code == 200
    response = client.post(f"{API}/wallet/licenses/{license_id}/presentations", headers=reader,
                           json={"purpose": "对公开户"})
    assert response.status_code == 403 and "licenses:present" in response.get_json()["detail"]
    clerk = _act_as(client, _agent(app, client, company, ["applications:submit"], name="钱办件"), company["code"])
    assert client.get(f"{API}/wallet/licenses", headers=clerk).status_code == 403
    assert client.post(f"{API}/wallet/licenses/{license_id}/presentations", headers=clerk,
                       json={"purpose": "x"}).status_code == 403


def test_other_companies_cannot_see_the_license(app, client, company):
    other_boss = register_person(client, app, name="孙总")
    other_code = valid_credit_code()
    add_registry_entity(app, credit_code=other_code, name="另一家公司", representative_id_number=other_boss["id_number"])
    client.post(f"{API}/enterprises", json={"credit_code": other_code, "name": "另一家公司"},
                headers=other_boss["headers"])
    other = _act_as(client, other_boss, other_code)
    license_id = company["license"]["license_id"]
    assert client.get(f"{API}/wallet/licenses/{license_id}", headers=other).status_code == 404
    assert client.get(f"{API}/wallet/licenses", headers=other).get_json()["total"] == 0
