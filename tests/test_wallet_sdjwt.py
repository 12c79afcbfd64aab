"""SD-JWT VC tests: our issuer/holder/verifier against the independent OpenWallet `sd-jwt` library."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from jwcrypto.jwk import JWK
from sd_jwt.common import SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from app.security.jose import b64url_decode, b64url_encode, b64url_json, es256_sign_jws, generate_es256_key, public_jwk
from app.wallet.qr import MAX_VERSION, qr_svg
from app.wallet.sdjwt import (
    SdJwtError,
    disclosure_digest,
    issue_sd_jwt_vc,
    looks_like_sd_jwt,
    make_disclosure,
    present,
    select_disclosures,
    verify_presentation,
)
from app.wallet.status_list_codec import status_claim

NOW = 1_750_000_000
AUD = "https://verifier.jinan.gov.cn"
NONCE = "n-0S6_WzA2Mj"
KID = "sd-issuer-2025"
ISS = "https://wallet.sd.gov.cn/issuer"
VCT = "urn:cn:sd:license:resident-id"
CLAIMS = {
    "name": "张三",
    "id_number": "370102199001011234",
    "birth_date": "1990-01-01",
    "address": {"province": "山东省", "city": "济南市"},
    "nationalities": ["CN"],
}
VISIBLE = {
    "license_type": "居民身份证",
    "identifier": "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
}


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"issuer": generate_es256_key(), "holder": generate_es256_key(), "other": generate_es256_key()}


def issue(keys: dict[str, Any], *, iat: int = NOW, exp: int = NOW + 86_400) -> str:
    return issue_sd_jwt_vc(
        issuer_key=keys["issuer"], kid=KID, iss=ISS, vct=VCT, claims=CLAIMS, always_visible=VISIBLE,
        iat=iat, exp=exp, holder_public_jwk=public_jwk(keys["holder"].public_key()),
        status=status_claim(idx=42, uri="https://wallet.sd.gov.cn/statuslists/1"),
    )


def bind(keys: dict[str, Any], selected: str, *, holder: str = "holder", kb_exp: int | None = NOW + 300) -> str:
    return present(sd_jwt_with_selected=selected, holder_key=keys[holder], aud=AUD, nonce=NONCE, iat=NOW, exp=kb_exp)


def make_presentation(
    keys: dict[str, Any],
    names: list[str],
    *,
    holder: str = "holder",
    kb_exp: int | None = NOW + 300,
    sd_jwt: str | None = None,
) -> str:
    return bind(keys, select_disclosures(sd_jwt or issue(keys), names), holder=holder, kb_exp=kb_exp)


def verify(keys: dict[str, Any], presentation: str, **overrides: Any):
    options = {
        "issuer_keys": {KID: keys["issuer"].public_key()},
        "expected_aud": AUD,
        "expected_nonce": NONCE,
        "now": NOW + 10,
    }
    return verify_presentation(presentation, **{**options, **overrides})


def reason_of(keys: dict[str, Any], presentation: str, **overrides: Any) -> str:
    with pytest.raises(SdJwtError) as caught:
        verify(keys, presentation, **overrides)
    return caught.value.reason


def library_verify(issuer_public_key: Any, presentation: str, aud: str = AUD, nonce: str = NONCE) -> dict[str, Any]:
    issuer_jwk = JWK.from_pyca(issuer_public_key)
    return SDJWTVerifier(presentation, lambda iss, header: issuer_jwk, aud, nonce).get_verified_payload()


# --- issuance shape ----------------------------------------------------------------------------


def test_issued_credential_shape(keys: dict[str, Any]) -> None:
    sd_jwt = issue(keys)
    jwt, *disclosures, last = sd_jwt.split("~")
    assert last == "" and len(disclosures) == len(CLAIMS)
    header_b64, payload_b64, _ = jwt.split(".")
    assert b64url_json(header_b64) == {"alg": "ES256", "typ": "dc+sd-jwt", "kid": KID}
    payload = b64url_json(payload_b64)
    assert payload["_sd_alg"] == "sha-256" and payload["_sd"] == sorted(payload["_sd"])
    assert len(payload["_sd"]) > len(CLAIMS)
    assert {disclosure_digest(d) for d in disclosures} <= set(payload["_sd"])
    assert not set(CLAIMS) & set(payload)
    assert {k: payload[k] for k in VISIBLE} == VISIBLE
    assert (payload["iss"], payload["vct"], payload["iat"], payload["exp"]) == (ISS, VCT, NOW, NOW + 86_400)
    assert set(payload["cnf"]["jwk"]) == {"kty", "crv", "x", "y"}
    assert payload["status"] == {"status_list": {"idx": 42, "uri": "https://wallet.sd.gov.cn/statuslists/1"}}
    for disclosure in disclosures:
        salt, name, value = b64url_json(disclosure)
        assert len(b64url_decode(salt)) >= 16 and CLAIMS[name] == value
    assert looks_like_sd_jwt(sd_jwt) and not looks_like_sd_jwt(jwt) and not looks_like_sd_jwt("hello~")


def test_issue_rejects_reserved_or_duplicate_names(keys: dict[str, Any]) -> None:
    holder = public_jwk(keys["holder"].public_key())
    for claims, visible in (({"exp": 1}, {}), ({"cnf": 1}, {}), ({"name": "a"}, {"name": "b"}), ({}, {"_sd": []})):
        with pytest.raises(ValueError):
            issue_sd_jwt_vc(issuer_key=keys["issuer"], kid=KID, iss=ISS, vct=VCT, claims=claims, always_visible=visible,
                            iat=NOW, exp=NOW + 1, holder_public_jwk=holder, status=None)


def test_select_unknown_claim_raises(keys: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        select_disclosures(issue(keys), ["name", "blood_type"])


# --- round trip and the independent oracle -------------------------------------------------------


def test_issue_select_present_verify(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name", "address"])
    result = verify(keys, presentation)
    assert result.disclosed == {"name": "张三", "address": {"province": "山东省", "city": "济南市"}}
    assert result.kid == KID and result.kb["aud"] == AUD and result.kb["nonce"] == NONCE
    assert "id_number" not in result.payload and result.payload["license_type"] == "居民身份证"
    assert "_sd" not in result.payload and "_sd_alg" not in result.payload


def test_library_verifier_agrees_on_our_presentation(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name", "birth_date", "nationalities"])
    ours = verify(keys, presentation)
    theirs = library_verify(keys["issuer"].public_key(), presentation)
    assert theirs == ours.payload
    expected = {"name": "张三", "birth_date": "1990-01-01", "nationalities": ["CN"]}
    assert ours.disclosed == expected and {k: theirs[k] for k in expected} == expected


def test_library_verifier_rejects_our_presentation_for_another_audience(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name"])
    with pytest.raises(ValueError):
        library_verify(keys["issuer"].public_key(), presentation, aud="https://evil.example")


def test_we_verify_library_issued_nested_credential(keys: dict[str, Any]) -> None:
    issuer_jwk, holder_jwk = JWK.from_pyca(keys["issuer"]), JWK.from_pyca(keys["holder"])
    now = int(time.time())
    user_claims = {
        "iss": ISS, "iat": now, "exp": now + 600, "vct": VCT,
        SDObj("name"): "李四",
        SDObj("address"): {SDObj("city"): "青岛市", "country": "CN"},
        "permits": [SDObj("A1"), "C1", SDObj("B2")],
    }
    issuer = SDJWTIssuer(user_claims, issuer_jwk, holder_jwk, add_decoy_claims=True,
                         extra_header_parameters={"typ": "dc+sd-jwt", "kid": KID})
    holder = SDJWTHolder(issuer.sd_jwt_issuance)
    to_disclose = {"name": True, "address": {"city": True}, "permits": [True, False, False]}
    holder.create_presentation(to_disclose, NONCE, AUD, holder_jwk)
    presentation = holder.sd_jwt_presentation
    ours = verify(keys, presentation, now=now)
    assert ours.payload == library_verify(keys["issuer"].public_key(), presentation)
    assert ours.payload["address"] == {"city": "青岛市", "country": "CN"}
    assert ours.payload["permits"] == ["A1", "C1"]
    assert set(ours.disclosed) == {"name", "address"}


# --- tampering: exact reasons ---------------------------------------------------------------------


def test_changed_disclosure_is_bad_signature(keys: dict[str, Any]) -> None:
    jwt, disclosure, _ = select_disclosures(issue(keys), ["name"]).split("~")
    salt, name, _value = b64url_json(disclosure)
    forged = b64url_encode(f'["{salt}","{name}","王五"]'.encode())
    selected = f"{jwt}~{forged}~"
    presentation = bind(keys, selected)
    assert reason_of(keys, presentation) == "bad_signature"


def test_removed_char_in_issuer_signature_is_bad_signature(keys: dict[str, Any]) -> None:
    sd_jwt = issue(keys)
    jwt, rest = sd_jwt.split("~", 1)
    broken = f"{jwt[:-5]}{jwt[-4:]}~{rest}"
    presentation = make_presentation(keys, ["name"], sd_jwt=broken)
    assert reason_of(keys, presentation) == "bad_signature"


def test_removed_char_in_kb_signature_is_bad_signature(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name"])
    assert reason_of(keys, presentation[:-3] + presentation[-2:]) == "bad_signature"


def test_wrong_audience_and_nonce_have_their_own_reasons(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name"])
    assert reason_of(keys, presentation, expected_aud="https://evil.example") == "wrong_audience"
    assert reason_of(keys, presentation, expected_nonce="replayed") == "wrong_nonce"
    assert reason_of(keys, presentation, expected_aud=frozenset({"https://evil.example", "https://other.example"})) \
        == "wrong_audience"
    assert verify(keys, presentation, expected_aud=frozenset({"https://evil.example", AUD})).kb["aud"] == AUD


def test_expired_credential(keys: dict[str, Any]) -> None:
    sd_jwt = issue(keys, iat=NOW - 7200, exp=NOW - 3600)
    assert reason_of(keys, make_presentation(keys, ["name"], sd_jwt=sd_jwt)) == "expired"


def test_expired_key_binding(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name"], kb_exp=NOW + 1)
    assert reason_of(keys, presentation, now=NOW + 60) == "expired"
    stale = make_presentation(keys, ["name"], kb_exp=None)
    assert reason_of(keys, stale, now=NOW + 3600) == "expired"


def test_key_binding_by_another_key_is_bad_signature(keys: dict[str, Any]) -> None:
    assert reason_of(keys, make_presentation(keys, ["name"], holder="other")) == "bad_signature"


def test_extra_disclosure_not_in_sd_is_bad_signature(keys: dict[str, Any]) -> None:
    selected = select_disclosures(issue(keys), ["name"]) + make_disclosure("is_official", True) + "~"
    presentation = bind(keys, selected)
    assert reason_of(keys, presentation) == "bad_signature"


def test_duplicate_disclosure_is_bad_signature(keys: dict[str, Any]) -> None:
    jwt, disclosure, _ = select_disclosures(issue(keys), ["name"]).split("~")
    selected = f"{jwt}~{disclosure}~{disclosure}~"
    presentation = bind(keys, selected)
    assert reason_of(keys, presentation) == "bad_signature"


def test_swapped_disclosures_break_sd_hash(keys: dict[str, Any]) -> None:
    sd_jwt = issue(keys)
    presentation = make_presentation(keys, ["name"], sd_jwt=sd_jwt)
    other_disclosure = select_disclosures(sd_jwt, ["id_number"]).split("~")[1]
    jwt, _, kb = presentation.split("~")
    assert reason_of(keys, f"{jwt}~{other_disclosure}~{kb}") == "bad_signature"


def test_unknown_kid_and_missing_key_binding_are_bad_signature(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name"])
    assert reason_of(keys, presentation, issuer_keys={"other": keys["issuer"].public_key()}) == "bad_signature"
    without_kb = select_disclosures(issue(keys), ["name"])
    assert reason_of(keys, without_kb) == "bad_signature"
    result = verify(keys, without_kb, expected_aud=None, require_key_binding=False)
    assert result.kb is None and result.disclosed == {"name": "张三"}


def test_issuer_key_may_be_given_as_jwk(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, ["name"])
    result = verify(keys, presentation, issuer_keys={KID: public_jwk(keys["issuer"].public_key())})
    assert result.disclosed == {"name": "张三"}


@pytest.mark.parametrize("text", ["", "~", "hello", "a.b.c", "a.b~", "eyJ.eyJ.sig~", "x.y.z~~"])
def test_garbage_is_malformed(keys: dict[str, Any], text: str) -> None:
    assert reason_of(keys, text) == "malformed"


def test_wrong_typ_is_malformed(keys: dict[str, Any]) -> None:
    jwt = es256_sign_jws({"typ": "JWT", "kid": KID}, {"iss": ISS}, keys["issuer"])
    assert reason_of(keys, jwt + "~") == "malformed"


# --- offline QR -------------------------------------------------------------------------------------


def test_offline_presentation_fits_in_a_qr_code(keys: dict[str, Any]) -> None:
    presentation = make_presentation(keys, list(CLAIMS))
    assert verify(keys, presentation).disclosed == CLAIMS
    svg, version = qr_svg(presentation)
    assert version <= MAX_VERSION
    assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"


# --- issuer-signed anomalies (RFC 9901 section 7.1) ---------------------------------------------------


def crafted(keys: dict[str, Any], extra: dict[str, Any], disclosures: list[str]) -> str:
    holder_jwk = public_jwk(keys["holder"].public_key())
    payload = {"iss": ISS, "iat": NOW, "exp": NOW + 600, "vct": VCT, "cnf": {"jwk": holder_jwk}, **extra}
    jwt = es256_sign_jws({"typ": "dc+sd-jwt", "kid": KID}, payload, keys["issuer"])
    selected = "~".join([jwt, *disclosures]) + "~"
    return bind(keys, selected)


def test_digest_listed_twice_is_rejected(keys: dict[str, Any]) -> None:
    disclosure = make_disclosure("name", "张三")
    digest = disclosure_digest(disclosure)
    assert reason_of(keys, crafted(keys, {"_sd": [digest, digest]}, [disclosure])) == "bad_signature"


def test_disclosed_name_clashing_with_clear_claim_is_malformed(keys: dict[str, Any]) -> None:
    disclosure = make_disclosure("license_type", "forged")
    extra = {"license_type": "居民身份证", "_sd": [disclosure_digest(disclosure)]}
    assert reason_of(keys, crafted(keys, extra, [disclosure])) == "malformed"


def test_unsupported_sd_alg_is_malformed(keys: dict[str, Any]) -> None:
    assert reason_of(keys, crafted(keys, {"_sd_alg": "sha-512", "_sd": []}, [])) == "malformed"


def test_array_element_disclosures(keys: dict[str, Any]) -> None:
    element = b64url_encode('["c2FsdHNhbHRzYWx0c2FsdA","B2"]'.encode())
    extra = {"permits": [{"...": disclosure_digest(element)}, "C1", {"...": "decoy-digest"}]}
    result = verify(keys, crafted(keys, extra, [element]))
    assert result.payload["permits"] == ["B2", "C1"]
    assert result.payload == library_verify(keys["issuer"].public_key(), crafted(keys, extra, [element]))
