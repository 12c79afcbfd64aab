"""Schemas of the identity domain: registration, SMS codes, tokens, profile, companies, agents.

Input fields normalise and validate identifiers (GB 11643 ID numbers, GB 32100 credit codes,
mainland mobile numbers) with Chinese messages naming the field; unknown fields are
rejected. Masked values are produced here, from the plaintext the service hands over.
"""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates_schema

from app.identity.identifiers import IdentifierError, normalize_credit_code, normalize_id_number, normalize_phone
from app.identity.service import AGENT_SCOPES
from app.security.passwords import PasswordPolicyError, check_policy
from app.security.pii import mask_id_number, mask_phone
from app.timeutil import BEIJING, as_aware, isoformat_z, utcnow

GRANT_TYPES = ("password", "sms", "refresh_token", "client_credentials")
GRANT_FIELDS = {
    "password": ("username", "password"),
    "sms": ("phone", "code"),
    "refresh_token": ("refresh_token",),
    "client_credentials": ("client_id", "client_secret"),
}
LABELS = {
    "id_number": "身份证号码", "name": "姓名", "phone": "手机号码", "password": "密码",
    "purpose": "用途", "grant_type": "授权方式", "username": "用户名", "code": "验证码",
    "refresh_token": "刷新令牌", "client_id": "客户端标识", "client_secret": "客户端密钥",
    "credit_code": "统一社会信用代码", "scopes": "授权范围", "expires_at": "授权截止时间",
    "reveal": "是否显示完整信息",
}


def _messages(name: str, **extra) -> dict:
    label = LABELS.get(name, name)
    return {"required": f"缺少必填字段：{label}", "null": f"{label}不能为空",
            "invalid": f"{label}格式不正确", **extra}


class StrictSchema(Schema):
    """Unknown fields are rejected with a Chinese message."""

    error_messages = {"unknown": "不允许的字段", "type": "请求体应为 JSON 对象"}


class _Normalized(fields.String):
    normalizer = staticmethod(lambda value: value)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return self.normalizer(text)
        except IdentifierError as exc:
            raise ValidationError(exc.message) from None


class IdNumber(_Normalized):
    """GB 11643-1999 resident ID number, returned upper-cased without spaces."""

    normalizer = staticmethod(normalize_id_number)


class CreditCode(_Normalized):
    """GB 32100-2015 unified social credit code."""

    normalizer = staticmethod(normalize_credit_code)


class Phone(_Normalized):
    """Mainland mobile number, returned as 11 digits."""

    normalizer = staticmethod(normalize_phone)


class PersonName(fields.String):
    """A person's name as registered (1-50 characters, no digits)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            raise ValidationError("姓名不能为空")
        if len(text) > 50 or any(ch.isdigit() for ch in text):
            raise ValidationError("姓名格式不正确")
        return text


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC with a Z suffix on output (SQLite hands back naive UTC values)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return isoformat_z(value)


def _password_policy(value: str) -> None:
    try:
        check_policy(value)
    except PasswordPolicyError as exc:
        raise ValidationError(exc.message) from None


# ---- requests


class RegisterSchema(StrictSchema):
    id_number = IdNumber(required=True, error_messages=_messages("id_number"),
                         metadata={"description": "居民身份证号码（GB 11643）", "example": "11010519491231002X"})
    name = PersonName(required=True, error_messages=_messages("name"), metadata={"example": "张三"})
    phone = Phone(required=True, error_messages=_messages("phone"), metadata={"example": "13800138000"})
    password = fields.String(required=True, load_only=True, validate=_password_policy,
                             error_messages=_messages("password"),
                             metadata={"description": "至少8位，须同时包含字母和数字", "example": "Shandong2025"})


class SmsCodeRequestSchema(StrictSchema):
    phone = Phone(required=True, error_messages=_messages("phone"), metadata={"example": "13800138000"})
    purpose = fields.String(required=True, error_messages=_messages("purpose"),
                            validate=validate.OneOf(["login", "register", "bind"],
                                                    error="用途应为 login、register 或 bind"),
                            metadata={"enum": ["login", "register", "bind"]})


class TokenRequestSchema(StrictSchema):
    """`grant_type` and exactly the fields of that grant."""

    grant_type = fields.String(required=True, error_messages=_messages("grant_type"),
                               validate=validate.OneOf(GRANT_TYPES, error="授权方式应为 " + "、".join(GRANT_TYPES)),
                               metadata={"enum": list(GRANT_TYPES)})
    username = fields.String(error_messages=_messages("username"), validate=validate.Length(
        min=1, max=64, error="用户名长度不正确"), metadata={"description": "身份证号码或手机号码"})
    password = fields.String(load_only=True, error_messages=_messages("password"),
                             validate=validate.Length(min=1, max=128, error="密码长度不正确"))
    phone = Phone(error_messages=_messages("phone"))
    code = fields.String(error_messages=_messages("code"),
                         validate=validate.Regexp(r"^[0-9]{6}$", error="验证码应为6位数字"))
    refresh_token = fields.String(load_only=True, error_messages=_messages("refresh_token"),
                                  validate=validate.Length(min=1, max=200, error="刷新令牌格式不正确"))
    client_id = fields.String(error_messages=_messages("client_id"),
                              validate=validate.Length(min=1, max=64, error="客户端标识格式不正确"))
    client_secret = fields.String(load_only=True, error_messages=_messages("client_secret"),
                                  validate=validate.Length(min=1, max=200, error="客户端密钥格式不正确"))

    @validates_schema
    def _fields_of_grant(self, data, **kwargs):
        grant = data.get("grant_type")
        if grant not in GRANT_FIELDS:
            return
        wanted = GRANT_FIELDS[grant]
        errors = {}
        for name in wanted:
            if not data.get(name):
                errors[name] = [f"使用 {grant} 授权方式时必须提供{LABELS[name]}"]
        for name in set(LABELS).intersection(data) - set(wanted) - {"grant_type"}:
            errors[name] = [f"{grant} 授权方式不接受{LABELS[name]}"]
        if errors:
            raise ValidationError(errors)


class LogoutSchema(StrictSchema):
    refresh_token = fields.String(required=True, load_only=True, error_messages=_messages("refresh_token"),
                                  validate=validate.Length(min=1, max=200, error="刷新令牌格式不正确"))


class MeArgsSchema(StrictSchema):
    reveal = fields.Boolean(load_default=False, error_messages=_messages("reveal", invalid="reveal 应为 true 或 false"),
                            metadata={"description": "为 true 时返回本人完整的身份证号码和手机号码（记入审计）"})


class EnterpriseCreateSchema(StrictSchema):
    credit_code = CreditCode(required=True, error_messages=_messages("credit_code"),
                             metadata={"example": "91110000600037341L"})
    name = fields.String(required=True, error_messages=_messages("name", **{"null": "企业名称不能为空"}),
                         validate=validate.Length(min=1, max=200, error="企业名称长度应为1至200个字符"),
                         metadata={"example": "示例科技有限公司"})


class AgentCreateSchema(StrictSchema):
    id_number = IdNumber(required=True, error_messages=_messages("id_number"),
                         metadata={"description": "经办人居民身份证号码"})
    scopes = fields.List(
        fields.String(validate=validate.OneOf(AGENT_SCOPES, error="授权范围应为 " + "、".join(AGENT_SCOPES))),
        required=True, validate=validate.Length(min=1, max=len(AGENT_SCOPES), error="授权范围至少一项"),
        error_messages=_messages("scopes"), metadata={"example": ["applications:submit", "applications:read"]})
    expires_at = fields.AwareDateTime(required=True, default_timezone=BEIJING, error_messages=_messages(
        "expires_at", invalid="授权截止时间应为 ISO 8601 日期时间"),
        metadata={"description": "ISO 8601；不带时区时按北京时间", "example": "2026-12-31T23:59:59+08:00"})


class ActAsSchema(StrictSchema):
    credit_code = CreditCode(required=True, error_messages=_messages("credit_code"),
                             metadata={"example": "91110000600037341L"})


# ---- responses


class PersonSchema(Schema):
    """A registered person, ID number masked."""

    subject_id = fields.String(metadata={"example": "p_3f9c2a7b1e4d5c6a8b90"})
    subject_type = fields.Constant("person")
    id_number_masked = fields.Function(lambda person: mask_id_number(person.id_number),
                                       metadata={"example": "110105********002X"})
    name = fields.String(metadata={"example": "张三"})
    real_name_level = fields.Integer(metadata={"description": "实名等级：2 = 姓名与身份证号码经户籍库核验",
                                               "example": 2})


class SmsCodeSentSchema(Schema):
    expires_in = fields.Integer(metadata={"example": 300})
    resend_after = fields.Integer(metadata={"example": 60})


class TokenPairSchema(Schema):
    access_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"example": 900})
    refresh_token = fields.String(metadata={"description": "客户端凭证授权不返回刷新令牌"})


class BindingSchema(Schema):
    channel = fields.String(metadata={"enum": ["wechat", "alipay"]})
    bound_at = UtcDateTime(attribute="created_at")


class ActingForSchema(Schema):
    subject_id = fields.String()
    credit_code = fields.String()
    name = fields.String()
    role = fields.String(metadata={"enum": ["representative", "agent"]})
    scopes = fields.List(fields.String())


class MeSchema(Schema):
    """The caller. For a company token: the person acting, and `acting_for` the company."""

    subject_id = fields.String()
    subject_type = fields.String(metadata={"enum": ["person", "client"]})
    name = fields.String(allow_none=True)
    id_number_masked = fields.Function(lambda me: mask_id_number(me.get("id_number")),
                                       metadata={"example": "110105********002X"})
    phone_masked = fields.Function(lambda me: mask_phone(me.get("phone")), metadata={"example": "138****8000"})
    id_number = fields.String(metadata={"description": "仅在 reveal=true 时返回"})
    phone = fields.String(metadata={"description": "仅在 reveal=true 时返回"})
    real_name_level = fields.Integer(allow_none=True)
    roles = fields.List(fields.String())
    halls = fields.Dict(keys=fields.String(), values=fields.String())
    bindings = fields.List(fields.Nested(BindingSchema))
    acting_for = fields.Nested(ActingForSchema, allow_none=True)

    @post_dump(pass_original=True)
    def _full_values_only_when_asked(self, data, original, **kwargs):
        if not original.get("reveal"):
            data.pop("id_number", None)
            data.pop("phone", None)
        if not data.get("halls"):
            data.pop("halls", None)
        return data


class EnterpriseSchema(Schema):
    """A company and the caller's relation to it."""

    subject_id = fields.Function(lambda item: item["enterprise"].subject_id)
    credit_code = fields.Function(lambda item: item["enterprise"].credit_code,
                                  metadata={"example": "91110000600037341L"})
    name = fields.Function(lambda item: item["enterprise"].name)
    role = fields.String(metadata={"enum": ["representative", "agent"]})
    scopes = fields.List(fields.String())
    expires_at = UtcDateTime(allow_none=True, metadata={"description": "经办人授权的截止时间"})
    claimed_at = fields.Function(lambda item: isoformat_z(item["enterprise"].claimed_at))


class EnterpriseListSchema(Schema):
    items = fields.List(fields.Nested(EnterpriseSchema))


class AgentSchema(Schema):
    """One agent grant; the agent's ID number masked."""

    agent_id = fields.String(metadata={"example": "ag_0c1d2e3f4a5b6c7d8e9f"})
    credit_code = fields.Function(lambda grant: grant.enterprise.credit_code)
    id_number_masked = fields.Function(lambda grant: mask_id_number(grant.agent_id_number))
    scopes = fields.List(fields.String())
    expires_at = UtcDateTime()
    created_at = UtcDateTime()
    revoked_at = UtcDateTime(allow_none=True)
    status = fields.Function(lambda grant: _grant_status(grant), metadata={"enum": ["active", "expired", "revoked"]})


class AgentListSchema(Schema):
    items = fields.List(fields.Nested(AgentSchema))


def _grant_status(grant) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    return "active" if as_aware(grant.expires_at) > utcnow() else "expired"

