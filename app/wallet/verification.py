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

import re
from datetime import datetime, timezone

from sqlalchemy import select

from ..errors import BadRequest, ValidationFailed
from ..extensions import db, store
from ..identity import service as identity
from ..security import keys
from ..security.jose import JoseError, b64url_json, decode_jws
from ..security.models import SigningKey
from ..security.pii import mask_name
from ..security.rbac import Principal
from ..timeutil import as_aware, epoch
from . import access_log, presentations
from .models import License, Presentation
from .sdjwt import EXPIRED, SdJwtError, VerifiedPresentation, looks_like_sd_jwt, verify_presentation

CODE_RE = re.compile(presentations.CODE_PATTERN)
IDENTIFIER_RE = re.compile(r"[0-9A-Z.]{20,120}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # kids and nonces we hand out
MAX_SD_JWT = 16 * 1024
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


def verify(*, principal: Principal | None, code: str | None = None, sd_jwt: str | None = None) -> dict:
    """Verify an online code or an offline SD-JWT presentation; commits the access log."""
    if (code is None) == (sd_jwt is None):
        raise ValidationFailed("请提供 code 或 sd_jwt 其中之一",
                               errors={"code": ["code 与 sd_jwt 须且仅须提供一个"]})
    if code is not None:
        return _verify_code(code, principal)
    return _verify_sd_jwt(sd_jwt, principal)


# ---- online


def _verify_code(code: str, principal: Principal | None) -> dict:
    if not isinstance(code, str) or not CODE_RE.fullmatch(code):
        raise BadRequest("code 不是有效的亮证码")
    presentation_id = store.pop(presentations.code_key(code))
    if presentation_id is None:
        presentation = presentations.presentation_by_code(code)
        if presentation is None:
            return _answer(principal, None, None, "unknown")
        expired = as_aware(presentation.expires_at) <= _now_datetime()
        return _answer(principal, presentation.license, presentation, "expired" if expired else "used")
    presentation = db.session.scalar(select(Presentation).where(
        Presentation.presentation_id == presentation_id))
    if presentation is None:
        return _answer(principal, None, None, "unknown")
    return _check(presentation.sd_jwt, principal, presentation.license, presentation, claim_nonce=False)


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


def _issuer_keys(text: str) -> tuple[dict, str | None]:
    """{kid: public key} when the header names a published issuer key, and that key's purpose."""
    try:
        kid = decode_jws(text.split("~", 1)[0]).header.get("kid")
    except JoseError:
        return {}, None
    if not isinstance(kid, str) or not TOKEN_RE.fullmatch(kid):
        return {}, None
    row = db.session.get(SigningKey, kid)
    if row is None or not row.purpose.startswith("issuer:"):
        return {}, None
    key = keys.public_key(kid)
    return ({kid: key}, row.purpose) if key is not None else ({}, None)


def _now_datetime() -> datetime:
    return datetime.fromtimestamp(_clock(), timezone.utc)


def _check(text: str, principal: Principal | None, license: License | None,
           presentation: Presentation | None, *, claim_nonce: bool) -> dict:
    issuer_keys, purpose = _issuer_keys(text)
    now = _clock()
    try:
        verified = verify_presentation(text, issuer_keys=issuer_keys, expected_aud=presentations.audience(),
                                       now=now)
    except SdJwtError as exc:
        return _answer(principal, license, presentation, "expired" if exc.reason == EXPIRED else "bad_signature")
    if license is None or verified.payload.get("identifier") != license.identifier:
        return _answer(principal, None, None, "unknown")
    if purpose != f"issuer:{license.issuer_client_id}":
        return _answer(principal, license, presentation, "bad_signature")
    nonce = (verified.kb or {}).get("nonce")
    if presentation is None or nonce != presentation.nonce:
        return _answer(principal, license, None, "unknown")
    if license.status in ("revoked", "suspended"):
        return _answer(principal, license, presentation, license.status)
    if as_aware(presentation.expires_at).timestamp() <= now:  # ended early by the holder
        return _answer(principal, license, presentation, "expired")
    if claim_nonce:
        ttl = max(1, int(as_aware(presentation.expires_at).timestamp()) - now + 10)
        if not store.set_if_absent(f"wallet:kb-nonce:{nonce}", "1", ttl):
            return _answer(principal, license, presentation, "used")
    return _answer(principal, license, presentation, "valid", verified=verified, offline=claim_nonce)


def _verifier(principal: Principal | None, license: License | None) -> tuple[str, str | None, bool]:
    """(name for the access log, client id, whether the client may see disclosed fields)."""
    if principal is None or principal.subject_type != "client":
        return access_log.ANONYMOUS, None, False
    client = identity.client_by_id(principal.subject_id)
    name = client.name if client is not None else principal.subject_id
    scoped = (principal.claims.get("client_kind") == "verifier" and license is not None
              and client is not None and client.active
              and license.license_type_code in principal.license_types
              and license.license_type_code in set(client.license_types or ()))
    return name, principal.subject_id, scoped


def _answer(principal: Principal | None, license: License | None, presentation: Presentation | None,
            result: str, *, verified: VerifiedPresentation | None = None, offline: bool = False) -> dict:
    verifier, client_id, scoped = _verifier(principal, license)
    if result == "valid":
        values = in_field_order(license, verified.disclosed)
        body = _valid_body(license, presentation, values, scoped)
        # offline, the verifier holds the disclosures whatever we answer; online, only what we send
        disclosed = list(values) if offline or scoped else []
    else:
        body = {"valid": False, "reason": result, "detail": DETAILS[result]}
        disclosed = []
    if license is not None:
        access_log.record(license, kind="verification", verifier=verifier, verifier_client_id=client_id,
                          purpose=presentation.purpose if presentation else None, disclosed=disclosed,
                          result=result, shown_by=presentation.shown_by if presentation else None,
                          presentation_id=presentation.presentation_id if presentation else None,
                          actor=principal.subject_id if principal else None)
        db.session.commit()
    return body


def in_field_order(license: License, disclosed: dict) -> dict:
    """Disclosed claims in the order the license type lists its fields."""
    return {name: disclosed[name] for name in license.license_type.field_names if name in disclosed}


def _valid_body(license: License, presentation: Presentation, values: dict, scoped: bool) -> dict:
    ltype = license.license_type
    name_field = "name" if ltype.holder_type == "person" else "entity_name"
    masked = mask_name(license.field_values.get(name_field))
    shown_by = presentation.shown_by or {}
    return {
        "valid": True,
        "license_type": ltype.code,
        "license_name": ltype.name,
        "issuer": license.issuer_name,
        "issuer_credit_code": license.issuer_credit_code,
        "identifier": license.identifier,
        "status": "valid",
        "valid_from": license.valid_from,
        "valid_until": license.valid_until,
        "holder_name_masked": masked,
        "purpose": presentation.purpose,
        "shown_by": {"role": shown_by.get("role"), "name_masked": shown_by.get("name_masked")},
        "disclosure": "full" if scoped else "basic",
        "disclosed": values if scoped else {name_field: masked},
    }
