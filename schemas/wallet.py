"""Schemas of the wallet domain (电子证照): license types, issuance, status, the holder's wallet,
presentations (亮证), verifications and the access log.

Sensitive field values are masked here, from the plaintext the service hands over: ID numbers
`370102********8819`, phone numbers `138****5678`, other sensitive text keeps a short head.
"""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.security.pii import mask_credit_code, mask_id_number, mask_phone
from app.wallet.models import (DEFAULT_TTL, LICENSE_STATUSES, MAX_TTL, MIN_TTL, MODES, WALLET_STATUSES,
                               effective_status)

from .common import PageArgsSchema, PageSchema, StrictSchema, labelled, printable
from .identity import CreditCode, IdNumber, UtcDateTime, _messages

LICENSE_ID_EXAMPLE = "lic_9f2c4e1a7b3d5f60a1b2c3d4e5f60718"
IDENTIFIER_EXAMPLE = "1.2.156.3005.2.11100000000013100M001.11370100MB2856017X.2025123456789.001.K"
LABELS = {"license_type": "证照类型", "holder_id_number": "持证人身份证号码",
          "holder_credit_code": "持证主体统一社会信用代码", "fields": "证照字段", "valid_from": "有效期起始日期",
          "valid_until": "有效期截止日期", "status": "状态", "reason": "原因", "disclose": "亮证字段",
          "purpose": "用途", "mode": "亮证方式", "ttl_seconds": "有效时长", "code": "亮证码", "sd_jwt": "SD-JWT",
          "require_device_binding": "是否要求设备绑定", "name": "名称", "jwk": "设备公钥", "device_id": "设备",
          "license_id": "证照"}
REASONS = ("expired", "used", "revoked", "suspended", "bad_signature", "unknown", "cancelled", "device_removed",
           "device_binding_required", "wrong_nonce", "wrong_audience", "wrong_type")

_msg = labelled(LABELS)


def mask_text(value: str) -> str:
    """Sensitive free text (address, VIN, engine number...): a short head, the rest starred."""
    if len(value) <= 2:
        return "*" * len(value)
    head = min(6, len(value) // 3)
    tail = min(4, len(value) // 4) if value.isascii() else 0
    return value[:head] + "*" * (len(value) - head - tail) + (value[len(value) - tail:] if tail else "")


def mask_field(field: dict, value):
    """The display form of one field value for someone who did not ask for the full value."""
    if value is None or not isinstance(value, str):
        return value
    if field["type"] == "id_number":
        return mask_id_number(value)
    if "phone" in field["name"] or "mobile" in field["name"]:
        return mask_phone(value)
    if field.get("sensitive"):
        return mask_text(value)
    return value


# ---- license types


class LicenseFieldSchema(Schema):
    name = fields.String(metadata={"example": "id_number"})
    label = fields.String(metadata={"example": "公民身份号码"})
    type = fields.String(metadata={"enum": ["text", "date", "number", "id_number"]})
    sensitive = fields.Boolean()


class LicenseTypeSchema(Schema):
    """One entry of the license catalogue."""

    code = fields.String(metadata={"example": "11100000000013100M001"})
    name = fields.String(metadata={"example": "居民身份证"})
    issuer_department = fields.String(metadata={"example": "县级人民政府公安机关"})
    holder_type = fields.String(metadata={"enum": ["person", "legal"]})
    defined_by = fields.String(allow_none=True)
    field_list = fields.List(fields.Nested(LicenseFieldSchema), attribute="fields", data_key="fields")
    default_disclose = fields.List(fields.String(), metadata={"description": "亮证时默认披露的最少字段"})
    validity_years = fields.Integer(allow_none=True)


class LicenseTypeListSchema(Schema):
    items = fields.List(fields.Nested(LicenseTypeSchema))


# ---- issuance and status (issuer clients)


class LicenseIssueSchema(StrictSchema):
    license_type = fields.String(required=True, validate=[validate.Length(min=1, max=32, error="证照类型编码不正确"),
                                                          printable],
                                 error_messages=_msg("license_type"),
                                 metadata={"example": "11100000000013100M001"})
    holder_id_number = IdNumber(error_messages=_messages("id_number"),
                                metadata={"description": "个人证照的持证人身份证号码", "example": "11010519491231002X"})
    holder_credit_code = CreditCode(error_messages=_messages("credit_code"),
                                    metadata={"description": "法人证照的统一社会信用代码"})
    field_values = fields.Dict(keys=fields.String(), required=True, data_key="fields", error_messages=_msg("fields"),
                         metadata={"description": "按证照类型定义的字段；持证人证件号、有效期等可省略，自动填写"})
    valid_from = fields.Date(required=True, error_messages=_msg("valid_from", invalid="有效期起始日期应为 YYYY-MM-DD"),
                             metadata={"example": "2025-01-01"})
    valid_until = fields.Date(required=True,
                              error_messages=_msg("valid_until", invalid="有效期截止日期应为 YYYY-MM-DD"),
                              metadata={"example": "2045-01-01"})

    @validates_schema
    def _one_holder(self, data, **kwargs):
        if bool(data.get("holder_id_number")) == bool(data.get("holder_credit_code")):
            message = "holder_id_number 与 holder_credit_code 须且仅须提供一个"
            raise ValidationError({"holder_id_number": [message], "holder_credit_code": [message]})


class IssuedLicenseSchema(Schema):
    license_id = fields.String(metadata={"example": LICENSE_ID_EXAMPLE})
    identifier = fields.String(metadata={"example": IDENTIFIER_EXAMPLE,
                                         "description": "GB/T 36904 证照标识（不含持证人信息）"})
    status = fields.String(metadata={"enum": list(LICENSE_STATUSES)})
    license_type = fields.String(attribute="license_type_code")
    valid_from = fields.Date()
    valid_until = fields.Date()
    issued_at = UtcDateTime()
    status_list = fields.Function(lambda lic: {"idx": lic.status_idx, "list_id": lic.status_list_id}, metadata={"type": "object"})


class LicenseStatusChangeSchema(StrictSchema):
    status = fields.String(required=True, error_messages=_msg("status"),
                           validate=validate.OneOf(LICENSE_STATUSES, error="状态应为 valid、suspended 或 revoked"),
                           metadata={"enum": list(LICENSE_STATUSES)})
    reason = fields.String(load_default=None, allow_none=True, error_messages=_msg("reason"),
                           validate=[validate.Length(max=200, error="原因不能超过200个字符"), printable])


class LicenseStatusSchema(Schema):
    license_id = fields.String()
    identifier = fields.String()
    status = fields.String(metadata={"enum": list(LICENSE_STATUSES)})
    reason = fields.String(attribute="status_reason", allow_none=True)
    changed_at = UtcDateTime(attribute="status_changed_at", allow_none=True)


# ---- the holder's wallet


class WalletArgsSchema(PageArgsSchema):
    license_type = fields.String(validate=validate.Length(min=1, max=32, error="证照类型编码不正确"))
    status = fields.String(validate=validate.OneOf(WALLET_STATUSES, error="状态应为 " + "、".join(WALLET_STATUSES)),
                           metadata={"enum": list(WALLET_STATUSES)})
    holder_id_number = IdNumber(error_messages=_messages("id_number"),
                                metadata={"description": "监护人查看未成年子女的证照时，子女的身份证号码"})


class WalletLicenseSchema(Schema):
    """One license in the wallet list."""

    license_id = fields.String(metadata={"example": LICENSE_ID_EXAMPLE})
    license_type = fields.String(attribute="license_type_code", metadata={"example": "11100000000013100M001"})
    name = fields.String(attribute="license_type_name", metadata={"example": "居民身份证"})
    status = fields.Function(effective_status, metadata={"type": "string", "enum": list(WALLET_STATUSES)})
    valid_from = fields.Date()
    valid_until = fields.Date()
    identifier = fields.String(metadata={"example": IDENTIFIER_EXAMPLE})
    issuer = fields.String(attribute="issuer_name")
    holder_type = fields.String(metadata={"enum": ["person", "legal"]})


class WalletLicensePageSchema(PageSchema):
    items = fields.List(fields.Nested(WalletLicenseSchema))


class LicenseDetailArgsSchema(StrictSchema):
    reveal = fields.Boolean(load_default=False, error_messages=_msg("reveal", invalid="reveal 应为 true 或 false"),
                            metadata={"description": "为 true 时返回完整字段值（记入审计）"})


def _detail_fields(item: dict) -> list[dict]:
    license, values, reveal = item["license"], item["values"], item["reveal"]
    out = []
    for field in license.license_type.fields:
        value = values.get(field["name"])
        out.append({"name": field["name"], "label": field["label"], "type": field["type"],
                    "sensitive": bool(field.get("sensitive")),
                    "value": value if reveal else mask_field(field, value)})
    return out


def _holder_masked(item: dict) -> str:
    license = item["license"]
    ref = license.holder_ref
    return mask_id_number(ref) if license.holder_type == "person" else mask_credit_code(ref)


class LicenseFieldValueSchema(LicenseFieldSchema):
    value = fields.Raw(allow_none=True, metadata={"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]})


class WalletLicenseDetailSchema(Schema):
    """One license with its field values (sensitive ones masked unless revealed)."""

    license_id = fields.Function(lambda item: item["license"].license_id, metadata={"type": "string"})
    license_type = fields.Function(lambda item: item["license"].license_type_code, metadata={"type": "string"})
    name = fields.Function(lambda item: item["license"].license_type.name, metadata={"type": "string"})
    status = fields.Function(lambda item: effective_status(item["license"]),
                             metadata={"type": "string", "enum": list(WALLET_STATUSES)})
    status_reason = fields.Function(lambda item: item["license"].status_reason, metadata={"type": "string", "nullable": True})
    valid_from = fields.Function(lambda item: item["license"].valid_from.isoformat(), metadata={"type": "string", "format": "date"})
    valid_until = fields.Function(lambda item: item["license"].valid_until.isoformat(), metadata={"type": "string", "format": "date"})
    identifier = fields.Function(lambda item: item["license"].identifier, metadata={"type": "string"})
    issuer = fields.Function(lambda item: {"name": item["license"].issuer_name,
                                           "credit_code": item["license"].issuer_credit_code}, metadata={"type": "object"})
    holder_type = fields.Function(lambda item: item["license"].holder_type, metadata={"type": "string"})
    holder_masked = fields.Function(_holder_masked, metadata={"type": "string", "nullable": True, "example": "370102********8819"})
    issued_at = fields.Function(lambda item: UtcDateTime()._serialize(item["license"].issued_at, None, None), metadata={"type": "string", "format": "date-time"})
    default_disclose = fields.Function(lambda item: list(item["license"].license_type.default_disclose), metadata={"type": "array", "items": {"type": "string"}})
    field_values = fields.Function(_detail_fields, data_key="fields", metadata={"type": "array", "items": {"type": "object"}, "description": "字段及其值（敏感字段默认脱敏）"})
    viewer_role = fields.String(metadata={"enum": ["holder", "guardian", "representative", "agent", "proxy"]})
    reveal = fields.Boolean()


# ---- presentations and verification


class PresentationCreateSchema(StrictSchema):
    disclose = fields.List(fields.String(validate=[validate.Length(min=1, max=64, error="字段名不正确"), printable]),
                           load_default=None, validate=validate.Length(max=64, error="字段过多"),
                           error_messages=_msg("disclose"),
                           metadata={"description": "要披露的字段名；省略时使用该证照类型的默认最少字段",
                                     "example": ["name", "valid_until"]})
    purpose = fields.String(required=True, error_messages=_msg("purpose"),
                            validate=[validate.Length(min=1, max=100, error="用途应为1至100个字符"), printable],
                            metadata={"example": "酒店入住登记"})
    mode = fields.String(load_default="online", error_messages=_msg("mode"),
                         validate=validate.OneOf(MODES, error="亮证方式应为 online 或 offline"),
                         metadata={"enum": list(MODES)})
    ttl_seconds = fields.Integer(load_default=DEFAULT_TTL, strict=True, error_messages=_msg("ttl_seconds"),
                                 validate=validate.Range(min=MIN_TTL, max=MAX_TTL,
                                                         error=f"有效时长应在{MIN_TTL}至{MAX_TTL}秒之间"),
                                 metadata={"example": DEFAULT_TTL})


class PresentationSchema(Schema):
    presentation_id = fields.String(metadata={"example": "pr_1a2b3c4d5e6f708192a3b4c5"})
    license_id = fields.String()
    mode = fields.String(metadata={"enum": list(MODES)})
    purpose = fields.String()
    disclose = fields.List(fields.String())
    expires_at = UtcDateTime()
    code = fields.String(metadata={"description": "在线亮证的一次性亮证码（仅 online）"})
    sd_jwt = fields.String(metadata={"description": "带持有人绑定的 SD-JWT VC（仅 offline）"})
    qr_svg = fields.String(metadata={"description": "二维码（SVG）"})
    qr_version = fields.Integer(metadata={"description": "二维码版本（1-40）"})


class VerificationRequestSchema(StrictSchema):
    code = fields.String(error_messages=_msg("code"), validate=validate.Length(max=200, error="亮证码格式不正确"))
    sd_jwt = fields.String(error_messages=_msg("sd_jwt"))
    require_device_binding = fields.Boolean(
        load_default=False, error_messages=_msg("require_device_binding"),
        metadata={"description": "为 true 时只接受持证人手机设备密钥生成的亮证（holder_binding 为 device）"})

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("code" in data) == ("sd_jwt" in data):
            message = "code 与 sd_jwt 须且仅须提供一个"
            raise ValidationError({"code": [message], "sd_jwt": [message]})


class VerificationResultSchema(Schema):
    valid = fields.Boolean()
    reason = fields.String(metadata={"enum": list(REASONS)})
    detail = fields.String()
    license_type = fields.String()
    license_name = fields.String()
    issuer = fields.String()
    issuer_credit_code = fields.String()
    identifier = fields.String()
    status = fields.String()
    valid_from = fields.String(metadata={"format": "date"})  # the card keeps it in ISO form
    valid_until = fields.String(metadata={"format": "date"})
    holder_name_masked = fields.String()
    purpose = fields.String()
    shown_by = fields.Dict()
    disclosure = fields.String(metadata={"enum": ["full", "basic"],
                                         "description": "full：已登记且获该证照类型授权的核验方；basic：其他"})
    disclosed = fields.Dict(metadata={"description": "full 时为持证人选择披露的字段；basic 时仅脱敏姓名"})
    holder_binding = fields.String(metadata={"enum": ["device", "platform"],
                                             "description": "持有人密钥：device 为持证人手机设备密钥，platform 为平台托管密钥"})
    request_status = fields.String(metadata={"enum": ["pending", "answered"],
                                             "description": "答复核验请求时：该请求是否已被本次答复"})


class AccessLogEntrySchema(Schema):
    at = UtcDateTime()
    verifier = fields.String(metadata={"example": "匿名"})
    purpose = fields.String(allow_none=True)
    disclosed = fields.List(fields.String())
    result = fields.String(metadata={"enum": ["valid", *REASONS]})
    shown_by = fields.Dict(allow_none=True)
    kind = fields.String(metadata={"enum": ["verification", "material"]})
    presentation_id = fields.String(allow_none=True)


class AccessLogPageSchema(PageSchema):
    items = fields.List(fields.Nested(AccessLogEntrySchema))


# ---- device keys and binding


class DeviceCreateSchema(StrictSchema):
    name = fields.String(required=True, error_messages=_msg("name"),
                         validate=[validate.Length(min=1, max=100, error="名称应为1至100个字符"), printable],
                         metadata={"example": "我的手机"})
    jwk = fields.Dict(required=True, error_messages=_msg("jwk", invalid="设备公钥应为 JWK 对象"),
                      metadata={"description": "手机生成的 EC P-256 公钥（JWK：kty、crv、x、y），不能含私钥"})


class DeviceSchema(Schema):
    device_id = fields.String(metadata={"example": "dev_0a1b2c3d4e5f60718293a4b5"})
    name = fields.String()
    status = fields.String(metadata={"enum": ["active", "removed", "lost"]})
    jwk = fields.Dict(attribute="public_jwk")
    jkt = fields.String(metadata={"description": "公钥的 RFC 7638 指纹"})
    created_at = UtcDateTime()
    removed_at = UtcDateTime(allow_none=True)


class DevicePageSchema(PageSchema):
    items = fields.List(fields.Nested(DeviceSchema))


class DeviceRemoveArgsSchema(StrictSchema):
    reason = fields.String(load_default="removed", validate=validate.OneOf(("removed", "lost"),
                                                                           error="原因应为 removed 或 lost"),
                           metadata={"enum": ["removed", "lost"], "description": "lost：挂失"})


class LicenseBindingCreateSchema(StrictSchema):
    device_id = fields.String(required=True, error_messages=_msg("device_id"),
                              validate=validate.Length(min=1, max=40, error="设备不存在"))


class LicenseBindingSchema(Schema):
    license_id = fields.String()
    device_id = fields.String()
    sd_jwt = fields.String(metadata={"description": "cnf.jwk 为设备公钥、holder_binding 为 device 的 SD-JWT VC，含全部披露"})


# ---- verifier-initiated requests


class VerifierRequestCreateSchema(StrictSchema):
    license_type = fields.String(required=True, error_messages=_msg("license_type"),
                                 validate=[validate.Length(min=1, max=32, error="证照类型编码不正确"), printable])
    field_names = fields.List(fields.String(validate=[validate.Length(min=1, max=64, error="字段名不正确"), printable]),
                              required=True, data_key="fields", error_messages=_msg("fields"),
                              validate=validate.Length(max=64, error="字段过多"),
                              metadata={"example": ["name", "id_number"]})
    purpose = fields.String(required=True, error_messages=_msg("purpose"),
                            validate=[validate.Length(min=1, max=100, error="用途应为1至100个字符"), printable])
    require_device_binding = fields.Boolean(load_default=False, error_messages=_msg("require_device_binding"))


class VerifierRequestCreatedSchema(Schema):
    request_id = fields.String(metadata={"example": "vr_0a1b2c3d4e5f60718293a4b5"})
    nonce = fields.String()
    aud = fields.String(metadata={"description": "KB-JWT 的 aud：核验方的 client_id"})
    expires_at = UtcDateTime()
    qr_svg = fields.String(metadata={"description": "openid4vp://?client_id=...&request_uri=... 的二维码"})
    qr_text = fields.String()
    request_uri = fields.String()
    response_uri = fields.String()
    request = fields.Dict(metadata={"description": "OpenID4VP 授权请求（DCQL 查询、direct_post）"})


class VerifierResponseSchema(StrictSchema):
    sd_jwt = fields.String(error_messages=_msg("sd_jwt"),
                           metadata={"description": "手机用设备密钥生成的亮证（nonce、aud 取自核验请求）"})
    license_id = fields.String(error_messages=_msg("license_id"), validate=validate.Length(max=40, error="证照不存在"))
    disclose = fields.List(fields.String(validate=[validate.Length(min=1, max=64, error="字段名不正确"), printable]),
                           load_default=None, error_messages=_msg("disclose"))

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("sd_jwt" in data) == ("license_id" in data):
            message = "sd_jwt 与 license_id 须且仅须提供一个"
            raise ValidationError({"sd_jwt": [message], "license_id": [message]})
        if "sd_jwt" in data and data.get("disclose") is not None:
            raise ValidationError({"disclose": ["使用 sd_jwt 答复时披露内容由亮证本身决定"]})


class VerifierRequestStatusSchema(Schema):
    request_id = fields.String()
    status = fields.String(metadata={"enum": ["pending", "answered", "expired"]})
    result = fields.Dict(allow_none=True, metadata={"description": "核验结果（valid、license_type、disclosed 等）"})
    license_type = fields.String()
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields")
    purpose = fields.String()
    expires_at = UtcDateTime()
    answered_at = UtcDateTime(allow_none=True)
