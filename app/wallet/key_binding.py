"""Checks of presentations whose key binding the holder's phone made: device-bound credentials
shown offline, and answers to verifier requests (the request fixes `nonce` and `aud`).

A credential says whose key `cnf` names (`holder_binding`): "device" (a phone key registered at
/wallet/devices: the device must still be active and the license bound to it) or "platform"
(the key the platform wallet keeps for the license). Either way the presentation must be one of
our licenses signed by its issuer's key, and the license's status (the same status list entry
for both kinds) must be valid.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import BadRequest
from ..extensions import db
from ..security.jose import JoseError, decode_jws, jwk_thumbprint, public_jwk
from . import devices
from .issuer_trust import ISSUER_KEYS, signed_by
from .models import License
from .sdjwt import (BINDING_CLAIM, DEVICE_BINDING, EXPIRED, PLATFORM_BINDING, WRONG_AUDIENCE, WRONG_NONCE,
                    SdJwtError, VerifiedPresentation, looks_like_sd_jwt, verify_presentation)

IDENTIFIER_RE = re.compile(r"[0-9A-Z.]{20,120}")
MAX_SD_JWT = 16 * 1024
PASSED_THROUGH = (EXPIRED, WRONG_AUDIENCE, WRONG_NONCE)  # SdJwtError reasons answered as they are


@dataclass
class Checked:
    """What a check found: the result (`valid` or a reason), the license and binding kind when known."""

    result: str
    license: License | None = None
    binding: str = PLATFORM_BINDING
    verified: VerifiedPresentation | None = None


def parse(text) -> tuple[str, dict]:
    """(stripped text, unverified issuer payload); 400 for what is not an SD-JWT at all."""
    if not isinstance(text, str) or len(text) > MAX_SD_JWT or not looks_like_sd_jwt(text.strip()):
        raise BadRequest("sd_jwt 不是 SD-JWT")
    text = text.strip()
    try:
        return text, decode_jws(text.split("~", 1)[0]).payload
    except JoseError:
        raise BadRequest("sd_jwt 不是 SD-JWT：签发者 JWT 无法解析") from None


def license_named_by(payload: dict) -> License | None:
    identifier = payload.get("identifier")
    if not isinstance(identifier, str) or not IDENTIFIER_RE.fullmatch(identifier):
        return None
    return db.session.scalar(select(License).where(License.identifier == identifier))


def binding_of(payload: dict) -> str:
    return DEVICE_BINDING if payload.get(BINDING_CLAIM) == DEVICE_BINDING else PLATFORM_BINDING


def check(text: str, payload: dict, *, expected_aud: str | frozenset[str], expected_nonce: str | None,
          now: int) -> Checked:
    """Verify a presentation against the audience (and nonce) the verifier expects; never raises
    for a bad presentation: the reason is in `result`."""
    license = license_named_by(payload)
    binding = binding_of(payload)
    try:
        verified = verify_presentation(text, issuer_keys=ISSUER_KEYS, expected_aud=expected_aud,
                                       expected_nonce=expected_nonce, now=now)
    except SdJwtError as exc:
        reason = exc.reason if exc.reason in PASSED_THROUGH else "bad_signature"
        return Checked(reason, license, binding)
    if license is None or verified.payload.get("identifier") != license.identifier:
        return Checked("unknown", None, binding)
    if signed_by(verified) != f"issuer:{license.issuer_client_id}":
        return Checked("bad_signature", license, binding)
    jkt = jwk_thumbprint(verified.payload["cnf"]["jwk"])
    if binding == DEVICE_BINDING:
        device_status = devices.bound_device_status(license.id, jkt)
        if device_status is None:
            return Checked("unknown", license, binding)
        if device_status != "active":
            return Checked("device_removed", license, binding)
    elif jkt != jwk_thumbprint(public_jwk(license.holder_key.public_key())):
        return Checked("bad_signature", license, binding)
    if license.status in ("revoked", "suspended"):
        return Checked(license.status, license, binding)
    return Checked("valid", license, binding, verified)
