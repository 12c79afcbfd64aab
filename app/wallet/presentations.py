"""亮证: presentations of a license with the fields the holder chose, a purpose and a short life.

Both modes carry the same holder-signed SD-JWT (selected disclosures + KB-JWT with `aud`,
`nonce`, `iat`, `sd_hash`, `exp` = `expires_at`), signed with the license's holder key that
the platform wallet keeps. Online: a one-time code (192 random bits) whose hash points to the
presentation in the shared store until it expires or is used. Offline: the SD-JWT itself, in
a QR code, for verifiers without network access to the platform.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import datetime, timezone

import orjson
from flask import current_app
from sqlalchemy import select

from ..errors import Conflict, NotFound, ValidationFailed
from ..extensions import db, store
from ..security import audit
from ..security.ciphers import pii_cipher
from ..security.pii import mask_name
from ..security.rbac import Principal
from ..timeutil import as_aware, beijing_today, epoch
from . import holders
from .models import DEFAULT_TTL, MAX_TTL, MIN_TTL, MODES, License, Presentation, effective_status
from .issuer_trust import CHECKED, checked_at_presentation
from .qr import qr_svg
from .sdjwt import SdJwtError, present, select_disclosures

CODE_BYTES = 24  # 192 bits, 32 base64url characters
CODE_PATTERN = r"[A-Za-z0-9_-]{32}"
LICENSE_ID_RE = re.compile(r"lic_[0-9a-f]{32}")
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def audience() -> str:
    """`aud` of the KB-JWT: the platform's verification service."""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/")


def code_key(code: str) -> str:
    """The online code's entry: the sealed presentation, consumed by the one full check (a
    verifier registered for the type)."""
    return f"wallet:code:{code_hash(code)}"


def basic_key(code: str) -> str:
    """Consumed by the one basic check (anyone else: validity and the masked name), so that an
    anonymous check never uses up what a registered verifier should see. Its value is the license type's
    code, which tells the read that claims a use which of the two the caller's check takes (`UseClaim`)."""
    return basic_key_of_hash(code_hash(code))


def basic_key_of_hash(hashed: str) -> str:
    return f"wallet:code:{hashed}:basic"


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def license_by_id(license_id: str) -> License | None:
    if not isinstance(license_id, str) or not LICENSE_ID_RE.fullmatch(license_id):
        return None
    return db.session.scalar(select(License).where(License.license_id == license_id))


def require_usable(license: License) -> None:
    """409 unless the license is valid now."""
    status = effective_status(license)
    if status == "valid" and license.valid_from > beijing_today():
        raise Conflict("证照尚未生效")
    messages = {"revoked": "证照已被签发机关撤销", "suspended": "证照已被签发机关暂停使用",
                "expired": "证照已过有效期"}
    if status in messages:
        raise Conflict(messages[status] + "，不能亮证", extra={"license_status": status})


def check_disclose(license: License, disclose: list[str] | None) -> list[str]:
    """The chosen field names (the type's minimal default when None); 422 naming `disclose`."""
    ltype = license.license_type
    if disclose is None:
        return list(ltype.default_disclose)
    chosen = list(dict.fromkeys(disclose))
    unknown = [name for name in chosen if name not in ltype.field_names]
    if unknown:
        message = f"{ltype.name}没有以下字段：{'、'.join(unknown)}"
        raise ValidationFailed(message, errors={"disclose": [message]})
    return chosen


def create_presentation(*, principal: Principal, license_id: str, purpose: str,
                        disclose: list[str] | None = None, mode: str = "online",
                        ttl_seconds: int = DEFAULT_TTL) -> dict:
    """Show a license (holder, guardian of a minor holder, or company agent with
    `licenses:present`); commits. Returns the presentation and, per mode, `code` or `sd_jwt`,
    with `qr_svg`."""
    license = license_by_id(license_id)
    actor = holders.actor_for(principal, license, need=holders.PRESENT)
    if mode not in MODES:
        raise ValidationFailed.field("mode", "亮证方式应为 online 或 offline")
    if not isinstance(ttl_seconds, int) or not MIN_TTL <= ttl_seconds <= MAX_TTL:
        raise ValidationFailed.field("ttl_seconds", f"有效时长应在{MIN_TTL}至{MAX_TTL}秒之间")
    chosen = check_disclose(license, disclose)
    require_usable(license)
    now = epoch()
    expires = now + ttl_seconds
    nonce = secrets.token_urlsafe(16)
    sd_jwt = present(sd_jwt_with_selected=select_disclosures(license.credential, chosen),
                     holder_key=license.holder_key, aud=audience(), nonce=nonce, iat=now, exp=expires)
    presentation = Presentation(presentation_id="pr_" + secrets.token_hex(12), license_id=license.id,
                                mode=mode, purpose=purpose, disclose=chosen, nonce=nonce,
                                shown_by=actor.shown_by(),
                                created_at=datetime.fromtimestamp(now, timezone.utc),
                                expires_at=datetime.fromtimestamp(expires, timezone.utc))
    presentation.sd_jwt = sd_jwt
    body = {"presentation_id": presentation.presentation_id, "license_id": license.license_id,
            "mode": mode, "purpose": purpose, "disclose": chosen, "expires_at": presentation.expires_at}
    if mode == "online":
        code = secrets.token_urlsafe(CODE_BYTES)
        presentation.code_hash = code_hash(code)
        body["code"] = code
        body["qr_svg"], body["qr_version"] = qr_svg(code)
    else:
        try:
            body["qr_svg"], body["qr_version"] = qr_svg(sd_jwt)
        except ValueError:
            message = "所选字段过多，离线二维码容纳不下，请减少亮证字段或使用在线亮证"
            raise ValidationFailed(message, errors={"disclose": [message]}) from None
        body["sd_jwt"] = sd_jwt
    db.session.add(presentation)
    holder_subject = holders.holder_subject_id(license)
    audit.record("license.presented", subject_id=holder_subject, actor=actor.subject_id,
                 details={"license_id": license.license_id, "presentation_id": presentation.presentation_id,
                          "mode": mode, "disclose": chosen, "role": actor.role, "ttl_seconds": ttl_seconds})
    db.session.flush()
    if mode == "online":  # before the commit: a store failure leaves nothing behind
        store.set(basic_key(body["code"]), license.license_type.code, ttl=ttl_seconds)  # the type: `UseClaim`
        store.set(code_key(body["code"]), seal(body["code"], license, presentation, sd_jwt,
                                               holder_subject=holder_subject), ttl=ttl_seconds)
    db.session.commit()
    return body


def cancel_presentation(*, principal: Principal, license_id: str, presentation_id: str) -> None:
    """End a presentation early (the holder closed the QR code): it answers `cancelled` from now
    on. Idempotent; commits."""
    license = license_by_id(license_id)
    actor = holders.actor_for(principal, license, need=holders.PRESENT)
    presentation = None
    if isinstance(presentation_id, str) and re.fullmatch(r"pr_[0-9a-f]{24}", presentation_id):
        presentation = db.session.scalar(select(Presentation).where(
            Presentation.presentation_id == presentation_id, Presentation.license_id == license.id))
    if presentation is None:
        raise NotFound("亮证记录不存在")
    now = datetime.fromtimestamp(epoch(), timezone.utc)
    if as_aware(presentation.expires_at) <= now:
        return
    if presentation.code_hash:
        store.delete(f"wallet:code:{presentation.code_hash}", basic_key_of_hash(presentation.code_hash))
    presentation.expires_at, presentation.cancelled_at = now, now
    audit.record("license.presentation_cancelled", subject_id=holders.holder_subject_id(license),
                 actor=actor.subject_id, details={"license_id": license.license_id,
                                                  "presentation_id": presentation.presentation_id})
    db.session.commit()


_READ = object()  # `card`'s holder_subject when the caller has not read it


def card(license: License, presentation: Presentation | None, *, holder_subject: str | None | object = _READ) -> dict:
    """What a verification answers and logs about a license and one presentation of it; `holder_subject`:
    the holder's subject id (`holders.holder_subject_id`) when the caller has read it already."""
    ltype = license.license_type
    name_field = "name" if ltype.holder_type == "person" else "entity_name"
    shown_by = (presentation.shown_by if presentation else None) or {}
    return {"license_pk": license.id, "license_type": ltype.code, "license_name": ltype.name,
            "field_names": ltype.field_names, "name_field": name_field,
            "issuer": license.issuer_name, "issuer_credit_code": license.issuer_credit_code,
            "issuer_client_id": license.issuer_client_id, "identifier": license.identifier,
            "valid_from": license.valid_from.isoformat(), "valid_until": license.valid_until.isoformat(),
            "holder_name_masked": mask_name(license.field_values.get(name_field)),
            "status_list_id": license.status_list_id, "status_idx": license.status_idx,
            "presentation_id": presentation.presentation_id if presentation else None,
            "purpose": presentation.purpose if presentation else None,
            "nonce": presentation.nonce if presentation else None,
            "expires": int(as_aware(presentation.expires_at).timestamp()) if presentation else None,
            "shown_by": {"role": shown_by.get("role"), "name_masked": shown_by.get("name_masked")},
            "readers": holders.told_of_use(holders.holder_subject_id(license) if holder_subject is _READ
                                           else holder_subject, shown_by)}


def seal(code: str, license: License, presentation: Presentation, sd_jwt: str, *, holder_subject: str | None) -> str:
    """The online code's entry in the shared store: the card and what verifying the presentation
    found now (its signatures are checked once, here), encrypted with AES-GCM bound to the
    code's hash, so that verifying a code needs no database read and no signature check."""
    shown = card(license, presentation, holder_subject=holder_subject)
    try:
        shown[CHECKED] = checked_at_presentation(sd_jwt, shown, audience=audience())
    except SdJwtError as exc:
        raise Conflict("证照签名校验失败，请联系签发机关") from exc
    text = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
    return pii_cipher().encrypt(text, context=f"code:{code_hash(code)}")


def unseal(code: str, sealed: str) -> dict:
    return orjson.loads(pii_cipher().decrypt_bytes(sealed, context=f"code:{code_hash(code)}"))


def presentation_by_nonce(nonce) -> Presentation | None:
    if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
        return None
    return db.session.scalar(select(Presentation).where(Presentation.nonce == nonce))


def presentation_by_code(code: str) -> Presentation | None:
    return db.session.scalar(select(Presentation).where(Presentation.code_hash == code_hash(code)))
