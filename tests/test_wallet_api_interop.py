"""Interop: offline presentations checked by the independent `sd-jwt` library with keys from
/.well-known/jwks.json, status list tokens checked by PyJWT and the spec's encoding, QR codes
read back by zbar, and what the server answers to tampered, truncated and replayed input."""
from __future__ import annotations

import base64
import json
import zlib
from datetime import datetime, time, timedelta

import jwt as pyjwt
import pytest
from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier
from sqlalchemy import select

from app.extensions import db
from app.security import keys
from app.timeutil import BEIJING
from app.wallet.qr import MAX_VERSION
from app.wallet.seed import catalogue
from tests.support.helpers import API, register_person
from tests.support.wallet import (BUSINESS, ID_CARD, VEHICLE, access_log, business_fields, decode_qr_svg,
                                  id_card_fields, issue, issuer_headers, present, verifier_headers, verify,
                                  vehicle_fields)
from tests.support.helpers import valid_credit_code

BASE = "http://localhost"  # PUBLIC_BASE_URL of the test app


def b64json(part: str):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwks(client) -> dict:
    return {key["kid"]: key for key in client.get("/.well-known/jwks.json").get_json()["keys"]}


def library_verify(client, presentation: str, nonce: str) -> dict:
    published = jwks(client)

    def issuer_key(iss, header):
        assert iss.startswith(BASE + "/issuers/")
        return JWK.from_json(json.dumps(published[header["kid"]]))

    return SDJWTVerifier(presentation, issuer_key, BASE, nonce).get_verified_payload()


@pytest.fixture
def police(app, client):
    return issuer_headers(app, client, types=(ID_CARD, VEHICLE))


@pytest.fixture
def card(client, alice, police):
    return issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields("张三"))


def test_offline_presentation_verifies_with_the_sd_jwt_library(client, alice, card):
    shown = present(client, alice["headers"], card["license_id"], mode="offline",
                    disclose=["name", "birth_date"], ttl_seconds=120)
    assert "code" not in shown
    sd_jwt = shown["sd_jwt"]
    issuer_jwt, *disclosures, kb_jwt = sd_jwt.split("~")
    assert len(disclosures) == 2
    header, payload = b64json(issuer_jwt.split(".")[0]), b64json(issuer_jwt.split(".")[1])
    assert header["typ"] == "dc+sd-jwt" and header["alg"] == "ES256" and header["kid"] in jwks(client)
    valid_until = client.get(f"{API}/wallet/licenses/{card['license_id']}",
                             headers=alice["headers"]).get_json()["valid_until"]
    end_of_validity = datetime.combine(datetime.fromisoformat(valid_until).date() + timedelta(days=1), time(0),
                                       BEIJING)
    assert payload["exp"] == int(end_of_validity.timestamp())
    assert payload["vct"].endswith(ID_CARD) and payload["iss"].startswith(BASE)
    assert set(payload["cnf"]["jwk"]) == {"kty", "crv", "x", "y"}
    status = payload["status"]["status_list"]
    assert status["uri"].startswith(BASE + "/api/v1/status-lists/") and isinstance(status["idx"], int)
    assert payload["identifier"] == card["identifier"]
    assert "name" not in payload and "张三" not in json.dumps(payload, ensure_ascii=False)
    assert len(payload["_sd"]) == 9  # every field of the type selectively disclosable
    kb_header, kb = b64json(kb_jwt.split(".")[0]), b64json(kb_jwt.split(".")[1])
    assert kb_header == {"alg": "ES256", "typ": "kb+jwt"}
    assert set(kb) == {"aud", "nonce", "iat", "sd_hash", "exp"} and kb["aud"] == BASE
    expires_at = datetime.fromisoformat(shown["expires_at"].replace("Z", "+00:00"))
    assert kb["exp"] == int(expires_at.timestamp())
    verified = library_verify(client, sd_jwt, kb["nonce"])
    assert verified["name"] == "张三" and verified["birth_date"] == "1990-03-07"
    assert "id_number" not in verified and "address" not in verified
    with pytest.raises(Exception):
        library_verify(client, sd_jwt, "another-nonce")


def test_server_verifies_offline_presentations_once(app, client, alice, card):
    shown = present(client, alice["headers"], card["license_id"], mode="offline", disclose=["name", "id_number"])
    hotel = verifier_headers(app, client, types=(ID_CARD,))
    result = verify(client, hotel, sd_jwt=shown["sd_jwt"])
    assert result["valid"] is True and result["disclosed"] == {"name": "张三", "id_number": alice["id_number"]}
    assert verify(client, hotel, sd_jwt=shown["sd_jwt"])["reason"] == "used"  # replayed
    anonymous = present(client, alice["headers"], card["license_id"], mode="offline")
    assert verify(client, sd_jwt=anonymous["sd_jwt"])["disclosed"] == {"name": "张*"}
    log = access_log(client, alice["headers"], card["license_id"])["items"]
    # offline, whoever scans holds the disclosures: the log says so
    assert [(e["result"], e["disclosed"]) for e in log] == [
        ("valid", ["name", "valid_until"]), ("used", []), ("valid", ["name", "id_number"])]


def _swap(sd_jwt: str, index: int, new: str) -> str:
    parts = sd_jwt.split("~")
    parts[index] = new
    return "~".join(parts)


def test_tampered_truncated_and_foreign_presentations(app, client, alice, card):
    def fresh():
        return present(client, alice["headers"], card["license_id"], mode="offline")["sd_jwt"]

    sd_jwt = fresh()
    issuer_jwt = sd_jwt.split("~")[0]
    head, body, sig = issuer_jwt.split(".")
    forged = b64json(body)
    forged["exp"] += 10 * 365 * 86400
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    cases = {
        "payload changed": _swap(sd_jwt, 0, f"{head}.{forged_body}.{sig}"),
        "signature changed": _swap(sd_jwt, 0, f"{head}.{body}.{sig[:-4]}AAAA"),
        "disclosure swapped": _swap(fresh(), 1, base64.urlsafe_b64encode(
            json.dumps(["c2FsdHNhbHRzYWx0", "name", "李四"]).encode()).rstrip(b"=").decode()),
        "disclosure dropped": (lambda s: "~".join(s.split("~")[:1] + s.split("~")[2:]))(fresh()),
        "key binding cut off": fresh().rsplit("~", 1)[0] + "~",
        "key binding truncated": fresh()[:-10],
    }
    for name, presentation in cases.items():
        result = verify(client, sd_jwt=presentation)
        assert result == {"valid": False, "reason": "bad_signature", "detail": "签名、披露内容或持有人绑定校验失败"}, name
    # a credential signed by someone else's key that names our license
    from app.security.jose import es256_sign_jws, generate_es256_key
    rogue = es256_sign_jws(b64json(head), b64json(body), generate_es256_key())
    assert verify(client, sd_jwt=_swap(sd_jwt, 0, rogue))["reason"] == "bad_signature"
    # signed by keys we publish, but not this issuer's (the access-token key, another issuer's key),
    # with a key binding that holds: only the check of whose key signed can refuse these
    from app.wallet.models import License
    from app.wallet.sdjwt import present as bind
    with app.app_context():
        signers = [keys.active_key("access"), keys.active_key("issuer:c_another_issuer")]
        holder_key = db.session.scalar(select(License).where(License.license_id == card["license_id"])).holder_key
        db.session.commit()
    for kid, private in signers:
        shown = fresh()
        kb = b64json(shown.rsplit("~", 1)[1].split(".")[1])
        unbound = _swap(shown.rsplit("~", 1)[0] + "~", 0, es256_sign_jws({**b64json(head), "kid": kid},
                                                                      b64json(body), private))
        foreign = bind(sd_jwt_with_selected=unbound, holder_key=holder_key, aud=kb["aud"], nonce=kb["nonce"],
                       iat=kb["iat"], exp=kb.get("exp"))
        assert verify(client, sd_jwt=foreign)["reason"] == "bad_signature", kid
    results = [e["result"] for e in access_log(client, alice["headers"], card["license_id"],
                                                page_size=100)["items"]]
    assert results == ["bad_signature"] * (len(cases) + 3)


def test_status_list_token_with_pyjwt_and_the_spec_encoding(app, client, alice, card, police):
    # the decoder below follows the draft: ZLIB, base64url; the spec's own vector proves it
    def decode_lst(lst: str) -> bytes:
        return zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))

    assert decode_lst("eNrbuRgAAhcBXQ") == bytes([0xB9, 0xA3])

    def status_at(raw: bytes, idx: int, bits: int) -> int:
        return (raw[idx * bits // 8] >> (idx * bits % 8)) & ((1 << bits) - 1)

    assert [status_at(bytes([0xB9, 0xA3]), i, 1) for i in range(16)] == [1, 0, 0, 1, 1, 1, 0, 1,
                                                                        1, 1, 0, 0, 0, 1, 0, 1]
    second = issue(client, police, license_type=VEHICLE, holder_id_number=alice["id_number"], fields=vehicle_fields())
    third = issue(client, police, license_type=VEHICLE, holder_id_number=alice["id_number"], fields=vehicle_fields())
    client.post(f"{API}/licenses/{second['license_id']}/status", json={"status": "suspended"}, headers=police)
    client.post(f"{API}/licenses/{third['license_id']}/status", json={"status": "revoked"}, headers=police)
    shown = present(client, alice["headers"], card["license_id"], mode="offline")
    uri = b64json(shown["sd_jwt"].split("~")[0].split(".")[1])["status"]["status_list"]["uri"]
    idx = {}
    with app.app_context():
        from sqlalchemy import select
        from app.wallet.models import License
        for lic in (card, second, third):
            row = db.session.scalar(select(License).where(License.license_id == lic["license_id"]))
            idx[lic["license_id"]] = row.status_idx
    path = uri.removeprefix(BASE)
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/statuslist+jwt"
    assert "max-age=60" in response.headers["Cache-Control"] and response.headers["ETag"]
    token = response.get_data(as_text=True)
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == "statuslist+jwt" and header["alg"] == "ES256"
    key = pyjwt.PyJWK.from_dict(jwks(client)[header["kid"]]).key
    payload = pyjwt.decode(token, key, algorithms=["ES256"])
    assert payload["sub"] == uri and payload["exp"] > payload["iat"] and payload["ttl"] == 60
    assert payload["status_list"]["bits"] == 2
    raw = decode_lst(payload["status_list"]["lst"])
    assert status_at(raw, idx[card["license_id"]], 2) == 0
    assert status_at(raw, idx[second["license_id"]], 2) == 2  # suspended
    assert status_at(raw, idx[third["license_id"]], 2) == 1   # invalid
    # conditional requests, and a new representation once a status changes
    etag = response.headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    client.post(f"{API}/licenses/{second['license_id']}/status", json={"status": "valid"}, headers=police)
    fresh = client.get(path, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    raw = decode_lst(pyjwt.decode(fresh.get_data(as_text=True), key, algorithms=["ES256"])["status_list"]["lst"])
    assert status_at(raw, idx[second["license_id"]], 2) == 0
    missing = client.get(f"{API}/status-lists/nope")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_qr_codes_scan_and_fit(client, alice, card, police):
    online = present(client, alice["headers"], card["license_id"])
    assert decode_qr_svg(online["qr_svg"]).decode() == online["code"]
    offline = present(client, alice["headers"], card["license_id"], mode="offline")
    assert offline["qr_version"] <= MAX_VERSION
    assert decode_qr_svg(offline["qr_svg"]).decode() == offline["sd_jwt"]
    # the largest person type with long values, default (minimal) disclosure
    vehicle = issue(client, police, license_type=VEHICLE, holder_id_number=alice["id_number"],
                    fields=vehicle_fields())
    shown = present(client, alice["headers"], vehicle["license_id"], mode="offline")
    assert shown["qr_version"] <= MAX_VERSION
    assert decode_qr_svg(shown["qr_svg"]).decode() == shown["sd_jwt"]
    # everything at once does not fit one QR code: a clear 422 naming `disclose`, never a 500
    every = [field["name"] for field in next(t for t in catalogue() if t["code"] == VEHICLE)["fields"]]
    response = client.post(f"{API}/wallet/licenses/{vehicle['license_id']}/presentations",
                           json={"purpose": "检查", "mode": "offline", "disclose": every}, headers=alice["headers"])
    if response.status_code == 201:
        assert decode_qr_svg(response.get_json()["qr_svg"]).decode() == response.get_json()["sd_jwt"]
    else:
        assert response.status_code == 422 and "disclose" in response.get_json()["errors"]


def test_business_license_default_disclosure_fits_a_qr_code(app, client):
    from tests.support.helpers import add_registry_entity, valid_id_number
    issuer = issuer_headers(app, client, types=(BUSINESS,), name="济南市市场监督管理局")
    boss = register_person(client, app, name="王五", id_number=valid_id_number())
    code = valid_credit_code()
    add_registry_entity(app, credit_code=code, name="山东示例科技有限公司", representative_id_number=boss["id_number"])
    assert client.post(f"{API}/enterprises", json={"credit_code": code, "name": "山东示例科技有限公司"},
                       headers=boss["headers"]).status_code == 201
    lic = issue(client, issuer, license_type=BUSINESS, holder_credit_code=code, fields=business_fields())
    company = client.post(f"{API}/auth/act-as", json={"credit_code": code}, headers=boss["headers"]).get_json()
    headers = {"Authorization": f"Bearer {company['access_token']}"}
    shown = present(client, headers, lic["license_id"], mode="offline", purpose="招投标资格审查")
    assert shown["qr_version"] <= MAX_VERSION
    assert decode_qr_svg(shown["qr_svg"]).decode() == shown["sd_jwt"]
    verified = library_verify(client, shown["sd_jwt"], b64json(shown["sd_jwt"].rsplit("~", 1)[1].split(".")[1])["nonce"])
    assert verified["entity_name"] == "山东示例科技有限公司" and verified["credit_code"] == code


def test_key_rotation_keeps_issued_licenses_verifiable(app, client, alice, card, police):
    before = present(client, alice["headers"], card["license_id"], mode="offline")
    old_kid = b64json(before["sd_jwt"].split(".")[0])["kid"]
    with app.app_context():
        keys.rotate()
    assert old_kid in jwks(client)
    newer = issue(client, police, license_type=VEHICLE, holder_id_number=alice["id_number"], fields=vehicle_fields())
    shown = present(client, alice["headers"], newer["license_id"], mode="offline", disclose=["name", "plate_number"])
    new_kid = b64json(shown["sd_jwt"].split(".")[0])["kid"]
    assert new_kid != old_kid and new_kid in jwks(client)
    assert verify(client, sd_jwt=before["sd_jwt"])["valid"] is True
    assert verify(client, sd_jwt=shown["sd_jwt"])["valid"] is True
    nonce = b64json(shown["sd_jwt"].rsplit("~", 1)[1].split(".")[1])["nonce"]
    assert library_verify(client, shown["sd_jwt"], nonce)["name"] == "张三"


def _decoded_segments(text: str) -> list[bytes]:
    segments = [part for disclosure in text.strip().split("~") for part in disclosure.split(".")]
    return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in segments]


def test_mangled_presentations_never_fail_the_server(app, client, alice, card):
    import random
    rnd = random.Random(36904)
    original = present(client, alice["headers"], card["license_id"], mode="offline")["sd_jwt"]
    alphabet = "AZaz09-_.~=+/ 中\x00\"{}"
    seen = set()
    for _ in range(120):
        text = list(original)
        for _ in range(rnd.randint(1, 4)):
            action, pos = rnd.choice(("flip", "cut", "insert", "drop")), rnd.randrange(len(text))
            if action == "flip":
                text[pos] = rnd.choice(alphabet)
            elif action == "cut":
                text = text[:max(1, pos)]
            elif action == "insert":
                text.insert(pos, rnd.choice(alphabet))
            else:
                del text[pos]
        mangled = "".join(text)
        if mangled.strip() == original:
            continue
        response = client.post(f"{API}/verifications", json={"sd_jwt": mangled})
        if "\x00" in mangled:
            # the app-wide guard refuses U+0000 in any JSON string, naming the field
            assert response.status_code == 422 and "sd_jwt" in response.get_json()["errors"]
            continue
        assert response.status_code in (200, 400), (response.status_code, mangled)
        body = response.get_json()
        if response.status_code == 200 and body["valid"]:
            # only a non-canonical base64 spelling of the very same bytes may pass
            assert _decoded_segments(mangled) == _decoded_segments(original), mangled
        elif response.status_code == 200:
            assert body["reason"] in ("bad_signature", "unknown", "used")
        seen.add(response.status_code)
    assert seen == {200, 400}
