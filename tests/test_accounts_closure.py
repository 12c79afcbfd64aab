"""Closing an account (DELETE /me): tokens die at once on every worker, logins fail, contact data
and bindings are erased, the ID number registers again, future appointment places go back to their
slots, applications and the audit chain stay."""
from __future__ import annotations

from datetime import time

from sqlalchemy import func, select, update

from app.applications.models import Application
from app.appointments.models import Appointment, AppointmentSlot
from app.extensions import db
from app.identity import sms
from app.identity.account_models import AccountClosure, ProxyGrant
from app.identity.models import ChannelBinding, Person
from app.notifications.models import Notification
from app.oidc.models import OidcConsent
from app.security import audit
from app.security.models import AuditEvent
from app.timeutil import beijing_today
from tests.support.helpers import (API, another_worker, auth_headers, client_token, create_client, needs_redis, register_person,
                           valid_phone)
from tests.support.applications import ID_CARD_TYPE, apply, hukou_body, person_in, upload
from tests.support.hall import LIXIA, book, move_slot, service_of, slots, working_day
from tests.support.window import card_request, service_code, staff_member
from tests.support.world import is_problem


def _close(client, person, **body):
    return client.delete(f"{API}/me", headers=person["headers"], json=body)


def _person_row(app, subject_id) -> dict:
    with app.app_context():
        person = db.session.scalar(select(Person).where(Person.subject_id == subject_id))
        return {"active": person.active, "phone_enc": person.phone_enc, "phone_index": person.phone_index,
                "password_hash": person.password_hash, "id_number": person.id_number}


def test_a_wrong_password_or_code_closes_nothing(client, app):
    alice = person_in(client, app)
    wrong = _close(client, alice, password="Wrong0ne2025")
    assert wrong.status_code == 422 and wrong.get_json()["errors"] == {"password": ["密码错误"]}
    bad_code = _close(client, alice, sms_code="000000")
    assert bad_code.status_code == 422 and list(bad_code.get_json()["errors"]) == ["sms_code"]
    for body in ({}, {"password": alice["password"], "sms_code": "123456"}):
        response = _close(client, alice, **body)
        assert response.status_code == 422 and {"password", "sms_code"} <= set(response.get_json()["errors"])
    unknown = _close(client, alice, password=alice["password"], reason="不用了")
    assert unknown.status_code == 422 and "reason" in unknown.get_json()["errors"]
    assert client.get(f"{API}/me", headers=alice["headers"]).status_code == 200
    assert _person_row(app, alice["subject_id"])["active"]


def test_closing_kills_tokens_and_logins_and_erases_contact_data(client, app):
    alice = person_in(client, app)
    application = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    with app.app_context():
        db.session.add(ChannelBinding(subject_id=alice["subject_id"], channel="wechat", app_id="wx_test",
                                      open_id="o_alice"))
        db.session.commit()
    assert _close(client, alice, password=alice["password"]).status_code == 204

    me = client.get(f"{API}/me", headers=alice["headers"])
    assert me.status_code == 401 and is_problem(me, 401) and me.get_json()["detail"] == "账号已注销"
    assert client.get(f"{API}/applications", headers=alice["headers"]).status_code == 401
    refresh = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                     "refresh_token": alice["refresh_token"]})
    assert refresh.status_code == 401
    for username in (alice["id_number"], alice["phone"]):
        login = client.post(f"{API}/auth/token", json={"grant_type": "password", "username": username,
                                                       "password": alice["password"]})
        assert login.status_code == 401, username

    row = _person_row(app, alice["subject_id"])
    assert row == {"active": False, "phone_enc": None, "phone_index": None, "password_hash": None,
                   "id_number": alice["id_number"]}  # kept, encrypted, for the records the law keeps
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ChannelBinding)
                                 .where(ChannelBinding.subject_id == alice["subject_id"])) == 0
        assert db.session.scalar(select(func.count()).select_from(Notification)
                                 .where(Notification.subject_id == alice["subject_id"])) == 0
        kept = db.session.scalar(select(Application).where(Application.application_id == application))
        assert kept.subject_id == alice["subject_id"] and kept.form["id_number"] == alice["id_number"]
        assert "phone" not in kept.form and alice["phone"] not in str(kept.form)
        closure = db.session.scalar(select(AccountClosure).where(AccountClosure.subject_id == alice["subject_id"]))
        assert closure.method == "password"
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "account.closed")).all()
        assert [(e.subject_id, e.details["method"], e.details["bindings_erased"], e.details["applications_kept"])
                for e in events] == [(alice["subject_id"], "password", 1, 1)]
        assert audit.verify().ok


def test_the_id_number_registers_again_as_a_new_subject_without_the_old_records(client, app):
    alice = person_in(client, app)
    old_application = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    assert _close(client, alice, password=alice["password"]).status_code == 204
    again = register_person(client, app, name=alice["name"], id_number=alice["id_number"], phone=valid_phone())
    assert again["subject_id"] != alice["subject_id"]
    assert client.get(f"{API}/applications", headers=again["headers"]).get_json()["total"] == 0
    assert client.get(f"{API}/applications/{old_application}", headers=again["headers"]).status_code == 404
    me = client.get(f"{API}/me?reveal=true", headers=again["headers"]).get_json()
    assert me["id_number"] == alice["id_number"] and me["phone"] == again["phone"]
    # the old phone number is free as well
    third = person_in(client, app, name="王五")
    assert third["subject_id"] not in (alice["subject_id"], again["subject_id"])


def test_where_configured_closing_needs_a_face_check(client, app):
    alice = person_in(client, app)
    with another_worker(app, REQUIRE_L3_FOR="account_closure") as strict:
        refused = strict.test_client().delete(f"{API}/me", headers=alice["headers"],
                                              json={"password": alice["password"]})
    assert refused.status_code == 403 and is_problem(refused, 403)
    assert refused.get_json()["required_level"] == 3 and refused.get_json()["action"] == "account_closure"
    assert _person_row(app, alice["subject_id"])["active"]


def test_closing_with_an_sms_code_sent_for_login(client, app):
    alice = person_in(client, app)
    assert client.post(f"{API}/auth/sms-codes", json={"phone": alice["phone"], "purpose": "login"}).status_code == 202
    with app.app_context():
        code = sms.last_outbox_code(alice["phone"])
    assert _close(client, alice, sms_code=code).status_code == 204
    assert client.get(f"{API}/me", headers=alice["headers"]).status_code == 401
    with app.app_context():
        closure = db.session.scalar(select(AccountClosure).where(AccountClosure.subject_id == alice["subject_id"]))
        assert closure.method == "sms"


def test_company_proxy_and_client_tokens_cannot_close_an_account(client, app, company):
    from tests.support.proxies import act_for, grant
    representative, _, company_headers = company
    grandma, son = person_in(client, app, name="李奶奶"), person_in(client, app, name="李建国")
    grant(client, grandma, son)
    proxy = auth_headers(act_for(client, son, grandma)["access_token"])
    issuer_id, issuer_secret = create_client(app, "issuer", license_types=(ID_CARD_TYPE,))
    issuer = auth_headers(client_token(client, issuer_id, issuer_secret))
    for headers, password in ((proxy, son["password"]), (company_headers, representative["password"]),
                              (issuer, issuer_secret)):
        response = client.delete(f"{API}/me", headers=headers, json={"password": password})
        assert response.status_code == 403 and is_problem(response, 403)
    for person in (grandma, son, representative):
        assert _person_row(app, person["subject_id"])["active"]


def test_closing_ends_family_proxies_both_ways_and_oidc_consents(client, app):
    from tests.support.proxies import act_for, grant
    grandma, son, daughter = (person_in(client, app, name=name) for name in ("李奶奶", "李建国", "李秀英"))
    grant(client, grandma, son)
    grant(client, son, daughter)
    proxy_for_grandma = auth_headers(act_for(client, son, grandma)["access_token"])
    daughter_for_son = auth_headers(act_for(client, daughter, son)["access_token"])
    with app.app_context():
        from app.oidc.clients import create_client
        from app.oidc.consents import remember
        oidc_client, _ = create_client(name="济南公积金", redirect_uris=["https://gjj.example/cb"])
        remember(son["subject_id"], oidc_client, "openid profile", via="app")
        db.session.commit()
    assert _close(client, son, password=son["password"]).status_code == 204
    assert client.get(f"{API}/wallet/licenses", headers=proxy_for_grandma).status_code == 401
    assert client.get(f"{API}/wallet/licenses", headers=daughter_for_son).status_code == 401
    with app.app_context():
        assert all(g.revoked_at is not None for g in db.session.scalars(select(ProxyGrant)))
        assert db.session.scalar(select(func.count()).select_from(OidcConsent)) == 0
    assert client.get(f"{API}/me/proxies", headers=grandma["headers"]).get_json()["granted"][0]["status"] == "revoked"
    assert client.get(f"{API}/me", headers=grandma["headers"]).status_code == 200


@needs_redis("a closed account's tokens must fail on every worker")
def test_a_closed_accounts_token_fails_on_the_next_request_on_another_worker(client, app):
    alice = person_in(client, app)
    with another_worker(app) as worker:
        other = worker.test_client()
        assert other.get(f"{API}/me", headers=alice["headers"]).status_code == 200  # verified and cached there
        assert _close(client, alice, password=alice["password"]).status_code == 204
        refused = other.get(f"{API}/me", headers=alice["headers"])
        assert refused.status_code == 401 and refused.get_json()["detail"] == "账号已注销"
        assert other.get(f"{API}/wallet/licenses", headers=alice["headers"]).status_code == 401


def test_a_store_outage_closes_nothing(client, app, monkeypatch):
    from app.store import StoreUnavailable
    alice = person_in(client, app)

    def down(*args, **kwargs):
        raise StoreUnavailable()

    monkeypatch.setattr("app.identity.closure.mark_closed", down)
    response = client.delete(f"{API}/me", headers=alice["headers"], json={"password": alice["password"]})
    assert response.status_code == 503 and is_problem(response, 503)
    row = _person_row(app, alice["subject_id"])
    assert row["active"] and row["phone_enc"] is not None
    assert client.get(f"{API}/me", headers=alice["headers"]).status_code == 200


def test_closure_is_in_the_openapi_document(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/api/v1/me"]["delete"]
    assert operation["summary"].startswith("注销账号") and operation["security"] == [{"bearerAuth": []}]
    assert "204" in operation["responses"]
    assert set(operation["requestBody"]["content"]["application/json"]["examples"]) == {"password", "sms"}


def test_closing_frees_future_appointment_places_for_others(client, app):
    alice, bob = person_in(client, app, name="张三"), person_in(client, app, name="李四")
    service = service_of(app, LIXIA)
    future, started = slots(client, LIXIA, working_day(2), service_code=service)[:2]
    booked = book(client, alice["headers"], future["slot_id"], service)
    assert booked.status_code == 201, booked.get_json()
    earlier = book(client, alice["headers"], started["slot_id"], service).get_json()["appointment_id"]
    move_slot(app, started["slot_id"], beijing_today(), time(0, 0))  # began today: kept for no-show counting
    with app.app_context():  # a one-window slot: her booking fills it
        db.session.execute(update(AppointmentSlot).where(AppointmentSlot.slot_id == future["slot_id"])
                           .values(capacity=1))
        db.session.commit()
    assert book(client, bob["headers"], future["slot_id"], service).status_code == 409

    assert _close(client, alice, password=alice["password"]).status_code == 204
    with app.app_context():
        slot = db.session.scalar(select(AppointmentSlot).where(AppointmentSlot.slot_id == future["slot_id"]))
        assert (slot.capacity, slot.booked) == (1, 0)
        mine = {row.appointment_id: row for row in db.session.scalars(
            select(Appointment).where(Appointment.subject_id == alice["subject_id"]))}
        assert (mine[booked.get_json()["appointment_id"]].status, mine[earlier].status) == ("cancelled", "booked")
        assert mine[booked.get_json()["appointment_id"]].active_slot_id is None
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "account.closed"))
        assert event.details["appointments_cancelled"] == 1
        assert event.details["appointments"] == [booked.get_json()["appointment_id"]]
    taken = book(client, bob["headers"], future["slot_id"], service)
    assert taken.status_code == 201, taken.get_json()
    assert book(client, person_in(client, app, name="王五")["headers"], future["slot_id"], service).status_code == 409


def test_closing_declines_the_drafts_hall_staff_filled_in_and_waiting_for_the_answer(client, app):
    alice = person_in(client, app, region=LIXIA)
    helper = staff_member(app, LIXIA, name="帮办员")
    body = {**card_request(alice, service_code(app, LIXIA), upload(client, helper["headers"])),
            "applicant": {"id_number": alice["id_number"], "name": alice["name"]}, "contact": "phone"}
    made = client.post(f"{API}/assisted-applications", json=body, headers=helper["headers"])
    assert made.status_code == 201, made.get_json()
    draft_id = made.get_json()["application_id"]

    assert _close(client, alice, password=alice["password"]).status_code == 204
    assert client.get(f"{API}/assisted-applications/{draft_id}", headers=helper["headers"]).get_json()["status"] == "declined"
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "account.closed"))
        assert event.details["assisted_drafts_declined"] == 1
