"""ES256 key store: active key per purpose, rotation, public keys for JWKS, private keys encrypted."""
from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from sqlalchemy import or_, select

from ..extensions import db
from ..timeutil import as_aware, monotonic, utcnow
from .jose import load_public_jwk, public_jwk
from .models import SigningKey

ACTIVE_CACHE_SECONDS = 30
ACCESS_PURPOSE = "access"
_lock = threading.Lock()


def key_cipher():
    """The cipher that protects private keys at rest."""
    return current_app.extensions["key_cipher"]


def _cache() -> dict:
    return current_app.extensions.setdefault("signing_key_cache", {"active": {}, "public": {}})


def _new_key(purpose: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    kid = f"{purpose.split(':')[0]}-{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    jwk = public_jwk(private.public_key(), kid=kid)
    jwk.update({"use": "sig", "alg": "ES256"})
    return SigningKey(kid=kid, purpose=purpose, public_jwk=jwk,
                      private_key_enc=key_cipher().encrypt(pem, context=f"signing-key:{kid}"))


def _load_private(row: SigningKey):
    pem = key_cipher().decrypt(row.private_key_enc, context=f"signing-key:{row.kid}")
    return serialization.load_pem_private_key(pem.encode(), password=None)


def active_key(purpose: str):
    """(kid, private key) that signs for `purpose` now; created on first use."""
    cache = _cache()["active"]
    hit = cache.get(purpose)
    if hit and hit[2] > monotonic():
        return hit[0], hit[1]
    with _lock:
        row = db.session.scalars(
            select(SigningKey).where(SigningKey.purpose == purpose, SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc()).limit(1)).first()
        if row is None:
            row = _new_key(purpose)
            db.session.add(row)
            db.session.commit()
        private = _load_private(row)
        cache[purpose] = (row.kid, private, monotonic() + ACTIVE_CACHE_SECONDS)
        return row.kid, private


def public_key(kid: str):
    """Public key for a kid (cached), or None when unknown or no longer published."""
    published = published_key(kid)
    return published[1] if published is not None else None


def published_key(kid: str):
    """(purpose, public key) of a kid still published, or None. A worker reads a key again after
    ACTIVE_CACHE_SECONDS (a rotation elsewhere may have set its publication end) and checks that
    end on every call."""
    cache = _cache()["public"]
    hit = cache.get(kid)
    if hit is None or hit[3] <= monotonic():
        row = db.session.get(SigningKey, kid)
        if row is None:
            return None
        until = as_aware(row.publish_until) if row.publish_until is not None else None
        public = hit[1] if hit is not None else load_public_jwk(row.public_jwk)
        hit = cache[kid] = (row.purpose, public, until, monotonic() + ACTIVE_CACHE_SECONDS)
    if hit[2] is not None and hit[2] <= utcnow():
        return None
    return hit[0], hit[1]


def published_jwks() -> list[dict]:
    """Every public key still needed to verify something; the access-token key is made first if
    there is none yet, so that a relying party reading the set before any login finds it."""
    rows = _published_rows()
    if not any(row.purpose == ACCESS_PURPOSE and row.retired_at is None for row in rows):
        ensure_access_key()
        rows = _published_rows()
    return [dict(row.public_jwk) for row in rows]


def _published_rows() -> list[SigningKey]:
    return db.session.scalars(
        select(SigningKey).where(or_(SigningKey.publish_until.is_(None),
                                     SigningKey.publish_until > utcnow()))
        .order_by(SigningKey.created_at)).all()


def ensure_access_key() -> str:
    """Create the access-token signing key when there is none (seed, first JWKS request); its kid."""
    return active_key(ACCESS_PURPOSE)[0]


def rotate(purposes: list[str] | None = None, *, keep_for: dict[str, int] | None = None) -> list[str]:
    """Retire the active keys (all purposes by default) and create new ones; returns new kids."""
    keep_for = keep_for or {}
    query = select(SigningKey).where(SigningKey.retired_at.is_(None))
    if purposes:
        query = query.where(SigningKey.purpose.in_(purposes))
    rows = db.session.scalars(query).all()
    now = utcnow()
    new_kids = []
    for purpose in sorted({row.purpose for row in rows} | set(purposes or [])):
        for row in rows:
            if row.purpose == purpose:
                row.retired_at = now
                seconds = keep_for.get(purpose.split(":")[0])
                row.publish_until = now + timedelta(seconds=seconds) if seconds else None
        fresh = _new_key(purpose)
        db.session.add(fresh)
        new_kids.append(fresh.kid)
    db.session.commit()
    _cache()["active"].clear()
    return new_kids
