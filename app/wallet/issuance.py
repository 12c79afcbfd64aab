"""Issuance and lifecycle of licenses: field checks, GB/T 36904 identifiers, SD-JWT VC signing
with the issuer's own key (purpose `issuer:<client_id>`), suspension, reinstatement, revocation."""
from __future__ import annotations

import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..identity.clients import client_by_id
from ..identity.identifiers import IdentifierError, normalize_credit_code, normalize_id_number
from ..notifications.service import notify
from ..security import audit, keys
from ..security.jose import generate_es256_key, public_jwk
from ..security.pii import mask_credit_code, mask_id_number
from ..security.rbac import Principal
from ..timeutil import BEIJING, beijing_today, epoch, utcnow
from . import holders, status_registry, truthful
from .identifier import build_identifier, parse_identifier
from .models import License, LicenseType
from .sdjwt import BINDING_CLAIM, PLATFORM_BINDING, issue_sd_jwt_vc
from .status_list_codec import status_claim
from schemas.common import CONTROL_MESSAGE, TEXT_CONTROL_CHARACTERS

logger = logging.getLogger("app.wallet")

PLATFORM_CLIENT_ID = "platform"
PLATFORM_ISSUER_NAME = "山东省政务服务平台"
IDENTIFIER_VERSION = "001"
MAX_TEXT = 500
MAX_YEARS = 100
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TYPE_CODE_RE = re.compile(r"[0-9A-Za-z]{1,32}")
STATUS_LABELS = {"valid": "有效", "suspended": "暂停", "revoked": "撤销", "expired": "过期"}
NOT_YOURS = "证照不存在或不是由您签发的"
SUPERSEDED_PENDING = "wallet.superseded"  # session.info flag: a status moved, announce after the commit


@dataclass(frozen=True)
class Issuer:
    """The issuing authority: client id, name and unified social credit code."""

    client_id: str
    name: str
    credit_code: str

    @property
    def key_purpose(self) -> str:
        return f"issuer:{self.client_id}"


def new_license_id() -> str:
    """128 random bits: license ids cannot be guessed."""
    return "lic_" + secrets.token_hex(16)


def vct(type_code: str) -> str:
    return f"urn:cn:license:{type_code}"


def issuer_uri(credit_code: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/issuers/{credit_code}"


def license_type_or_422(code: str) -> LicenseType:
    ltype = db.session.get(LicenseType, code) if isinstance(code, str) and TYPE_CODE_RE.fullmatch(code) else None
    if ltype is None:
        raise ValidationFailed.field("license_type", "证照类型不存在")
    return ltype


def _beijing_epoch(day: date) -> int:
    return int(datetime.combine(day, time(0), BEIJING).timestamp())


# ---- field checks


def _holder(ltype: LicenseType, holder_id_number: str | None, holder_credit_code: str | None) -> str:
    if ltype.holder_type == "person":
        if holder_credit_code or not holder_id_number:
            raise ValidationFailed.field("holder_id_number", f"{ltype.name}的持证人是个人，请提供持证人身份证号码")
        try:
            return normalize_id_number(holder_id_number)
        except IdentifierError as exc:
            raise ValidationFailed.field("holder_id_number", exc.message) from None
    if holder_id_number or not holder_credit_code:
        raise ValidationFailed.field("holder_credit_code", f"{ltype.name}的持证主体是法人，请提供统一社会信用代码")
    try:
        return normalize_credit_code(holder_credit_code)
    except IdentifierError as exc:
        raise ValidationFailed.field("holder_credit_code", exc.message) from None


def _check_dates(valid_from, valid_until) -> None:
    errors = {}
    if not isinstance(valid_from, date):
        errors["valid_from"] = ["有效期起始日期应为 YYYY-MM-DD 格式的日期"]
    if not isinstance(valid_until, date):
        errors["valid_until"] = ["有效期截止日期应为 YYYY-MM-DD 格式的日期"]
    if errors:
        raise ValidationFailed("有效期日期格式不正确", errors=errors)
    today = beijing_today()
    if valid_until < valid_from:
        raise ValidationFailed.field("valid_until", "有效期截止日期不能早于起始日期")
    if valid_until < today:
        raise ValidationFailed.field("valid_until", "有效期截止日期已过，不能签发已过期的证照")
    if valid_until > _add_years(today, MAX_YEARS):
        raise ValidationFailed.field("valid_until", f"有效期不能超过{MAX_YEARS}年")
    if valid_from < date(1900, 1, 1):
        raise ValidationFailed.field("valid_from", "有效期起始日期不正确")


def _value(field: dict, value):
    """A field value checked against the field's type; raises ValueError with a message."""
    kind = field["type"]
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("应为数字")
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError("应为数字") from None
            value = int(number) if number.is_integer() and "." not in value else number
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > 10 ** 15:
            raise ValueError("应为有限的数字")
        return value
    if not isinstance(value, str):
        raise ValueError("应为字符串")
    value = value.strip()
    if not value:
        raise ValueError("不能为空")
    if TEXT_CONTROL_CHARACTERS.search(value):
        raise ValueError(CONTROL_MESSAGE)
    if kind == "date":
        try:
            if not DATE_RE.fullmatch(value):
                raise ValueError(value)
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("应为 YYYY-MM-DD 格式的日期") from None
    if kind == "id_number":
        try:
            return normalize_id_number(value)
        except IdentifierError as exc:
            raise ValueError(exc.message) from None
    if len(value) > MAX_TEXT:
        raise ValueError(f"不能超过{MAX_TEXT}个字符")
    return value


def check_fields(ltype: LicenseType, fields: dict, *, holder_ref: str, valid_from: date,
                 valid_until: date, issuer_name: str) -> dict:
    """The license's field values in the type's order; unknown, missing or malformed fields
    and values contradicting the holder or the validity period are 422, each named."""
    if not isinstance(fields, dict):
        raise ValidationFailed.field("fields", "应为对象")
    errors: dict[str, list[str]] = {}
    names = set(ltype.field_names)
    for name in fields:
        if name not in names:
            errors[f"fields.{name}"] = [f"{ltype.name}没有该字段"]
    implied = {"valid_from": valid_from.isoformat(), "valid_until": valid_until.isoformat()}
    if ltype.holder_type == "person":
        implied["id_number"] = holder_ref
    else:
        implied["credit_code"] = holder_ref
    defaults = {"issuing_authority": issuer_name, "issue_date": valid_from.isoformat()}
    if ltype.holder_type == "person":  # what the ID number states may be left out
        defaults.update(truthful.implied_person_values(ltype, holder_ref))
    values = {}
    for field in ltype.fields:
        name, raw = field["name"], fields.get(field["name"])
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            value = implied.get(name, defaults.get(name))
            if value is None:
                errors[f"fields.{name}"] = [f"缺少必填字段：{field['label']}"]
                continue
            values[name] = value
            continue
        try:
            value = _value(field, raw)
        except ValueError as exc:
            errors[f"fields.{name}"] = [f"{field['label']}{exc}"]
            continue
        if name in implied and str(value).upper() != implied[name].upper():
            errors[f"fields.{name}"] = [f"{field['label']}与{'持证主体' if name in ('id_number', 'credit_code') else '证照有效期'}不一致"]
            continue
        values[name] = value
    if errors:
        raise ValidationFailed("证照字段校验失败：" + "；".join(f"{k}: {v[0]}" for k, v in errors.items()),
                               errors=errors)
    return values


# ---- issuance


def _serial(type_code: str, issuer: Issuer) -> tuple[str, str]:
    """A fresh (serial, identifier) for this type and issuer: year + 9 random digits."""
    for _ in range(10):
        serial = f"{beijing_today().year}{secrets.randbelow(10 ** 9):09d}"
        identifier = build_identifier(type_code=type_code, issuer_credit_code=issuer.credit_code,
                                      serial=serial, version=IDENTIFIER_VERSION)
        if db.session.scalar(select(License.id).where(License.identifier == identifier)) is None:
            return serial, identifier
    raise Conflict("证照编号冲突，请重试")


def _given_identifier(identifier: str, ltype: LicenseType, issuer: Issuer) -> tuple[str, str, str]:
    """(serial, version, identifier) of an identifier the license already has elsewhere (归集)."""
    try:
        parts = parse_identifier(identifier)
    except ValueError:
        raise ValidationFailed.field("identifier", "证照标识不符合 GB/T 36904") from None
    if parts["type_code"] != ltype.code or parts["issuer_credit_code"] != issuer.credit_code:
        raise ValidationFailed.field("identifier", "证照标识与证照类型或签发机关不一致")
    if db.session.scalar(select(License.id).where(License.identifier == identifier)) is not None:
        raise Conflict("该证照已在证照库中")
    return parts["serial"], parts["version"], identifier


def issue(*, ltype: LicenseType, issuer: Issuer, holder_id_number: str | None,
          holder_credit_code: str | None, fields: dict, valid_from: date, valid_until: date,
          identifier: str | None = None) -> License:
    """Check (fields, registries), sign and add a license to the session (the caller commits).
    A license of a once-per-holder type revokes the holder's older one (`truthful`).
    `identifier`: the GB/T 36904 identifier the license already has (collected from a library)."""
    holder_ref = _holder(ltype, holder_id_number, holder_credit_code)
    valid_from, valid_until = (value.date() if isinstance(value, datetime) else value
                               for value in (valid_from, valid_until))
    _check_dates(valid_from, valid_until)
    values = check_fields(ltype, fields, holder_ref=holder_ref, valid_from=valid_from,
                          valid_until=valid_until, issuer_name=issuer.name)
    truthful.check_against_registries(ltype, values, holder_ref=holder_ref)
    # the issuer's key first: creating it on first use commits, before anything of ours is pending
    keys.active_key(issuer.key_purpose)
    if identifier is None:
        (serial, identifier), version = _serial(ltype.code, issuer), IDENTIFIER_VERSION
    else:
        serial, version, identifier = _given_identifier(identifier, ltype, issuer)
    license = License(license_id=new_license_id(), license_type_code=ltype.code, identifier=identifier,
                      serial=serial, version=version, issuer_client_id=issuer.client_id,
                      issuer_name=issuer.name, issuer_credit_code=issuer.credit_code,
                      holder_type=ltype.holder_type, valid_from=valid_from, valid_until=valid_until,
                      status="valid", issued_at=utcnow())
    license.holder_index = (holders.person_index(holder_ref) if ltype.holder_type == "person"
                            else holders.entity_index(holder_ref))
    license.holder_ref = holder_ref
    license.field_values = values
    license.license_type = ltype
    superseded = truthful.superseded_by(license)
    holder_key = generate_es256_key()
    license.holder_key = holder_key
    license.status_list_id, license.status_idx = status_registry.allocate()
    license.issuer_kid, license.credential = sign_credential(
        license, holder_public_jwk=public_jwk(holder_key.public_key()), binding=PLATFORM_BINDING, values=values)
    db.session.add(license)
    db.session.flush()
    holder_subject = holders.holder_subject_id(license)
    for old in superseded:
        status_registry.changed(old.status_list_id)
        audit.record("license.superseded", subject_id=holder_subject, actor=issuer.client_id,
                     details={"license_id": old.license_id, "by": license.license_id, "license_type": ltype.code})
    if superseded:  # before the commit, as every status change (see status_registry.announce_change)
        status_registry.announce_change()
        db.session.info[SUPERSEDED_PENDING] = True
    masked = mask_id_number(holder_ref) if ltype.holder_type == "person" else mask_credit_code(holder_ref)
    audit.record("license.issued", subject_id=holder_subject, actor=issuer.client_id,
                 details={"license_id": license.license_id, "license_type": ltype.code,
                          "identifier": identifier, "holder": masked,
                          "valid_until": valid_until.isoformat()})
    if holder_subject:
        notify(holder_subject, kind="license_issued", title=f"您获得了新的电子证照：{ltype.name}",
               body=f"{issuer.name}向您签发了{ltype.name}，有效期至{valid_until.isoformat()}。",
               data={"license_id": license.license_id, "license_type": ltype.code})
    return license


def sign_credential(license: License, *, holder_public_jwk: dict, binding: str,
                    values: dict | None = None) -> tuple[str, str]:
    """(kid, SD-JWT VC with every disclosure) of a license for a holder key, signed now by its
    issuer's active key: `cnf.jwk` = the holder key, `holder_binding` = "platform" | "device",
    the license's own identifier, validity and status list entry.

    Only what a verifier needs, as the credential travels in the offline QR code: no `iat` and
    no `_sd_alg` (sha-256 is the default), `nbf` only while the license is not yet valid, no
    decoy digests (the type, `vct`, fixes which claims exist, so decoys would hide nothing)."""
    kid, issuer_key = keys.active_key(f"issuer:{license.issuer_client_id}")
    now = epoch()
    starts = _beijing_epoch(license.valid_from)
    credential = issue_sd_jwt_vc(
        issuer_key=issuer_key, kid=kid, iss=issuer_uri(license.issuer_credit_code), vct=vct(license.license_type_code),
        claims=values if values is not None else license.field_values,
        always_visible={"identifier": license.identifier, **({"nbf": starts} if starts > now else {}),
                        BINDING_CLAIM: binding},
        iat=None, exp=_beijing_epoch(license.valid_until + timedelta(days=1)),
        holder_public_jwk=holder_public_jwk,
        status=status_claim(idx=license.status_idx, uri=status_registry.list_uri(license.status_list_id)),
        decoys=0, name_sd_alg=False)
    return kid, credential


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict("证照编号或状态索引冲突，请重试") from exc


def _issuer_client(principal: Principal):
    if principal.subject_type != "client" or principal.claims.get("client_kind") != "issuer":
        raise Forbidden("只有证照签发方客户端可以执行此操作")
    client = client_by_id(principal.subject_id)
    if client is None or not client.active:
        raise Forbidden("签发方客户端不存在或已停用")
    return client


def issue_license(*, principal: Principal, license_type: str, fields: dict, valid_from: date,
                  valid_until: date, holder_id_number: str | None = None,
                  holder_credit_code: str | None = None) -> License:
    """An issuer client issues a license of one of its types; commits."""
    client = _issuer_client(principal)
    ltype = license_type_or_422(license_type)
    if ltype.code not in set(client.license_types or ()) or ltype.code not in principal.license_types:
        raise Forbidden(f"该签发方无权签发{ltype.name}")
    if not client.credit_code:
        raise Forbidden("签发方客户端未登记统一社会信用代码")
    issuer = Issuer(client_id=client.client_id, name=client.name, credit_code=client.credit_code)
    try:
        license = issue(ltype=ltype, issuer=issuer, holder_id_number=holder_id_number,
                        holder_credit_code=holder_credit_code, fields=fields, valid_from=valid_from,
                        valid_until=valid_until)
    except IntegrityError as exc:  # a concurrent issuance took the same serial
        db.session.rollback()
        raise Conflict("证照编号冲突，请重试") from exc
    _commit()
    if db.session.info.pop(SUPERSEDED_PENDING, False):
        status_registry.announce_committed()
    logger.info("license issued", extra={"license_id": license.license_id, "license_type": ltype.code})
    return license


def platform_issuer() -> Issuer:
    config = current_app.config
    return Issuer(client_id=PLATFORM_CLIENT_ID, name=config.get("PLATFORM_ISSUER_NAME") or PLATFORM_ISSUER_NAME,
                  credit_code=config["PLATFORM_CREDIT_CODE"])


def issue_platform_license(*, license_type: str, fields: dict, valid_from: date,
                           valid_until: date | None = None, holder_id_number: str | None = None,
                           holder_credit_code: str | None = None) -> License:
    """The platform's own issuer (PLATFORM_CREDIT_CODE) issues a license, e.g. the result of an
    instant approval. `valid_until` defaults to `valid_from` plus the type's validity years.
    Adds to the session; the caller commits (or rolls back) with its own changes. The first
    use creates the platform's signing key, which commits: call `prepare_platform_issuer()`
    before your own writes if that matters."""
    ltype = license_type_or_422(license_type)
    if isinstance(valid_from, datetime):
        valid_from = valid_from.date()
    if valid_until is None and isinstance(valid_from, date):
        if not ltype.validity_years:
            raise ValidationFailed.field("valid_until", f"{ltype.name}没有固定有效期，请提供有效期截止日期")
        valid_until = _add_years(valid_from, ltype.validity_years) - timedelta(days=1)
    return issue(ltype=ltype, issuer=platform_issuer(), holder_id_number=holder_id_number,
                 holder_credit_code=holder_credit_code, fields=fields, valid_from=valid_from,
                 valid_until=valid_until)


def prepare_platform_issuer() -> None:
    """Create the platform issuer's signing key now if needed (this commits the session)."""
    keys.active_key(platform_issuer().key_purpose)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


# ---- lifecycle


def change_status(*, principal: Principal, license_id: str, status: str, reason: str | None = None) -> License:
    """The issuing client suspends, reinstates or revokes one of its licenses; commits.

    The same status again is a no-op; a revoked license stays revoked (409)."""
    client = _issuer_client(principal)
    license = db.session.scalar(select(License).where(License.license_id == license_id,
                                                      License.issuer_client_id == client.client_id))
    if license is None:
        raise NotFound(NOT_YOURS)
    if status not in STATUS_LABELS or status == "expired":
        raise ValidationFailed.field("status", "状态应为 valid、suspended 或 revoked")
    if license.status == status:
        return license
    if license.status == "revoked":
        raise Conflict("证照已撤销，不能再变更状态")
    previous = license.status
    license.status, license.status_reason, license.status_changed_at = status, reason, utcnow()
    status_registry.changed(license.status_list_id)
    holder_subject = holders.holder_subject_id(license)
    audit.record("license.status_changed", subject_id=holder_subject, actor=client.client_id,
                 details={"license_id": license.license_id, "from": previous, "to": status,
                          "reason": reason or ""})
    if holder_subject:
        name = license.license_type.name
        title = {"valid": f"您的{name}已恢复有效", "suspended": f"您的{name}已被暂停使用",
                 "revoked": f"您的{name}已被撤销"}[status]
        notify(holder_subject, kind="license_status", title=title,
               body=f"{license.issuer_name}：{reason}" if reason else license.issuer_name,
               data={"license_id": license.license_id, "status": status})
    db.session.flush()
    status_registry.announce_change()
    db.session.commit()
    status_registry.announce_committed()
    return license
