"""Service functions other domains call: look-ups, guardianship, credit, bindings, token pairs."""
from __future__ import annotations

from datetime import date, timedelta

import jwt
import pytest

from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.identity import channels, enterprises, models, persons, sessions, sms
from app.identity.identifiers import IdentifierError
from app.timeutil import beijing_today
from tests.support.helpers import (API, add_registry_entity, add_registry_person, auth_headers, issue_sms_code,
                           minor_id_number, register_person, valid_credit_code, valid_id_number, valid_phone)


def test_person_look_ups(client, app):
    person = register_person(client, app)
    with app.app_context():
        found = persons.find_person_by_id_number(person["id_number"].lower())
        assert found is not None and found.subject_id == person["subject_id"]
        assert found.id_number == person["id_number"] and found.phone == person["phone"]
        assert persons.person_by_subject_id(person["subject_id"]).id == found.id
        assert persons.find_person_by_phone(person["phone"]).id == found.id
        assert persons.find_person_by_id_number(valid_id_number()) is None
        assert persons.find_person_by_id_number("not an id") is None
        assert persons.person_by_subject_id("e_whatever") is None


def test_guardian_of_needs_the_registry_relation_and_a_minor(app):
    parent, child, adult_child = valid_id_number(), minor_id_number(age=7), valid_id_number(birth=date(1990, 1, 1))
    add_registry_person(app, id_number=parent, name="家长", guardian_of=(child, adult_child))
    with app.app_context():
        assert persons.guardian_of(parent, child) is True
        assert persons.guardian_of(parent.lower(), child) is True
        assert persons.guardian_of(parent, adult_child) is False
        assert persons.guardian_of(child, parent) is False
        assert persons.guardian_of(valid_id_number(), child) is False
        assert persons.guardian_of("bogus", child) is False


def test_credit_class(app):
    person, company = valid_id_number(), valid_credit_code()
    with app.app_context():
        assert persons.credit_class(person) == "诚信守法"
    result = app.test_cli_runner().invoke(args=["registry", "set-credit", "--id-or-code", person,
                                                "--class", "严重失信"])
    assert result.exit_code == 0, result.output
    app.test_cli_runner().invoke(args=["registry", "set-credit", "--id-or-code", company, "--class", "轻微失信"])
    with app.app_context():
        assert persons.credit_class(person) == "严重失信"
        assert persons.credit_class(company.lower()) == "轻微失信"
        with pytest.raises(IdentifierError):
            persons.credit_class("12345")


def test_enterprise_for_and_agent_scopes(client, app):
    rep = register_person(client, app, name="法人")
    agent = register_person(client, app, name="经办")
    stranger = register_person(client, app, name="路人")
    code = valid_credit_code()
    add_registry_entity(app, credit_code=code, name="测试公司", representative_id_number=rep["id_number"])
    client.post(f"{API}/enterprises", json={"credit_code": code, "name": "测试公司"}, headers=rep["headers"])
    client.post(f"{API}/enterprises/{code}/agents", headers=rep["headers"],
                json={"id_number": agent["id_number"], "scopes": ["licenses:read"],
                      "expires_at": (beijing_today() + timedelta(days=60)).isoformat()})
    with app.app_context():
        enterprise = enterprises.enterprise_for(code)
        assert enterprise.name == "测试公司"
        assert enterprises.enterprise_for(enterprise.subject_id).id == enterprise.id
        assert enterprises.enterprise_for("nonsense") is None
        assert enterprises.agent_scopes(rep["subject_id"], code) == set(models.AGENT_SCOPES)
        assert enterprises.agent_scopes(agent["subject_id"], code) == {"licenses:read"}
        assert enterprises.agent_scopes(stranger["subject_id"], code) is None


def test_agent_grant_far_in_the_future_is_rejected(client, app):
    rep = register_person(client, app, name="法人")
    code = valid_credit_code()
    add_registry_entity(app, credit_code=code, name="测试公司", representative_id_number=rep["id_number"])
    client.post(f"{API}/enterprises", json={"credit_code": code, "name": "测试公司"}, headers=rep["headers"])
    response = client.post(f"{API}/enterprises/{code}/agents", headers=rep["headers"],
                           json={"id_number": valid_id_number(), "scopes": ["licenses:read"],
                                 "expires_at": "2099-01-01T00:00:00+08:00"})
    assert response.status_code == 422
    assert response.get_json()["errors"]["expires_at"] == ["授权期限不能超过366天"]


def _bind(app, **overrides):
    args = {"channel": "wechat", "app_id": "wx-app", "open_id": "o-" + valid_phone()}
    args.update(overrides)
    args.setdefault("sms_code", issue_sms_code(app, args["phone"], "bind"))
    with app.app_context():
        person = channels.register_or_link_person(**args)
        return person.subject_id


def test_register_or_link_creates_a_person_who_matches_the_registry(client, app):
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="小程序用户")
    subject = _bind(app, id_number=id_number, name="小程序用户", phone=phone, open_id="o-1", union_id="u-1")
    assert _bind(app, id_number=id_number, name="小程序用户", phone=phone, open_id="o-1") == subject
    with app.app_context():
        assert channels.bound_person(channel="wechat", app_id="wx-app", open_id="o-1").subject_id == subject
        assert channels.bound_person(channel="alipay", app_id="wx-app", open_id="o-1") is None
        pair = sessions.issue_token_pair(persons.person_by_subject_id(subject), channel="wechat")
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["sub"] == subject and claims["channel"] == "wechat"
    me = client.get(f"{API}/me", headers=auth_headers(pair["access_token"])).get_json()
    assert [b["channel"] for b in me["bindings"]] == ["wechat"] and me["bindings"][0]["bound_at"].endswith("Z")
    refreshed = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                       "refresh_token": pair["refresh_token"]}).get_json()
    assert jwt.decode(refreshed["access_token"], options={"verify_signature": False})["channel"] == "wechat"


def test_register_or_link_links_an_existing_account_only_with_its_phone(client, app):
    person = register_person(client, app, name="已注册")
    subject = _bind(app, id_number=person["id_number"], name="已注册", phone=person["phone"], channel="alipay")
    assert subject == person["subject_id"]
    with pytest.raises(ValidationFailed):
        _bind(app, id_number=person["id_number"], name="已注册", phone=valid_phone())


def test_register_or_link_refuses_registry_mismatch_and_taken_openids(client, app):
    with pytest.raises(ValidationFailed) as mismatch:
        _bind(app, id_number=valid_id_number(), name="不存在", phone=valid_phone())
    assert "不一致" in mismatch.value.detail
    first = register_person(client, app, name="甲")
    second = register_person(client, app, name="乙")
    _bind(app, id_number=first["id_number"], name="甲", phone=first["phone"], open_id="o-shared")
    with pytest.raises(Conflict):
        _bind(app, id_number=second["id_number"], name="乙", phone=second["phone"], open_id="o-shared")


def test_send_and_verify_sms_code_for_binding(app):
    phone = valid_phone()
    with app.app_context():
        sms.send_sms_code(phone=phone, purpose="bind")
        code = sms.last_outbox_code(phone)
        assert sms.verify_sms_code(phone, "login", code) is False
        assert sms.verify_sms_code(phone, "bind", code) is True
        assert sms.verify_sms_code(phone, "bind", code) is False


def test_set_phone(client, app):
    person = register_person(client, app)
    other = register_person(client, app, name="他人")
    new_phone = valid_phone()
    with app.app_context():
        persons.set_phone(subject_id=person["subject_id"], phone=new_phone)
        with pytest.raises(Conflict):
            persons.set_phone(subject_id=person["subject_id"], phone=other["phone"])
        assert persons.find_person_by_phone(new_phone).subject_id == person["subject_id"]


def test_me_reveals_full_values_only_when_asked(client, app):
    person = register_person(client, app)
    masked = client.get(f"{API}/me", headers=person["headers"]).get_json()
    assert "id_number" not in masked and "phone" not in masked
    assert masked["phone_masked"] == person["phone"][:3] + "****" + person["phone"][-4:]
    full = client.get(f"{API}/me?reveal=true", headers=person["headers"])
    assert full.get_json()["id_number"] == person["id_number"] and full.get_json()["phone"] == person["phone"]
    assert full.headers["Cache-Control"] == "no-store"
    with app.app_context():
        events = db.session.execute(db.text("SELECT event FROM audit_events")).scalars().all()
    assert "pii.revealed" in events


def test_openapi_documents_the_identity_operations(client):
    spec = client.get("/openapi.json").get_json()
    token = spec["paths"]["/api/v1/auth/token"]["post"]
    assert token["summary"].startswith("获取令牌")
    assert "200" in token["responses"] and "423" in token["responses"]
    me = spec["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    for path in ("/api/v1/auth/register", "/api/v1/auth/sms-codes", "/api/v1/auth/logout", "/api/v1/auth/act-as",
                 "/api/v1/enterprises", "/api/v1/enterprises/{credit_code}/agents",
                 "/api/v1/enterprises/{credit_code}/agents/{agent_id}", "/api/v1/auth/password-resets",
                 "/api/v1/me/password", "/api/v1/me/phone", "/api/v1/me/sessions", "/api/v1/me/sessions/{session_id}",
                 "/api/v1/me/bindings/{channel}", "/api/v1/me/face-verifications",
                 "/api/v1/me/face-verifications/{verification_id}"):
        for method, operation in spec["paths"][path].items():
            if method in ("get", "post", "delete"):
                assert operation["summary"]
                assert {"200", "201", "202", "204"} & set(operation["responses"])



def test_openapi_documents_the_account_security_operations(client):
    spec = client.get("/openapi.json").get_json()
    for path, method in (("/api/v1/me/password", "post"), ("/api/v1/me/phone", "post"),
                         ("/api/v1/me/sessions", "get"), ("/api/v1/me/sessions/{session_id}", "delete"),
                         ("/api/v1/me/bindings/{channel}", "delete"), ("/api/v1/me/face-verifications", "post"),
                         ("/api/v1/me/face-verifications/{verification_id}", "get")):
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"bearerAuth": []}], path
        assert "401" in operation["responses"], path
    register = spec["paths"]["/api/v1/auth/register"]["post"]
    body = register["requestBody"]["content"]["application/json"]
    assert "sms_code" in body["example"] and "422" in register["responses"]
    reset = spec["paths"]["/api/v1/auth/password-resets"]["post"]
    assert set(reset["requestBody"]["content"]["application/json"]["example"]) == {"phone", "sms_code", "new_password"}
    schemas = spec["components"]["schemas"]  # the value list is a shared enum component
    purposes = schemas[schemas["SmsCodeRequest"]["properties"]["purpose"]["$ref"].rsplit("/", 1)[-1]]["enum"]
    assert purposes == ["login", "register", "bind", "reset_password", "change_phone"]
