"""Forms of services: field definitions from the catalogue, validation of what applicants
enter, and prefill ("fill once, reuse everywhere") from the profile, earlier applications
and the license wallet.

Field types: `text`, `number`, `date` (ISO 8601, YYYY-MM-DD), `select` (one of `options`),
`id_number` (GB 11643) and `phone` (mainland mobile). A field's `profile` names the profile
value it is prefilled from: `name`, `id_number`, `phone` (the person acting), `company_name`,
`credit_code` (the company, for company tokens), `address` (no profile source: earlier
applications or the wallet).

PII in prefill: values of `id_number` and `phone` fields are prefilled masked
(`370102********8819`, `138****5678`) unless the holder asks for the full values
(`?reveal=true`, audited). A masked value sent back unchanged is accepted: the server puts
the full value it prefilled in its place, so the form is filled once without the full
numbers ever leaving the server.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from schemas.common import CONTROL_MESSAGE, TEXT_CONTROL_CHARACTERS

from ..catalogue.models import Service
from ..errors import NotFound, ValidationFailed
from ..extensions import db
from ..identity.actors import Actor
from ..identity.identifiers import IdentifierError, normalize_credit_code, normalize_id_number, normalize_phone
from ..security.pii import mask_id_number, mask_phone
from .models import COMMITMENT, FILE, LICENSE, MISSING, Application

logger = logging.getLogger("app.applications.forms")

FIELD_TYPES = ("text", "number", "date", "select", "id_number", "phone")
PII_TYPES = ("id_number", "phone")
MAX_FORM_FIELDS = 50
MAX_VALUE_LENGTH = 500
HISTORY_DEPTH = 100  # earlier applications searched for prefill values
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SERVICE_CODE = re.compile(r"[0-9A-Za-z-]{1,60}")
SEVERE_DISCREDIT = "严重失信"
POSTAL_DELIVERY, DELIVERY_FIELD, MAIL_ADDRESS_FIELD = "邮政寄递", "delivery_method", "mail_address"
# items that issue a certificate of the moment (证明打印、开具): several may be in progress at once
SEVERAL_ALLOWED = frozenset({
    "002005001000",  # 户籍证明开具
    "002005002000",  # 无犯罪记录证明开具
    "002011005000",  # 个人参保证明打印
    "002011011000",  # 职业技能等级证书查询
    "002012005000",  # 医保参保缴费凭证打印
    "002013006000",  # 住房公积金缴存证明打印
    "002019003000",  # 个人所得税纳税记录开具
    "002019004000",  # 税收完税证明开具
})
# license field names that fill form fields of another name
WALLET_ALIASES = {
    "company_name": ("entity_name",),
    "address": ("address", "residence_address", "domicile"),
    "domicile": ("domicile",),
    "legal_representative": ("legal_representative",),
    "employer_name": ("employer",),
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    type: str
    required: bool
    options: tuple = ()
    profile: str | None = None

    @classmethod
    def of(cls, raw: dict) -> "FieldSpec":
        return cls(name=raw["name"], label=raw.get("label") or raw["name"], type=raw.get("type") or "text",
                   required=bool(raw.get("required")), options=tuple(raw.get("options") or ()),
                   profile=raw.get("profile"))

    def as_dict(self) -> dict:
        out = {"name": self.name, "label": self.label, "type": self.type, "required": self.required}
        if self.type == "select":
            out["options"] = list(self.options)
        return out


@dataclass(frozen=True)
class MaterialSpec:
    name: str
    required: bool
    license_type_code: str | None
    commitment_allowed: bool
    core: bool

    @classmethod
    def of(cls, raw: dict) -> "MaterialSpec":
        return cls(name=raw["name"], required=bool(raw.get("required")),
                   license_type_code=raw.get("license_type_code"),
                   commitment_allowed=bool(raw.get("commitment_allowed")),
                   core=bool(raw.get("core", raw.get("required"))))


@dataclass(frozen=True)
class ServiceSpec:
    """What applications need to know of a catalogue service."""

    code: str
    base_code: str | None
    hall_code: str
    name: str
    department: str | None
    audience: str
    promised_limit_days: int
    instant_approval: bool
    produces_license: str | None
    item_type: str | None = None
    several_allowed: bool = False  # several applications of one applicant may be in progress at once
    fields: tuple = field(default_factory=tuple)
    materials: tuple = field(default_factory=tuple)

    @classmethod
    def of(cls, service) -> "ServiceSpec":
        get = (service.get if isinstance(service, dict) else lambda name, default=None:
               getattr(service, name, default))
        several = get("several_allowed")
        return cls(code=get("code"), base_code=get("base_code"), hall_code=get("hall_code"), name=get("name"),
                   department=get("department"), audience=get("audience") or "person",
                   promised_limit_days=int(get("promised_limit_days") or 0),
                   instant_approval=bool(get("instant_approval")), produces_license=get("produces_license"),
                   item_type=get("item_type"),
                   several_allowed=bool(several) if several is not None else get("base_code") in SEVERAL_ALLOWED,
                   fields=tuple(FieldSpec.of(f) for f in (get("form") or ())),
                   materials=tuple(MaterialSpec.of(m) for m in (get("materials") or ())))

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def material(self, name: str) -> MaterialSpec | None:
        return next((m for m in self.materials if m.name == name), None)


# ---- catalogue access


def service_spec(code: str) -> ServiceSpec:
    """The service with this code; 404 when the catalogue has none."""
    row = (db.session.scalar(select(Service).where(Service.code == code))
           if isinstance(code, str) and SERVICE_CODE.fullmatch(code) else None)
    if row is None or row.status != "published":
        raise NotFound("事项不存在或已停止办理")
    return ServiceSpec.of(row)


def service_spec_at(base_code: str, hall_code: str) -> ServiceSpec | None:
    """The service of `base_code` offered at `hall_code`, or None."""
    row = db.session.scalar(select(Service).where(Service.base_code == base_code, Service.hall_code == hall_code,
                                                  Service.status == "published"))
    return ServiceSpec.of(row) if row is not None else None


# ---- prefill


def _history_values(subject_id: str) -> dict:
    """Latest value the subject entered for each field name in earlier applications."""
    rows = db.session.scalars(select(Application).where(
        Application.subject_id == subject_id, Application.service_code.is_not(None))
        .order_by(Application.submitted_at.desc(), Application.id.desc()).limit(HISTORY_DEPTH)).all()
    values: dict = {}
    for row in rows:
        for name, value in row.form.items():
            if value not in (None, "") and name not in values:
                values[name] = value
    return values


def _wallet_values(licenses: list[dict]) -> dict:
    """Field values of the holder's valid licenses (newest first), by license field name."""
    values: dict = {}
    for item in licenses:
        for name, value in (item.get("fields") or {}).items():
            if value not in (None, "") and name not in values:
                values[name] = value
    return values


def known_values(spec_fields, applicant: Actor, licenses: list[dict]) -> dict:
    """field name -> (value, source) for every field that can be prefilled."""
    profile = applicant.profile()
    history = _history_values(applicant.subject_id)
    wallet = _wallet_values(licenses)
    known = {}
    for spec in spec_fields:
        if spec.profile and spec.profile in profile:
            known[spec.name] = (profile[spec.profile], "profile")
        elif spec.name in history:
            known[spec.name] = (history[spec.name], "history")
        else:
            for candidate in (spec.name,) + WALLET_ALIASES.get(spec.name, ()):
                if candidate in wallet:
                    known[spec.name] = (wallet[candidate], "wallet")
                    break
        if spec.name in known and spec.type == "select" and known[spec.name][0] not in spec.options:
            del known[spec.name]  # an earlier answer that is not an option here
    return known


def mask_value(kind: str, value):
    if value is None:
        return None
    if kind == "id_number":
        return mask_id_number(str(value))
    if kind == "phone":
        return mask_phone(str(value))
    return value


def prefilled_fields(spec_fields, known: dict, *, reveal: bool) -> list[dict]:
    out = []
    for spec in spec_fields:
        value, source = known.get(spec.name, (None, None))
        item = spec.as_dict()
        item["prefill"] = value if reveal else mask_value(spec.type, value)
        item["prefill_source"] = source
        out.append(item)
    return out


# ---- validation


def _text(spec: FieldSpec, value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{spec.label}应为文本")
    text = str(value).strip()
    if TEXT_CONTROL_CHARACTERS.search(text):
        raise ValueError(spec.label + CONTROL_MESSAGE)
    return text


def _number(spec: FieldSpec, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{spec.label}应为数字")
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{spec.label}应为数字") from None
        if not parsed.is_finite():
            raise ValueError(f"{spec.label}应为数字")
        integral = parsed == parsed.to_integral_value() and not any(c in text for c in ".eE")
        return int(parsed) if integral else float(parsed)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{spec.label}应为数字")
    return value


def _date(spec: FieldSpec, value):
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value.strip()):
        raise ValueError(f"{spec.label}应为 YYYY-MM-DD 格式的日期")
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise ValueError(f"{spec.label}不是有效的日期") from None


def _select(spec: FieldSpec, value):
    if not isinstance(value, str) or value not in spec.options:  # options never hold control characters
        raise ValueError(f"{spec.label}应为以下选项之一：" + "、".join(spec.options))
    return value


def _identifier(normalizer, masker):
    def check(spec: FieldSpec, value, known=None):
        if not isinstance(value, str):
            raise ValueError(f"{spec.label}格式不正确")
        text = "".join(value.split())
        if "*" in text and known is not None and masker(str(known)) == text:
            text = str(known)  # the masked prefill sent back unchanged
        try:
            return normalizer(text)
        except IdentifierError as exc:
            raise ValueError(exc.message) from None
    return check


_CHECKS = {"text": _text, "number": _number, "date": _date, "select": _select}
_PII_CHECKS = {"id_number": _identifier(normalize_id_number, mask_id_number),
               "phone": _identifier(normalize_phone, mask_phone)}


def _check_size(values: dict) -> None:
    """422 for a form with too many fields, too long or nested values (the request schema has
    checked that it is an object with short field names)."""
    if len(values) > MAX_FORM_FIELDS:
        raise ValidationFailed.field("form", f"表单字段过多（最多 {MAX_FORM_FIELDS} 项）")
    errors = {}
    for name, value in values.items():
        if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
            errors[f"form.{name}"] = [f"内容过长（最多 {MAX_VALUE_LENGTH} 个字符）"]
        elif isinstance(value, (dict, list)):
            errors[f"form.{name}"] = ["应为单个值"]
    if errors:
        raise ValidationFailed("表单内容超出限制", errors=errors)


def validate_form(spec_fields, values: dict, *, known: dict | None = None, applicant: Actor | None = None) -> dict:
    """Clean values for `spec_fields`; 422 naming `form.<field>` for every problem.

    `known` (field -> (value, source)) lets masked prefills be sent back. With `applicant`,
    fields prefilled from the identity profile (`id_number`, `credit_code`) must be the
    applicant's own: nobody applies in another person's name.
    """
    _check_size(values)
    known = known or {}
    by_name = {spec.name: spec for spec in spec_fields}
    errors: dict[str, list[str]] = {}
    clean: dict = {}
    for name in values:
        if name not in by_name:
            errors[f"form.{name}"] = ["该事项的表单没有此字段"]
    for spec in spec_fields:
        raw = values.get(spec.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if spec.required:
                errors[f"form.{spec.name}"] = [f"缺少必填项：{spec.label}"]
            continue
        try:
            if spec.type in _PII_CHECKS:
                value = _PII_CHECKS[spec.type](spec, raw, known.get(spec.name, (None,))[0])
            else:
                value = _CHECKS.get(spec.type, _text)(spec, raw)
        except ValueError as exc:
            errors[f"form.{spec.name}"] = [str(exc)]
            continue
        if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
            errors[f"form.{spec.name}"] = [f"内容过长（最多 {MAX_VALUE_LENGTH} 个字符）"]
            continue
        clean[spec.name] = value
    if applicant is not None:
        profile = applicant.profile()
        for spec in spec_fields:
            value = clean.get(spec.name)
            if value is None or f"form.{spec.name}" in errors:
                continue
            if spec.profile == "id_number" and value != profile.get("id_number"):
                errors[f"form.{spec.name}"] = [f"{spec.label}须为申请人（经办人）本人的公民身份号码"]
            elif spec.profile == "credit_code":
                try:
                    value = clean[spec.name] = normalize_credit_code(value)
                except IdentifierError as exc:
                    errors[f"form.{spec.name}"] = [exc.message]
                    continue
                if "credit_code" in profile and value != profile["credit_code"]:
                    errors[f"form.{spec.name}"] = [f"{spec.label}须为申请企业的统一社会信用代码"]
    errors.update(_delivery_errors(by_name, clean))
    if errors:
        first = next(iter(errors.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", errors=errors)
    return clean


def _delivery_errors(by_name: dict, clean: dict) -> dict:
    """领取方式 邮政寄递 needs the address to post the result to."""
    if clean.get(DELIVERY_FIELD) != POSTAL_DELIVERY or clean.get(MAIL_ADDRESS_FIELD):
        return {}
    spec = by_name.get(MAIL_ADDRESS_FIELD)
    label = spec.label if spec is not None else "邮寄地址"
    return {f"form.{MAIL_ADDRESS_FIELD}": [f"领取方式为邮政寄递时须填写{label}"]}


# ---- materials (the checks that need neither the wallet nor the credit registry)


def material_kind(entry: dict) -> str:
    if entry.get("license_id"):
        return LICENSE
    if entry.get("file_id"):
        return FILE
    if entry.get("commitment"):
        return COMMITMENT
    return MISSING


def check_material_entries(material_specs, entries: list[dict], *, credit_class: str | None,
                           service_label: str | None = None) -> None:
    """Check the 免证办, 告知承诺 and 容缺 rules of `entries` (each naming a different material of
    the service) and that every required material is listed (by license, file, commitment or
    as missing)."""
    by_name = {spec.name: spec for spec in material_specs}
    errors: dict[str, list[str]] = {}
    suffix = f"（{service_label}）" if service_label else ""
    for index, entry in enumerate(entries):
        key, name = f"materials[{index}]", entry["name"]
        spec, kind = by_name[name], material_kind(entry)
        if kind == LICENSE and not spec.license_type_code:
            errors[key] = [f"材料「{name}」没有对应的电子证照，不能以证照代替{suffix}"]
        elif kind == COMMITMENT:
            if not spec.commitment_allowed:
                errors[key] = [f"材料「{name}」不适用告知承诺制{suffix}"]
            elif credit_class == SEVERE_DISCREDIT:
                errors[key] = ["申请人信用等级为严重失信，不适用告知承诺制"]
        elif kind == MISSING and spec.core:
            errors[key] = [f"材料「{name}」是核心材料，不能容缺后补{suffix}"]
    listed = {entry["name"] for entry in entries}
    absent = [spec.name for spec in material_specs if spec.required and spec.name not in listed]
    if absent:
        errors["materials"] = ["缺少必需材料：" + "、".join(absent) + suffix]
    if errors:
        first = next(iter(errors.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", errors=errors)
