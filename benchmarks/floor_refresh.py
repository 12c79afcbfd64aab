"""The least work of a token refresh as the app does it, for the ceiling row next to the app's refresh: the floor
app before Flask's request handling; one Redis round trip (a Lua call that counts the caller's address in a
rate-limit window, checks the held session's generation, secret and end, swaps in the next generation's hash and
appends the rotation to a journal list); a new ES256 access token and refresh token; JSON. No metrics, access
log, schema, audit or ORM, and nothing drains the journal: what the app adds (and its write-behind) is the
distance between this row and `refresh`.

`prepare(redis_url, database_url, count)` (the harness) holds `count` sessions and the signing key in Redis
and returns one refresh token per session; `refresh(body, address)` is the floor app's POST /auth/token.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time

import redis
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_der_private_key

from app.redis_connection import HeldConnection
from benchmarks.floor_verification import jws

PREFIX = "floor:refresh:"
LIMIT, WINDOW = 10**9, 60  # counted as the app counts, never reached
TTL, SESSION_SECONDS = 900, 30 * 24 * 3600
# KEYS: counter, session, journal; ARGV: window, limit, generation, presented hash, next hash, now, until, entry
ROTATE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if count > tonumber(ARGV[2]) then return {'limited'} end
local held = redis.call('HMGET', KEYS[2], 'gen', 'hash', 'exp', 'sub')
if not held[1] or tonumber(held[1]) ~= tonumber(ARGV[3]) or held[2] ~= ARGV[4] or tonumber(held[3]) <= tonumber(ARGV[6]) then
  return {'refused'}
end
redis.call('HSET', KEYS[2], 'gen', tonumber(ARGV[3]) + 1, 'hash', ARGV[5], 'exp', ARGV[7])
redis.call('RPUSH', KEYS[3], ARGV[8])
return {'rotated', held[4]}
"""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _token(session_id: str, generation: int) -> str:
    return f"rt_{session_id}.{generation}.{secrets.token_urlsafe(24)}"


def prepare(redis_url: str, database_url: str, count: int) -> list[str]:
    """`count` held sessions (one subject each among 20,000) and the signing key in Redis; their tokens."""
    tokens = [_token(secrets.token_hex(16), 0) for _ in range(count)]
    client = redis.Redis.from_url(redis_url)
    until = repr(time.time() + SESSION_SECONDS)
    for start in range(0, count, 5000):
        pipe = client.pipeline(transaction=False)
        for n, token in enumerate(tokens[start:start + 5000], start):
            pipe.hset(PREFIX + "session:" + token[3:].partition(".")[0],
                      mapping={"gen": 0, "hash": _hash(token), "exp": until, "sub": f"s{n % 20_000:06d}"})
        pipe.execute()
    key = ec.generate_private_key(ec.SECP256R1())
    client.set(PREFIX + "key", key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))
    client.close()
    return tokens


class _Floor:
    """A worker's Redis client and rotation script, and the signing key."""

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"], decode_responses=True)
        self.rotate = self.redis.register_script(ROTATE)
        self.held = HeldConnection(self.redis)
        self.key = load_der_private_key(redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"]).get(PREFIX + "key"),
                                        password=None)


_floor: _Floor | None = None


def refresh(body, address: str) -> tuple[dict, int]:
    """Count the hit and rotate the presented refresh token in one Lua call, sign the new access token."""
    global _floor
    if _floor is None:
        _floor = _Floor()
    presented = body.get("refresh_token") if isinstance(body, dict) and body.get("grant_type") == "refresh_token" else None
    session_id, _, rest = (presented or "")[3:].partition(".")
    generation = rest.partition(".")[0]
    if not presented or not presented.startswith("rt_") or not generation.isdigit():
        return {"detail": "invalid"}, 400
    following, now = _token(session_id, int(generation) + 1), time.time()
    entry = json.dumps({"session": session_id, "generation": int(generation) + 1, "hash": _hash(following),
                        "used": now, "until": now + SESSION_SECONDS})
    keys = [PREFIX + "rate:" + address, PREFIX + "session:" + session_id, PREFIX + "journal"]
    outcome = _floor.held.script(_floor.rotate, keys, [WINDOW, LIMIT, generation, _hash(presented), _hash(following),
                                                       repr(now), repr(now + SESSION_SECONDS), entry])
    if outcome[0] != "rotated":
        return {"detail": outcome[0]}, 429 if outcome[0] == "limited" else 401
    issued = int(now)
    access = jws({"iss": "floor", "sub": outcome[1], "sid": session_id, "iat": issued, "nbf": issued,
                  "exp": issued + TTL, "jti": secrets.token_urlsafe(16), "roles": ["citizen"], "sub_type": "person",
                  "channel": "app"}, _floor.key, "at+jwt")
    return {"access_token": access, "token_type": "Bearer", "expires_in": TTL, "refresh_token": following}, 200
