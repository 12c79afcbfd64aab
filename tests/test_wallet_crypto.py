"""Wallet crypto/format tests: GB/T 36904 identifiers, token status lists, JOSE helpers and QR codes."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
import zlib

import jwt as pyjwt
import pytest
from jwcrypto.jwk import JWK

from app.security.jose import (
    JoseError,
    b64url_decode,
    b64url_encode,
    es256_sign_jws,
    es256_verify_jws,
    generate_es256_key,
    jwk_thumbprint,
    load_public_jwk,
    public_jwk,
)
from app.wallet.identifier import build_identifier, mod37_36_check, parse_identifier
from app.wallet.qr import MAX_VERSION, qr_svg
from app.wallet.status_list_codec import (
    INVALID,
    STATUS_LIST_TYP,
    SUSPENDED,
    VALID,
    StatusList,
    read_status_list_jwt,
    sign_status_list_jwt,
    status_list_jwt_payload,
)

PUBLIC_IDENTIFIER = "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- GB/T 36904 identifier -------------------------------------------------------------


def test_public_vector_check_character_is_u() -> None:
    assert mod37_36_check("11100000000013338W011" + "11430000006122244L" + "20230000403" + "001") == "U"


def test_build_reproduces_public_vector() -> None:
    built = build_identifier(
        type_code="11100000000013338W011",
        issuer_credit_code="11430000006122244L",
        serial="20230000403",
        version="001",
    )
    assert built == PUBLIC_IDENTIFIER


def test_parse_public_vector() -> None:
    assert parse_identifier(PUBLIC_IDENTIFIER) == {
        "type_code": "11100000000013338W011",
        "issuer_credit_code": "11430000006122244L",
        "serial": "20230000403",
        "version": "001",
        "check": "U",
    }


@pytest.mark.parametrize(
    "bad",
    [
        PUBLIC_IDENTIFIER[:-1] + "V",
        PUBLIC_IDENTIFIER.replace("20230000403", "20230000404"),
        PUBLIC_IDENTIFIER.lower(),
        PUBLIC_IDENTIFIER.replace("1.2.156.3005.2.", "1.2.156.3005.3."),
        PUBLIC_IDENTIFIER.replace(".001.", ".01."),
        PUBLIC_IDENTIFIER + ".X",
        "",
    ],
)
def test_parse_rejects_bad_identifiers(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_identifier(bad)


def test_check_detects_every_single_substitution() -> None:
    rng = random.Random(36904)
    for _ in range(200):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(5, 40)))
        check = mod37_36_check(text)
        pos = rng.randrange(len(text))
        for replacement in ALPHABET.replace(text[pos], ""):
            assert mod37_36_check(text[:pos] + replacement + text[pos + 1 :]) != check


def test_check_detects_adjacent_transpositions() -> None:
    rng = random.Random(7064)
    for _ in range(500):
        text = "".join(rng.choice(ALPHABET) for _ in range(20))
        pos = rng.randrange(19)
        swapped = text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
        if swapped != text:
            assert mod37_36_check(swapped) != mod37_36_check(text)


def test_check_rejects_characters_outside_alphabet() -> None:
    with pytest.raises(ValueError):
        mod37_36_check("abc")


# --- Token Status List -------------------------------------------------------------------

SPEC_1BIT = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
SPEC_2BIT = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]


def test_status_list_spec_vector_1_bit() -> None:
    status_list = StatusList(1, len(SPEC_1BIT))
    for index, status in enumerate(SPEC_1BIT):
        status_list.set(index, status)
    assert status_list.to_bytes() == bytes([0xB9, 0xA3])
    assert status_list.encode() == "eNrbuRgAAhcBXQ"
    assert StatusList(1, bytes([0xB9, 0xA3])).encode() == "eNrbuRgAAhcBXQ"


def test_status_list_spec_vector_2_bits() -> None:
    status_list = StatusList(2, len(SPEC_2BIT))
    for index, status in enumerate(SPEC_2BIT):
        status_list.set(index, status)
    assert status_list.to_bytes() == bytes([0xC9, 0x44, 0xF9])
    assert status_list.encode() == "eNo76fITAAPfAgc"
    decoded = StatusList.decode("eNo76fITAAPfAgc", 2)
    assert [decoded.get(i) for i in range(len(SPEC_2BIT))] == SPEC_2BIT


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_status_list_round_trip(bits: int) -> None:
    rng = random.Random(bits)
    size = 10_000
    statuses = [rng.randrange(1 << bits) for _ in range(size)]
    status_list = StatusList(bits, size)
    for index, status in enumerate(statuses):
        status_list.set(index, status)
    decoded = StatusList.decode(status_list.encode(), bits)
    assert [decoded.get(i) for i in range(size)] == statuses
    assert zlib.decompress(b64url_decode(status_list.encode())) == status_list.to_bytes()


def test_status_list_overwrite_and_bounds() -> None:
    status_list = StatusList(2, 8)
    status_list.set(5, SUSPENDED)
    status_list.set(5, INVALID)
    assert [status_list.get(i) for i in range(8)] == [VALID] * 5 + [INVALID, VALID, VALID]
    with pytest.raises(IndexError):
        status_list.get(8)
    with pytest.raises(ValueError):
        status_list.set(0, 4)
    with pytest.raises(ValueError):
        StatusList(3, 8)


def test_status_list_decode_rejects_garbage_and_bombs() -> None:
    with pytest.raises(ValueError):
        StatusList.decode("not-zlib", 1)
    bomb = b64url_encode(zlib.compress(bytes(64 * 1024 * 1024), 9))
    with pytest.raises(ValueError):
        StatusList.decode(bomb, 1)


def test_status_list_jwt_payload_and_signature_checked_by_pyjwt() -> None:
    key = generate_es256_key()
    status_list = StatusList(2, 1024)
    status_list.set(7, SUSPENDED)
    payload = status_list_jwt_payload(
        sub_uri="https://wallet.sd.gov.cn/statuslists/1", lst=status_list.encode(), bits=2,
        iat=1_750_000_000, exp=1_750_086_400, ttl=43_200,
    )
    assert payload == {
        "sub": "https://wallet.sd.gov.cn/statuslists/1",
        "iat": 1_750_000_000,
        "exp": 1_750_086_400,
        "ttl": 43_200,
        "status_list": {"bits": 2, "lst": status_list.encode()},
    }
    token = sign_status_list_jwt(payload, key=key, kid="sl-1")
    assert pyjwt.get_unverified_header(token) == {"alg": "ES256", "typ": STATUS_LIST_TYP, "kid": "sl-1"}
    assert pyjwt.decode(token, key.public_key(), algorithms=["ES256"], options={"verify_exp": False}) == payload
    read = read_status_list_jwt(token, key.public_key(), expected_sub=payload["sub"], now=1_750_000_100)
    assert read.get(7) == SUSPENDED and read.get(6) == VALID
    with pytest.raises(ValueError):
        read_status_list_jwt(token, key.public_key(), expected_sub="https://other", now=1_750_000_100)
    with pytest.raises(ValueError):
        read_status_list_jwt(token, key.public_key(), expected_sub=payload["sub"], now=1_760_000_000)


# --- JOSE helpers against PyJWT / jwcrypto ---------------------------------------------------


def test_es256_jws_interoperates_with_pyjwt() -> None:
    key = generate_es256_key()
    ours = es256_sign_jws({"typ": "JWT", "kid": "k"}, {"sub": "张三", "n": 1}, key)
    assert pyjwt.decode(ours, key.public_key(), algorithms=["ES256"]) == {"sub": "张三", "n": 1}
    theirs = pyjwt.encode({"sub": "x"}, key, algorithm="ES256", headers={"kid": "k"})
    header, payload = es256_verify_jws(theirs, key.public_key())
    assert header["kid"] == "k" and payload == {"sub": "x"}


def test_es256_verify_rejects_tampering_and_other_algs() -> None:
    key = generate_es256_key()
    token = es256_sign_jws({}, {"a": 1}, key)
    head, body, sig = token.split(".")
    forged_body = b64url_encode(b'{"a":2}')
    for bad in (f"{head}.{forged_body}.{sig}", f"{head}.{body}.{sig[:-1]}", token + "."):
        with pytest.raises(JoseError):
            es256_verify_jws(bad, key.public_key())
    with pytest.raises(JoseError):
        es256_verify_jws(token, generate_es256_key().public_key())
    hs256 = pyjwt.encode({"a": 1}, "secret-secret-secret-secret-1234", algorithm="HS256")
    with pytest.raises(JoseError):
        es256_verify_jws(hs256, key.public_key())


def test_jwk_conversion_matches_jwcrypto() -> None:
    key = generate_es256_key()
    jwk = public_jwk(key.public_key(), kid="k1")
    reference = JWK.from_pyca(key.public_key())
    exported = reference.export_public(as_dict=True)
    assert {k: jwk[k] for k in ("kty", "crv", "x", "y")} == {k: exported[k] for k in ("kty", "crv", "x", "y")}
    assert jwk_thumbprint(jwk) == reference.thumbprint()
    assert load_public_jwk(jwk).public_numbers() == key.public_key().public_numbers()
    with pytest.raises(JoseError):
        load_public_jwk({**jwk, "y": jwk["x"]})


# --- QR --------------------------------------------------------------------------------------


def test_qr_svg_for_offline_presentation_sized_text() -> None:
    text = "eyJhbGciOiJFUzI1NiJ9." + "A" * 1800 + "~" + "b" * 400 + "~"
    svg, version = qr_svg(text)
    assert 1 <= version <= MAX_VERSION
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert not svg.startswith("<?xml")
    assert "href" not in svg and "<script" not in svg and "url(" not in svg
    modules = 17 + 4 * version + 2 * 4
    assert root.get("width") == str(modules * 4)


def test_qr_small_text_gets_small_version_and_too_long_raises() -> None:
    assert qr_svg("hello")[1] == 1
    with pytest.raises(ValueError):
        qr_svg("x" * 3000)
