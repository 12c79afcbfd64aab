"""Verifier-initiated checks (OpenID4VP 1.0 shaped, cross-device): the verifier asks, the holder's
phone answers once, the verifier polls.

A registered verifier creates a request for one license type, the fields it needs (within its
registered scope: the license types it is registered for) and a purpose; it shows the QR code
(`openid4vp://?client_id=...&request_uri=...`). The request object behind `request_uri` is a signed
JWT (`typ: oauth-authz-req+jwt`, platform key published in JWKS) with `response_type: vp_token`,
`response_mode: direct_post`, `response_uri`, `nonce`, `state` and a DCQL query naming the
credential format (`dc+sd-jwt`), `vct` and claim paths. `client_id` (and the KB-JWT `aud`) is the
verifier's pre-registered client id. The phone answers at `response_uri` with the presentation it
made with its device key for that nonce and audience, or (holder token) lets the platform answer
with the platform-held key. A response that is not for this request (another nonce or audience,
a broken signature, another license type) is refused without answering it, so the holder can try
again; one that is for it answers the request, whatever the license's status.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from urllib.parse import urlencode

from flask import current_app, request
from sqlalchemy import update

from .. import journal
from ..errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from ..extensions import db
from ..identity.clients import client_license_types
from ..security import audit, keys
from ..security.jose import es256_sign_jws
from ..security.rbac import Principal
from ..timeutil import as_aware, epoch, utcnow
from . import access_log, holders, key_binding, presentations, verification
from .device_models import VerificationRequest
from .issuance import license_type_or_422, vct
from .models import Presentation
from .qr import qr_svg
from .sdjwt import BINDING_CLAIM, DEVICE_BINDING, present, select_disclosures

REQUEST_TTL = 300
REQUEST_ID_RE = re.compile(r"vr_[0-9a-f]{24}")
REQUEST_KEY_PURPOSE = "vp-request"
REQUEST_OBJECT_TYP = "oauth-authz-req+jwt"
CREDENTIAL_QUERY_ID = "license"
NOT_ANSWERING = frozenset({"wrong_nonce", "wrong_audience", "bad_signature", "unknown", "wrong_type"})
NOT_FOUND = "核验请求不存在"


def _base() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/")


def _verifier(principal: Principal | None):
    if (principal is None or principal.subject_type != "client"
            or principal.claims.get("client_kind") != "verifier"):
        raise Forbidden("只有已登记的核验方客户端可以发起核验请求")
    return principal.subject_id


def _now() -> datetime:
    return datetime.fromtimestamp(epoch(), timezone.utc)


def state(row: VerificationRequest) -> str:
    """pending / answered / expired."""
    if row.status == "answered":
        return "answered"
    return "expired" if as_aware(row.expires_at) <= _now() else "pending"


def urls(row: VerificationRequest) -> dict:
    base = f"{_base()}/api/v1/verification-requests/{row.request_id}"
    return {"request_uri": f"{base}/request-object", "response_uri": f"{base}/responses"}


def request_object(row: VerificationRequest) -> dict:
    """The OpenID4VP authorization request (what the signed request object carries)."""
    claims = [{"id": name, "path": [name]} for name in row.fields]
    return {"response_type": "vp_token", "response_mode": "direct_post", "client_id": row.verifier_client_id,
            "response_uri": urls(row)["response_uri"], "nonce": row.nonce, "state": row.request_id,
            "dcql_query": {"credentials": [{"id": CREDENTIAL_QUERY_ID, "format": "dc+sd-jwt",
                                            "meta": {"vct_values": [vct(row.license_type_code)]},
                                            "claims": claims, "require_cryptographic_holder_binding": True}]},
            "client_metadata": {"vp_formats_supported": {"dc+sd-jwt": {"sd-jwt_alg_values": ["ES256"],
                                                                       "kb-jwt_alg_values": ["ES256"]}}},
            "purpose": row.purpose, "require_device_binding": row.require_device_binding}


def create_request(*, principal: Principal, license_type: str, fields: list[str], purpose: str,
                   require_device_binding: bool = False) -> dict:
    """A registered verifier asks for fields of one license type it is registered for; commits."""
    client_id = _verifier(principal)
    ltype = license_type_or_422(license_type)
    if ltype.code not in principal.license_types or ltype.code not in client_license_types(client_id):
        raise ValidationFailed.field("license_type", f"该核验方未登记核验{ltype.name}")
    chosen = list(dict.fromkeys(fields or ()))
    outside = [name for name in chosen if name not in ltype.field_names]
    if not chosen or outside:
        message = (f"超出核验方登记范围的字段：{'、'.join(outside)}" if outside else "请至少选择一个字段")
        raise ValidationFailed(message, errors={"fields": [message]})
    now = epoch()
    row = VerificationRequest(request_id="vr_" + secrets.token_hex(12), verifier_client_id=client_id,
                              license_type_code=ltype.code, fields=chosen, purpose=purpose,
                              nonce=secrets.token_urlsafe(24), require_device_binding=bool(require_device_binding),
                              status="pending", created_at=datetime.fromtimestamp(now, timezone.utc),
                              expires_at=datetime.fromtimestamp(now + REQUEST_TTL, timezone.utc))
    db.session.add(row)
    audit.record("wallet.verification_requested", subject_id=client_id, actor=client_id,
                 details={"request_id": row.request_id, "license_type": ltype.code, "fields": chosen})
    db.session.commit()
    link = "openid4vp://?" + urlencode({"client_id": client_id, "request_uri": urls(row)["request_uri"]})
    svg, _ = qr_svg(link)
    return {"request_id": row.request_id, "nonce": row.nonce, "aud": client_id, "expires_at": row.expires_at,
            "qr_svg": svg, "qr_text": link, **urls(row), "request": request_object(row)}


def _row(request_id: str) -> VerificationRequest:
    row = None
    if isinstance(request_id, str) and REQUEST_ID_RE.fullmatch(request_id):
        row = db.session.scalar(db.select(VerificationRequest).where(VerificationRequest.request_id == request_id))
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def signed_request_object(request_id: str) -> str:
    """The request object as a JWS the phone fetches from `request_uri` (anyone with the QR)."""
    row = _row(request_id)
    if state(row) != "pending":
        raise NotFound("核验请求已答复或已过期")
    kid, key = keys.active_key(REQUEST_KEY_PURPOSE)
    payload = {**request_object(row), "iss": row.verifier_client_id, "aud": "https://self-issued.me/v2",
               "iat": epoch(), "exp": int(as_aware(row.expires_at).timestamp())}
    return es256_sign_jws({"typ": REQUEST_OBJECT_TYP, "kid": kid}, payload, key)


def request_status(*, principal: Principal | None, request_id: str) -> dict:
    """The verifier's view: status and, once answered, the answer (anyone else 404)."""
    row = _row(request_id)
    if principal is None or principal.subject_type != "client" or principal.subject_id != row.verifier_client_id:
        raise NotFound(NOT_FOUND)
    return {"request_id": row.request_id, "status": state(row), "result": row.result,
            "license_type": row.license_type_code, "fields": row.fields, "purpose": row.purpose,
            "expires_at": row.expires_at, "answered_at": row.answered_at}


def _open(row: VerificationRequest) -> None:
    current = state(row)
    if current != "pending":
        raise Conflict("核验请求已答复，不能重复答复" if current == "answered" else "核验请求已过期",
                       extra={"request_status": current})


def respond(*, principal: Principal | None, request_id: str, sd_jwt: str | None = None,
            license_id: str | None = None, disclose: list[str] | None = None) -> dict:
    """Answer a request once: with a presentation the phone made, or (holder token) by the platform."""
    row = _row(request_id)
    if (sd_jwt is None) == (license_id is None):
        raise ValidationFailed("请提供 sd_jwt，或 license_id 与 disclose", errors={"sd_jwt": ["sd_jwt 与 license_id 须且仅须提供一个"]})
    _open(row)
    presentation = None
    if license_id is not None:
        sd_jwt, presentation = _platform_presentation(principal, row, license_id, disclose)
    text, payload = key_binding.parse(sd_jwt)
    checked = key_binding.check(text, payload, expected_aud=row.verifier_client_id, expected_nonce=row.nonce,
                                now=epoch())
    if checked.license is None:
        checked.result = "unknown"
    elif checked.result == "valid" and checked.license.license_type_code != row.license_type_code:
        checked.result = "wrong_type"
    elif checked.result == "valid" and row.require_device_binding and checked.binding != DEVICE_BINDING:
        checked.result = "device_binding_required"
    holder_subject = holders.holder_subject_id(checked.license) if checked.license is not None else None
    answer = _answer(row, checked, presentation, holder_subject)
    if checked.result in NOT_ANSWERING:
        db.session.rollback()
        return {**answer, "request_status": "pending"}
    answered = db.session.execute(
        update(VerificationRequest).where(VerificationRequest.id == row.id, VerificationRequest.status == "pending",
                                          VerificationRequest.expires_at > _now())
        .values(status="answered", answered_at=utcnow(), license_id=checked.license.id)
        .execution_options(synchronize_session=False)).rowcount
    if answered != 1:
        db.session.rollback()
        raise Conflict("核验请求已答复或已过期")
    row.result = answer  # written with the commit
    if presentation is not None:
        db.session.add(presentation)
    db.session.commit()
    disclosed = list(answer.get("disclosed", {})) if checked.result == "valid" else []
    readers = holders.told_of_use(holder_subject, presentation and presentation.shown_by)
    journal.push(access_log.journal_line(
        license_pk=checked.license.id, presentation_id=presentation.presentation_id if presentation else None,
        verifier_client_id=row.verifier_client_id, result=checked.result, disclosed=disclosed,
        actor=principal.subject_id if principal else None, ip=request.remote_addr, purpose=row.purpose,
        shown_by=None if presentation else {"role": "holder", "via": "device" if checked.binding == DEVICE_BINDING
                                            else "platform"}, readers=readers), readers=readers)
    return {**answer, "request_status": "answered"}


def _answer(row: VerificationRequest, checked: key_binding.Checked, presentation: Presentation | None,
            holder_subject: str | None) -> dict:
    """The verification answer for the request's verifier: the requested fields in full."""
    if checked.result != "valid":
        return verification.failure(checked.result)
    shown = presentations.card(checked.license, presentation, holder_subject=holder_subject)
    shown["purpose"] = row.purpose
    values = verification.in_field_order(row.fields, checked.verified.disclosed)
    body = verification.valid_body(shown, values, True)
    body[BINDING_CLAIM] = checked.binding
    return body


def _platform_presentation(principal: Principal | None, row: VerificationRequest, license_id: str,
                           disclose: list[str] | None) -> tuple[str, Presentation]:
    """The platform answers for a holder without a device key: the platform-held key signs the
    KB-JWT for the request's nonce and audience."""
    if principal is None:
        raise Unauthorized("用证照夹中的证照答复核验请求需要登录")
    license = presentations.license_by_id(license_id)
    capacity = holders.actor_for(principal, license, need=holders.PRESENT)
    if license.license_type_code != row.license_type_code:
        raise ValidationFailed.field("license_id", "该证照不是核验方请求的证照类型")
    if row.require_device_binding:
        raise Conflict("核验方要求使用手机设备密钥亮证，请在手机上绑定证照后再答复")
    chosen = list(row.fields) if disclose is None else list(dict.fromkeys(disclose))
    extra = [name for name in chosen if name not in row.fields]
    if extra or not chosen:
        message = f"只能披露核验方请求的字段：{'、'.join(row.fields)}"
        raise ValidationFailed(message, errors={"disclose": [message]})
    presentations.require_usable(license)
    now = epoch()
    sd_jwt = present(sd_jwt_with_selected=select_disclosures(license.credential, chosen), holder_key=license.holder_key,
                     aud=row.verifier_client_id, nonce=row.nonce, iat=now, exp=int(as_aware(row.expires_at).timestamp()))
    presentation = Presentation(presentation_id="pr_" + secrets.token_hex(12), license_id=license.id, mode="request",
                                purpose=row.purpose, disclose=chosen, nonce=row.nonce, shown_by=capacity.shown_by(),
                                created_at=datetime.fromtimestamp(now, timezone.utc), expires_at=row.expires_at)
    presentation.sd_jwt = sd_jwt
    return sd_jwt, presentation
