"""Mini-program sign-in, binding, phone numbers, open data, notices and content checks, end to end
through the Flask app against the local WeChat and Alipay fakes on loopback."""
from __future__ import annotations

import base64
import json
import secrets
import socket
import time

import jwt
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import func, select

from app.extensions import db
from app.identity import sms
from app.identity.models import ChannelBinding, Person
from app.notifications.models import OutboxMessage
from app.notifications.service import deliver_pending, notify, schedule_delivery
from app.security.models import AuditEvent
from miniprograms.content import check_published_text
from tests.fakes import alipay_server as ali
from tests.fakes.alipay_server import FakeAlipayGateway, generate_rsa_keypair, rsa2_sign
from tests.fakes.http_base import FakeResponse
from tests.fakes.wechat_server import GARBLED, FakeWeChatServer, Slow
from tests.support.helpers import (API, add_registry_person, another_worker, auth_headers, register_person,
                           valid_id_number, valid_phone)

ALIPAY_APP_ID = "2021000000000001"
WECHAT = f"{API}/miniprograms/wechat"
ALIPAY = f"{API}/miniprograms/alipay"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def alipay_keys():
    app_private, app_public = generate_rsa_keypair()
    alipay_private, alipay_public = generate_rsa_keypair()
    return {"app_private": app_private, "app_public": app_public, "alipay_private": alipay_private,
            "alipay_public": alipay_public, "aes": base64.b64encode(secrets.token_bytes(16)).decode()}


@pytest.fixture
def wechat():
    with FakeWeChatServer() as fake:
        yield fake


@pytest.fixture
def alipay(alipay_keys):
    with FakeAlipayGateway(ALIPAY_APP_ID, alipay_keys["app_public"], alipay_keys["alipay_private"],
                           aes_key_b64=alipay_keys["aes"]) as fake:
        yield fake


@pytest.fixture
def channel_config(wechat, alipay, alipay_keys):
    return {"WECHAT_APP_ID": wechat.app_id, "WECHAT_APP_SECRET": wechat.app_secret,
            "WECHAT_API_BASE": wechat.base_url, "ALIPAY_APP_ID": ALIPAY_APP_ID,
            "ALIPAY_APP_PRIVATE_KEY": alipay_keys["app_private"], "ALIPAY_PUBLIC_KEY": alipay_keys["alipay_public"],
            "ALIPAY_AES_KEY": alipay_keys["aes"], "ALIPAY_GATEWAY": alipay.base_url,
            "MINIPROGRAM_HTTP_TIMEOUT": (1, 0.5), "JOBS_INLINE": True}


@pytest.fixture
def mp_app(app, channel_config):
    with another_worker(app, **channel_config) as worker:
        yield worker


@pytest.fixture
def mp(mp_app):
    return mp_app.test_client()


# ---- helpers


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def resident(app, name="王芳", phone=None) -> dict:
    person = {"id_number": valid_id_number(), "name": name, "phone": phone or valid_phone()}
    add_registry_person(app, id_number=person["id_number"], name=name)
    return person


def sms_code(mp, mp_app, phone: str) -> str:
    response = mp.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": "bind"})
    assert response.status_code == 202, response.get_json()
    with mp_app.app_context():
        return sms.last_outbox_code(phone)


def start(mp, base: str, code: str) -> dict:
    field = "code" if base == WECHAT else "auth_code"
    response = mp.post(f"{base}/sessions", json={field: code})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bind(mp, mp_app, base: str, ticket: str, person: dict, **overrides):
    body = {"bind_ticket": ticket, **person, "sms_code": sms_code(mp, mp_app, person["phone"]), **overrides}
    return mp.post(f"{base}/bindings", json=body)


def wechat_user(mp, mp_app, wechat, app, *, openid="o-user-1", unionid=None, person=None) -> dict:
    """A WeChat account bound to a (new) resident; returns tokens, person and the session key."""
    person = person or resident(app)
    code = f"login-{secrets.token_hex(4)}"
    session = wechat.add_user(code, openid, unionid=unionid)
    body = start(mp, WECHAT, code)
    response = bind(mp, mp_app, WECHAT, body["bind_ticket"], person)
    assert response.status_code == 200, response.get_json()
    return {**response.get_json(), "person": person, "session_key": session["session_key"], "openid": openid}


def audit_rows(mp_app, event: str) -> list[AuditEvent]:
    with mp_app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.seq)))


def count(mp_app, model) -> int:
    with mp_app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def is_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["detail"] and not body["detail"].isascii()
    return body


# ---- WeChat sign-in and binding


def test_wechat_first_login_binds_then_second_login_gets_tokens(mp, mp_app, wechat, app):
    person = resident(app)
    session = wechat.add_user("first", "o-alice", unionid="u-alice")
    body = start(mp, WECHAT, "first")
    assert body["bind_required"] is True and body["bind_ticket"].startswith("bt_")
    assert 0 < body["bind_ticket_expires_in"] <= 600 and "access_token" not in body
    assert session["session_key"] not in json.dumps(body)

    response = bind(mp, mp_app, WECHAT, body["bind_ticket"], person)
    assert response.status_code == 200, response.get_json()
    tokens = response.get_json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert response.headers["Cache-Control"] == "no-store"
    claims = claims_of(tokens["access_token"])
    assert claims["channel"] == "wechat" and claims["sub"].startswith("p_")

    me = mp.get(f"{API}/me", headers=auth_headers(tokens["access_token"])).get_json()
    assert me["subject_id"] == claims["sub"] and me["name"] == person["name"]
    assert [b["channel"] for b in me["bindings"]] == ["wechat"]

    wechat.add_user("second", "o-alice", unionid="u-alice")
    again = start(mp, WECHAT, "second")
    assert set(again) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert claims_of(again["access_token"])["sub"] == claims["sub"]
    assert claims_of(again["access_token"])["channel"] == "wechat"
    assert count(mp_app, ChannelBinding) == 1


def test_bind_ticket_is_single_use(mp, mp_app, wechat, app):
    person = resident(app)
    wechat.add_user("c", "o-once")
    ticket = start(mp, WECHAT, "c")["bind_ticket"]
    assert bind(mp, mp_app, WECHAT, ticket, person).status_code == 200
    other = resident(app, name="赵六")
    response = mp.post(f"{WECHAT}/bindings", json={"bind_ticket": ticket, **other, "sms_code": "123456"})
    is_problem(response, 401)
    assert "绑定凭证" in response.get_json()["detail"]


def test_wechat_ticket_cannot_bind_alipay(mp, mp_app, wechat, app):
    wechat.add_user("c", "o-cross")
    ticket = start(mp, WECHAT, "c")["bind_ticket"]
    response = bind(mp, mp_app, ALIPAY, ticket, resident(app))
    is_problem(response, 401)
    assert count(mp_app, ChannelBinding) == 0


def test_bind_links_an_existing_account(mp, mp_app, wechat, app, client):
    alice = register_person(client, app, name="李娜")
    person = {"id_number": alice["id_number"], "name": "李娜", "phone": alice["phone"]}
    tokens = wechat_user(mp, mp_app, wechat, app, person=person)
    assert claims_of(tokens["access_token"])["sub"] == alice["subject_id"]
    assert count(mp_app, Person) == 1


def test_unionid_recognised_in_another_wechat_app(app, mp, mp_app, wechat):
    first = wechat_user(mp, mp_app, wechat, app, openid="o-app-a", unionid="u-shared")
    subject = claims_of(first["access_token"])["sub"]
    with FakeWeChatServer(app_id="wx00000000000000bb", app_secret="second-secret") as other:
        other.add_user("b-login", "o-app-b", unionid="u-shared")
        with another_worker(app, WECHAT_APP_ID=other.app_id, WECHAT_APP_SECRET=other.app_secret,
                            WECHAT_API_BASE=other.base_url, MINIPROGRAM_HTTP_TIMEOUT=(1, 0.5)) as second:
            body = second.test_client().post(f"{WECHAT}/sessions", json={"code": "b-login"}).get_json()
    assert "access_token" in body, body
    assert claims_of(body["access_token"])["sub"] == subject
    with mp_app.app_context():
        rows = db.session.scalars(select(ChannelBinding).order_by(ChannelBinding.id)).all()
        assert [(r.app_id, r.open_id, r.union_id, r.subject_id) for r in rows] == [
            (wechat.app_id, "o-app-a", "u-shared", subject), ("wx00000000000000bb", "o-app-b", "u-shared", subject)]
    assert [r.details.get("via") for r in audit_rows(mp_app, "channel.bound")] == [None, "union_id"]


def test_expired_bind_ticket_is_refused(app, channel_config, wechat, clock):
    person = resident(app)
    wechat.add_user("c", "o-late")
    with another_worker(app, **channel_config, MINIPROGRAM_BIND_TICKET_TTL=1) as worker:
        mp = worker.test_client()
        ticket = start(mp, WECHAT, "c")["bind_ticket"]
        code = sms_code(mp, worker, person["phone"])
        clock.advance(1.3, worker)
        response = mp.post(f"{WECHAT}/bindings", json={"bind_ticket": ticket, **person, "sms_code": code})
        is_problem(response, 401)
        assert count(worker, ChannelBinding) == 0
        assert [r.details["reason"] for r in audit_rows(worker, "channel.bind_failed")] == ["ticket_invalid"]


def test_unknown_ticket_is_refused(mp, mp_app, app):
    response = mp.post(f"{WECHAT}/bindings", json={"bind_ticket": "bt_" + "x" * 43, **resident(app),
                                                    "sms_code": "123456"})
    is_problem(response, 401)


def test_registry_mismatch_binds_nothing_and_is_audited(mp, mp_app, wechat, app):
    person = resident(app, name="张伟")
    wechat.add_user("c", "o-mismatch")
    ticket = start(mp, WECHAT, "c")["bind_ticket"]

    wrong_name = bind(mp, mp_app, WECHAT, ticket, {**person, "name": "张三丰"})
    unknown = {"id_number": valid_id_number(), "name": "张伟", "phone": valid_phone()}
    unknown_id = bind(mp, mp_app, WECHAT, ticket, unknown)
    first, second = is_problem(wrong_name, 422), is_problem(unknown_id, 422)
    # the same answer whether or not the ID number is known
    assert (first["detail"], first["errors"]) == (second["detail"], second["errors"])
    assert count(mp_app, ChannelBinding) == 0 and count(mp_app, Person) == 0
    failures = audit_rows(mp_app, "channel.bind_failed")
    assert [r.details["reason"] for r in failures] == ["registry_mismatch", "registry_mismatch"]
    assert person["id_number"] not in json.dumps([r.details for r in failures])

    # the ticket survives a correctable failure; the right data then binds
    retry = bind(mp, mp_app, WECHAT, ticket, {**person, "phone": valid_phone()})
    assert retry.status_code == 200, retry.get_json()
    assert count(mp_app, ChannelBinding) == 1


def test_wrong_sms_code_binds_nothing(mp, mp_app, wechat, app):
    person = resident(app)
    wechat.add_user("c", "o-sms")
    ticket = start(mp, WECHAT, "c")["bind_ticket"]
    real = sms_code(mp, mp_app, person["phone"])
    wrong = "000000" if real != "000000" else "111111"
    response = mp.post(f"{WECHAT}/bindings", json={"bind_ticket": ticket, **person, "sms_code": wrong})
    body = is_problem(response, 422)
    assert "sms_code" in body["errors"]
    assert count(mp_app, ChannelBinding) == 0 and count(mp_app, Person) == 0
    assert [r.details["reason"] for r in audit_rows(mp_app, "channel.bind_failed")] == ["sms_code"]


def test_binding_rejects_unknown_fields_and_bad_input(mp):
    response = mp.post(f"{WECHAT}/bindings", json={"bind_ticket": "bt_x", "id_number": "123", "name": "张三",
                                                    "phone": "12", "sms_code": "12", "admin": True})
    body = is_problem(response, 422)
    assert {"id_number", "phone", "sms_code", "admin"} <= set(body["errors"])
    is_problem(mp.post(f"{WECHAT}/sessions", json={}), 422)


@pytest.mark.parametrize("outcome, status", [
    (40029, 400), (40163, 401), (40226, 403), (45011, 429), (-1, 503), (GARBLED, 502), (40125, 502),
    (Slow(1.5), 503),
])
def test_wechat_upstream_errors(mp, wechat, outcome, status):
    wechat.on_code("c", outcome)
    response = mp.post(f"{WECHAT}/sessions", json={"code": "c"})
    body = is_problem(response, status)
    assert wechat.app_secret not in json.dumps(body)
    if status == 429:
        assert response.headers["Retry-After"] == "60"


def test_wechat_unreachable_is_503(app):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with another_worker(app, WECHAT_APP_ID="wx1", WECHAT_APP_SECRET="s", WECHAT_API_BASE=f"http://127.0.0.1:{port}",
                        MINIPROGRAM_HTTP_TIMEOUT=(0.5, 0.5)) as worker:
        is_problem(worker.test_client().post(f"{WECHAT}/sessions", json={"code": "c"}), 503)


def test_channel_not_configured_is_503(client):
    body = is_problem(client.post(f"{WECHAT}/sessions", json={"code": "c"}), 503)
    assert "未开通" in body["detail"]
    is_problem(client.post(f"{ALIPAY}/sessions", json={"auth_code": "c"}), 503)


def test_sign_in_is_rate_limited_per_ip(app, channel_config, wechat):
    with another_worker(app, **channel_config, AUTH_RATE_LIMIT="2/minute") as worker:
        mp = worker.test_client()
        for _ in range(2):
            is_problem(mp.post(f"{WECHAT}/sessions", json={"code": "nope"}), 400)
        response = mp.post(f"{WECHAT}/sessions", json={"code": "nope"})
        is_problem(response, 429)
        assert int(response.headers["Retry-After"]) >= 1


# ---- phone numbers and open data


def test_wechat_phone_is_stored_and_returned_masked(mp, mp_app, wechat, app, client):
    user = wechat_user(mp, mp_app, wechat, app)
    wechat.phone_codes["phone-code"] = "13912345678"
    headers = auth_headers(user["access_token"])
    response = mp.post(f"{WECHAT}/phone", json={"code": "phone-code"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"phone_masked": "139****5678"}
    with mp_app.app_context():
        assert db.session.scalar(select(Person)).phone == "13912345678"
    assert audit_rows(mp_app, "person.phone_changed")

    is_problem(mp.post(f"{WECHAT}/phone", json={"code": "used-or-unknown"}, headers=headers), 400)
    is_problem(mp.post(f"{WECHAT}/phone", json={"code": "x"}), 401)
    other = register_person(client, app, name="孙七")
    wechat.phone_codes["p2"] = "13912345679"
    is_problem(mp.post(f"{WECHAT}/phone", json={"code": "p2"}, headers=other["headers"]), 403)


def test_wechat_phone_taken_by_another_account_is_409(mp, mp_app, wechat, app, client):
    other = register_person(client, app, name="周八")
    user = wechat_user(mp, mp_app, wechat, app)
    wechat.phone_codes["pc"] = other["phone"]
    is_problem(mp.post(f"{WECHAT}/phone", json={"code": "pc"}, headers=auth_headers(user["access_token"])), 409)


def _encrypt_open_data(session_key: str, data: dict) -> tuple[str, str]:
    iv = secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(json.dumps(data).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(session_key)), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padded) + encryptor.finalize()
    return base64.b64encode(sealed).decode(), base64.b64encode(iv).decode()


def test_wechat_open_data_decrypted_with_the_server_side_session_key(mp, mp_app, wechat, app):
    user = wechat_user(mp, mp_app, wechat, app, openid="o-decrypt")
    headers = auth_headers(user["access_token"])
    now = int(time.time())
    fresh = {"openId": "o-decrypt", "stepInfoList": [{"step": 8000}], "phoneNumber": "13800138000",
             "watermark": {"appid": wechat.app_id, "timestamp": now}}
    encrypted, iv = _encrypt_open_data(user["session_key"], fresh)
    response = mp.post(f"{WECHAT}/decrypt", json={"encryptedData": encrypted, "iv": iv}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == {"openId": "o-decrypt", "stepInfoList": [{"step": 8000}],
                                           "phoneNumber": "138****8000"}

    stale = {**fresh, "watermark": {"appid": wechat.app_id, "timestamp": now - 3600}}
    is_problem(mp.post(f"{WECHAT}/decrypt", json=dict(zip(("encryptedData", "iv"), _encrypt_open_data(
        user["session_key"], stale))), headers=headers), 400)
    foreign = {**fresh, "watermark": {"appid": "wx-other", "timestamp": now}}
    is_problem(mp.post(f"{WECHAT}/decrypt", json=dict(zip(("encryptedData", "iv"), _encrypt_open_data(
        user["session_key"], foreign))), headers=headers), 403)
    wrong_key = base64.b64encode(secrets.token_bytes(16)).decode()
    is_problem(mp.post(f"{WECHAT}/decrypt", json=dict(zip(("encryptedData", "iv"), _encrypt_open_data(
        wrong_key, fresh))), headers=headers), 400)


# ---- Alipay


def test_alipay_login_bind_and_phone(mp, mp_app, alipay, app):
    person = resident(app)
    alipay.on_auth_code("a1", {"user_id": "2088102150477652", "open_id": "074a1CcTG"})
    body = start(mp, ALIPAY, "a1")
    assert body["bind_required"] is True
    response = bind(mp, mp_app, ALIPAY, body["bind_ticket"], person)
    assert response.status_code == 200, response.get_json()
    tokens = response.get_json()
    claims = claims_of(tokens["access_token"])
    assert claims["channel"] == "alipay"
    with mp_app.app_context():
        row = db.session.scalar(select(ChannelBinding))
        assert (row.channel, row.app_id, row.open_id, row.union_id) == (
            "alipay", ALIPAY_APP_ID, "074a1CcTG", "2088102150477652")

    alipay.on_auth_code("a2", {"user_id": "2088102150477652", "open_id": "074a1CcTG"})
    again = start(mp, ALIPAY, "a2")
    assert claims_of(again["access_token"])["sub"] == claims["sub"]

    headers = auth_headers(tokens["access_token"])
    payload = alipay.phone_payload("13612345678")
    response = mp.post(f"{ALIPAY}/phone", json=payload, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"phone_masked": "136****5678"}
    with mp_app.app_context():
        assert db.session.scalar(select(Person)).phone == "13612345678"


def test_alipay_phone_rejects_forgeries(mp, mp_app, alipay, alipay_keys, app, wechat):
    alipay.on_auth_code("a1", {"user_id": "2088000000000011"})
    ticket = start(mp, ALIPAY, "a1")["bind_ticket"]
    tokens = bind(mp, mp_app, ALIPAY, ticket, resident(app)).get_json()
    headers = auth_headers(tokens["access_token"])
    payload = alipay.phone_payload("13612345678")
    other = alipay.phone_payload("13700000000")
    unquoted = {**payload, "sign": rsa2_sign(payload["response"], alipay_keys["alipay_private"])}
    for forged in ({**payload, "response": other["response"]}, unquoted):
        is_problem(mp.post(f"{ALIPAY}/phone", json=forged, headers=headers), 400)
    is_problem(mp.post(f"{ALIPAY}/phone", json={**payload, "sign_type": "RSA"}, headers=headers), 422)
    # a WeChat token cannot use the Alipay endpoint
    user = wechat_user(mp, mp_app, wechat, app)
    is_problem(mp.post(f"{ALIPAY}/phone", json=payload, headers=auth_headers(user["access_token"])), 403)


@pytest.mark.parametrize("outcome, status", [
    (ali.INVALID, 400), (ali.BUSY, 503), (ali.LIMITED, 429), (ali.GARBLED, 502), (ali.BAD_SIGN, 502),
    (ali.Slow(1.5), 503),
])
def test_alipay_upstream_errors(mp, alipay, outcome, status):
    alipay.on_auth_code("c", outcome)
    is_problem(mp.post(f"{ALIPAY}/sessions", json={"auth_code": "c"}), status)


# ---- notices and content checks


def test_application_notice_delivered_through_the_outbox(app, channel_config, wechat):
    templates = {"application_status": {"template_id": "TPL-APP-STATUS",
                                        "page": "pages/applications/detail?id={application_id}",
                                        "fields": {"thing1": "title", "phrase2": "status",
                                                   "character_string3": "application_id"}}}
    title = "您申请的不动产登记已受理，请耐心等待审批结果"
    with another_worker(app, **channel_config, WECHAT_NOTICE_TEMPLATES=templates) as worker:
        mp = worker.test_client()
        user = wechat_user(mp, worker, wechat, app, openid="o-notice")
        subject = claims_of(user["access_token"])["sub"]
        with worker.app_context():
            notify(subject, kind="application_status", title=title,
                   body="办件已受理", data={"application_id": "AP20250101000001", "status": "已受理"},
                   template="application_status")
            db.session.commit()
            schedule_delivery()
            message = db.session.scalar(select(OutboxMessage))
            assert (message.status, message.attempts) == ("sent", 1)
        sent = wechat.sent_messages
        assert len(sent) == 1
        assert sent[0]["touser"] == "o-notice" and sent[0]["template_id"] == "TPL-APP-STATUS"
        assert sent[0]["page"] == "pages/applications/detail?id=AP20250101000001"
        assert sent[0]["data"] == {"thing1": {"value": title[:19] + "…"},  # thing: at most 20 characters
                                   "phrase2": {"value": "已受理"},
                                   "character_string3": {"value": "AP20250101000001"}}


def test_notice_stays_pending_when_wechat_fails(app, channel_config, wechat):
    with another_worker(app, **channel_config) as worker:
        mp = worker.test_client()
        user = wechat_user(mp, worker, wechat, app, openid="o-retry")
        subject = claims_of(user["access_token"])["sub"]
        wechat._subscribe_send = lambda request: FakeResponse.text("upstream exploded", status=502)
        with worker.app_context():
            notify(subject, kind="application_status", title="已办结", template="application_status",
                   data={"status": "已办结"})
            db.session.commit()
            assert deliver_pending()["retry"] == 1
            message = db.session.scalar(select(OutboxMessage))
            assert (message.status, message.attempts) == ("pending", 1)
            assert message.last_error.startswith("503")
        del wechat._subscribe_send
        with worker.app_context():
            assert deliver_pending()["sent"] == 1
            db.session.expire_all()
            assert db.session.scalar(select(OutboxMessage)).status == "sent"
        assert wechat.sent_messages[0]["template_id"] == "application_status"
        assert wechat.sent_messages[0]["data"] == {"title": {"value": "已办结"}, "status": {"value": "已办结"}}


def test_published_text_checked_with_wechat(app, channel_config, wechat, client):
    wechat.risky_words.add("违禁词")
    with another_worker(app, **channel_config, WECHAT_MSG_SEC_CHECK=True) as worker:
        mp = worker.test_client()
        user = wechat_user(mp, worker, wechat, app, openid="o-writer")
        subject = claims_of(user["access_token"])["sub"]
        app_user = register_person(client, app, name="吴九")
        with worker.app_context():
            assert check_published_text(subject, "窗口服务很好，点赞") is True
            assert check_published_text(subject, "这里有违禁词") is False
            assert check_published_text(app_user["subject_id"], "这里有违禁词") is True  # no WeChat binding
    checks = [r.json() for r in wechat.requests if r.path == "/wxa/msg_sec_check"]
    assert [(c["openid"], c["version"], c["scene"]) for c in checks] == [("o-writer", 2, 2)] * 2
    with app.app_context():  # the check is off by default
        assert check_published_text(subject, "这里有违禁词") is True


def test_alipay_notice_delivered_through_the_outbox(app, channel_config, alipay):
    with another_worker(app, **channel_config, ALIPAY_NOTICE_TEMPLATES={"application_status": "TPL-ALI-1"}) as worker:
        mp = worker.test_client()
        alipay.on_auth_code("a1", {"user_id": "2088000000000077"})
        ticket = start(mp, ALIPAY, "a1")["bind_ticket"]
        tokens = bind(mp, worker, ALIPAY, ticket, resident(app)).get_json()
        with worker.app_context():
            notify(claims_of(tokens["access_token"])["sub"], kind="application_status", title="已受理",
                   data={"status": "已受理"}, template="application_status")
            db.session.commit()
            assert deliver_pending()["sent"] == 1
    sent = alipay.sent_messages[0]
    assert (sent["to_user_id"], sent["user_template_id"]) == ("2088000000000077", "TPL-ALI-1")
    assert json.loads(sent["data"]) == {"title": {"value": "已受理"}, "status": {"value": "已受理"}}
