"""Mini-program bindings from the account side: unbinding WeChat or Alipay, and an SMS code that
survives a typo in the name (checked against the local WeChat fake)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.identity.models import ChannelBinding
from app.security.models import AuditEvent
from tests.fakes.wechat_server import FakeWeChatServer
from tests.support.helpers import (API, add_registry_person, another_worker, auth_headers, issue_sms_code, login,
                           register_person, valid_id_number, valid_phone)

WECHAT = f"{API}/miniprograms/wechat"


@pytest.fixture
def wechat():
    with FakeWeChatServer() as fake:
        yield fake


@pytest.fixture
def mp_app(app, wechat):
    with another_worker(app, WECHAT_APP_ID=wechat.app_id, WECHAT_APP_SECRET=wechat.app_secret,
                        WECHAT_API_BASE=wechat.base_url, MINIPROGRAM_HTTP_TIMEOUT=(1, 0.5), JOBS_INLINE=True) as worker:
        yield worker


def _ticket(mp, wechat, code, openid):
    wechat.add_user(code, openid)
    body = mp.post(f"{WECHAT}/sessions", json={"code": code}).get_json()
    assert body.get("bind_required") is True, body
    return body["bind_ticket"]


def _events(app, name):
    with app.app_context():
        return db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)).all()


def test_unbinding_wechat_makes_the_next_login_bind_again(mp_app, wechat):
    mp = mp_app.test_client()
    person = register_person(mp, mp_app, name="尤一")
    ticket = _ticket(mp, wechat, "youyi.1", "o-youyi")
    bound = mp.post(f"{WECHAT}/bindings", json={
        "bind_ticket": ticket, "id_number": person["id_number"], "name": "尤一", "phone": person["phone"],
        "sms_code": issue_sms_code(mp_app, person["phone"], "bind")})
    assert bound.status_code == 200, bound.get_json()
    wechat.add_user("youyi.2", "o-youyi")
    assert "access_token" in mp.post(f"{WECHAT}/sessions", json={"code": "youyi.2"}).get_json()

    response = mp.delete(f"{API}/me/bindings/wechat", headers=person["headers"])
    assert response.status_code == 204
    wechat.add_user("youyi.3", "o-youyi")
    assert mp.post(f"{WECHAT}/sessions", json={"code": "youyi.3"}).get_json()["bind_required"] is True
    # the sessions opened through WeChat ended; the app session stays
    assert mp.get(f"{API}/me", headers=auth_headers(bound.get_json()["access_token"])).status_code == 401
    me = mp.get(f"{API}/me", headers=person["headers"])
    assert me.status_code == 200 and me.get_json()["bindings"] == []
    with mp_app.app_context():
        assert db.session.scalar(select(ChannelBinding)) is None
    [event] = _events(mp_app, "channel.unbound")
    assert event.details["channel"] == "wechat" and event.details["sessions_ended"] == 2
    again = mp.delete(f"{API}/me/bindings/wechat", headers=person["headers"])
    assert again.status_code == 404 and again.mimetype == "application/problem+json"
    assert mp.delete(f"{API}/me/bindings/qq", headers=person["headers"]).status_code == 404


def test_a_typo_in_the_name_does_not_use_up_the_bind_code(mp_app, wechat):
    mp = mp_app.test_client()
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(mp_app, id_number=id_number, name="尤二")
    ticket = _ticket(mp, wechat, "youer.1", "o-youer")
    assert mp.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": "bind"}).status_code == 202
    from app.identity import sms
    with mp_app.app_context():
        code = sms.last_outbox_code(phone)
    body = {"bind_ticket": ticket, "id_number": id_number, "phone": phone, "sms_code": code}
    typo = mp.post(f"{WECHAT}/bindings", json={**body, "name": "尤贰"})
    assert typo.status_code == 422 and set(typo.get_json()["errors"]) == {"id_number", "name"}
    right = mp.post(f"{WECHAT}/bindings", json={**body, "name": "尤二"})  # no new code, no 60 s wait
    assert right.status_code == 200, right.get_json()
    assert [e.details["reason"] for e in _events(mp_app, "channel.bind_failed")] == ["registry_mismatch"]


def test_wrong_bind_codes_still_count_and_burn_the_code(mp_app, wechat):
    mp = mp_app.test_client()
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(mp_app, id_number=id_number, name="尤三")
    code = issue_sms_code(mp_app, phone, "bind")
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    body = {"id_number": id_number, "name": "尤三", "phone": phone}
    for attempt in range(5):
        ticket = _ticket(mp, wechat, f"yousan.{attempt}", "o-yousan")
        answer = mp.post(f"{WECHAT}/bindings", json={**body, "bind_ticket": ticket, "sms_code": wrong})
        assert answer.status_code == 422 and list(answer.get_json()["errors"]) == ["sms_code"]
    ticket = _ticket(mp, wechat, "yousan.9", "o-yousan")
    assert mp.post(f"{WECHAT}/bindings", json={**body, "bind_ticket": ticket, "sms_code": code}).status_code == 422
    assert {e.details["reason"] for e in _events(mp_app, "channel.bind_failed")} == {"sms_code"}
    assert len(_events(mp_app, "sms.code_burned")) == 1


def test_unbinding_needs_a_personal_token(client, app):
    assert client.delete(f"{API}/me/bindings/wechat").status_code == 401
    person = register_person(client, app, name="尤四")
    assert login(client, person["id_number"])["access_token"]
    assert client.delete(f"{API}/me/bindings/alipay", headers=person["headers"]).status_code == 404
