"""Operator commands: registry, clients, staff, seed (idempotent)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from app.extensions import db
from app.identity import persons, registries
from app.identity.identifiers import normalize_credit_code
from app.identity.models import RegistryCredit, RegistryEntity, RegistryGuardian, RegistryPerson
from tests.support.helpers import (API, auth_headers, issue_sms_code, login, minor_id_number, register_person,
                           valid_credit_code, valid_id_number, valid_phone)

ID_CARD, DRIVING = "11100000000013100M001", "11100000000013100M009"  # seeded license types


def _run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_registry_add_person_enables_registration(client, app):
    id_number, phone, child = valid_id_number(), valid_phone(), minor_id_number()
    result = _run(app, "registry", "add-person", "--id-number", id_number, "--name", "命令行",
                  "--phone", phone, "--guardian-of", child)
    assert result.exit_code == 0, result.output
    assert id_number not in result.output
    response = client.post(f"{API}/auth/register", json={"id_number": id_number, "name": "命令行",
                                                         "phone": phone, "password": "Abcdef123",
                                                         "sms_code": issue_sms_code(app, phone, "register")})
    assert response.status_code == 201
    with app.app_context():
        assert persons.guardian_of(id_number, child)
    # the registry knows the phone: registering another phone for this person does not match
    other = valid_id_number()
    _run(app, "registry", "add-person", "--id-number", other, "--name", "另一人", "--phone", valid_phone())
    other_phone = valid_phone()
    response = client.post(f"{API}/auth/register", json={"id_number": other, "name": "另一人",
                                                         "phone": other_phone, "password": "Abcdef123",
                                                         "sms_code": issue_sms_code(app, other_phone, "register")})
    assert response.status_code == 422


def test_registry_commands_reject_bad_identifiers(app):
    bad = valid_id_number()[:17] + "Z"
    result = _run(app, "registry", "add-person", "--id-number", bad, "--name", "错误")
    assert result.exit_code != 0 and "身份证号码" in result.output
    result = _run(app, "registry", "add-entity", "--credit-code", "91370102MA3C12345X", "--name", "公司",
                  "--representative-id-number", valid_id_number())
    assert result.exit_code != 0 and "统一社会信用代码" in result.output
    result = _run(app, "registry", "set-credit", "--id-or-code", valid_id_number(), "--class", "很好")
    assert result.exit_code != 0


def test_registry_add_entity_enables_claiming(client, app):
    rep = register_person(client, app, name="法人丙")
    code = valid_credit_code()
    result = _run(app, "registry", "add-entity", "--credit-code", code, "--name", "丙公司",
                  "--representative-id-number", rep["id_number"])
    assert result.exit_code == 0, result.output
    response = client.post(f"{API}/enterprises", json={"credit_code": code, "name": "丙公司"}, headers=rep["headers"])
    assert response.status_code == 201


def test_clients_create_prints_a_secret_that_works_once_shown(client, app):
    result = _run(app, "clients", "create", "--kind", "issuer", "--name", "省公安厅", "--license-type", ID_CARD,
                  "--license-type", DRIVING, "--credit-code", "91110000600037341L")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["client_id"].startswith("c_") and len(body["client_secret"]) >= 32
    assert body["credit_code"] == "91110000600037341L"
    response = client.post(f"{API}/auth/token", json={"grant_type": "client_credentials", **{
        k: body[k] for k in ("client_id", "client_secret")}})
    assert response.status_code == 200
    with app.app_context():
        raw = " ".join(str(v) for row in db.session.execute(text("SELECT * FROM api_clients")) for v in row)
        events = db.session.execute(text("SELECT event FROM audit_events")).scalars().all()
    assert body["client_secret"] not in raw
    assert "client.created" in events


def test_clients_create_validation(app):
    result = _run(app, "clients", "create", "--kind", "issuer", "--name", "无类型签发方")
    assert result.exit_code != 0 and "证照类型" in result.output
    result = _run(app, "clients", "create", "--kind", "robot", "--name", "x")
    assert result.exit_code != 0 and "客户端类型应为" in result.output
    result = _run(app, "clients", "create", "--kind", "issuer", "--name", "默认代码", "--license-type", ID_CARD)
    assert result.exit_code == 0
    assert normalize_credit_code(json.loads(result.output)["credit_code"])


def test_staff_create_makes_a_person_who_can_log_in(client, app):
    id_number = valid_id_number()
    result = _run(app, "staff", "create", "--hall", "370102", "--role", "hall_staff", "--id-number", id_number,
                  "--name", "窗口人员", "--password", "Window2025")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"] is True
    tokens = login(client, id_number, "Window2025")
    me = client.get(f"{API}/me", headers=auth_headers(tokens["access_token"])).get_json()
    assert set(me["roles"]) == {"citizen", "hall_staff"} and me["halls"] == {"370102": "hall_staff"}
    # a second role for the same person keeps their password
    result = _run(app, "staff", "create", "--hall", "370100", "--role", "hall_admin", "--id-number", id_number,
                  "--name", "窗口人员")
    assert result.exit_code == 0 and json.loads(result.output)["created"] is False
    tokens = login(client, id_number, "Window2025")
    me = client.get(f"{API}/me", headers=auth_headers(tokens["access_token"])).get_json()
    assert me["halls"] == {"370102": "hall_staff", "370100": "hall_admin"}
    with app.app_context():  # also in the development population registry
        assert registries.population().matches(id_number=id_number, name="窗口人员")


def test_staff_create_rules(app):
    result = _run(app, "staff", "create", "--role", "hall_staff", "--id-number", valid_id_number(),
                  "--name", "无大厅", "--password", "Window2025")
    assert result.exit_code != 0 and "大厅" in result.output
    result = _run(app, "staff", "create", "--role", "platform_admin", "--id-number", valid_id_number(),
                  "--name", "平台管理员", "--password", "weak")
    assert result.exit_code != 0 and "密码" in result.output
    result = _run(app, "staff", "create", "--role", "platform_admin", "--id-number", valid_id_number(),
                  "--name", "平台管理员", "--password", "Platform2025")
    assert result.exit_code == 0, result.output


def _registry_counts():
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (RegistryPerson, RegistryGuardian, RegistryEntity, RegistryCredit))


def test_demo_seed_is_idempotent_and_usable(client, app):
    with app.app_context():
        first = registries.seed_demo()
        counts = _registry_counts()
        second = registries.seed_demo()
        assert _registry_counts() == counts
        assert first.startswith("11 ") and second.startswith("0 ")
        assert persons.credit_class("440524188001010014") == "轻微失信"
        assert persons.guardian_of("37010219850315123X", "370102201506011237")
    response = client.post(f"{API}/auth/register", json={"id_number": "11010519491231002X", "name": "张三",
                                                         "phone": "13800138000", "password": "Zhangsan2025",
                                                         "sms_code": issue_sms_code(app, "13800138000", "register")})
    assert response.status_code == 201


def _counts(app) -> tuple[int, ...]:
    with app.app_context():
        return tuple(db.session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()
                     for table in ("persons", "staff_assignments", "api_clients", "registry_persons", "audit_events"))


@pytest.mark.parametrize("args, message", [
    (("staff", "create", "--hall", "379999", "--role", "hall_staff", "--name", "无此大厅", "--password", "Window2025"),
     "大厅编码 379999 不存在"),
    (("staff", "create", "--hall", "370102", "--role", "janitor", "--name", "无此角色", "--password", "Window2025"),
     "角色应为 hall_admin、hall_staff 或 platform_admin"),
    (("clients", "create", "--kind", "issuer", "--name", "无此证照", "--license-type", "NOPE"),
     "证照目录中没有这些证照类型：NOPE"),
    (("clients", "create", "--kind", "verifier", "--name", "核验无此证照", "--license-type", ID_CARD,
      "--license-type", "NOPE2"), "证照目录中没有这些证照类型：NOPE2"),
])
def test_commands_refuse_what_does_not_exist_and_write_nothing(client, app, args, message):
    if args[0] == "staff":
        args = args + ("--id-number", valid_id_number())
    before = _counts(app)
    result = _run(app, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert _counts(app) == before


def test_an_unknown_hall_never_shows_up_in_me(client, app):
    id_number = valid_id_number()
    _run(app, "staff", "create", "--hall", "379999", "--role", "hall_admin", "--id-number", id_number,
         "--name", "幽灵管理员", "--password", "Window2025")
    response = client.post(f"{API}/auth/token", json={"grant_type": "password", "username": id_number,
                                                      "password": "Window2025"})
    assert response.status_code == 401
