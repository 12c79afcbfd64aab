"""Verification of presentations: an online one-time `code` or an offline SD-JWT.

Checks, in order: the issuer's signature (a key published for an issuer), disclosure
digests, the key binding (holder key from `cnf`, `aud`, `sd_hash`, `iat`, `exp`), validity,
that the credential is one of ours signed by its issuer's key, its status, and one-time use
(online: the code is popped from the shared store, atomic across workers; offline: the
KB-JWT nonce is claimed once). Failures are answers, not errors: {"valid": false, "reason"}.
Only input that is not a code or not an SD-JWT at all is 400.

Registered verifier clients scoped to the license type receive the disclosed fields; everyone
else receives validity, type, issuer and the holder's masked name.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import date, datetime, timezone

from flask import request
from sqlalchemy import select

from ..errors import BadRequest, Unauthorized, ValidationFailed
from .. import journal
from ..extensions import db, limiter, store
from ..identity import service as identity
from ..security import keys, tokens
from ..security.jose import JoseError, b64url_json, decode_jws
from ..security.rbac import Principal, bearer_claims, current_principal
from ..timeutil import as_aware, epoch
from . import access_log, presentations, status_lists
from .models import License, Presentation
from .sdjwt import EXPIRED, SdJwtError, VerifiedPresentation, looks_like_sd_jwt, verify_presentation

CODE_RE = re.compile(presentations.CODE_PATTERN)
IDENTIFIER_RE = re.compile(r"[0-9A-Z.]{20,120}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # kids and nonces we hand out
MAX_SD_JWT = 16 * 1024
RATE_SCOPE = "verify"
TOO_MANY = "核验请求过于频繁，请稍后再试"
DETAILS = {
    "expired": "证照或亮证码已过期",
    "used": "亮证码已被使用",
    "revoked": "证照已被签发机关撤销",
    "suspended": "证照已被签发机关暂停使用",
    "bad_signature": "签名、披露内容或持有人绑定校验失败",
    "unknown": "无法识别的亮证码或证照",
}


def _clock() -> int:
    """Seconds since the epoch (one place, so tests can move time)."""
    return epoch()


def verify_request(*, code: str | None, sd_jwt: str | None, limit: str) -> dict:
    """POST /verifications: the caller's rate limit, token revocation and (online) the code's
    entry are read in one round trip to the shared store, then `verify`."""
    try:
        claims = bearer_claims()
    except Unauthorized:
        limiter.hit_and_read(limit, RATE_SCOPE, _client_address(), [], detail=TOO_MANY)  # bad tokens count too
        raise
    revocation = tokens.revocation_key(claims) if claims is not None else None
    wanted = ([revocation] if revocation else []) + (_code_reads(code) if _is_code(code) else [])
    reads = limiter.hit_and_read(limit, RATE_SCOPE, _client_address(), wanted, detail=TOO_MANY)
    principal = current_principal(optional=True, revoked=bool(reads[revocation]) if revocation else None)
    return verify(principal=principal, code=code, sd_jwt=sd_jwt, reads=reads)


def verify(*, principal: Principal | None, code: str | None = None, sd_jwt: str | None = None,
           reads: dict | None = None) -> dict:
    """Verify an online code or an offline SD-JWT presentation; the answer is journalled for the
    access log. `reads`: the shared-store entries of `_code_reads(code)`, read by the caller."""
    if (code is None) == (sd_jwt is None):
        raise ValidationFailed("请提供 code 或 sd_jwt 其中之一",
                               errors={"code": ["code 与 sd_jwt 须且仅须提供一个"]})
    if code is not None:
        return _verify_code(code, principal, reads or {})
    return _verify_sd_jwt(sd_jwt, principal)


def _client_address() -> str:
    return request.remote_addr or "unknown"


def _is_code(code) -> bool:
    return isinstance(code, str) and CODE_RE.fullmatch(code) is not None


def _code_reads(code: str) -> list[str]:
    """What checking a live code reads from the shared store: its entry and the status version."""
    return [presentations.code_key(code), status_lists.VERSION_KEY]


# ---- online


def _verify_code(code: str, principal: Principal | None, reads: dict) -> dict:
    """The code's entry in the shared store carries the sealed card and presentation, so a live
    code is checked without the database; consuming it and journalling the answer are one step."""
    if not _is_code(code):
        raise BadRequest("code 不是有效的亮证码")
    wanted = _code_reads(code)
    key = wanted[0]
    sealed, status_version = ([reads[k] for k in wanted] if all(k in reads for k in wanted)
                              else store.get_many(*wanted))
    if sealed is None:
        return _code_gone(code, principal)
    shown = presentations.unseal(code, sealed)
    now = _clock()
    try:
        verified = verify_presentation(shown["sd_jwt"], issuer_keys=ISSUER_KEYS,
                                       expected_aud=presentations.audience(), now=now)
    except SdJwtError as exc:
        return _answer(principal, shown, "expired" if exc.reason == EXPIRED else "bad_signature", consume=key)
    if (verified.payload.get("identifier") != shown["identifier"]
            or _signed_by(verified) != f"issuer:{shown['issuer_client_id']}"
            or (verified.kb or {}).get("nonce") != shown["nonce"]):
        return _answer(principal, shown, "bad_signature", consume=key)
    status = status_lists.status_at(shown["status_list_id"], shown["status_idx"], status_version)
    if status != "valid":
        return _answer(principal, shown, status, consume=key)
    if shown["expires"] <= now:
        return _answer(principal, shown, "expired", consume=key)
    return _answer(principal, shown, "valid", verified=verified, consume=key)


def _code_gone(code: str, principal: Principal | None) -> dict:
    """A code the store no longer holds: used, expired or never ours."""
    presentation = presentations.presentation_by_code(code)
    if presentation is None:
        return _answer(principal, None, "unknown")
    expired = as_aware(presentation.expires_at) <= _now_datetime()
    return _answer(principal, presentations.card(presentation.license, presentation),
                   "expired" if expired else "used")


# ---- offline


def _verify_sd_jwt(text: str, principal: Principal | None) -> dict:
    if not isinstance(text, str) or len(text) > MAX_SD_JWT or not looks_like_sd_jwt(text.strip()):
        raise BadRequest("sd_jwt 不是 SD-JWT")
    text = text.strip()
    try:
        issuer_jws = decode_jws(text.split("~", 1)[0])
    except JoseError:
        raise BadRequest("sd_jwt 不是 SD-JWT：签发者 JWT 无法解析") from None
    identifier = issuer_jws.payload.get("identifier")
    license = None
    if isinstance(identifier, str) and IDENTIFIER_RE.fullmatch(identifier):
        license = db.session.scalar(select(License).where(License.identifier == identifier))
    presentation = presentations.presentation_by_nonce(_kb_nonce(text))
    if presentation is not None and (license is None or presentation.license_id != license.id):
        presentation = None
    return _check(text, principal, license, presentation, claim_nonce=True)


def _kb_nonce(text: str) -> str | None:
    """The KB-JWT's nonce, unverified (only to find the presentation record)."""
    last = text.rsplit("~", 1)[-1]
    try:
        payload = b64url_json(last.split(".")[1]) if last.count(".") == 2 else None
    except (ValueError, UnicodeDecodeError):
        return None
    nonce = payload.get("nonce") if isinstance(payload, dict) else None
    return nonce if isinstance(nonce, str) and TOKEN_RE.fullmatch(nonce) else None


# ---- shared


class _PublishedIssuerKeys(Mapping):
    """Issuer keys still published, by kid, looked up as a presentation names one."""

    def __getitem__(self, kid):
        published = keys.published_key(kid) if isinstance(kid, str) and TOKEN_RE.fullmatch(kid) else None
        if published is None or not published[0].startswith("issuer:"):
            raise KeyError(kid)
        return published[1]

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


ISSUER_KEYS = _PublishedIssuerKeys()


def _signed_by(verified: VerifiedPresentation) -> str:
    """The purpose (`issuer:<client id>`) of the key that signed a verified presentation."""
    published = keys.published_key(verified.kid)
    return published[0] if published is not None else None


def _now_datetime() -> datetime:
    return datetime.fromtimestamp(_clock(), timezone.utc)


def _check(text: str, principal: Principal | None, license: License | None,
           presentation: Presentation | None, *, claim_nonce: bool) -> dict:
    now = _clock()
    shown = presentations.card(license, presentation) if license is not None else None
    try:
        verified = verify_presentation(text, issuer_keys=ISSUER_KEYS, expected_aud=presentations.audience(),
                                       now=now)
    except SdJwtError as exc:
        return _answer(principal, shown, "expired" if exc.reason == EXPIRED else "bad_signature")
    if license is None or verified.payload.get("identifier") != license.identifier:
        return _answer(principal, None, "unknown")
    if _signed_by(verified) != f"issuer:{license.issuer_client_id}":
        return _answer(principal, shown, "bad_signature")
    nonce = (verified.kb or {}).get("nonce")
    if presentation is None or nonce != presentation.nonce:
        return _answer(principal, presentations.card(license, None), "unknown")
    if license.status in ("revoked", "suspended"):
        return _answer(principal, shown, license.status)
    if as_aware(presentation.expires_at).timestamp() <= now:  # ended early by the holder
        return _answer(principal, shown, "expired")
    if claim_nonce:
        ttl = max(1, int(as_aware(presentation.expires_at).timestamp()) - now + 10)
        if not store.set_if_absent(f"wallet:kb-nonce:{nonce}", "1", ttl):
            return _answer(principal, shown, "used")
    return _answer(principal, shown, "valid", verified=verified, offline=claim_nonce)


def _scoped(principal: Principal | None, shown: dict | None) -> bool:
    """Whether the caller is a verifier registered (now, and in its token) for the license type."""
    if principal is None or principal.subject_type != "client" or shown is None:
        return False
    code = shown["license_type"]
    return (principal.claims.get("client_kind") == "verifier" and code in principal.license_types
            and code in identity.client_license_types(principal.subject_id))


def _answer(principal: Principal | None, shown: dict | None, result: str, *,
            verified: VerifiedPresentation | None = None, offline: bool = False, consume: str | None = None) -> dict:
    """The answer, journalled for the holder's access log (atomically with consuming the code)."""
    scoped = _scoped(principal, shown)
    disclosed: list[str] = []
    if result == "valid":
        values = in_field_order(shown["field_names"], verified.disclosed)
        body = _valid_body(shown, values, scoped)
        # offline, the verifier holds the disclosures whatever we answer; online, only what we send
        disclosed = list(values) if offline or scoped else []
    else:
        body = _failure(result)
    if shown is None:
        return body
    client_id = principal.subject_id if principal is not None and principal.subject_type == "client" else None
    entry = functools.partial(access_log.journal_line, license_pk=shown["license_pk"],
                              presentation_id=shown["presentation_id"], verifier_client_id=client_id,
                              actor=principal.subject_id if principal else None, ip=request.remote_addr)
    line = entry(result=result, disclosed=disclosed)
    if consume is None:
        journal.push(line)
        return body
    if journal.push(line, consume=consume, line_if_absent=entry(result="used", disclosed=[])):
        return body
    return _failure("used")  # another verifier took the code between our read and the consume


def in_field_order(field_names: list[str], disclosed: dict) -> dict:
    """Disclosed claims in the order the license type lists its fields."""
    return {name: disclosed[name] for name in field_names if name in disclosed}


def _failure(result: str) -> dict:
    return {"valid": False, "reason": result, "detail": DETAILS[result]}


def _valid_body(shown: dict, values: dict, scoped: bool) -> dict:
    name_field, masked = shown["name_field"], shown["holder_name_masked"]
    return {
        "valid": True,
        "license_type": shown["license_type"],
        "license_name": shown["license_name"],
        "issuer": shown["issuer"],
        "issuer_credit_code": shown["issuer_credit_code"],
        "identifier": shown["identifier"],
        "status": "valid",
        "valid_from": date.fromisoformat(shown["valid_from"]),
        "valid_until": date.fromisoformat(shown["valid_until"]),
        "holder_name_masked": masked,
        "purpose": shown["purpose"],
        "shown_by": shown["shown_by"],
        "disclosure": "full" if scoped else "basic",
        "disclosed": values if scoped else {name_field: masked},
    }
