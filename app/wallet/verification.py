"""Verification of presentations: an online one-time `code` or an offline SD-JWT (made by the
platform wallet, or by the holder's phone for a device-bound credential).

Checks, in order: the issuer's signature (a key published for an issuer), disclosure
digests, the key binding (holder key from `cnf`, `aud`, `sd_hash`, `iat`, `exp`), validity,
that the credential is one of ours signed by its issuer's key, its device (when device-bound),
its status, and use (below). Failures are answers, not errors: {"valid": false, "reason"}.
Only input that is not a code or not an SD-JWT at all is 400.

Registered verifier clients scoped to the license type receive the disclosed fields; everyone
else receives validity, type, issuer and the holder's masked name. A presentation has two uses,
each once: one full check (a verifier scoped to the type) and one basic check (anyone else), so
an anonymous check never uses up what a registered verifier should see. Online, each use is a
key in the shared store deleted atomically with journalling the answer, claimed by the read that
fetches the code (so that the answer need not wait for that journal step, `CodeUse`); offline, the
KB-JWT nonce is claimed once per use. A presentation the holder closed answers `cancelled`.
`require_device_binding` refuses credentials the platform wallet holds the key of.
"""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import BadRequest, ValidationFailed
from .. import journal
from ..extensions import store
from ..identity.clients import client_license_types
from ..store import NOT_CLAIMED, Claimed, UseClaim, claim_key
from ..security.jose import b64url_json
from ..security.rbac import Principal
from ..timeutil import as_aware, epoch
from . import access_log, key_binding, presentations, status_registry
from .issuer_trust import CHECKED, ISSUER_KEYS, signed_by
from .models import License, Presentation
from .sdjwt import (BINDING_CLAIM, DEVICE_BINDING, EXPIRED, PLATFORM_BINDING, SdJwtError, VerifiedPresentation,
                    verify_presentation)

CODE_RE = re.compile(presentations.CODE_PATTERN)
TOKEN_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # kids and nonces we hand out
DETAILS = {
    "expired": "证照或亮证码已过期",
    "used": "亮证码已被使用",
    "revoked": "证照已被签发机关撤销",
    "suspended": "证照已被签发机关暂停使用",
    "bad_signature": "签名、披露内容或持有人绑定校验失败",
    "unknown": "无法识别的亮证码或证照",
    "cancelled": "持证人已结束本次亮证",
    "device_removed": "证照绑定的手机设备已被持证人移除或挂失",
    "device_binding_required": "核验方要求持证人用手机设备密钥亮证",
    "wrong_nonce": "亮证不是为本次核验生成的（nonce 不符）",
    "wrong_audience": "亮证不是给该核验方的（aud 不符）",
    "wrong_type": "证照类型不是核验方请求的类型",
}
NONCE_CLAIM_TTL = 600  # seconds a device nonce stays claimed: longer than a KB-JWT is accepted
USE_CLAIM_SECONDS = 30  # a claimed use of a code that its claimant never consumed is free again after this


def _clock() -> int:
    """Seconds since the epoch (one place, so tests can move time)."""
    return epoch()


def store_reads(code) -> list[str]:
    """What checking a live code reads from the shared store: its entry and the status version
    (nothing for what is not a code). The caller may read them ahead and pass them as `reads`."""
    return [presentations.code_key(code), status_registry.VERSION_KEY] if is_code(code) else []


@dataclass
class CodeUse:
    """A verification's claim on one use of its code (`store.UseClaim`), asked for in the round trip that
    reads the code (`early_verification.caller_and_reads`), and what that claim did."""

    claim: UseClaim | None = None
    claimed: Claimed = NOT_CLAIMED

    @property
    def key(self) -> str:
        return self.claim.entry if self.claimed.use == "full" else self.claim.basic

    def give_back(self) -> None:
        """Free a held use this verification will not consume (it answers otherwise, or fails)."""
        if self.claimed.held:
            self.claimed = NOT_CLAIMED
            store.delete_if_equal(claim_key(self.key), self.claim.token)


def use_claim(code: str, claims: dict | None) -> UseClaim:
    """The claim a verification of `code` asks for with its read: the full use when the code's license type is
    one the caller's token scopes it to (a verifier's, as `_scoped` decides), else the basic use."""
    types = frozenset()
    if claims is not None and claims.get("sub_type") == "client" and claims.get("client_kind") == "verifier":
        types = frozenset(claims.get("license_types") or ()) & client_license_types(claims["sub"])
    entry = presentations.code_key(code)
    return UseClaim(entry, presentations.basic_key(code), types, secrets.token_hex(8), journal.awake_flag(entry),
                    ttl=USE_CLAIM_SECONDS, awake_ttl=journal.AWAKE_SECONDS)


def verify(*, principal: Principal | None, address: str | None, code: str | None = None, sd_jwt: str | None = None,
           reads: dict | None = None, use: CodeUse | None = None, require_device_binding: bool = False) -> dict:
    """Verify an online code or an offline SD-JWT presentation; the answer is journalled for the
    access log with the caller's `address`. `reads`: the shared-store entries of `store_reads(code)`, read
    by the caller, with `use`: its claim on a use of the code. Needs the app's context only (the page
    server answers codes without a request's)."""
    use = use or CodeUse()
    try:
        if (code is None) == (sd_jwt is None):
            raise ValidationFailed("请提供 code 或 sd_jwt 其中之一",
                                   errors={"code": ["code 与 sd_jwt 须且仅须提供一个"]})
        if code is not None:
            return _verify_code(code, principal, address, reads or {}, use, require_device_binding)
        return _verify_sd_jwt(sd_jwt, principal, address, require_device_binding)
    finally:
        use.give_back()  # a use the answer did not consume (it consumes by spending the claim)


def is_code(code) -> bool:
    return isinstance(code, str) and CODE_RE.fullmatch(code) is not None


# ---- online


def _verify_code(code: str, principal: Principal | None, address: str | None, reads: dict, use: CodeUse,
                 require_device_binding: bool) -> dict:
    """The code's entry in the shared store carries the sealed card and presentation, so a live
    code is checked without the database; using it and journalling the answer are one step."""
    if not is_code(code):
        raise BadRequest("code 不是有效的亮证码")
    wanted = store_reads(code)
    key = (wanted[0], presentations.basic_key(code), use)  # the full use, the basic use, the claim on one
    sealed, status_version = ([reads[k] for k in wanted] if all(k in reads for k in wanted)
                              else store.get_many(*wanted))
    if sealed is None:
        return _code_gone(code, principal, address)
    shown = presentations.unseal(code, sealed)
    if require_device_binding:  # online codes are always shown with the platform-held key
        return _answer(principal, address, shown, "device_binding_required")
    now = _clock()
    if CHECKED in shown:
        return _verify_checked(principal, address, shown, status_version, now, key)
    try:
        verified = verify_presentation(shown["sd_jwt"], issuer_keys=ISSUER_KEYS,
                                       expected_aud=presentations.audience(), now=now)
    except SdJwtError as exc:
        return _answer(principal, address, shown, "expired" if exc.reason == EXPIRED else "bad_signature", consume=key)
    if (verified.payload.get("identifier") != shown["identifier"]
            or signed_by(verified) != f"issuer:{shown['issuer_client_id']}"
            or (verified.kb or {}).get("nonce") != shown["nonce"]):
        return _answer(principal, address, shown, "bad_signature", consume=key)
    status = status_registry.status_at(shown["status_list_id"], shown["status_idx"], status_version)
    if status != "valid":
        return _answer(principal, address, shown, status, consume=key)
    if shown["expires"] <= now:
        return _answer(principal, address, shown, "expired", consume=key)
    return _answer(principal, address, shown, "valid", verified=verified, consume=key)


VALIDITY_LEEWAY = 5  # seconds, as verify_presentation allows


def _verify_checked(principal: Principal | None, address: str | None, shown: dict, status_version, now: int,
                    key: tuple[str, str]) -> dict:
    """A code whose presentation was verified when it was made: the status and the times remain."""
    checked = shown[CHECKED]
    status = status_registry.status_at(shown["status_list_id"], shown["status_idx"], status_version)
    if status != "valid":
        return _answer(principal, address, shown, status, consume=key)
    exp, nbf = checked.get("exp"), checked.get("nbf")
    if (shown["expires"] <= now or (exp is not None and now >= exp + VALIDITY_LEEWAY)
            or (nbf is not None and now + VALIDITY_LEEWAY < nbf)):
        return _answer(principal, address, shown, "expired", consume=key)
    return _answer(principal, address, shown, "valid", disclosed=checked["disclosed"], consume=key)


def _code_gone(code: str, principal: Principal | None, address: str | None) -> dict:
    """A code the store no longer holds: used, cancelled, expired or never ours."""
    presentation = presentations.presentation_by_code(code)
    if presentation is None:
        return _answer(principal, address, None, "unknown")
    expired = as_aware(presentation.expires_at) <= _now_datetime()
    result = "cancelled" if presentation.cancelled_at else "expired" if expired else "used"
    return _answer(principal, address, presentations.card(presentation.license, presentation), result)


# ---- offline


def _verify_sd_jwt(text: str, principal: Principal | None, address: str | None, require_device_binding: bool) -> dict:
    text, payload = key_binding.parse(text)
    if key_binding.binding_of(payload) == DEVICE_BINDING:
        return _verify_device(text, payload, principal, address)
    license = key_binding.license_named_by(payload)
    presentation = presentations.presentation_by_nonce(_kb_nonce(text))
    if presentation is not None and (license is None or presentation.license_id != license.id):
        presentation = None
    return _check(text, principal, address, license, presentation, require_device_binding=require_device_binding)


def _verify_device(text: str, payload: dict, principal: Principal | None, address: str | None) -> dict:
    """A presentation the holder's phone made with its device key: for the platform's verification
    service or for the calling verifier (`aud`), fresh (`iat`), each use of its nonce once."""
    audiences = {presentations.audience()}
    if principal is not None and principal.subject_type == "client":
        audiences.add(principal.subject_id)
    checked = key_binding.check(text, payload, expected_aud=frozenset(audiences), expected_nonce=None, now=_clock())
    shown = presentations.card(checked.license, None) if checked.license is not None else None
    if checked.result != "valid":
        return _answer(principal, address, shown, checked.result, binding=DEVICE_BINDING)
    nonce = (checked.verified.kb or {}).get("nonce")
    if not isinstance(nonce, str) or not nonce:
        return _answer(principal, address, shown, "bad_signature", binding=DEVICE_BINDING)
    if not _claim_use(principal, shown, hashlib.sha256(nonce.encode()).hexdigest(), NONCE_CLAIM_TTL):
        return _answer(principal, address, shown, "used", binding=DEVICE_BINDING)
    return _answer(principal, address, shown, "valid", verified=checked.verified, offline=True, binding=DEVICE_BINDING)


def _claim_use(principal: Principal | None, shown: dict, nonce: str, ttl: int) -> bool:
    """Claim this caller's use (full or basic) of an offline presentation's nonce, once."""
    use = "" if _scoped(principal, shown) else ":basic"
    return store.set_if_absent(f"wallet:kb-nonce:{nonce}{use}", "1", ttl)


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


def _now_datetime() -> datetime:
    return datetime.fromtimestamp(_clock(), timezone.utc)


def _check(text: str, principal: Principal | None, address: str | None, license: License | None,
           presentation: Presentation | None, *, require_device_binding: bool) -> dict:
    """An offline presentation the platform wallet made (one of our Presentation records)."""
    now = _clock()
    shown = presentations.card(license, presentation) if license is not None else None
    try:
        verified = verify_presentation(text, issuer_keys=ISSUER_KEYS, expected_aud=presentations.audience(),
                                       now=now)
    except SdJwtError as exc:
        return _answer(principal, address, shown, "expired" if exc.reason == EXPIRED else "bad_signature")
    if license is None or verified.payload.get("identifier") != license.identifier:
        return _answer(principal, address, None, "unknown")
    if signed_by(verified) != f"issuer:{license.issuer_client_id}":
        return _answer(principal, address, shown, "bad_signature")
    nonce = (verified.kb or {}).get("nonce")
    if presentation is None or nonce != presentation.nonce:
        return _answer(principal, address, presentations.card(license, None), "unknown")
    if license.status in ("revoked", "suspended"):
        return _answer(principal, address, shown, license.status)
    if presentation.cancelled_at is not None:  # ended early by the holder
        return _answer(principal, address, shown, "cancelled")
    if as_aware(presentation.expires_at).timestamp() <= now:
        return _answer(principal, address, shown, "expired")
    if require_device_binding:
        return _answer(principal, address, shown, "device_binding_required")
    ttl = max(1, int(as_aware(presentation.expires_at).timestamp()) - now + 10)
    if not _claim_use(principal, shown, nonce, ttl):
        return _answer(principal, address, shown, "used")
    return _answer(principal, address, shown, "valid", verified=verified, offline=True)


def _scoped(principal: Principal | None, shown: dict | None) -> bool:
    """Whether the caller is a verifier registered (now, and in its token) for the license type."""
    if principal is None or principal.subject_type != "client" or shown is None:
        return False
    code = shown["license_type"]
    return (principal.claims.get("client_kind") == "verifier" and code in principal.license_types
            and code in client_license_types(principal.subject_id))


def _answer(principal: Principal | None, address: str | None, shown: dict | None, result: str, *,
            verified: VerifiedPresentation | None = None, offline: bool = False,
            consume: tuple[str, str, CodeUse] | None = None, binding: str = PLATFORM_BINDING,
            disclosed: dict | None = None) -> dict:
    """The answer, journalled for the holder's access log (atomically with using up the code:
    `consume` = its (full use, basic use) keys and the claim on one; the caller's kind of check takes
    one). The disclosed claims come from `verified`, or as `disclosed` when checked at presentation time."""
    scoped = _scoped(principal, shown)
    logged: list[str] = []
    if result == "valid":
        values = in_field_order(shown["field_names"], verified.disclosed if verified is not None else disclosed)
        body = valid_body(shown, values, scoped)
        body[BINDING_CLAIM] = binding
        # offline, the verifier holds the disclosures whatever we answer; online, only what we send
        logged = list(values) if offline or scoped else []
    else:
        body = failure(result)
    if shown is None:
        return body
    client_id = principal.subject_id if principal is not None and principal.subject_type == "client" else None
    readers = shown.get("readers", [])  # (a code sealed before entries named their readers: none)
    entry = functools.partial(access_log.journal_line, license_pk=shown["license_pk"],
                              presentation_id=shown["presentation_id"], verifier_client_id=client_id,
                              actor=principal.subject_id if principal else None, ip=address,
                              readers=readers)
    line = entry(result=result, disclosed=logged)
    if consume is None:
        journal.push(line, readers=readers)
        return body
    use = consume[2]
    if use.claimed.use and (use.claimed.use == "full") == scoped:  # the read claimed this kind of check's use
        if not use.claimed.held:  # another verifier's check holds it
            journal.push(entry(result="used", disclosed=[]), readers=readers)
            return failure("used")
        key, use.claimed = use.key, NOT_CLAIMED  # spent: nothing to give back
        journal.push_claimed(line, use=key, readers=readers)
        return body
    use.give_back()  # it claimed the other kind's use (a code whose basic use names no type): two steps then
    if journal.push(line, consume=consume[0] if scoped else consume[1], line_if_absent=entry(result="used", disclosed=[]),
                    readers=readers):
        return body
    return failure("used")  # another verifier took this use between our read and the consume


def in_field_order(field_names: list[str], disclosed: dict) -> dict:
    """Disclosed claims in the order the license type lists its fields."""
    return {name: disclosed[name] for name in field_names if name in disclosed}


def failure(result: str) -> dict:
    return {"valid": False, "reason": result, "detail": DETAILS[result]}


def valid_body(shown: dict, values: dict, scoped: bool) -> dict:
    name_field, masked = shown["name_field"], shown["holder_name_masked"]
    return {
        "valid": True,
        "license_type": shown["license_type"],
        "license_name": shown["license_name"],
        "issuer": shown["issuer"],
        "issuer_credit_code": shown["issuer_credit_code"],
        "identifier": shown["identifier"],
        "status": "valid",
        "valid_from": shown["valid_from"],
        "valid_until": shown["valid_until"],
        "holder_name_masked": masked,
        "purpose": shown["purpose"],
        "shown_by": shown["shown_by"],
        "disclosure": "full" if scoped else "basic",
        "disclosed": values if scoped else {name_field: masked},
    }
