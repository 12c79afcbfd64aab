"""Schemas of the account's own affairs: personal-data exports, closing the account, family proxies."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.identity.account_models import PROXY_SCOPES

from .common import StrictSchema, labelled
from .identity import AgentCreateSchema, IdNumber, PersonName, UtcDateTime

LABELS = {"password": "登录密码", "sms_code": "短信验证码", "id_number": "代办人身份证号码", "name": "代办人姓名",
          "scopes": "授权范围", "expires_at": "授权截止时间"}
_messages = labelled(LABELS)
GRANT_STATUSES = ["active", "expired", "revoked"]


class DataExportCreatedSchema(Schema):
    export_id = fields.String(metadata={"example": "ex_5d1c0e9a7b3f2e4d6c8a"})
    status = fields.String(metadata={"enum": ["pending", "ready"]})


class DataExportSchema(DataExportCreatedSchema):
    """An export: `data` holds everything kept about the caller once `status` is ready."""

    data = fields.Dict(allow_none=True, metadata={
        "description": "个人信息副本（含完整身份证号码、手机号码）：profile、bindings、sessions、applications、"
                       "licenses、license_access_log、inbox、consents、appointments、complaints 等"})
    created_at = UtcDateTime()
    expires_at = UtcDateTime(metadata={"description": "导出副本保留至此时间，之后删除"})


class AccountCloseSchema(StrictSchema):
    """Exactly one of `password` and `sms_code` (sent with purpose `login`)."""

    password = fields.String(load_only=True, error_messages=_messages("password"),
                             validate=validate.Length(min=1, max=128, error="登录密码长度不正确"))
    sms_code = fields.String(load_only=True, error_messages=_messages("sms_code"),
                             validate=validate.Regexp(r"^[0-9]{6}$", error="短信验证码应为6位数字"))


class ProxyCreateSchema(AgentCreateSchema):
    """A relative named by ID number and name, the scopes and the end of the grant (at most a year)."""

    id_number = IdNumber(required=True, error_messages=_messages("id_number"),
                         metadata={"description": "代办人（亲友）的居民身份证号码", "example": "37010219850315123X"})
    name = PersonName(required=True, error_messages=_messages("name"), metadata={"example": "王芳"})
    scopes = fields.List(
        fields.String(validate=validate.OneOf(PROXY_SCOPES, error="授权范围应为 " + "、".join(PROXY_SCOPES))),
        required=True, validate=validate.Length(min=1, max=len(PROXY_SCOPES), error="授权范围至少一项"),
        error_messages=_messages("scopes"), metadata={"example": ["applications:submit", "licenses:present"]})


class ProxyGrantedSchema(Schema):
    """A grant the caller gave; the relative's ID number masked."""

    proxy_id = fields.String(attribute="grant.proxy_id", metadata={"example": "px_0c1d2e3f4a5b6c7d8e9f"})
    grantee_name = fields.String(attribute="grant.grantee_name", metadata={"example": "王芳"})
    grantee_id_number_masked = fields.String(attribute="grant.grantee_id_number_masked",
                                             metadata={"example": "370102********123X"})
    scopes = fields.List(fields.String(), attribute="grant.scopes")
    expires_at = UtcDateTime(attribute="grant.expires_at")
    created_at = UtcDateTime(attribute="grant.created_at")
    revoked_at = UtcDateTime(attribute="grant.revoked_at", allow_none=True)
    status = fields.String(metadata={"enum": GRANT_STATUSES})


class ProxyReceivedSchema(Schema):
    """A live grant the caller received: act for `grantor_subject_id` through POST /auth/act-as."""

    proxy_id = fields.String(attribute="grant.proxy_id", metadata={"example": "px_0c1d2e3f4a5b6c7d8e9f"})
    grantor_subject_id = fields.String(attribute="grant.grantor_subject_id", metadata={"example": "p_3f9c2a7b1e4d5c6a8b90"})
    grantor_name = fields.String(metadata={"description": "授权人姓名（脱敏）", "example": "张*"})
    scopes = fields.List(fields.String(), attribute="grant.scopes")
    expires_at = UtcDateTime(attribute="grant.expires_at")
    created_at = UtcDateTime(attribute="grant.created_at")
    status = fields.String(metadata={"enum": GRANT_STATUSES})


class ProxyListSchema(Schema):
    granted = fields.List(fields.Nested(ProxyGrantedSchema), metadata={"description": "我授权的亲友"})
    received = fields.List(fields.Nested(ProxyReceivedSchema), metadata={"description": "授权我代办的亲友（有效的）"})
