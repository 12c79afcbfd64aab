"""IETF Token Status List (draft-ietf-oauth-status-list): packed statuses, `lst` encoding and status list JWTs."""

from __future__ import annotations

import zlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from app.security.jose import b64url_decode, b64url_encode, es256_sign_jws, es256_verify_jws

VALID = 0
INVALID = 1
SUSPENDED = 2
ALLOWED_BITS = (1, 2, 4, 8)
STATUS_LIST_TYP = "statuslist+jwt"
MAX_LIST_BYTES = 16 * 1024 * 1024


class StatusList:
    """Statuses of `bits` bits each; index 0 is the least significant bits of byte 0."""

    __slots__ = ("bits", "_mask", "_data")

    def __init__(self, bits: int, size_or_data: int | bytes | bytearray) -> None:
        if bits not in ALLOWED_BITS:
            raise ValueError("bits must be 1, 2, 4 or 8")
        self.bits = bits
        self._mask = (1 << bits) - 1
        if isinstance(size_or_data, int):
            if size_or_data < 0:
                raise ValueError("size must be non-negative")
            self._data = bytearray((size_or_data * bits + 7) // 8)
        else:
            self._data = bytearray(size_or_data)

    def __len__(self) -> int:
        return len(self._data) * 8 // self.bits

    def get(self, index: int) -> int:
        byte, shift = self._locate(index)
        return (self._data[byte] >> shift) & self._mask

    def set(self, index: int, status: int) -> None:
        if not 0 <= status <= self._mask:
            raise ValueError(f"status {status} does not fit in {self.bits} bits")
        byte, shift = self._locate(index)
        self._data[byte] = (self._data[byte] & ~(self._mask << shift) & 0xFF) | (status << shift)

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def encode(self) -> str:
        """The `lst` value: ZLIB (RFC 1950) DEFLATE at level 9, base64url without padding."""
        return b64url_encode(zlib.compress(bytes(self._data), 9))

    @classmethod
    def decode(cls, lst: str, bits: int) -> StatusList:
        """Inverse of `encode`; refuses lists that inflate beyond MAX_LIST_BYTES."""
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(b64url_decode(lst), MAX_LIST_BYTES)
        except zlib.error as exc:
            raise ValueError("lst is not ZLIB data") from exc
        if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
            raise ValueError("lst is truncated, has trailing data or is too large")
        return cls(bits, data)

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"status index {index} out of range")
        return divmod(index * self.bits, 8)


def status_claim(*, idx: int, uri: str) -> dict[str, Any]:
    """The `status` claim a referenced token (e.g. an SD-JWT VC) carries."""
    return {"status_list": {"idx": idx, "uri": uri}}


def status_list_jwt_payload(
    *, sub_uri: str, lst: str, bits: int, iat: int, exp: int | None = None, ttl: int | None = None
) -> dict[str, Any]:
    """Status List Token payload; `exp` and `ttl` are omitted when None."""
    if bits not in ALLOWED_BITS:
        raise ValueError("bits must be 1, 2, 4 or 8")
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be positive")
    payload: dict[str, Any] = {"sub": sub_uri, "iat": iat}
    if exp is not None:
        payload["exp"] = exp
    if ttl is not None:
        payload["ttl"] = ttl
    payload["status_list"] = {"bits": bits, "lst": lst}
    return payload


def sign_status_list_jwt(payload: dict[str, Any], *, key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """Sign a Status List Token (header `typ: statuslist+jwt`, ES256)."""
    return es256_sign_jws({"typ": STATUS_LIST_TYP, "kid": kid}, payload, key)


def read_status_list_jwt(
    token: str, key: ec.EllipticCurvePublicKey, *, expected_sub: str, now: int, leeway: int = 5
) -> StatusList:
    """Verify a Status List Token (signature, typ, sub, exp) and return its list; raises ValueError."""
    header, payload = es256_verify_jws(token, key)
    if header.get("typ") != STATUS_LIST_TYP:
        raise ValueError("not a status list token")
    if payload.get("sub") != expected_sub:
        raise ValueError("status list subject mismatch")
    exp = payload.get("exp")
    if exp is not None and now >= exp + leeway:
        raise ValueError("status list token expired")
    status_list = payload.get("status_list")
    if not isinstance(status_list, dict):
        raise ValueError("status_list claim missing")
    return StatusList.decode(status_list.get("lst", ""), status_list.get("bits"))
