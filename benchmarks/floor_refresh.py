"""The least work any token refresh does, for the ceiling row next to the app's refresh: bare Flask; the
caller's address counted in a rate-limit window (one Redis round trip: INCR and the window's EXPIRE in one
Lua call); one PostgreSQL statement (psycopg, prepared, autocommit: it commits alone) that swaps the
session's refresh-token hash for the next generation's where the presented token is the live one, and
returns the subject; a new ES256 access token and refresh token; JSON. No metrics, access log, schema,
audit or ORM: what the app adds is the distance between this row and `refresh`.

`prepare(redis_url, database_url, count)` (the harness) makes the sessions table, `count` sessions and the
signing key, and returns one refresh token per session; `refresh(body, address)` is the floor app's
POST /auth/token.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import time

import psycopg
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_der_private_key

from benchmarks.floor_daily import dsn
from benchmarks.floor_verification import jws

PREFIX = "floor:refresh:"
LIMIT, WINDOW = 10**9, 60  # counted as the app counts, never reached
TTL = 900
SCHEMA = """
CREATE TABLE floor_sessions (session_id text PRIMARY KEY, subject_id text NOT NULL, refresh_hash text NOT NULL,
                             generation integer NOT NULL, last_used_at timestamptz NOT NULL,
                             expires_at timestamptz NOT NULL, revoked_at timestamptz);
"""
ROTATE = """
UPDATE floor_sessions SET refresh_hash = %s, generation = generation + 1, last_used_at = now(),
       expires_at = now() + interval '30 days'
WHERE session_id = %s AND refresh_hash = %s AND revoked_at IS NULL AND expires_at > now()
RETURNING subject_id, generation
"""
COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _token(session_id: str, generation: int) -> str:
    return f"rt_{session_id}.{generation}.{secrets.token_urlsafe(24)}"


def prepare(redis_url: str, database_url: str, count: int) -> list[str]:
    """The table, `count` live sessions (one subject each among 20,000) and the signing key in Redis; their tokens."""
    tokens = [_token(secrets.token_hex(16), 0) for _ in range(count)]
    with psycopg.connect(dsn(database_url), autocommit=True) as conn:
        conn.execute(SCHEMA)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO floor_sessions VALUES (%s, %s, %s, 0, now(), now() + interval '30 days', NULL)",
                            [(token[3:].partition(".")[0], f"s{n % 20_000:06d}", _hash(token))
                             for n, token in enumerate(tokens)])
        conn.execute("ANALYZE floor_sessions")
    key = ec.generate_private_key(ec.SECP256R1())
    client = redis.Redis.from_url(redis_url)
    client.set(PREFIX + "key", key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))
    client.close()
    return tokens


class _Floor:
    """A worker's Redis client and counting script, database connection (autocommit) and signing key."""

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"])
        self.count = self.redis.register_script(COUNT)
        self.key = load_der_private_key(self.redis.get(PREFIX + "key"), password=None)
        self.db = psycopg.connect(dsn(os.environ["FLOOR_DATABASE_URL"]), autocommit=True, prepare_threshold=0)


_floor: _Floor | None = None


def refresh(body, address: str) -> tuple[dict, int]:
    """Count the hit, rotate the presented refresh token in one statement, sign the new access token."""
    global _floor
    if _floor is None:
        _floor = _Floor()
    if _floor.count(keys=[PREFIX + "rate:" + address], args=[WINDOW]) > LIMIT:
        return {"detail": "rate"}, 429
    presented = body.get("refresh_token") if isinstance(body, dict) and body.get("grant_type") == "refresh_token" else None
    session_id, _, rest = (presented or "")[3:].partition(".")
    generation = rest.partition(".")[0]
    if not presented or not presented.startswith("rt_") or not generation.isdigit():
        return {"detail": "invalid"}, 400
    following = _token(session_id, int(generation) + 1)
    row = _floor.db.execute(ROTATE, (_hash(following), session_id, _hash(presented))).fetchone()
    if row is None:
        return {"detail": "refused"}, 401
    now = int(time.time())
    access = jws({"iss": "floor", "sub": row[0], "sid": session_id, "iat": now, "nbf": now, "exp": now + TTL,
                  "jti": secrets.token_urlsafe(16), "roles": ["citizen"], "sub_type": "person", "channel": "app"},
                 _floor.key, "at+jwt")
    return {"access_token": access, "token_type": "Bearer", "expires_in": TTL, "refresh_token": following}, 200
