"""The least work any online verification does, for the ceiling row next to the floor: bare Flask,
one Redis round trip for the code's sealed entry, AES-GCM opened, an SD-JWT's issuer signature and
key-binding JWT verified (ES256 with `cryptography`), disclosure digests checked, and one Lua step
that consumes the code and journals the answer. No token, rate limit, metrics, access log, schema
or database writer: what the real endpoint adds is the distance between the two rows.

`prepare(redis_url, count)` (the harness) stores the keys and `count` sealed codes in Redis;
`verify_code(body)` is the floor app's POST /verifications.
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
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

PREFIX = "floor:"
AUDIENCE = "https://floor.example"
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


def _jws(payload: dict, key: ec.EllipticCurvePrivateKey, typ: str) -> str:
    signing_input = _b64(json.dumps({"alg": "ES256", "typ": typ, "kid": "floor"}).encode()) + "." + _b64(
        json.dumps(payload, ensure_ascii=False).encode())
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _verified(token: str, key: ec.EllipticCurvePublicKey) -> dict:
    signing_input, _, signature = token.rpartition(".")
    raw = _unb64(signature)
    key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
               signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    return json.loads(_unb64(signing_input.split(".")[1]))


def _code_key(code: str) -> str:
    return PREFIX + "code:" + hashlib.sha256(code.encode("ascii")).hexdigest()


def prepare(redis_url: str, count: int) -> list[str]:
    """Keys, one SD-JWT presentation as the platform shows it, and `count` codes sealing it."""
    issuer, holder, aes_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1()), \
        AESGCM.generate_key(bit_length=256)
    fields = {"name": "张三", "id_number": "370102199003071234", "valid_until": "2036-01-01"}
    disclosures = [_b64(json.dumps([_b64(secrets.token_bytes(16)), name, value], ensure_ascii=False).encode())
                   for name, value in fields.items()]
    now = int(time.time())
    issuer_jwt = _jws({"iss": "https://issuer.example", "vct": "floor", "iat": now, "exp": now + 86400,
                       "_sd": sorted(_b64(hashlib.sha256(d.encode()).digest()) for d in disclosures),
                       "_sd_alg": "sha-256", "gender": "男", "ethnicity": "汉", "birth_date": "1990-03-07",
                       "address": "山东省济南市历下区泉城路188号",
                       "cnf": {"jwk": {"kty": "EC", "crv": "P-256"}}}, issuer, "dc+sd-jwt")
    shown = issuer_jwt + "~" + "~".join(disclosures) + "~"
    kb = _jws({"aud": AUDIENCE, "nonce": "floor-nonce", "iat": now,
               "sd_hash": _b64(hashlib.sha256(shown.encode()).digest())}, holder, "kb+jwt")
    entry = json.dumps({"sd_jwt": shown + kb, "license_type": "居民身份证", "purpose": "入住登记"},
                       ensure_ascii=False).encode()
    client = redis.Redis.from_url(redis_url)
    client.set(PREFIX + "keys", json.dumps({
        "aes": _b64(aes_key),
        "issuer": _b64(issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)),
        "holder": _b64(holder.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))}))
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
    """The floor app's Redis client and keys (loaded at the first request)."""

    def __init__(self, redis_url: str):
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = json.loads(self.redis.get(PREFIX + "keys"))
        self.cipher = AESGCM(_unb64(keys["aes"]))
        self.issuer, self.holder = (load_der_public_key(_unb64(keys[name])) for name in ("issuer", "holder"))
        self.consume = self.redis.register_script(CONSUME_AND_JOURNAL)


_floor: _Floor | None = None


def verify_code(body) -> tuple[dict, int]:
    """Open the code's entry, check the SD-JWT and key binding, consume the code, journal the answer."""
    global _floor
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or len(code) != 32:
        return {"detail": "code"}, 400
    if _floor is None:
        _floor = _Floor(os.environ["FLOOR_REDIS_URL"])
    key = _code_key(code)
    sealed, _version = _floor.redis.mget(key, PREFIX + "status-version")
    if sealed is None:
        return {"valid": False, "reason": "used"}, 200
    raw = _unb64(sealed)
    shown = json.loads(_floor.cipher.decrypt(raw[:12], raw[12:], key.encode()))
    presentation = shown["sd_jwt"]
    parts = presentation.split("~")
    payload = _verified(parts[0], _floor.issuer)
    digests = {_b64(hashlib.sha256(d.encode()).digest()): d for d in parts[1:-1]}
    if not set(digests) <= set(payload["_sd"]):
        return {"valid": False, "reason": "bad_signature"}, 200
    kb = _verified(parts[-1], _floor.holder)
    if kb["aud"] != AUDIENCE or kb["sd_hash"] != _b64(hashlib.sha256(presentation[:-len(parts[-1])].encode()).digest()):
        return {"valid": False, "reason": "bad_signature"}, 200
    disclosed = {name: value for _, name, value in (json.loads(_unb64(d)) for d in digests.values())}
    line = json.dumps({"code": key, "result": "valid", "at": time.time()})
    if not _floor.consume(keys=[key, PREFIX + "journal"], args=[line]):
        return {"valid": False, "reason": "used"}, 200
    return {"valid": True, "license_type": shown["license_type"], "purpose": shown["purpose"],
            "disclosed": disclosed}, 200
