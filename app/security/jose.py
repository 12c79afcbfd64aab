"""Compact JWS (ES256 only), EC P-256 JWK conversion and base64url helpers."""

from __future__ import annotations

import binascii
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ..json_output import json_bytes as _compact

ES256 = "ES256"
P256_CRV = "P-256"
_COORD_BYTES = 32
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_URL_TO_STD = bytes.maketrans(b"-_+/=", b"+/!!!")  # "!" is rejected by strict a2b_base64
_STD_TO_URL = bytes.maketrans(b"+/", b"-_")
_RAW_DECODE = json.JSONDecoder().raw_decode


class JoseError(ValueError):
    """A JWS or JWK is malformed, uses an unsupported algorithm, or fails verification."""


@dataclass(frozen=True, slots=True)
class DecodedJws:
    """A compact JWS split and decoded, but not yet verified."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature_b64: str


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_STD_TO_URL).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url decoding of unpadded text; raises ValueError."""
    raw = text.encode("ascii")
    return binascii.a2b_base64(raw.translate(_URL_TO_STD) + b"=" * (-len(raw) % 4), strict_mode=True)


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as used for JOSE headers, payloads and disclosures."""
    return _compact(obj, default=None)


def json_loads(text: str) -> Any:
    """json.loads with a fast path for compact JSON (no surrounding whitespace)."""
    try:
        value, end = _RAW_DECODE(text)
    except ValueError:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def b64url_json(text: str) -> Any:
    """Decode base64url-encoded JSON; raises ValueError."""
    return json_loads(b64url_decode(text).decode("utf-8"))


def sha256_b64url(data: bytes) -> str:
    """Base64url SHA-256 digest (SD-JWT digests, sd_hash, thumbprints)."""
    return b64url_encode(hashlib.sha256(data).digest())


def generate_es256_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def es256_sign(data: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """ES256 signature in JWS form: raw r || s, 64 bytes."""
    r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
    return r.to_bytes(_COORD_BYTES, "big") + s.to_bytes(_COORD_BYTES, "big")


def es256_verify(data: bytes, signature: bytes, key: ec.EllipticCurvePublicKey) -> bool:
    """Verify a raw r || s ES256 signature."""
    if len(signature) != 2 * _COORD_BYTES:
        return False
    r = int.from_bytes(signature[:_COORD_BYTES], "big")
    s = int.from_bytes(signature[_COORD_BYTES:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


def es256_sign_jws(header: dict[str, Any], payload: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """Compact JWS with ES256; `alg` is forced to ES256 and placed first."""
    if header.get("alg", ES256) != ES256:
        raise JoseError("only ES256 is supported")
    full_header = {"alg": ES256, **{k: v for k, v in header.items() if k != "alg"}}
    return es256_sign_with_header(b64url_encode(json_bytes(full_header)), payload, key)


def es256_sign_with_header(header_segment: str, payload: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """Compact JWS with ES256 under an encoded header (`es256_header`, for a signer whose header repeats)."""
    signing_input = f"{header_segment}.{b64url_encode(json_bytes(payload))}"
    return f"{signing_input}.{b64url_encode(es256_sign(signing_input.encode('ascii'), key))}"


@lru_cache(maxsize=64)
def es256_header(**fields: str) -> str:
    """The encoded ES256 header with these text fields after `alg` (kept per set of fields)."""
    return b64url_encode(json_bytes({"alg": ES256, **fields}))


def decode_jws(token: str) -> DecodedJws:
    """Split a compact JWS and decode header and payload (JSON objects); raises JoseError."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise JoseError("not a compact JWS")
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = dict(_decode_header(header_b64))
    try:
        payload = b64url_json(payload_b64)
    except ValueError as exc:
        raise JoseError("undecodable JWS payload") from exc
    if type(payload) is not dict:
        raise JoseError("JWS payload must be a JSON object")
    signing_input = token[: len(header_b64) + len(payload_b64) + 1].encode("ascii")
    return DecodedJws(header, payload, signing_input, signature_b64)


@lru_cache(maxsize=256)
def _decode_header(header_b64: str) -> dict[str, Any]:
    """Headers repeat across all tokens of a signer, so decoded ones are cached (callers get copies)."""
    try:
        header = b64url_json(header_b64)
    except ValueError as exc:
        raise JoseError("undecodable JWS header") from exc
    if type(header) is not dict:
        raise JoseError("JWS header must be a JSON object")
    return header


def verify_decoded(decoded: DecodedJws, key: ec.EllipticCurvePublicKey) -> bool:
    """Check `alg` is ES256, no `crit` extensions are demanded, and the signature verifies."""
    header = decoded.header
    if header.get("alg") != ES256 or "crit" in header:
        return False
    try:
        signature = b64url_decode(decoded.signature_b64)
    except ValueError:
        return False
    return es256_verify(decoded.signing_input, signature, key)


def es256_verify_jws(token: str, key: ec.EllipticCurvePublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a compact ES256 JWS and return (header, payload); raises JoseError."""
    decoded = decode_jws(token)
    if not verify_decoded(decoded, key):
        raise JoseError("invalid signature")
    return decoded.header, decoded.payload


def public_jwk(public_key: ec.EllipticCurvePublicKey, kid: str | None = None) -> dict[str, str]:
    """EC P-256 public key as a JWK (RFC 7518 section 6.2)."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise JoseError("only P-256 keys are supported")
    numbers = public_key.public_numbers()
    jwk = {
        "kty": "EC",
        "crv": P256_CRV,
        "x": b64url_encode(numbers.x.to_bytes(_COORD_BYTES, "big")),
        "y": b64url_encode(numbers.y.to_bytes(_COORD_BYTES, "big")),
    }
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def load_public_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    """EC P-256 public key from a JWK (cached per point); raises JoseError."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != P256_CRV:
        raise JoseError("JWK must be an EC P-256 key")
    x, y = jwk.get("x"), jwk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise JoseError("JWK lacks x or y")
    return _load_p256_point(x, y)


@lru_cache(maxsize=4096)
def _load_p256_point(x: str, y: str) -> ec.EllipticCurvePublicKey:
    try:
        x_bytes, y_bytes = b64url_decode(x), b64url_decode(y)
        if len(x_bytes) != _COORD_BYTES or len(y_bytes) != _COORD_BYTES:
            raise ValueError("wrong coordinate length")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x_bytes + y_bytes)
    except ValueError as exc:
        raise JoseError("invalid P-256 point") from exc


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an EC JWK, base64url."""
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]}
    return sha256_b64url(json.dumps(required, separators=(",", ":"), sort_keys=True).encode("utf-8"))
