"""SMS codes: sending, the development outbox (`sms last`), the sms grant, tries, expiry, single use."""
from __future__ import annotations

import time

from tests.helpers import API, another_worker, register_person, valid_phone


def _send(client, phone, purpose="login", ip="10.0.0.5"):
    return client.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": purpose},
                       environ_base={"REMOTE_ADDR": ip})


def _last(app, phone):
    result = app.test_cli_runner().invoke(args=["sms", "last", "--phone", phone])
    return result.output.strip() if result.exit_code == 0 else None


def _sms_login(client, phone, code):
    return client.post(f"{API}/auth/token", json={"grant_type": "sms", "phone": phone, "code": code})


def test_send_keeps_a_six_digit_code_in_the_outbox(client, app):
    phone = valid_phone()
    response = _send(client, phone, "register")
    assert response.status_code == 202
    assert response.get_json() == {"expires_in": 300, "resend_after": 60}
    code = _last(app, phone)
    assert code is not None and len(code) == 6 and code.isdigit()


def test_one_send_per_phone_per_minute(client, app):
    phone = valid_phone()
    assert _send(client, phone, "register").status_code == 202
    again = _send(client, phone, "bind", ip="10.0.0.6")
    assert again.status_code == 429
    assert again.mimetype == "application/problem+json"
    assert 0 < int(again.headers["Retry-After"]) <= 60
    assert _send(client, valid_phone(), "register").status_code == 202


def test_sms_grant_logs_in_with_the_code_once(client, app):
    person = register_person(client, app)
    assert _send(client, person["phone"]).status_code == 202
    code = _last(app, person["phone"])
    response = _sms_login(client, person["phone"], code)
    assert response.status_code == 200 and response.get_json()["refresh_token"]
    me = client.get(f"{API}/me", headers={"Authorization": "Bearer " + response.get_json()["access_token"]})
    assert me.get_json()["subject_id"] == person["subject_id"]
    assert _sms_login(client, person["phone"], code).status_code == 401


def test_five_wrong_tries_kill_the_code(client, app):
    person = register_person(client, app)
    _send(client, person["phone"])
    code = _last(app, person["phone"])
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for _ in range(5):
        response = _sms_login(client, person["phone"], wrong)
        assert response.status_code == 401
        assert response.get_json()["detail"] == "验证码错误或已失效"
    assert _sms_login(client, person["phone"], code).status_code == 401


def test_four_wrong_tries_still_leave_the_code_usable(client, app):
    person = register_person(client, app)
    _send(client, person["phone"])
    code = _last(app, person["phone"])
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for _ in range(4):
        _sms_login(client, person["phone"], wrong)
    assert _sms_login(client, person["phone"], code).status_code == 200


def test_code_expires(app):
    with another_worker(app, SMS_CODE_TTL=1) as short:
        web = short.test_client()
        person = register_person(web, short)
        _send(web, person["phone"])
        code = _last(short, person["phone"])
        time.sleep(1.6)
        assert _sms_login(web, person["phone"], code).status_code == 401


def test_codes_are_bound_to_their_purpose(client, app):
    person = register_person(client, app)
    _send(client, person["phone"], "bind")
    code = _last(app, person["phone"])
    assert _sms_login(client, person["phone"], code).status_code == 401


def test_login_code_for_an_unknown_phone_is_accepted_but_not_sent(client, app):
    phone = valid_phone()
    response = _send(client, phone, "login")
    assert response.status_code == 202
    assert _last(app, phone) is None


def test_bad_requests_are_422(client, app):
    response = _send(client, "12345")
    assert response.status_code == 422 and response.get_json()["errors"]["phone"] == ["手机号码格式不正确"]
    response = _send(client, valid_phone(), "reset")
    assert response.get_json()["errors"]["purpose"] == ["用途应为 login、register 或 bind"]


def test_sms_last_is_refused_in_production(app):
    with another_worker(app, APP_ENV="production") as production:
        result = production.test_cli_runner().invoke(args=["sms", "last", "--phone", valid_phone()])
    assert result.exit_code != 0
    assert "仅可在开发和测试环境使用" in result.output
