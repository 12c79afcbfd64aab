"""Registration: identifier validation, registry matching, duplicates, PII at rest and in answers."""
from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import inspect, text

from app.extensions import db
from tests.support.helpers import (API, DEFAULT_PASSWORD, add_registry_person, issue_sms_code, login, register_person,
                           valid_id_number, valid_phone)


def _register(client, **body):
    return client.post(f"{API}/auth/register", json=body)


def _body(id_number, name="张三", phone=None, password=DEFAULT_PASSWORD, app=None):
    """A registration body; with `app`, a fresh `register` code for the phone (else a wrong one)."""
    phone = phone or valid_phone()
    code = issue_sms_code(app, phone, "register") if app is not None else "000000"
    return {"id_number": id_number, "name": name, "phone": phone, "sms_code": code, "password": password}


def _persons(app) -> int:
    with app.app_context():
        return db.session.execute(text("SELECT COUNT(*) FROM persons")).scalar()


def test_register_returns_masked_person_and_real_name_level(client, app):
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="王小二")
    response = _register(client, **_body(id_number, "王小二", phone, app=app))
    assert response.status_code == 201
    body = response.get_json()
    assert body["subject_type"] == "person"
    assert body["subject_id"].startswith("p_") and id_number not in body["subject_id"]
    assert body["id_number_masked"] == id_number[:6] + "********" + id_number[-4:]
    assert body["name"] == "王小二"
    assert body["real_name_level"] == 2
    assert id_number not in response.get_data(as_text=True)
    assert phone not in response.get_data(as_text=True)


def test_wrong_check_digit_is_422_naming_the_field(client, app):
    good = valid_id_number()
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    response = _register(client, **_body(wrong))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["errors"]["id_number"] == ["身份证号码校验位错误"]
    assert "身份证号码" in body["detail"]


def test_invalid_phone_and_weak_password_are_422_in_chinese(client, app):
    response = _register(client, id_number=valid_id_number(), name="张三", phone="12345", password="abcdefgh")
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert errors["phone"] == ["手机号码格式不正确"]
    assert errors["password"] == ["密码至少8位，且须同时包含字母和数字"]
    response = _register(client, **_body(valid_id_number(), password="12345678"))
    assert response.get_json()["errors"]["password"] == ["密码至少8位，且须同时包含字母和数字"]
    response = _register(client, **_body(valid_id_number(), password="ab1"))
    assert response.status_code == 422


def test_missing_and_unknown_fields_are_422(client, app):
    response = _register(client, id_number=valid_id_number(), name="张三")
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert errors["phone"] == ["缺少必填字段：手机号码"]
    assert errors["password"] == ["缺少必填字段：密码"]
    assert errors["sms_code"] == ["缺少必填字段：短信验证码"]
    response = _register(client, **_body(valid_id_number()), real_name_level=3)
    assert response.status_code == 422
    assert response.get_json()["errors"]["real_name_level"] == ["不允许的字段"]


def test_registry_mismatch_is_422_and_does_not_reveal_whether_the_id_exists(client, app):
    known = valid_id_number()
    add_registry_person(app, id_number=known, name="赵六")
    wrong_name = _register(client, **_body(known, "钱七", app=app))
    unknown_id = _register(client, **_body(valid_id_number(), "钱七", app=app))
    assert wrong_name.status_code == unknown_id.status_code == 422
    a, b = wrong_name.get_json(), unknown_id.get_json()
    assert a["detail"] == b["detail"] and a["errors"] == b["errors"]
    assert "不一致" in a["detail"]
    assert _persons(app) == 0


def test_duplicate_registration_is_409(client, app):
    person = register_person(client, app, name="孙八")
    again = _register(client, **_body(person["id_number"], "孙八", app=app))
    assert again.status_code == 409
    assert "已注册" in again.get_json()["detail"]
    other = valid_id_number()
    add_registry_person(app, id_number=other, name="周九")
    same_phone = _register(client, **_body(other, "周九", person["phone"], app=app))
    assert same_phone.status_code == 409


def test_id_number_is_case_and_space_insensitive(client, app):
    id_number = "11010519491231002X"
    add_registry_person(app, id_number=id_number, name="张三")
    response = _register(client, **_body(" 110105 19491231002x ", "张三", app=app))
    assert response.status_code == 201
    assert login(client, "11010519491231002x")["token_type"] == "Bearer"


def test_raw_database_holds_no_plaintext_id_number_or_phone(client, app):
    parent = register_person(client, app, name="吴十")
    child = valid_id_number(birth=date(2018, 5, 1))
    add_registry_person(app, id_number=parent["id_number"], name="吴十", phone=parent["phone"], guardian_of=(child,))
    client.post(f"{API}/auth/sms-codes", json={"phone": parent["phone"], "purpose": "login"})
    client.get(f"{API}/me?reveal=true", headers=parent["headers"])
    client.post(f"{API}/auth/token", json={"grant_type": "password", "username": parent["phone"],
                                           "password": "wrong-password-1"})
    needles = {parent["id_number"], parent["phone"], child, parent["id_number"].lower()}
    with app.app_context():
        names = inspect(db.engine).get_table_names()
        assert {"persons", "registry_persons", "registry_guardians", "sms_outbox", "audit_events"} <= set(names)
        seen_rows = 0
        for table in names:
            for row in db.session.execute(text(f'SELECT * FROM "{table}"')):
                seen_rows += 1
                dump = " ".join(str(value) for value in row)
                for needle in needles:
                    assert needle not in dump, f"plaintext PII in table {table}"
        assert seen_rows > 5


def test_log_lines_mask_id_numbers_and_phones(client, app, caplog):
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="郑一")
    with caplog.at_level(logging.INFO, logger="app"):
        assert _register(client, **_body(id_number, "郑一", phone, app=app)).status_code == 201
        client.post(f"{API}/auth/token", json={"grant_type": "password", "username": phone, "password": "bad-pass1"})
    handler = next(h for h in logging.getLogger("app").handlers if getattr(h, "_ias", False))
    lines = [handler.format(record) for record in caplog.records]
    assert any("person registered" in line for line in lines)
    joined = "\n".join(lines)
    assert id_number not in joined and phone not in joined
    assert id_number[:6] + "********" + id_number[-4:] in joined



# ---- the phone is proven first


def _send(client, phone, purpose="register"):
    return client.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": purpose})


def _outbox_code(app, phone):
    from app.identity import sms
    with app.app_context():
        return sms.last_outbox_code(phone)


def test_registration_with_the_code_sent_to_the_phone(client, app):
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="冯二")
    assert _send(client, phone).status_code == 202
    body = {"id_number": id_number, "name": "冯二", "phone": phone, "sms_code": _outbox_code(app, phone),
            "password": DEFAULT_PASSWORD}
    assert _register(client, **body).status_code == 201
    assert login(client, phone)["token_type"] == "Bearer"
    again = _register(client, **body)  # the code worked once
    assert again.status_code == 422 and list(again.get_json()["errors"]) == ["sms_code"]


def test_a_stolen_name_and_id_number_cannot_open_the_account(client, app):
    """Someone who knows a person's name and ID number but not their phone: every attempt is a 422
    naming sms_code, before the registry or the phone's owner is looked at, and nothing is written."""
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="褚三")
    _send(client, phone)  # the code goes to the phone's owner, not to the attacker
    attacker = {"id_number": id_number, "name": "褚三", "phone": phone, "password": "Attacker2025"}
    answers = [_register(client, **attacker, sms_code=f"{guess:06d}") for guess in range(5)]
    answers.append(_register(client, **attacker))
    for answer in answers:
        assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
        assert "sms_code" in answer.get_json()["errors"]
    assert _persons(app) == 0
    assert _register(client, **attacker, sms_code=_outbox_code(app, phone)).status_code == 422  # burnt by guessing
    with app.app_context():
        events = db.session.execute(text("SELECT event FROM audit_events")).scalars().all()
    assert "sms.code_burned" in events


def test_someone_elses_phone_cannot_be_taken_first(client, app):
    """The old hole: registering with the owner's phone number so that the owner is refused (409).
    Without the code sent to that phone it is a 422 and the owner registers normally."""
    owner_id, owner_phone = valid_id_number(), valid_phone()
    squatter_id = valid_id_number()
    add_registry_person(app, id_number=owner_id, name="卫四")
    add_registry_person(app, id_number=squatter_id, name="蒋五")
    squat = _register(client, **_body(squatter_id, "蒋五", owner_phone))
    assert squat.status_code == 422 and "sms_code" in squat.get_json()["errors"]
    assert _register(client, **_body(owner_id, "卫四", owner_phone, app=app)).status_code == 201


def test_a_typo_in_the_name_does_not_use_up_the_code(client, app):
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="沈六")
    code = issue_sms_code(app, phone, "register")
    body = {"id_number": id_number, "phone": phone, "sms_code": code, "password": DEFAULT_PASSWORD}
    typo = _register(client, **body, name="沈陆")
    assert typo.status_code == 422 and set(typo.get_json()["errors"]) == {"id_number", "name"}
    assert _register(client, **body, name="沈六").status_code == 201


def test_a_code_for_another_purpose_or_phone_does_not_register(client, app):
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name="韩七")
    body = {"id_number": id_number, "name": "韩七", "phone": phone, "password": DEFAULT_PASSWORD}
    assert _register(client, **body, sms_code=issue_sms_code(app, phone, "bind")).status_code == 422
    assert _register(client, **body, sms_code=issue_sms_code(app, valid_phone(), "register")).status_code == 422
    malformed = _register(client, **body, sms_code="12ab")
    assert malformed.get_json()["errors"]["sms_code"] == ["验证码应为6位数字"]
    assert _persons(app) == 0
