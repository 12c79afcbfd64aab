"""Verifier-initiated checks (OpenID4VP-shaped): the verifier asks for fields, the QR points to a
signed request object with a DCQL query, the phone (the `sd-jwt` library) answers once for that
nonce and audience, or the platform answers for a holder without a device key; the verifier polls."""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
from sqlalchemy import update

from app.extensions import db
from app.wallet.device_models import VerificationRequest
from tests.support.helpers import API, register_person
from tests.support.wallet import DRIVING, ID_CARD, decode_qr_svg
from tests.support.devices import Phone, library_verify, verifier


def ask(client, headers, expect=201, **body):
    body = {"license_type": ID_CARD, "fields": ["name", "id_number"], "purpose": "酒店入住登记", **body}
    response = client.post(f"{API}/verification-requests", json=body, headers=headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def answer(client, request_id, expect=200, headers=None, **body):
    response = client.post(f"{API}/verification-requests/{request_id}/responses", json=body, headers=headers or {})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def poll(client, headers, request_id, expect=200):
    response = client.get(f"{API}/verification-requests/{request_id}", headers=headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def test_a_request_asks_only_within_the_verifiers_scope(app, client, alice, hotel):
    _, headers = hotel
    problem = ask(client, headers, expect=422, fields=["name", "blood_type"])
    assert "fields" in problem["errors"]
    assert "fields" in ask(client, headers, expect=422, fields=[])["errors"]
    assert "license_type" in ask(client, headers, expect=422, license_type=DRIVING)["errors"]
    ask(client, alice["headers"], expect=403)
    ask(client, {}, expect=401)
    created = ask(client, headers)
    assert set(created) >= {"request_id", "nonce", "aud", "expires_at", "qr_svg", "request_uri", "response_uri"}
    assert created["aud"] == hotel[0]


def test_the_qr_points_to_a_signed_openid4vp_request_with_a_dcql_query(client, hotel):
    created = ask(client, hotel[1])
    link = decode_qr_svg(created["qr_svg"]).decode()
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.scheme == "openid4vp" and query == {"client_id": hotel[0], "request_uri": created["request_uri"]}
    response = client.get(urlsplit(created["request_uri"]).path)
    assert response.status_code == 200 and response.mimetype == "application/oauth-authz-req+jwt"
    token = response.get_data(as_text=True)
    header = pyjwt.get_unverified_header(token)
    jwks = {key["kid"]: key for key in client.get("/.well-known/jwks.json").get_json()["keys"]}
    key = pyjwt.PyJWK(jwks[header["kid"]]).key
    claims = pyjwt.decode(token, key, algorithms=["ES256"], audience="https://self-issued.me/v2")
    assert header["typ"] == "oauth-authz-req+jwt"
    assert (claims["response_type"], claims["response_mode"]) == ("vp_token", "direct_post")
    assert claims["client_id"] == hotel[0] and claims["nonce"] == created["nonce"]
    assert claims["response_uri"] == created["response_uri"] and claims["state"] == created["request_id"]
    [credential] = claims["dcql_query"]["credentials"]
    assert credential["format"] == "dc+sd-jwt" and credential["meta"]["vct_values"] == [f"urn:cn:license:{ID_CARD}"]
    assert [c["path"] for c in credential["claims"]] == [["name"], ["id_number"]]


def test_the_phone_answers_once_and_the_verifier_polls(app, client, alice, card, bound, hotel):
    phone, _, credential = bound
    hotel_id, headers = hotel
    created = ask(client, headers)
    pending = poll(client, headers, created["request_id"])
    assert (pending["status"], pending["result"]) == ("pending", None)
    shown = phone.present(credential, ["name", "id_number"], nonce=created["nonce"], aud=created["aud"])
    assert library_verify(client, shown, aud=hotel_id, nonce=created["nonce"])["name"] == "张三"
    result = answer(client, created["request_id"], sd_jwt=shown)
    assert result["valid"] is True and result["request_status"] == "answered"
    polled = poll(client, headers, created["request_id"])
    assert polled["status"] == "answered"
    assert polled["result"]["disclosed"] == {"name": "张三", "id_number": alice["id_number"]}
    assert polled["result"]["holder_binding"] == "device" and polled["result"]["purpose"] == "酒店入住登记"
    answer(client, created["request_id"], expect=409, sd_jwt=shown)  # a replay: answered once
    other_hotel = verifier(app, client, "另一家酒店")
    poll(client, other_hotel[1], created["request_id"], expect=404)
    poll(client, alice["headers"], created["request_id"], expect=404)
    log = client.get(f"{API}/wallet/licenses/{card['license_id']}/access-log", headers=alice["headers"]).get_json()
    assert [(e["verifier"], e["purpose"], e["result"], e["disclosed"]) for e in log["items"]] == [
        ("泉城大酒店", "酒店入住登记", "valid", ["name", "id_number"])]


def test_another_nonce_or_audience_does_not_answer(app, client, alice, card, bound, hotel):
    phone, _, credential = bound
    created = ask(client, hotel[1])
    other = ask(client, verifier(app, client, "另一家酒店")[1])
    wrong_nonce = phone.present(credential, ["name"], nonce=other["nonce"], aud=created["aud"])
    assert answer(client, created["request_id"], sd_jwt=wrong_nonce) | {"detail": None} == {
        "valid": False, "reason": "wrong_nonce", "detail": None, "request_status": "pending"}
    wrong_audience = phone.present(credential, ["name"], nonce=created["nonce"], aud=other["aud"])
    assert answer(client, created["request_id"], sd_jwt=wrong_audience)["reason"] == "wrong_audience"
    assert answer(client, created["request_id"], sd_jwt="not an sd-jwt", expect=400)["status"] == 400
    assert poll(client, hotel[1], created["request_id"])["status"] == "pending"
    right = phone.present(credential, ["name"], nonce=created["nonce"], aud=created["aud"])
    assert answer(client, created["request_id"], sd_jwt=right)["valid"] is True


def test_a_removed_device_and_a_revoked_license_answer_their_reason(client, alice, card, bound, hotel, police):
    phone, device_id, credential = bound
    first = ask(client, hotel[1])
    assert client.delete(f"{API}/wallet/devices/{device_id}", headers=alice["headers"]).status_code == 204
    shown = phone.present(credential, ["name"], nonce=first["nonce"], aud=first["aud"])
    assert answer(client, first["request_id"], sd_jwt=shown)["reason"] == "device_removed"
    assert poll(client, hotel[1], first["request_id"])["result"]["reason"] == "device_removed"
    second_phone = Phone()
    rebound = second_phone.bind(client, alice["headers"], card["license_id"],
                                second_phone.register(client, alice["headers"])["device_id"])["sd_jwt"]
    assert client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "revoked"},
                       headers=police).status_code == 200
    second = ask(client, hotel[1])
    shown = second_phone.present(rebound, ["name"], nonce=second["nonce"], aud=second["aud"])
    assert answer(client, second["request_id"], sd_jwt=shown)["reason"] == "revoked"
    assert poll(client, hotel[1], second["request_id"])["result"] | {"detail": None} == {
        "valid": False, "reason": "revoked", "detail": None}


def test_the_platform_answers_for_a_holder_without_a_device_key(app, client, alice, card, hotel):
    created = ask(client, hotel[1])
    too_much = {"license_id": card["license_id"], "disclose": ["name", "address"]}
    assert "disclose" in answer(client, created["request_id"], expect=422, headers=alice["headers"], **too_much)["errors"]
    answer(client, created["request_id"], expect=401, license_id=card["license_id"])
    bob = register_person(client, app, name="李四")
    answer(client, created["request_id"], expect=404, headers=bob["headers"], license_id=card["license_id"])
    result = answer(client, created["request_id"], headers=alice["headers"], license_id=card["license_id"],
                    disclose=["name"])
    assert result["valid"] is True and result["holder_binding"] == "platform"
    polled = poll(client, hotel[1], created["request_id"])
    assert polled["result"]["disclosed"] == {"name": "张三"}
    assert polled["result"]["shown_by"]["role"] == "holder"
    # a verifier that requires device binding does not get a platform answer
    strict = ask(client, hotel[1], require_device_binding=True)
    answer(client, strict["request_id"], expect=409, headers=alice["headers"], license_id=card["license_id"])
    assert poll(client, hotel[1], strict["request_id"])["status"] == "pending"


def test_an_expired_request_answers_nothing(app, client, alice, bound, hotel):
    phone, _, credential = bound
    created = ask(client, hotel[1])
    with app.app_context():
        db.session.execute(update(VerificationRequest).where(VerificationRequest.request_id == created["request_id"])
                           .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        db.session.commit()
    assert poll(client, hotel[1], created["request_id"])["status"] == "expired"
    shown = phone.present(credential, ["name"], nonce=created["nonce"], aud=created["aud"])
    problem = answer(client, created["request_id"], expect=409, sd_jwt=shown)
    assert problem["request_status"] == "expired"
    assert client.get(urlsplit(created["request_uri"]).path).status_code == 404
    answer(client, "vr_" + secrets.token_hex(12), expect=404, sd_jwt=shown)
    assert json.loads(json.dumps(poll(client, hotel[1], created["request_id"])))["result"] is None
