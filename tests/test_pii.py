"""Tests for PII encryption, blind indexes, key loading and masking."""

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.security.pii import (
    PiiCipher,
    PiiDecryptError,
    generate_key,
    load_key,
    mask_credit_code,
    mask_id_number,
    mask_name,
    mask_phone,
)

KEY = bytes(range(32))
INDEX_KEY = bytes(range(32, 64))
ALGORITHMS = ["AES-256-GCM", "SM4-GCM"]
TOKEN_PATTERN = re.compile(r"v1\.(a256gcm|sm4gcm)\.[A-Za-z0-9_-]+")


def make_cipher(algorithm: str = "AES-256-GCM") -> PiiCipher:
    return PiiCipher(KEY, INDEX_KEY, algorithm=algorithm)


def flip_char(text: str, position: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(text[position]) + 1) % len(alphabet)]
    return text[:position] + replacement + text[position + 1 :]


# --- encryption ----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("plaintext", ["", "370102199003078819", "张三", "山东省济南市历下区泉城路1号 😀"])
def test_round_trip(algorithm, plaintext):
    cipher = make_cipher(algorithm)
    token = cipher.encrypt(plaintext, context="person.id_number")
    assert TOKEN_PATTERN.fullmatch(token)
    assert cipher.decrypt(token, context="person.id_number") == plaintext


@settings(max_examples=100)
@given(st.sampled_from(ALGORITHMS), st.text(), st.text(max_size=20))
def test_round_trip_property(algorithm, plaintext, context):
    cipher = make_cipher(algorithm)
    assert cipher.decrypt(cipher.encrypt(plaintext, context=context), context=context) == plaintext


@pytest.mark.parametrize(("algorithm", "alg_id"), [("AES-256-GCM", "a256gcm"), ("SM4-GCM", "sm4gcm")])
def test_token_names_algorithm(algorithm, alg_id):
    assert make_cipher(algorithm).encrypt("x").split(".")[:2] == ["v1", alg_id]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_token_does_not_contain_plaintext(algorithm):
    cipher = make_cipher(algorithm)
    plaintext = "370102199003078819"
    token = cipher.encrypt(plaintext)
    assert plaintext not in token
    payload = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    assert plaintext.encode() not in payload


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nonce_is_random(algorithm):
    cipher = make_cipher(algorithm)
    tokens = {cipher.encrypt("13812345678") for _ in range(20)}
    assert len(tokens) == 20


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tampered_payload_fails(algorithm):
    cipher = make_cipher(algorithm)
    token = cipher.encrypt("370102199003078819")
    prefix_len = len("v1.") + len(token.split(".")[1]) + 1
    for position in range(prefix_len, len(token)):
        with pytest.raises(PiiDecryptError):
            cipher.decrypt(flip_char(token, position))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_only_canonical_unpadded_base64url_is_read(algorithm):
    cipher = make_cipher(algorithm)
    for plaintext in ("张", "张三", "张三丰", "370102199003078819"):  # every length mod 3
        token = cipher.encrypt(plaintext)
        head, _, body = token.rpartition(".")
        assert cipher.decrypt(f"{head}.{body}") == plaintext
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        padded = base64.urlsafe_b64encode(raw).decode()
        standard = base64.b64encode(raw).decode().rstrip("=")
        variants = [padded] if padded != body else []
        variants += [standard] if standard != body else []
        if len(body) % 4:  # a last character whose unused low bits are set decodes to the same bytes
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            variants.append(body[:-1] + alphabet[alphabet.index(body[-1]) | 1])
        for variant in variants:
            with pytest.raises(PiiDecryptError):
                cipher.decrypt(f"{head}.{variant}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_text_outside_the_base64url_alphabet_is_refused(algorithm):
    cipher = make_cipher(algorithm)
    head, _, body = cipher.encrypt("张三丰").rpartition(".")
    for bad in ("", body[:-2] + "+" + body[-1], body[:-2] + "/" + body[-1], body + "=", body[:4] + " " + body[4:],
                body + "\n", body[:-1] + "é", "." + body[1:], body[:-1] + "\x00"):
        with pytest.raises(PiiDecryptError):
            cipher.decrypt(f"{head}.{bad}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_truncated_or_extended_token_fails(algorithm):
    cipher = make_cipher(algorithm)
    token = cipher.encrypt("张三")
    header = token.rsplit(".", 1)[0]
    for bad in [token[:-1], token[:-4], token + "A", token + "AAAA", header + ".AAAA"]:
        with pytest.raises(PiiDecryptError):
            cipher.decrypt(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "", "garbage", "v1.a256gcm", "v2.a256gcm." + "A" * 40, "v1.des.AAAA",
        "v1.a256gcm.!!!!", "v1.a256gcm.AA AA", None,
    ],
)
def test_malformed_tokens_fail(bad):
    with pytest.raises(PiiDecryptError):
        make_cipher().decrypt(bad)  # type: ignore[arg-type]


def test_swapping_algorithm_label_fails():
    cipher = make_cipher("AES-256-GCM")
    token = cipher.encrypt("张三")
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(token.replace(".a256gcm.", ".sm4gcm."))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_context_fails(algorithm):
    cipher = make_cipher(algorithm)
    token = cipher.encrypt("370102199003078819", context="person:1:id_number")
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(token, context="person:2:id_number")
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(token)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_key_fails(algorithm):
    token = make_cipher(algorithm).encrypt("张三")
    other = PiiCipher(bytes(32), INDEX_KEY, algorithm=algorithm)
    with pytest.raises(PiiDecryptError):
        other.decrypt(token)


def test_sm4_token_readable_by_aes_configured_cipher():
    token = make_cipher("SM4-GCM").encrypt("欧阳娜娜", context="c")
    assert make_cipher("AES-256-GCM").decrypt(token, context="c") == "欧阳娜娜"


def test_aes_token_readable_by_sm4_configured_cipher():
    token = make_cipher("AES-256-GCM").encrypt("欧阳娜娜", context="c")
    assert make_cipher("SM4-GCM").decrypt(token, context="c") == "欧阳娜娜"


def test_decrypt_error_is_value_error():
    assert issubclass(PiiDecryptError, ValueError)


@pytest.mark.parametrize(
    ("key", "index_key", "algorithm"),
    [
        (b"short", INDEX_KEY, "AES-256-GCM"),
        (KEY, b"short", "AES-256-GCM"),
        (KEY, INDEX_KEY, "DES"),
        (KEY, KEY, "AES-256-GCM"),
        ("x" * 32, INDEX_KEY, "AES-256-GCM"),
    ],
)
def test_bad_configuration_is_rejected(key, index_key, algorithm):
    with pytest.raises(ValueError):
        PiiCipher(key, index_key, algorithm=algorithm)


def test_encrypt_requires_str():
    with pytest.raises(TypeError):
        make_cipher().encrypt(b"bytes")  # type: ignore[arg-type]


# --- blind index ---------------------------------------------------------------------------


def test_blind_index_is_deterministic_hex():
    cipher = make_cipher()
    first = cipher.blind_index("370102199003078819", domain="person.id_number")
    assert first == cipher.blind_index("370102199003078819", domain="person.id_number")
    assert re.fullmatch(r"[0-9a-f]{64}", first)


def test_blind_index_is_independent_of_algorithm():
    value, domain = "13812345678", "person.phone"
    aes_index = make_cipher("AES-256-GCM").blind_index(value, domain=domain)
    assert aes_index == make_cipher("SM4-GCM").blind_index(value, domain=domain)


def test_blind_index_is_domain_separated():
    cipher = make_cipher()
    person = cipher.blind_index("13812345678", domain="person.phone")
    assert person != cipher.blind_index("13812345678", domain="company.phone")
    assert cipher.blind_index("b", domain="a") != cipher.blind_index("", domain="ab")


def test_blind_index_depends_on_value_and_key():
    cipher = make_cipher()
    assert cipher.blind_index("13812345678", domain="d") != cipher.blind_index("13812345679", domain="d")
    other = PiiCipher(KEY, bytes(32), algorithm="AES-256-GCM")
    assert other.blind_index("13812345678", domain="d") != cipher.blind_index("13812345678", domain="d")


def test_blind_index_is_not_plain_sha256():
    import hashlib

    assert make_cipher().blind_index("x", domain="d") != hashlib.sha256(b"d\x00x").hexdigest()


@pytest.mark.parametrize("domain", ["", "a\x00b"])
def test_blind_index_rejects_bad_domain(domain):
    with pytest.raises(ValueError):
        make_cipher().blind_index("x", domain=domain)


# --- keys ----------------------------------------------------------------------------------


def test_generate_key_is_random_32_bytes():
    first, second = generate_key(), generate_key()
    assert len(first) == len(second) == 32
    assert first != second


@given(st.binary(min_size=32, max_size=32))
def test_load_key_accepts_standard_and_urlsafe_base64(key):
    standard = base64.b64encode(key).decode()
    urlsafe = base64.urlsafe_b64encode(key).decode()
    assert load_key(standard) == key
    assert load_key(urlsafe) == key
    assert load_key(urlsafe.rstrip("=")) == key
    assert load_key(f"  {standard}\n") == key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64!",
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        base64.b64encode(bytes(16)).decode(),
        "A" * 43 + "===",
        None,
    ],
)
def test_load_key_rejects_bad_input(text):
    with pytest.raises(ValueError):
        load_key(text)  # type: ignore[arg-type]


# --- masking -------------------------------------------------------------------------------


def test_mask_examples():
    assert mask_id_number("370102199003078819") == "370102********8819"
    assert mask_id_number("11010519491231002X") == "110105********002X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_credit_code("91110000600037341L") == "911100********341L"


def test_masks_accept_none():
    for mask in (mask_id_number, mask_phone, mask_name, mask_credit_code):
        assert mask(None) is None


def test_mask_short_values_reveal_nothing():
    assert mask_id_number("1234567890") == "**********"
    assert mask_id_number("12345") == "*****"
    assert mask_phone("1234567") == "*******"
    assert mask_name("张") == "*"
    assert mask_name("") == ""


def test_mask_id_works_for_other_lengths():
    assert mask_id_number("12345678901") == "123456*8901"
    assert mask_id_number("370102900307881") == "370102*****7881"


@given(st.text(min_size=11, max_size=40))
def test_mask_id_keeps_length_head_and_tail(value):
    masked = mask_id_number(value)
    assert len(masked) == len(value)
    assert masked[:6] == value[:6] and masked[-4:] == value[-4:]
    assert set(masked[6:-4]) == {"*"}


@given(st.text(min_size=2, max_size=10))
def test_mask_name_keeps_only_first_character(value):
    masked = mask_name(value)
    assert masked == value[0] + "*" * (len(value) - 1)
