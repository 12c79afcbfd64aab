"""Device keys and device binding: the phone registers a public P-256 key, the platform re-issues a
license to it, and the phone (the independent `sd-jwt` library with a jwcrypto key) presents it
offline by itself; the same library verifies it with the keys from JWKS, and so does the server."""
from __future__ import annotations

import secrets

from jwcrypto.jwk import JWK

from tests.support.helpers import API, register_person
from tests.support.wallet import present, verify
from tests.support.devices import BASE, Phone, library_verify, payload_of


def _problem(response, status):
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    return response.get_json()


def test_only_public_p256_keys_are_registered(client, alice):
    phone = Phone()
    url = f"{API}/wallet/devices"
    refused = {
        "private key": phone.key.export_private(as_dict=True),
        "P-384": JWK.generate(kty="EC", crv="P-384").export_public(as_dict=True),
        "Ed25519": JWK.generate(kty="OKP", crv="Ed25519").export_public(as_dict=True),
        "not on the curve": {**phone.public_jwk, "y": Phone().public_jwk["y"]},
        "not an object": "eyJrdHkiOiJFQyJ9",
    }
    for label, jwk in refused.items():
        problem = _problem(client.post(url, json={"name": "手机", "jwk": jwk}, headers=alice["headers"]), 422)
        assert "jwk" in problem["errors"], label
    assert client.post(url, json={"name": "手机", "jwk": phone.public_jwk}).status_code == 401
    created = phone.register(client, alice["headers"], name="华为 Mate")
    assert created["device_id"].startswith("dev_") and created["status"] == "active"
    _problem(client.post(url, json={"name": "又一次", "jwk": phone.public_jwk}, headers=alice["headers"]), 409)
    listed = client.get(url, headers=alice["headers"]).get_json()
    assert [(d["device_id"], d["name"], d["status"]) for d in listed["items"]] == [
        (created["device_id"], "华为 Mate", "active")]
    assert listed["items"][0]["jwk"] == phone.public_jwk


def test_devices_are_their_owners_alone_and_removal_is_final(app, client, alice):
    phone = Phone()
    device_id = phone.register(client, alice["headers"])["device_id"]
    bob = register_person(client, app, name="李四")
    assert client.get(f"{API}/wallet/devices", headers=bob["headers"]).get_json()["items"] == []
    _problem(client.delete(f"{API}/wallet/devices/{device_id}", headers=bob["headers"]), 404)
    assert client.delete(f"{API}/wallet/devices/{device_id}", headers=alice["headers"]).status_code == 204
    assert client.delete(f"{API}/wallet/devices/{device_id}", headers=alice["headers"]).status_code == 204
    items = client.get(f"{API}/wallet/devices", headers=alice["headers"]).get_json()["items"]
    assert [(d["device_id"], d["status"]) for d in items] == [(device_id, "removed")]
    assert items[0]["removed_at"]
    phone.register(client, alice["headers"], expect=409)  # a removed key stays dead
    _problem(client.delete(f"{API}/wallet/devices/dev_0123", headers=alice["headers"]), 404)
    lost = Phone().register(client, alice["headers"])["device_id"]
    _problem(client.delete(f"{API}/wallet/devices/{lost}", headers=alice["headers"], query_string={"reason": "stolen"}),
             422)
    assert client.delete(f"{API}/wallet/devices/{lost}", headers=alice["headers"],
                         query_string={"reason": "lost"}).status_code == 204


def test_bound_credential_names_the_device_key_and_keeps_the_status_entry(app, client, alice, card, bound):
    phone, device_id, credential = bound
    payload = payload_of(credential)
    assert payload["cnf"]["jwk"] == phone.public_jwk and payload["holder_binding"] == "device"
    assert payload["identifier"] == card["identifier"]
    disclosures = credential.split("~")[1:-1]
    assert len(disclosures) == len(payload["_sd"]) == 9  # every field of the type, none held back
    platform = present(client, alice["headers"], card["license_id"], mode="offline")["sd_jwt"]
    assert payload_of(platform)["status"] == payload["status"]  # the same status list entry
    assert payload_of(platform)["holder_binding"] == "platform"
    assert payload_of(platform)["cnf"] != payload["cnf"]
    # someone else's device, or someone else's license
    bob = register_person(client, app, name="李四")
    bobs = Phone().register(client, bob["headers"])["device_id"]
    problem = _problem(client.post(f"{API}/wallet/licenses/{card['license_id']}/bindings",
                                   json={"device_id": bobs}, headers=alice["headers"]), 422)
    assert "device_id" in problem["errors"]
    _problem(client.post(f"{API}/wallet/licenses/{card['license_id']}/bindings", json={"device_id": bobs},
                         headers=bob["headers"]), 404)
    assert client.delete(f"{API}/wallet/devices/{device_id}", headers=alice["headers"]).status_code == 204
    _problem(client.post(f"{API}/wallet/licenses/{card['license_id']}/bindings", json={"device_id": device_id},
                         headers=alice["headers"]), 409)


def test_the_phone_presents_offline_by_itself(client, alice, card, bound, hotel):
    phone, _, credential = bound
    hotel_id, hotel_headers = hotel
    nonce = secrets.token_urlsafe(16)
    shown = phone.present(credential, ["name", "id_number"], nonce=nonce, aud=BASE)
    kb = payload_of(shown.rsplit("~", 1)[1] + "~")  # the KB-JWT, made by the library on the phone
    assert set(kb) == {"iat", "aud", "nonce", "sd_hash"} and kb["aud"] == BASE
    checked = library_verify(client, shown, aud=BASE, nonce=nonce)
    assert checked["name"] == "张三" and checked["id_number"] == alice["id_number"] and "address" not in checked
    # the server, asked by a verifier registered for the type, with the audience the phone named
    result = verify(client, hotel_headers, sd_jwt=shown)
    assert result["valid"] is True and result["holder_binding"] == "device"
    assert result["disclosed"] == {"name": "张三", "id_number": alice["id_number"]}
    assert verify(client, hotel_headers, sd_jwt=shown)["reason"] == "used"  # a replay
    # made for the hotel itself (its client id as the audience) works too, once
    for_hotel = phone.present(credential, ["name"], nonce=secrets.token_urlsafe(16), aud=hotel_id)
    assert verify(client, hotel_headers, sd_jwt=for_hotel)["valid"] is True
    elsewhere = phone.present(credential, ["name"], nonce=secrets.token_urlsafe(16), aud="https://evil.example")
    assert verify(client, hotel_headers, sd_jwt=elsewhere)["reason"] == "wrong_audience"
    # an anonymous check sees validity and the masked name and uses nothing up
    fresh = phone.present(credential, ["name"], nonce=secrets.token_urlsafe(16), aud=BASE)
    assert verify(client, sd_jwt=fresh)["disclosed"] == {"name": "张*"}
    assert verify(client, hotel_headers, sd_jwt=fresh)["disclosed"] == {"name": "张三"}


def test_a_verifier_can_require_device_binding(client, alice, card, bound, hotel):
    phone, _, credential = bound
    _, hotel_headers = hotel
    platform = present(client, alice["headers"], card["license_id"], mode="offline")["sd_jwt"]
    online = present(client, alice["headers"], card["license_id"], mode="online")["code"]
    device = phone.present(credential, ["name"], nonce=secrets.token_urlsafe(16), aud=BASE)
    for body in ({"sd_jwt": platform}, {"code": online}):
        answer = verify(client, hotel_headers, require_device_binding=True, **body)
        assert answer == {"valid": False, "reason": "device_binding_required", "detail": answer["detail"]}
    assert verify(client, hotel_headers, sd_jwt=device, require_device_binding=True)["valid"] is True
    assert verify(client, hotel_headers, code=online)["valid"] is True  # refusing it used nothing up


def test_revocation_and_a_removed_device_stop_device_presentations(client, app, alice, card, bound, hotel, police):
    phone, device_id, credential = bound
    _, hotel_headers = hotel
    before = phone.present(credential, ["name"], nonce=secrets.token_urlsafe(16), aud=BASE)
    assert client.delete(f"{API}/wallet/devices/{device_id}", headers=alice["headers"],
                         query_string={"reason": "lost"}).status_code == 204
    answer = verify(client, hotel_headers, sd_jwt=before)
    assert (answer["valid"], answer["reason"]) == (False, "device_removed")
    assert verify(client, sd_jwt=phone.present(credential, ["name"], nonce=secrets.token_urlsafe(16),
                                                aud=BASE))["reason"] == "device_removed"
    # a second phone, then the issuer revokes the license: device presentations stop as well
    second = Phone()
    second_id = second.register(client, alice["headers"])["device_id"]
    rebound = second.bind(client, alice["headers"], card["license_id"], second_id)["sd_jwt"]
    assert verify(client, hotel_headers, sd_jwt=second.present(rebound, ["name"], nonce=secrets.token_urlsafe(16),
                                                               aud=BASE))["valid"] is True
    revoked = client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "revoked", "reason": "挂失补领"},
                          headers=police)
    assert revoked.status_code == 200, revoked.get_json()
    assert verify(client, hotel_headers, sd_jwt=second.present(rebound, ["name"], nonce=secrets.token_urlsafe(16),
                                                               aud=BASE))["reason"] == "revoked"
    log = client.get(f"{API}/wallet/licenses/{card['license_id']}/access-log", headers=alice["headers"]).get_json()
    assert [item["result"] for item in log["items"]][:2] == ["revoked", "valid"]


def test_binding_to_a_device_needs_a_face_check_where_configured(app, client, alice, card, monkeypatch):
    device_id = Phone().register(client, alice["headers"])["device_id"]
    monkeypatch.setitem(app.config, "REQUIRE_L3_FOR", "license_binding")
    problem = _problem(client.post(f"{API}/wallet/licenses/{card['license_id']}/bindings",
                                   json={"device_id": device_id}, headers=alice["headers"]), 403)
    assert problem["type"].endswith("/real-name-level-required") and problem["required_level"] == 3
    monkeypatch.setitem(app.config, "REQUIRE_L3_FOR", "account_closure")
    assert client.post(f"{API}/wallet/licenses/{card['license_id']}/bindings", json={"device_id": device_id},
                       headers=alice["headers"]).status_code == 200
