"""SMS codes: sending, the development outbox (`sms last`), the sms grant, tries, expiry, single use,
the sending limits (per phone, per client address, across workers) and no account enumeration."""
from __future__ import annotations

import statistics
import time

from sqlalchemy import select

from app.extensions import db
from app.identity import sms
from app.identity.models import SmsOutbox, phone_index
from app.security.models import AuditEvent
from tests.support.helpers import API, another_worker, issue_sms_code, needs_redis, register_person, valid_phone


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
    assert 0 < int(again.headers["Retry-After"]) <= 61
    assert _send(client, valid_phone(), "register").status_code == 202


def test_per_phone_limits_have_several_windows(app):
    """SMS_RATE_LIMIT in `limits` notation with several windows: the hourly one holds when the
    per-minute one would allow more."""
    with another_worker(app, SMS_RATE_LIMIT="3/minute;4/hour") as worker:
        web, phone = worker.test_client(), valid_phone()
        statuses = [_send(web, phone, ip=f"10.1.0.{i}").status_code for i in range(5)]
        assert statuses == [202, 202, 202, 429, 429]
        assert web.post(f"{API}/auth/sms-codes", json={"phone": valid_phone(), "purpose": "login"}).get_json() == \
            {"expires_in": 300, "resend_after": 20}


def test_per_address_limit(app):
    with another_worker(app, SMS_ADDRESS_RATE_LIMIT="3/minute") as worker:
        web = worker.test_client()
        statuses = [_send(web, valid_phone(), "register", ip="10.2.0.9").status_code for _ in range(4)]
        assert statuses == [202, 202, 202, 429]
        limited = _send(web, valid_phone(), "register", ip="10.2.0.9")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "errors" not in limited.get_json() and limited.get_json()["detail"]
        assert _send(web, valid_phone(), "register", ip="10.2.0.10").status_code == 202


@needs_redis("two workers share SMS limits only through Redis")
def test_sms_limits_hold_across_two_workers(app):
    phone = valid_phone()
    with another_worker(app) as first, another_worker(app) as second:
        assert _send(first.test_client(), phone, ip="10.3.0.1").status_code == 202
        assert _send(second.test_client(), phone, ip="10.3.0.2").status_code == 429
    with another_worker(app, SMS_ADDRESS_RATE_LIMIT="2/minute") as first, \
            another_worker(app, SMS_ADDRESS_RATE_LIMIT="2/minute") as second:
        answers = [_send(worker.test_client(), valid_phone(), ip="10.3.0.3").status_code
                   for worker in (first, second, first, second)]
        assert answers == [202, 202, 429, 429]


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


def test_code_expires(app, clock):
    with another_worker(app, SMS_CODE_TTL=1) as short:
        web = short.test_client()
        person = register_person(web, short)
        _send(web, person["phone"])
        code = _last(short, person["phone"])
        clock.advance(1.6, short)
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


def _outbox(app, phone):
    with app.app_context():
        return db.session.scalars(select(SmsOutbox).where(SmsOutbox.phone_index == phone_index(phone))).all()


def test_no_account_enumeration_through_sms_codes(client, app):
    """login and reset_password: the same status and body whether or not an account has the phone;
    the phone's owner gets a code, or a notice that carries none."""
    for purpose in ("login", "reset_password"):
        person, stranger = register_person(client, app), valid_phone()
        known = _send(client, person["phone"], purpose, ip=f"10.4.0.{len(purpose)}")
        unknown = _send(client, stranger, purpose, ip=f"10.4.1.{len(purpose)}")
        assert known.status_code == unknown.status_code == 202
        assert known.get_json() == unknown.get_json()
        assert known.headers.get("Content-Length") == unknown.headers.get("Content-Length")
        [notice] = _outbox(app, stranger)
        assert notice.code is None and "尚未注册" in notice.body and not any(ch.isdigit() for ch in notice.body)
        assert _outbox(app, person["phone"])[-1].code is not None


def test_sending_takes_about_as_long_for_registered_and_unregistered_phones(client, app):
    registered = [register_person(client, app)["phone"] for _ in range(6)]

    def timed(phone):
        started = time.perf_counter()
        assert _send(client, phone, "reset_password", ip="10.5.0.1").status_code == 202
        return time.perf_counter() - started

    known, unknown = [], []
    for phone in registered:  # interleaved, so that load on the machine hits both alike
        known.append(timed(phone))
        unknown.append(timed(valid_phone()))
    slower, faster = sorted((statistics.median(known), statistics.median(unknown)), reverse=True)
    assert slower < faster * 2 + 0.01, (known, unknown)


def test_bad_requests_are_422(client, app):
    response = _send(client, "12345")
    assert response.status_code == 422 and response.get_json()["errors"]["phone"] == ["手机号码格式不正确"]
    response = _send(client, valid_phone(), "reset")
    assert response.get_json()["errors"]["purpose"] == [
        "用途应为 login、register、bind、reset_password、change_phone"]


def test_a_proven_code_is_used_up_once_and_the_fifth_wrong_guess_burns_it(app):
    phone = valid_phone()
    code = issue_sms_code(app, phone, "bind")
    with app.app_context():
        proven = sms.prove(phone, "bind", code)
        again = sms.prove(phone, "bind", code)  # proving uses nothing up
        assert proven is not None and again is not None
        assert proven.consume() is True and again.consume() is False
        assert sms.prove(phone, "bind", code) is None
    code = issue_sms_code(app, phone, "bind")
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    with app.app_context():
        assert [sms.prove(phone, "bind", wrong) for _ in range(5)] == [None] * 5
        assert sms.prove(phone, "bind", code) is None
        burnt = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "sms.code_burned")).all()
        assert len(burnt) == 1 and burnt[0].details["purpose"] == "bind"
        assert phone not in str(burnt[0].details)


def test_sms_last_is_refused_in_production(app):
    with another_worker(app, APP_ENV="production") as production:
        result = production.test_cli_runner().invoke(args=["sms", "last", "--phone", valid_phone()])
    assert result.exit_code != 0
    assert "仅可在开发和测试环境使用" in result.output
