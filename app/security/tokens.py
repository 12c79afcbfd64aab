"""Access tokens: ES256 JWTs with kid, verified against the key store, revocable by jti."""
from __future__ import annotations

import secrets
import time

import jwt
from flask import current_app

from ..errors import Unauthorized
from ..extensions import store
from . import keys

ACCESS_PURPOSE = "access"
LEEWAY_SECONDS = 5
VERIFIED_CACHE_SIZE = 10_000


def issuer() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/")


def issue_access_token(subject_id: str, *, roles: list[str], extra: dict | None = None,
                       ttl: int | None = None) -> tuple[str, dict]:
    """Sign an access token; returns (token, claims)."""
    now = int(time.time())
    ttl = ttl or current_app.config["ACCESS_TOKEN_TTL"]
    claims = {"iss": issuer(), "sub": subject_id, "iat": now, "nbf": now, "exp": now + ttl,
              "jti": secrets.token_urlsafe(16), "roles": sorted(set(roles))}
    claims.update(extra or {})
    kid, private = keys.active_key(ACCESS_PURPOSE)
    token = jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
    return token, claims


def decode_access_token(token: str, *, revoked: bool | None = None) -> dict:
    """Verify signature, expiry, issuer and revocation; raise Unauthorized otherwise. A token's
    signature is checked once per worker (callers repeat their token); expiry and revocation on
    every call. `revoked`: the caller read `revocation_key` already (in its own round trip)."""
    claims = signed_claims(token)
    if revoked is None:
        revoked = bool(store.get(revocation_key(claims)))
    if revoked:
        raise Unauthorized("访问令牌已注销")
    return claims


def revocation_key(claims: dict) -> str:
    """The shared-store key that marks a token revoked."""
    return f"revoked:jti:{claims['jti']}"


def signed_claims(token: str) -> dict:
    """The claims of a token whose signature, issuer and expiry hold (revocation not checked)."""
    verified = current_app.extensions.setdefault("verified_access_tokens", {})
    claims = verified.get(token)
    if claims is None:
        claims = _verify_signed(token)
        if len(verified) >= VERIFIED_CACHE_SIZE:
            verified.clear()
        verified[token] = claims
    elif claims["exp"] + LEEWAY_SECONDS < time.time():
        raise Unauthorized("访问令牌已过期")
    return claims


def _verify_signed(token: str) -> dict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthorized("访问令牌格式无效") from exc
    if header.get("alg") != "ES256" or not header.get("kid"):
        raise Unauthorized("访问令牌算法或密钥标识无效")
    key = keys.public_key(header["kid"])
    if key is None:
        raise Unauthorized("访问令牌的签名密钥未知或已停用")
    try:
        claims = jwt.decode(token, key, algorithms=["ES256"], issuer=issuer(), leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "iat", "sub", "jti"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("访问令牌已过期") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("访问令牌无效") from exc
    if header.get("typ") != "at+jwt":
        raise Unauthorized("令牌类型不是访问令牌")
    return claims


def revoke_access_token(claims: dict) -> None:
    """Deny this token until it would have expired anyway."""
    remaining = int(claims["exp"]) - int(time.time()) + LEEWAY_SECONDS
    if remaining > 0:
        store.set(revocation_key(claims), "1", ttl=remaining)
