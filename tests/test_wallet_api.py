"""Wallet HTTP API: license types, issuance, the holder's wallet, 亮证, verification, status changes."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.redis_connection import HeldConnection
from app.security import tokens
from app.store import claim_key
from app.notifications.models import Notification
from app.security.models import AuditEvent
from app.wallet import verification
from app.wallet.identifier import parse_identifier
from app.wallet.models import AccessLogEntry, License, Presentation
from app.wallet.presentations import basic_key, code_key
from tests.support.helpers import API, needs_redis, register_person, valid_id_number
from tests.support.wallet import (BUSINESS, DRIVING, ID_CARD, VEHICLE, access_log, id_card_fields, issue, issuer_headers, present, resident, today, vehicle_fields, verifier_headers, verify)


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _problem(response, status):
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    return response.get_json()


@pytest.fixture
def police(app, client):
    return issuer_headers(app, client, types=(ID_CARD, DRIVING, VEHICLE))


@pytest.fixture
def alice_card(client, alice, police):
    return issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields("张三"))


# ---- license types


def test_license_types_is_the_complete_unpaged_catalogue(client):
    response = client.get(f"{API}/license-types")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"items"}
    assert len(body["items"]) == 159
    card = next(item for item in body["items"] if item["code"] == ID_CARD)
    assert card["name"] == "居民身份证" and card["holder_type"] == "person"
    assert card["issuer_department"]
    assert {"name": "id_number", "label": "公民身份号码", "type": "id_number", "sensitive": True} in card["fields"]
    assert {item["holder_type"] for item in body["items"]} == {"person", "legal"}
    assert client.get(f"{API}/license-types/{BUSINESS}").get_json()["name"] == "营业执照"
    _problem(client.get(f"{API}/license-types/nope"), 404)


# ---- issuance


def test_issue_answers_identifier_and_status(app, client, alice, police):
    body = issue(client, police, holder_id_number=alice["id_number"])
    assert body["status"] == "valid"
    assert re.fullmatch(r"lic_[0-9a-f]{32}", body["license_id"])
    parts = parse_identifier(body["identifier"])  # valid MOD 37,36 check character
    assert parts["type_code"] == ID_CARD and parts["version"] == "001"
    with app.app_context():
        from app.identity.clients import client_by_id
        lic = db.session.scalar(select(License).where(License.license_id == body["license_id"]))
        assert parts["issuer_credit_code"] == client_by_id(lic.issuer_client_id).credit_code
        # stored encrypted: no plaintext ID number or name in the row
        row = " ".join(str(v) for v in (lic.holder_ref_enc, lic.fields_enc, lic.credential_enc, lic.holder_key_enc))
        assert alice["id_number"] not in row and "张三" not in row and "PRIVATE KEY" not in row
    assert alice["id_number"] not in body["identifier"] and alice["id_number"][6:14] not in body["identifier"]
    second = issue(client, police, holder_id_number=alice["id_number"])
    assert second["license_id"] != body["license_id"] and second["identifier"] != body["identifier"]
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "license.issued")).all()
        assert {e.details["license_id"] for e in events} == {body["license_id"], second["license_id"]}
        assert all(e.subject_id == alice["subject_id"] for e in events)
        assert db.session.scalar(select(func.count()).select_from(Notification).where(
            Notification.subject_id == alice["subject_id"], Notification.kind == "license_issued")) == 2


def test_issue_needs_an_issuer_token_for_that_type(app, client, alice):
    body = {"license_type": ID_CARD, "holder_id_number": alice["id_number"], "fields": id_card_fields(),
            "valid_from": today().isoformat(), "valid_until": (today() + timedelta(days=30)).isoformat()}
    _problem(client.post(f"{API}/licenses", json=body), 401)
    _problem(client.post(f"{API}/licenses", json=body, headers=alice["headers"]), 403)
    verifier = verifier_headers(app, client, types=(ID_CARD,))
    _problem(client.post(f"{API}/licenses", json=body, headers=verifier), 403)
    other = issuer_headers(app, client, types=(DRIVING,))
    problem = _problem(client.post(f"{API}/licenses", json=body, headers=other), 403)
    assert "居民身份证" in problem["detail"]
    assert _count(app, License) == 0


@pytest.mark.parametrize("change, field", [
    ({"license_type": "11100000000013100X999"}, "license_type"),
    ({"fields": {**id_card_fields(), "blood_type": "A"}}, "fields.blood_type"),
    ({"fields": {k: v for k, v in id_card_fields().items() if k != "name"}}, "fields.name"),
    ({"fields": id_card_fields(birth_date="1990/03/07")}, "fields.birth_date"),
    ({"fields": {**id_card_fields(), "id_number": "11010519491231002X"}}, "fields.id_number"),
    ({"fields": id_card_fields(name=12)}, "fields.name"),
    ({"valid_from": "2025-13-01"}, "valid_from"),
    ({"valid_until": "not a date"}, "valid_until"),
    ({"valid_from": "2030-01-02", "valid_until": "2030-01-01"}, "valid_until"),
    ({"valid_from": "2000-01-01", "valid_until": "2001-01-01"}, "valid_until"),
    ({"holder_id_number": "370102199001011235"}, "holder_id_number"),
    ({"holder_id_number": None, "holder_credit_code": "91110000600037341L"}, "holder_id_number"),
    ({"holder_credit_code": "91110000600037341L"}, "holder_id_number"),
    ({"holder_id_number": None}, "holder_id_number"),
    ({"serial": "1"}, "serial"),
    ({"fields": "张三"}, "fields"),
])
def test_issue_rejects_bad_input_naming_the_field(app, client, police, change, field):
    body = {"license_type": ID_CARD, "holder_id_number": valid_id_number(), "fields": id_card_fields(),
            "valid_from": today().isoformat(), "valid_until": (today() + timedelta(days=365)).isoformat()}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    problem = _problem(client.post(f"{API}/licenses", json=body, headers=police), 422)
    assert field in problem["errors"], problem
    assert _count(app, License) == 0


def test_legal_license_needs_a_credit_code(client, app):
    issuer = issuer_headers(app, client, types=(BUSINESS,), name="济南市市场监督管理局")
    problem = _problem(client.post(f"{API}/licenses", headers=issuer, json={
        "license_type": BUSINESS, "holder_id_number": valid_id_number(), "fields": {},
        "valid_from": today().isoformat(), "valid_until": (today() + timedelta(days=365)).isoformat()}), 422)
    assert "holder_credit_code" in problem["errors"]


def test_license_waits_for_a_holder_who_registers_later(app, client, police):
    id_number = resident(app, "李四")
    body = issue(client, police, holder_id_number=id_number, fields=id_card_fields("李四"))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
    bob = register_person(client, app, name="李四", id_number=id_number)
    items = client.get(f"{API}/wallet/licenses", headers=bob["headers"]).get_json()["items"]
    assert [item["license_id"] for item in items] == [body["license_id"]]


# ---- the wallet


def test_wallet_list_filters_and_pages(app, client, alice, police):
    first = issue(client, police, holder_id_number=alice["id_number"])
    second = issue(client, police, license_type=DRIVING, holder_id_number=alice["id_number"], fields={
        "name": "张三", "gender": "男", "nationality": "中国", "address": "山东省济南市历下区泉城路188号",
        "birth_date": "1990-03-07", "first_issue_date": "2012-08-01", "license_class": "C1",
        "file_number": "370100123456"})
    third = issue(client, police, license_type=VEHICLE, holder_id_number=alice["id_number"], fields=vehicle_fields())
    issue(client, police, holder_id_number=resident(app))  # someone else's
    client.post(f"{API}/licenses/{third['license_id']}/status", json={"status": "suspended"}, headers=police)
    url = f"{API}/wallet/licenses"
    body = client.get(url, headers=alice["headers"]).get_json()
    assert body["total"] == 3 and body["page"] == 1 and body["page_size"] == 20
    assert [item["license_id"] for item in body["items"]] == [third["license_id"], second["license_id"],
                                                              first["license_id"]]
    item = body["items"][-1]
    assert set(item) >= {"license_id", "license_type", "name", "status", "valid_until", "identifier"}
    assert item["name"] == "居民身份证" and item["status"] == "valid"
    by_type = client.get(url, headers=alice["headers"], query_string={"license_type": DRIVING}).get_json()
    assert [i["license_id"] for i in by_type["items"]] == [second["license_id"]]
    suspended = client.get(url, headers=alice["headers"], query_string={"status": "suspended"}).get_json()
    assert [i["license_id"] for i in suspended["items"]] == [third["license_id"]]
    assert suspended["items"][0]["status"] == "suspended"
    valid = client.get(url, headers=alice["headers"], query_string={"status": "valid"}).get_json()
    assert valid["total"] == 2
    page = client.get(url, headers=alice["headers"], query_string={"page": 2, "page_size": 2}).get_json()
    assert page["total"] == 3 and [i["license_id"] for i in page["items"]] == [first["license_id"]]
    beyond = client.get(url, headers=alice["headers"], query_string={"page": 3, "page_size": 2}).get_json()
    assert beyond["total"] == 3 and beyond["items"] == []
    revoked = client.get(url, headers=alice["headers"], query_string={"status": "revoked"}).get_json()
    assert revoked["total"] == 0 and revoked["items"] == []
    _problem(client.get(url, headers=alice["headers"], query_string={"page_size": 101}), 422)
    _problem(client.get(url, headers=alice["headers"], query_string={"status": "lost"}), 422)
    _problem(client.get(url), 401)
    _problem(client.get(url, headers=police), 403)


def test_wallet_detail_masks_sensitive_fields_unless_revealed(app, client, alice, alice_card):
    url = f"{API}/wallet/licenses/{alice_card['license_id']}"
    body = client.get(url, headers=alice["headers"]).get_json()
    values = {field["name"]: field["value"] for field in body["fields"]}
    masked = alice["id_number"][:6] + "*" * 8 + alice["id_number"][-4:]
    assert values["id_number"] == masked and body["holder_masked"] == masked
    assert values["address"] != "山东省济南市历下区泉城路188号" and values["address"].startswith("山东省")
    assert "*" in values["address"]
    assert values["name"] == "张三" and values["gender"] == "男"
    assert body["status"] == "valid" and body["identifier"] == alice_card["identifier"]
    assert alice["id_number"] not in str(body)
    revealed = client.get(url, headers=alice["headers"], query_string={"reveal": "true"})
    assert revealed.headers["Cache-Control"] == "no-store"
    values = {field["name"]: field["value"] for field in revealed.get_json()["fields"]}
    assert values["id_number"] == alice["id_number"] and values["address"] == "山东省济南市历下区泉城路188号"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event == "license.revealed")) == 1


def test_someone_elses_license_is_404_everywhere(app, client, alice_card):
    mallory = register_person(client, app, name="王五")
    license_id = alice_card["license_id"]
    for response in (
            client.get(f"{API}/wallet/licenses/{license_id}", headers=mallory["headers"]),
            client.get(f"{API}/wallet/licenses/{license_id}/access-log", headers=mallory["headers"]),
            client.post(f"{API}/wallet/licenses/{license_id}/presentations", headers=mallory["headers"],
                        json={"purpose": "冒用"}),
            client.get(f"{API}/wallet/licenses/lic_{'0' * 32}", headers=mallory["headers"])):
        problem = _problem(response, 404)
        assert "张三" not in str(problem)
    assert _count(app, Presentation) == 0


# ---- presentations and verification


def test_online_code_works_once_and_anonymous_verifiers_see_little(app, client, alice, alice_card):
    shown = present(client, alice["headers"], alice_card["license_id"])
    assert set(shown) >= {"presentation_id", "expires_at", "code", "qr_svg"} and "sd_jwt" not in shown
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", shown["code"])  # 192 random bits
    assert shown["qr_svg"].startswith("<svg") and shown["disclose"] == ["name", "valid_until"]
    expires = datetime.fromisoformat(shown["expires_at"].replace("Z", "+00:00"))
    assert 170 <= (expires - datetime.now(timezone.utc)).total_seconds() <= 181  # default 180 s
    result = verify(client, code=shown["code"])
    assert result["valid"] is True and result["status"] == "valid"
    assert result["license_type"] == ID_CARD and result["issuer"] == "济南市公安局历下区分局"
    assert result["disclosed"] == {"name": "张*"} and result["holder_name_masked"] == "张*"
    assert result["disclosure"] == "basic"
    assert verify(client, code=shown["code"]) == {"valid": False, "reason": "used", "detail": "亮证码已被使用"}
    log = access_log(client, alice["headers"], alice_card["license_id"])
    assert log["total"] == 2
    assert [(e["verifier"], e["result"], e["purpose"]) for e in log["items"]] == [
        ("匿名", "used", "酒店入住登记"), ("匿名", "valid", "酒店入住登记")]
    entry = log["items"][1]
    assert set(entry) >= {"at", "verifier", "purpose", "disclosed", "result", "shown_by"}
    assert entry["shown_by"]["role"] == "holder" and entry["disclosed"] == []
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert sum(1 for note in inbox if note["kind"] == "license_access") == 2
    with app.app_context():
        verified = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "license.verified")).all()
        assert sorted(e.details["result"] for e in verified) == ["used", "valid"]


def test_an_anonymous_check_never_uses_up_what_the_registered_verifier_should_see(app, client, alice, alice_card):
    hotel = verifier_headers(app, client, types=(ID_CARD,), name="泉城大酒店")
    online = present(client, alice["headers"], alice_card["license_id"], disclose=["name", "id_number"])
    offline = present(client, alice["headers"], alice_card["license_id"], disclose=["name"], mode="offline")
    for body in ({"code": online["code"]}, {"sd_jwt": offline["sd_jwt"]}):
        assert verify(client, **body)["disclosure"] == "basic"  # someone scans it first
        assert verify(client, **body)["reason"] == "used"  # the basic check works once
        full = verify(client, hotel, **body)  # the hotel still gets what the holder chose for it
        assert full["valid"] is True and full["disclosure"] == "full" and full["disclosed"]["name"] == "张三"
        assert verify(client, hotel, **body)["reason"] == "used"
    assert verify(client, code=online["code"])["reason"] == "used"  # once the full check is done, nothing is left
    results = [e["result"] for e in access_log(client, alice["headers"], alice_card["license_id"])["items"]]
    assert results == ["used", "used", "valid", "used", "valid", "used", "valid", "used", "valid"]


def test_scoped_verifier_receives_the_chosen_fields_only(app, client, alice, alice_card):
    hotel = verifier_headers(app, client, types=(ID_CARD,), name="泉城大酒店")
    shown = present(client, alice["headers"], alice_card["license_id"], disclose=["name", "id_number"],
                    purpose="入住登记")
    result = verify(client, hotel, code=shown["code"])
    assert result["valid"] is True and result["disclosure"] == "full"
    assert result["disclosed"] == {"name": "张三", "id_number": alice["id_number"]}
    default = present(client, alice["headers"], alice_card["license_id"])
    assert verify(client, hotel, code=default["code"])["disclosed"] == {"name": "张三",
                                                                        "valid_until": alice_card_valid_until(client, alice, alice_card)}
    car_rental = verifier_headers(app, client, types=(DRIVING,), name="租车公司")
    third = present(client, alice["headers"], alice_card["license_id"], disclose=["name", "id_number"])
    unscoped = verify(client, car_rental, code=third["code"])
    assert unscoped["valid"] is True and unscoped["disclosed"] == {"name": "张*"}
    log = access_log(client, alice["headers"], alice_card["license_id"])["items"]
    assert [(e["verifier"], e["disclosed"]) for e in log] == [
        ("租车公司", []), ("泉城大酒店", ["name", "valid_until"]), ("泉城大酒店", ["name", "id_number"])]


def alice_card_valid_until(client, alice, card):
    return client.get(f"{API}/wallet/licenses/{card['license_id']}", headers=alice["headers"]).get_json()["valid_until"]


@pytest.mark.parametrize("body, field", [
    ({"disclose": ["name", "blood_type"]}, "disclose"),
    ({"ttl_seconds": 301}, "ttl_seconds"),
    ({"ttl_seconds": 0}, "ttl_seconds"),
    ({"ttl_seconds": "60"}, "ttl_seconds"),
    ({"mode": "bluetooth"}, "mode"),
    ({"purpose": None}, "purpose"),
    ({"purpose": ""}, "purpose"),
    ({"verifier": "x"}, "verifier"),
])
def test_presentation_input_is_checked(app, client, alice, alice_card, body, field):
    payload = {"purpose": "入住登记", **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    response = client.post(f"{API}/wallet/licenses/{alice_card['license_id']}/presentations", json=payload,
                           headers=alice["headers"])
    problem = _problem(response, 422)
    assert field in problem["errors"]
    assert _count(app, Presentation) == 0


def test_ttl_up_to_300_seconds_is_accepted(client, alice, alice_card):
    shown = present(client, alice["headers"], alice_card["license_id"], ttl_seconds=300)
    expires = datetime.fromisoformat(shown["expires_at"].replace("Z", "+00:00"))
    assert 290 <= (expires - datetime.now(timezone.utc)).total_seconds() <= 301


def test_expired_presentations_are_answered_expired(app, client, alice, alice_card, monkeypatch):
    online = present(client, alice["headers"], alice_card["license_id"], ttl_seconds=60)
    offline = present(client, alice["headers"], alice_card["license_id"], ttl_seconds=60, mode="offline")
    later = verification._clock() + 61 + 5
    monkeypatch.setattr(verification, "_clock", lambda: later)
    assert verify(client, code=online["code"])["reason"] == "expired"
    assert verify(client, sd_jwt=offline["sd_jwt"])["reason"] == "expired"
    log = access_log(client, alice["headers"], alice_card["license_id"])["items"]
    assert [e["result"] for e in log] == ["expired", "expired"]


def test_expired_code_after_the_store_forgot_it(app, client, alice, alice_card, monkeypatch):
    online = present(client, alice["headers"], alice_card["license_id"], ttl_seconds=60)
    with app.app_context():
        app.extensions["shared_store"].flush()  # as Redis does once the TTL has passed
    later = verification._clock() + 61
    monkeypatch.setattr(verification, "_clock", lambda: later)
    assert verify(client, code=online["code"])["reason"] == "expired"


def test_verification_input_that_is_not_a_code_or_sd_jwt_is_400(app, client):
    for body in ({"code": "not a code!"}, {"code": ""}, {"code": "x" * 31},
                 {"sd_jwt": "hello"}, {"sd_jwt": ""}, {"sd_jwt": "eyJhbGciOiJ.eyJ.sig"},
                 {"sd_jwt": "eyJub3QganNvbg.eyJ9.sig~"}):
        problem = _problem(client.post(f"{API}/verifications", json=body), 400)
        assert problem["status"] == 400
    for body in ({}, {"code": "a" * 32, "sd_jwt": "eyJ.x.y~"}, {"code": 12}, {"code": "a" * 32, "extra": 1}):
        _problem(client.post(f"{API}/verifications", json=body), 422)
    _problem(client.post(f"{API}/verifications", data="code=abc",
                         headers={"Content-Type": "application/x-www-form-urlencoded"}), 422)
    assert verify(client, code="A" * 32) == {"valid": False, "reason": "unknown",
                                             "detail": "无法识别的亮证码或证照"}
    assert _count(app, AccessLogEntry) == 0


def test_invalid_verifier_token_is_401(client, alice, alice_card):
    shown = present(client, alice["headers"], alice_card["license_id"])
    _problem(client.post(f"{API}/verifications", json={"code": shown["code"]},
                         headers={"Authorization": "Bearer nonsense"}), 401)
    assert verify(client, code=shown["code"])["valid"] is True  # the code was not consumed


def test_a_revoked_verifier_token_is_401_and_leaves_the_code(app, client, alice, alice_card):
    hotel = verifier_headers(app, client)
    shown = present(client, alice["headers"], alice_card["license_id"])
    with app.test_request_context():
        tokens.revoke_access_token(tokens.decode_access_token(hotel["Authorization"].split()[1]))
    problem = _problem(client.post(f"{API}/verifications", json={"code": shown["code"]}, headers=hotel), 401)
    assert problem["detail"] == "访问令牌已注销"
    assert verify(client, code=shown["code"])["valid"] is True


@needs_redis("counts the commands the shared Redis receives")
@needs_redis("the commands one Redis server counts, and the connection the store holds on it")
def test_a_live_code_is_verified_in_one_blocking_round_trip_to_the_store(app, client, alice, alice_card, monkeypatch):
    hotel = verifier_headers(app, client)
    first, second = (present(client, alice["headers"], alice_card["license_id"]) for _ in range(2))
    assert verify(client, hotel, code=first["code"])["valid"] is True  # wakes the journal's drainer once
    store = app.extensions["shared_store"]
    waited, sent_later = [], []
    round_trip, send_later = HeldConnection._round_trip, HeldConnection.send_later
    monkeypatch.setattr(HeldConnection, "_round_trip", staticmethod(
        lambda connection, args: waited.append(args[0]) or round_trip(connection, args)))
    monkeypatch.setattr(HeldConnection, "send_later", lambda held, script, keys, args, then: sent_later.append(
        script) or send_later(held, script, keys, args, then))
    redis = store.client
    redis.config_resetstat()
    answer = verify(client, hotel, code=second["code"])
    assert answer["valid"] is True and answer["disclosure"] == "full"
    assert waited == ["EVALSHA"] and sent_later == [store._journal_push]  # the answer waited for one
    assert store._held.pending()
    assert store.get(code_key(second["code"])) is None and not store._held.pending()  # read before the next
    calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in redis.info("commandstats").items()}
    calls.pop("config|resetstat", None)
    # two scripts (commandstats also counts the commands they run): count the hit (its window's TTL is read only
    # past the limit), read the token's revocation, the code, the status version and the type its basic use
    # names, and claim the full use and the journal's awake flag (two SET NX); then consume the use and its
    # claim, journal the answer and mark the holder's inbox as waiting for it (the awake flag's SET NX again and
    # the mark's); the GET is this test's
    assert calls == {"evalsha": 2, "incr": 2, "mget": 1, "set": 4, "del": 1, "rpush": 1, "get": 1}


def test_a_use_another_check_holds_answers_used_until_its_claim_lapses(app, client, alice, alice_card):
    """A verifier whose read finds the use its check takes claimed by another check in flight answers
    `used` (as losing the consume did) and journals it; once the claim is freed, the use is there."""
    hotel = verifier_headers(app, client)
    shown = present(client, alice["headers"], alice_card["license_id"])
    store = app.extensions["shared_store"]
    store.set(claim_key(code_key(shown["code"])), "another-check", ttl=30)
    assert verify(client, hotel, code=shown["code"])["reason"] == "used"
    assert verify(client, code=shown["code"])["valid"] is True  # the basic use was not the one held
    assert store.delete(claim_key(code_key(shown["code"]))) == 1
    answer = verify(client, hotel, code=shown["code"])
    assert answer["valid"] is True and answer["disclosure"] == "full"
    results = [e["result"] for e in access_log(client, alice["headers"], alice_card["license_id"])["items"]]
    assert sorted(results) == ["used", "valid", "valid"]
    assert verify(client, hotel, code=shown["code"])["reason"] == "used"
    assert store.get(claim_key(code_key(shown["code"]))) is None


def test_a_claim_that_guessed_the_other_kind_of_check_is_given_back(app, client, alice, alice_card):
    """A code whose basic use does not name its type (sealed before it did) makes a registered verifier's
    read claim the basic use; the answer gives that back and consumes the full use in a second step."""
    hotel = verifier_headers(app, client)
    shown = present(client, alice["headers"], alice_card["license_id"])
    store = app.extensions["shared_store"]
    store.set(basic_key(shown["code"]), "1", ttl=300)
    answer = verify(client, hotel, code=shown["code"])
    assert answer["valid"] is True and answer["disclosure"] == "full"
    assert store.get(claim_key(basic_key(shown["code"]))) is None and store.get(basic_key(shown["code"])) == "1"
    assert store.get(code_key(shown["code"])) is None  # the full use, consumed
    assert verify(client, hotel, code=shown["code"])["reason"] == "used"


def test_a_revoked_token_or_a_refused_caller_leaves_no_claim(app, client, alice, alice_card, monkeypatch):
    hotel = verifier_headers(app, client)
    shown = present(client, alice["headers"], alice_card["license_id"])
    store = app.extensions["shared_store"]
    with app.app_context():
        claims = tokens.signed_claims(hotel["Authorization"].split()[1])
    store.set(f"revoked:jti:{claims['jti']}", "1", ttl=300)
    with monkeypatch.context() as refused:  # the read itself must not claim: nothing gives a claim back here
        refused.setattr(verification.CodeUse, "give_back", lambda use: None)
        _problem(client.post(f"{API}/verifications", json={"code": shown["code"]}, headers=hotel), 401)
        refused.setitem(app.config, "VERIFY_RATE_LIMIT", "1/minute")
        busy = {"REMOTE_ADDR": "10.9.9.9"}
        assert client.post(f"{API}/verifications", json={"code": "A" * 32}, environ_base=busy).status_code == 200
        _problem(client.post(f"{API}/verifications", json={"code": shown["code"]}, environ_base=busy), 429)
        for use in (code_key(shown["code"]), basic_key(shown["code"])):
            assert store.get(claim_key(use)) is None
    answer = verify(client, verifier_headers(app, client, name="另一家酒店"), code=shown["code"])
    assert answer["valid"] is True and answer["disclosure"] == "full"


def test_verifications_are_rate_limited_per_address_bad_requests_included(app, client, alice, alice_card,
                                                                          monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_RATE_LIMIT", "3/minute")
    shown = present(client, alice["headers"], alice_card["license_id"])
    assert verify(client, code="A" * 32)["reason"] == "unknown"
    _problem(client.post(f"{API}/verifications", json={"code": shown["code"]},
                         headers={"Authorization": "Bearer nonsense"}), 401)
    _problem(client.post(f"{API}/verifications", json={"code": "not a code!"}), 400)
    over = client.post(f"{API}/verifications", json={"code": shown["code"]})
    problem = _problem(over, 429)
    assert problem["detail"] == "核验请求过于频繁，请稍后再试"
    assert 1 <= int(over.headers["Retry-After"]) <= 61  # the window's seconds left, rounded up
    elsewhere = client.post(f"{API}/verifications", json={"code": shown["code"]},
                            environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert elsewhere.get_json()["valid"] is True  # the limited request did not consume the code


def test_suspend_reinstate_revoke(app, client, alice, alice_card, police):
    license_id = alice_card["license_id"]
    url = f"{API}/licenses/{license_id}/status"
    pending = present(client, alice["headers"], license_id)
    response = client.post(url, json={"status": "suspended", "reason": "信息核查"}, headers=police)
    assert response.status_code == 200
    assert response.get_json()["status"] == "suspended" and response.get_json()["reason"] == "信息核查"
    assert verify(client, code=pending["code"])["reason"] == "suspended"
    problem = _problem(client.post(f"{API}/wallet/licenses/{license_id}/presentations",
                                   json={"purpose": "x"}, headers=alice["headers"]), 409)
    assert problem["license_status"] == "suspended"
    assert client.post(url, json={"status": "valid"}, headers=police).get_json()["status"] == "valid"
    shown = present(client, alice["headers"], license_id)
    assert client.post(url, json={"status": "revoked", "reason": "证件遗失"}, headers=police).status_code == 200
    assert verify(client, code=shown["code"])["reason"] == "revoked"
    _problem(client.post(url, json={"status": "valid"}, headers=police), 409)
    assert client.post(url, json={"status": "revoked"}, headers=police).status_code == 200  # idempotent
    _problem(client.post(url, json={"status": "expired"}, headers=police), 422)
    other = issuer_headers(app, client, types=(ID_CARD,), name="青岛市公安局")
    _problem(client.post(url, json={"status": "suspended"}, headers=other), 404)
    _problem(client.post(url, json={"status": "suspended"}, headers=alice["headers"]), 403)
    detail = client.get(f"{API}/wallet/licenses/{license_id}", headers=alice["headers"]).get_json()
    assert detail["status"] == "revoked" and detail["status_reason"] == "证件遗失"
    titles = [n["title"] for n in client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]]
    assert "您的居民身份证已被撤销" in titles and "您的居民身份证已被暂停使用" in titles
    results = [e["result"] for e in access_log(client, alice["headers"], license_id)["items"]]
    assert results == ["revoked", "suspended"]


def test_expired_license_cannot_be_shown(app, client, alice, alice_card):
    with app.app_context():
        lic = db.session.scalar(select(License).where(License.license_id == alice_card["license_id"]))
        lic.valid_until = today() - timedelta(days=1)
        db.session.commit()
    problem = _problem(client.post(f"{API}/wallet/licenses/{alice_card['license_id']}/presentations",
                                   json={"purpose": "x"}, headers=alice["headers"]), 409)
    assert problem["license_status"] == "expired"
    items = client.get(f"{API}/wallet/licenses", headers=alice["headers"],
                       query_string={"status": "expired"}).get_json()["items"]
    assert [item["status"] for item in items] == ["expired"]


def test_openapi_documents_the_wallet(client):
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]
    for path in ("/api/v1/license-types", "/api/v1/licenses", "/api/v1/licenses/{license_id}/status",
                 "/api/v1/wallet/licenses", "/api/v1/wallet/licenses/{license_id}",
                 "/api/v1/wallet/licenses/{license_id}/presentations", "/api/v1/verifications",
                 "/api/v1/wallet/licenses/{license_id}/access-log", "/api/v1/status-lists/{list_id}"):
        assert path in paths, path
    assert paths["/api/v1/verifications"]["post"]["summary"] == "核验亮证（在线亮证码或离线 SD-JWT；核验方令牌可选）"


def test_holder_ends_a_presentation_early(app, client, alice, alice_card):
    license_id = alice_card["license_id"]
    online = present(client, alice["headers"], license_id)
    offline = present(client, alice["headers"], license_id, mode="offline")
    for shown in (online, offline):
        url = f"{API}/wallet/licenses/{license_id}/presentations/{shown['presentation_id']}"
        assert client.delete(url, headers=alice["headers"]).status_code == 204
        assert client.delete(url, headers=alice["headers"]).status_code == 204  # idempotent
    # its own reason: the license itself has not expired
    assert verify(client, code=online["code"]) == {"valid": False, "reason": "cancelled", "detail": "持证人已结束本次亮证"}
    assert verify(client, sd_jwt=offline["sd_jwt"])["reason"] == "cancelled"
    mallory = register_person(client, app, name="王五")
    _problem(client.delete(f"{API}/wallet/licenses/{license_id}/presentations/{online['presentation_id']}",
                           headers=mallory["headers"]), 404)
    _problem(client.delete(f"{API}/wallet/licenses/{license_id}/presentations/pr_nope",
                           headers=alice["headers"]), 404)


def test_control_characters_are_refused_not_crashed_on(app, client, alice, alice_card, police):
    license_id = alice_card["license_id"]
    for url in (f"{API}/status-lists/a%00b", f"{API}/wallet/licenses/lic_%00",
                f"{API}/license-types/a%00", f"{API}/wallet/licenses/{license_id}/access-log%00"):
        assert client.get(url, headers=alice["headers"]).status_code == 404, url
    problem = _problem(client.get(f"{API}/wallet/licenses", headers=alice["headers"],
                                  query_string={"license_type": "a\x00"}), 422)
    assert "license_type" in problem["errors"]
    _problem(client.post(f"{API}/wallet/licenses/{license_id}/presentations", headers=alice["headers"],
                         json={"purpose": "入住\x00登记"}), 422)
    _problem(client.post(f"{API}/licenses/{license_id}/status", headers=police,
                         json={"status": "suspended", "reason": "a\x00"}), 422)
    _problem(client.post(f"{API}/licenses", headers=police, json={
        "license_type": "a\x00", "holder_id_number": alice["id_number"], "fields": id_card_fields(),
        "valid_from": today().isoformat(), "valid_until": (today() + timedelta(days=9)).isoformat()}), 422)
    problem = _problem(client.post(f"{API}/licenses", headers=police, json={
        "license_type": ID_CARD, "holder_id_number": alice["id_number"], "fields": id_card_fields(name="张\x00三"),
        "valid_from": today().isoformat(), "valid_until": (today() + timedelta(days=9)).isoformat()}), 422)
    assert "fields.name" in problem["errors"]
    shown = present(client, alice["headers"], license_id, mode="offline")
    head, payload, signature = shown["sd_jwt"].split("~")[0].split(".")
    import base64
    import json as _json
    claims = _json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["identifier"] = "1.2\x00"
    forged = base64.urlsafe_b64encode(_json.dumps(claims).encode()).rstrip(b"=").decode()
    header = _json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    header["kid"] = "k\x00"
    forged_head = base64.urlsafe_b64encode(_json.dumps(header).encode()).rstrip(b"=").decode()
    rest = shown["sd_jwt"].split("~", 1)[1]
    assert verify(client, sd_jwt=f"{forged_head}.{forged}.{signature}~{rest}")["reason"] == "bad_signature"
