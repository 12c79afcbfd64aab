"""Helpers for the device, verifier-request and collection tests (no tests here): a phone played
by the independent `sd-jwt` library with a jwcrypto key, and a verifier played by the same library."""
from __future__ import annotations

import base64
import json

import pytest
from jwcrypto.jwk import JWK
from sd_jwt.holder import SDJWTHolder
from sd_jwt.verifier import SDJWTVerifier

from tests.support.helpers import API, auth_headers, client_token, create_client
from tests.support.wallet import ID_CARD, id_card_fields, issue, issuer_headers

BASE = "http://localhost"  # PUBLIC_BASE_URL of the test app


def b64json(part: str):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def payload_of(sd_jwt: str) -> dict:
    return b64json(sd_jwt.split("~")[0].split(".")[1])


class Phone:
    """A phone: a P-256 key made on the device (the private half never leaves this object)."""

    def __init__(self):
        self.key = JWK.generate(kty="EC", crv="P-256")

    @property
    def public_jwk(self) -> dict:
        return {k: v for k, v in self.key.export_public(as_dict=True).items() if k in ("kty", "crv", "x", "y")}

    def register(self, client, headers, name="我的手机", expect=201) -> dict:
        response = client.post(f"{API}/wallet/devices", json={"name": name, "jwk": self.public_jwk}, headers=headers)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def bind(self, client, headers, license_id: str, device_id: str, expect=200) -> dict:
        response = client.post(f"{API}/wallet/licenses/{license_id}/bindings", json={"device_id": device_id},
                               headers=headers)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def present(self, credential: str, fields: list[str], *, nonce: str, aud: str) -> str:
        """An RFC 9901 presentation made by the sd-jwt library: chosen disclosures + KB-JWT."""
        holder = SDJWTHolder(credential)
        holder.create_presentation({name: True for name in fields}, nonce=nonce, aud=aud, holder_key=self.key,
                                   sign_alg="ES256")
        return holder.sd_jwt_presentation


def verifier(app, client, name: str, types=(ID_CARD,)) -> tuple[str, dict]:
    """A verifier client registered for `types`: (client_id, headers)."""
    client_id, secret = create_client(app, "verifier", license_types=types, name=name)
    return client_id, auth_headers(client_token(client, client_id, secret))


@pytest.fixture
def police(app, client):
    return issuer_headers(app, client, types=(ID_CARD,))


@pytest.fixture
def card(client, alice, police):
    return issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields("张三"))


@pytest.fixture
def hotel(app, client):
    """A verifier registered for 居民身份证: (client_id, headers)."""
    return verifier(app, client, "泉城大酒店")


@pytest.fixture
def bound(client, alice, card):
    """(phone, device_id, device-bound credential) for alice's card."""
    phone = Phone()
    device_id = phone.register(client, alice["headers"])["device_id"]
    return phone, device_id, phone.bind(client, alice["headers"], card["license_id"], device_id)["sd_jwt"]


def library_verify(client, presentation: str, *, aud: str, nonce: str) -> dict:
    """The sd-jwt library as the verifier, with the keys from /.well-known/jwks.json."""
    published = {key["kid"]: key for key in client.get("/.well-known/jwks.json").get_json()["keys"]}

    def issuer_key(iss, header):
        assert iss.startswith(BASE + "/issuers/")
        return JWK.from_json(json.dumps(published[header["kid"]]))

    return SDJWTVerifier(presentation, issuer_key, aud, nonce).get_verified_payload()
