"""The least work any online verification does, for the ceiling row next to the floor: the floor app before Flask's
request handling, one Redis round trip for the code's sealed entry and the status list's version, AES-GCM
opened, the status and validity times checked, and one Lua step that consumes the code and journals the answer.
The signatures were checked when the presentation was made (as the app does: `issuer_trust`), so the sealed
entry carries what they proved. No token, rate limit, metrics, access log, schema or database writer: what the
real endpoint adds is the distance between the two rows.

`prepare(redis_url, count)` (the harness) stores the keys and `count` sealed codes in Redis;
`verify_code(body)` is the floor app's POST /verifications. `jws` and `verified_jws` (ES256 with
`cryptography`) also serve the personal-list ceiling (`floor_daily.py`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time

import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.redis_connection import HeldConnection

PREFIX = "floor:"
CONSUME_AND_JOURNAL = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -10000, -1)
return 1
"""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jws(payload: dict, key: ec.EllipticCurvePrivateKey, typ: str) -> str:
    signing_input = _b64(json.dumps({"alg": "ES256", "typ": typ, "kid": "floor"}).encode()) + "." + _b64(
        json.dumps(payload, ensure_ascii=False).encode())
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def verified_jws(token: str, key: ec.EllipticCurvePublicKey) -> dict:
    signing_input, _, signature = token.rpartition(".")
    raw = _unb64(signature)
    key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
               signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    return json.loads(_unb64(signing_input.split(".")[1]))


def _code_key(code: str) -> str:
    return PREFIX + "code:" + hashlib.sha256(code.encode("ascii")).hexdigest()


def prepare(redis_url: str, count: int) -> list[str]:
    """The AES key and `count` codes, each sealing a presentation checked when it was made: the
    disclosed claims, the credential's validity times and its place on a status list."""
    aes_key = AESGCM.generate_key(bit_length=256)
    now = int(time.time())
    entry = json.dumps({"license_type": "居民身份证", "purpose": "入住登记", "status_idx": 4242,
                        "expires": now + 900, "checked": {
                            "exp": now + 86400, "nbf": now - 60,
                            "disclosed": {"name": "张三", "id_number": "370102199003071234",
                                          "valid_until": "2036-01-01"}}}, ensure_ascii=False).encode()
    client = redis.Redis.from_url(redis_url)
    client.set(PREFIX + "keys", json.dumps({"aes": _b64(aes_key)}))
    client.set(PREFIX + "status-version", "1")
    cipher, codes, pipe = AESGCM(aes_key), [], client.pipeline(transaction=False)
    for n in range(count):
        code = secrets.token_urlsafe(24)
        nonce = secrets.token_bytes(12)
        pipe.set(_code_key(code), _b64(nonce + cipher.encrypt(nonce, entry, _code_key(code).encode())), ex=900)
        codes.append(code)
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    client.close()
    return codes


class _Floor:
    """The floor app's Redis client, key and copy of the status list (loaded at the first request)."""

    def __init__(self, redis_url: str):
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.cipher = AESGCM(_unb64(json.loads(self.redis.get(PREFIX + "keys"))["aes"]))
        self.consume = self.redis.register_script(CONSUME_AND_JOURNAL)
        self.held = HeldConnection(self.redis)
        self.status_version: str | None = None
        self.not_valid: dict[int, str] = {}

    def status(self, idx: int, version: str | None) -> str:
        if version != self.status_version:  # the list changed: read its entries that are not valid
            self.not_valid = {int(i): v for i, v in self.redis.hgetall(PREFIX + "not-valid").items()}
            self.status_version = version
        return self.not_valid.get(idx, "valid")


_floor: _Floor | None = None


def verify_code(body) -> tuple[dict, int]:
    """Open the code's entry, check the status and the times, consume the code, journal the answer."""
    global _floor
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or len(code) != 32:
        return {"detail": "code"}, 400
    if _floor is None:
        _floor = _Floor(os.environ["FLOOR_REDIS_URL"])
    key = _code_key(code)
    sealed, version = _floor.held.command("MGET", key, PREFIX + "status-version")
    if sealed is None:
        return {"valid": False, "reason": "used"}, 200
    raw = _unb64(sealed)
    shown = json.loads(_floor.cipher.decrypt(raw[:12], raw[12:], key.encode()))
    checked, now = shown["checked"], time.time()
    status = _floor.status(shown["status_idx"], version)
    result = status if status != "valid" else (
        "expired" if shown["expires"] <= now or now >= checked["exp"] or now < checked["nbf"] else "valid")
    line = json.dumps({"code": key, "result": result, "at": now})
    if not _floor.held.script(_floor.consume, [key, PREFIX + "journal"], [line]):
        return {"valid": False, "reason": "used"}, 200
    if result != "valid":
        return {"valid": False, "reason": result}, 200
    return {"valid": True, "license_type": shown["license_type"], "purpose": shown["purpose"],
            "disclosed": checked["disclosed"]}, 200
