"""Access tokens: ES256 JWTs with kid, verified against the key store, revocable in the shared
store: one token (by `jti`), one sign-in session (by `sid`: every token of a refresh family),
every token a person acts with issued before their credentials changed (the `ver` claim against
the person's credentials version, the session that made the change excepted), and every token
naming a closed account. All of a token's keys are read in one round trip."""
from __future__ import annotations

import json
import secrets
import time

import jwt
from flask import current_app

from ..errors import Unauthorized
from ..extensions import store
from . import keys
from .jose import es256_header, es256_sign_with_header

ACCESS_PURPOSE = keys.ACCESS_PURPOSE
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
    return es256_sign_with_header(es256_header(kid=kid, typ="at+jwt"), claims, private), claims


def decode_access_token(token: str, *, read: dict[str, str | None] | None = None) -> dict:
    """Verify signature, expiry, issuer and revocation; raise Unauthorized otherwise. A token's
    signature is checked once per worker (callers repeat their token); expiry and revocation on
    every call. `read`: the values of `revocation_keys` the caller read already, in a round trip of
    its own."""
    claims = signed_claims(token)
    if read is None:
        keys = revocation_keys(claims)
        read = dict(zip(keys, store.get_many(*keys)))
    problem = revocation_problem(claims, read)
    if problem:
        raise Unauthorized(problem)
    return claims


def revocation_keys(claims: dict) -> list[str]:
    """The shared-store keys that can mark this token revoked (read them together)."""
    keys = [f"revoked:jti:{claims['jti']}"]
    if claims.get("sid"):
        keys.append(session_key(claims["sid"]))
    if "ver" in claims:
        keys.append(credentials_key(acting_subject(claims)))
    return keys + [closed_key(person) for person in _persons_of(claims)]


def revocation_problem(claims: dict, values: dict[str, str | None]) -> str | None:
    """Why the values read for `revocation_keys(claims)` revoke the token (a message), or None."""
    if any(values.get(closed_key(person)) for person in _persons_of(claims)):
        return "账号已注销"
    if values.get(f"revoked:jti:{claims['jti']}"):
        return "访问令牌已注销"
    if claims.get("sid") and values.get(session_key(claims["sid"])):
        return "登录会话已结束，请重新登录"
    marker = values.get(credentials_key(acting_subject(claims))) if "ver" in claims else None
    if marker:
        changed = json.loads(marker)
        if int(claims["ver"]) < int(changed["version"]) and claims.get("sid") != changed.get("keep"):
            return "账号的密码或手机号已变更，请重新登录"
    return None


def acting_subject(claims: dict) -> str:
    """The person who acts with this token: the `act` person of a company token, else `sub`."""
    return (claims.get("act") or {}).get("sub") or claims["sub"]


def session_key(session_id: str) -> str:
    return f"revoked:sid:{session_id}"


def credentials_key(subject_id: str) -> str:
    return f"credentials:{subject_id}"


def _marker_ttl() -> int:
    """Long enough to outlive every access token issued before the marker was set."""
    return int(current_app.config["ACCESS_TOKEN_TTL"]) + LEEWAY_SECONDS + 60


def closed_key(subject_id: str) -> str:
    """The shared-store key that marks a person's account closed: every token naming them dies."""
    return f"closed:sub:{subject_id}"


def _persons_of(claims: dict) -> list[str]:
    """The persons a token names: its subject (a person) and the person acting (`act`)."""
    acting = (claims.get("act") or {}).get("sub")
    return [sub for sub in (claims.get("sub"), acting) if isinstance(sub, str) and sub.startswith("p_")]


def mark_closed(subject_id: str) -> None:
    """Refuse every access token naming this person, on every worker, until the longest-lived
    one issued before now has expired (logins fail after closure, so none is issued later)."""
    store.set(closed_key(subject_id), "1", ttl=_marker_ttl())


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
        store.set(f"revoked:jti:{claims['jti']}", "1", ttl=remaining)


def revoke_session_tokens(session_id: str) -> None:
    """Deny every access token of a sign-in session (`sid` claim), those still being issued too."""
    store.set(session_key(session_id), "1", ttl=_marker_ttl())


def revoke_older_credentials(subject_id: str, version: int, *, keep_session: str | None = None) -> None:
    """Deny every access token the person acts with whose `ver` is below `version`, except the
    tokens of `keep_session` (the session that made the change)."""
    store.set(credentials_key(subject_id), json.dumps({"version": int(version), "keep": keep_session}),
              ttl=_marker_ttl())
