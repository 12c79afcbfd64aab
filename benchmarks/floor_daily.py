"""The least work any personal list does (the wallet, applications, inbox), for the ceiling row next to the floor:
the floor app before Flask's request handling; the caller's ES256 access token (its signature checked the first
time a worker sees it, as the app does, then its expiry); one Redis round trip for its revocation keys; one
PostgreSQL statement (psycopg, prepared, no transaction) for the page of the caller's rows joined to their
person and type, with the total; JSON. No rate limit, metrics, access log, schema or ORM: what the real
endpoints add is the distance between this row and theirs.

`prepare(redis_url, database_url)` (the harness) makes the tables, 20,000 holders of three licenses
each and the signing key, and returns one holder's token; `wallet_page(authorization)` is the floor
app's GET /wallet/licenses.
"""
from __future__ import annotations

import os
import secrets
import time

import psycopg
import redis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from app.redis_connection import HeldConnection
from benchmarks.floor_verification import jws, verified_jws

PREFIX = "floor:daily:"
HOLDERS = 20_000
TYPES = ("居民身份证", "机动车驾驶证", "居住证")
SCHEMA = """
CREATE TABLE floor_types (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE floor_persons (subject_id text PRIMARY KEY, holder_index text UNIQUE NOT NULL, active boolean NOT NULL);
CREATE TABLE floor_licenses (id text PRIMARY KEY, holder_index text NOT NULL, type_code text NOT NULL,
                             status text NOT NULL, issued_at timestamptz NOT NULL, valid_until date);
CREATE INDEX floor_licenses_holder ON floor_licenses (holder_index, issued_at DESC);
"""
PAGE = """
SELECT l.id, l.type_code, t.name, l.status, l.issued_at, l.valid_until, count(*) OVER () AS total
FROM floor_licenses l JOIN floor_types t ON t.code = l.type_code
JOIN floor_persons p ON p.holder_index = l.holder_index AND p.subject_id = %s AND p.active
ORDER BY l.issued_at DESC, l.id DESC OFFSET %s LIMIT %s
"""


def dsn(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def prepare(redis_url: str, database_url: str) -> str:
    """The tables and rows, the public key in Redis; one holder's access token (valid for an hour)."""
    key = ec.generate_private_key(ec.SECP256R1())
    with psycopg.connect(dsn(database_url), autocommit=True) as conn:
        conn.execute(SCHEMA)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO floor_types VALUES (%s, %s)", [(f"t{n}", name) for n, name in enumerate(TYPES)])
            cur.executemany("INSERT INTO floor_persons VALUES (%s, %s, true)",
                            [(f"s{n:06d}", f"h{n:06d}") for n in range(HOLDERS)])
            cur.executemany("INSERT INTO floor_licenses VALUES (%s, %s, %s, 'valid', now() - %s * interval '1 day', "
                            "current_date + 3650)",
                            [(f"L{n:06d}-{t}", f"h{n:06d}", f"t{t}", t) for n in range(HOLDERS) for t in range(3)])
        conn.execute("ANALYZE")
    client = redis.Redis.from_url(redis_url)
    client.set(PREFIX + "key", key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    client.close()
    return jws({"sub": "s000042", "sid": secrets.token_hex(8), "exp": int(time.time()) + 3600}, key, "at+jwt")


class _Floor:
    """A worker's Redis client, database connection (autocommit: a read opens no transaction) and key."""

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"])
        self.key = load_der_public_key(self.redis.get(PREFIX + "key"))
        self.db = psycopg.connect(dsn(os.environ["FLOOR_DATABASE_URL"]), autocommit=True, prepare_threshold=0)
        self.checked: dict[str, dict] = {}  # token -> claims, its signature checked
        self.held = HeldConnection(self.redis)  # as the app's store reads: no pool around each call


_floor: _Floor | None = None


def _claims(token: str) -> dict | None:
    claims = _floor.checked.get(token)
    if claims is None:
        try:
            claims = verified_jws(token, _floor.key)
        except (InvalidSignature, ValueError):
            return None
        if len(_floor.checked) > 10_000:
            _floor.checked.clear()
        _floor.checked[token] = claims
    return claims if claims["exp"] > time.time() else None


def wallet_page(authorization: str) -> tuple[dict, int]:
    """The token checked, its session and subject not revoked, the first page of the holder's licenses."""
    global _floor
    if _floor is None:
        _floor = _Floor()
    claims = _claims(authorization.removeprefix("Bearer "))
    if claims is None:
        return {"detail": "token"}, 401
    if any(_floor.held.command("MGET", PREFIX + "revoked:" + claims["sid"], PREFIX + "revoked-subject:" + claims["sub"])):
        return {"detail": "revoked"}, 401
    rows = _floor.db.execute(PAGE, (claims["sub"], 0, 20)).fetchall()
    items = [{"id": id_, "license_type": code, "name": name, "status": status, "issued_at": issued.isoformat(),
              "valid_until": until.isoformat() if until else None} for id_, code, name, status, issued, until, _ in rows]
    return {"items": items, "total": rows[0][-1] if rows else 0, "page": 1, "page_size": 20}, 200
