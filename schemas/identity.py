"""Schemas of the identity domain: registration, SMS codes, tokens, profile, companies, agents.

Input fields normalise and validate identifiers (GB 11643 ID numbers, GB 32100 credit codes,
mainland mobile numbers) with Chinese messages naming the field; unknown fields are
rejected. Masked values are produced here, from the plaintext the service hands over.
"""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates_schema

from app.identity.identifiers import IdentifierError, normalize_credit_code, normalize_id_number, normalize_phone
from app.identity.models import AGENT_SCOPES, CHANNELS
from app.identity.sms import PURPOSES
from app.security.passwords import PasswordPolicyError, check_policy
from app.security.pii import mask_id_number, mask_phone
from app.timeutil import BEIJING, as_aware, isoformat_z, utcnow

from .common import StrictSchema, labelled

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
    "reveal": "是否显示完整信息", "subject_id": "授权人标识",
    "sms_code": "短信验证码", "new_password": "新密码", "old_password": "原密码", "old_sms_code": "原手机号的短信验证码",
}


_messages = labelled(LABELS)
REAL_NAME_LEVELS = "实名等级：1 = 手机号已验证；2 = 姓名与身份证号码经户籍库核验；3 = 通过人脸识别核验"


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


def _sms_code(name: str = "sms_code", *, required: bool = True, description: str | None = None):
    return fields.String(required=required, load_only=True, error_messages=_messages(name),
                         validate=validate.Regexp(r"^[0-9]{6}$", error="验证码应为6位数字"),
                         metadata={"description": description or "短信验证码（6位数字）", "example": "123456"})


def _new_password(name: str = "password"):
    return fields.String(required=True, load_only=True, validate=_password_policy, error_messages=_messages(name),
                         metadata={"description": "至少8位，须同时包含字母和数字", "example": "Shandong2025"})


class RegisterSchema(StrictSchema):
    id_number = IdNumber(required=True, error_messages=_messages("id_number"),
                         metadata={"description": "居民身份证号码（GB 11643）", "example": "11010519491231002X"})
    name = PersonName(required=True, error_messages=_messages("name"), metadata={"example": "张三"})
    phone = Phone(required=True, error_messages=_messages("phone"), metadata={"example": "13800138000"})
    sms_code = _sms_code(description="发送到 phone、用途为 register 的短信验证码")
    password = _new_password()


class SmsCodeRequestSchema(StrictSchema):
    phone = Phone(required=True, error_messages=_messages("phone"), metadata={"example": "13800138000"})
    purpose = fields.String(required=True, error_messages=_messages("purpose"),
                            validate=validate.OneOf(PURPOSES, error="用途应为 " + "、".join(PURPOSES)),
                            metadata={"enum": list(PURPOSES)})


class PasswordResetSchema(StrictSchema):
    phone = Phone(required=True, error_messages=_messages("phone"), metadata={"example": "13800138000"})
    sms_code = _sms_code(description="发送到 phone、用途为 reset_password 的短信验证码")
    new_password = _new_password("new_password")


class PasswordChangeSchema(StrictSchema):
    """`old_password`, or for an account that has no password yet, `sms_code`."""

    old_password = fields.String(load_only=True, error_messages=_messages("old_password"),
                                 validate=validate.Length(min=1, max=128, error="原密码长度不正确"),
                                 metadata={"description": "原密码（已设置密码的账号必填）"})
    sms_code = _sms_code(required=False, description="尚未设置密码的账号（经小程序注册）：发送到本人手机号、"
                                                     "用途为 reset_password 的短信验证码")
    new_password = _new_password("new_password")

    @validates_schema
    def _one_proof(self, data, **kwargs):
        if "old_password" in data and "sms_code" in data:
            raise ValidationError({"sms_code": ["请只提供原密码或短信验证码之一"]})


class PhoneChangeSchema(StrictSchema):
    old_sms_code = _sms_code("old_sms_code", required=False,
                             description="发送到当前手机号、用途为 change_phone 的短信验证码（账号已登记手机号时必填）")
    phone = Phone(required=True, error_messages=_messages("phone"),
                  metadata={"description": "新手机号", "example": "13912345678"})
    sms_code = _sms_code(description="发送到新手机号、用途为 change_phone 的短信验证码")
    password = fields.String(load_only=True, error_messages=_messages("password"),
                             validate=validate.Length(min=1, max=128, error="密码长度不正确"),
                             metadata={"description": "仅账号未登记手机号时使用：登录密码"})


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
    refresh_token = fields.String(load_only=True, error_messages=_messages("refresh_token"),
                                  validate=validate.Length(min=1, max=200, error="刷新令牌格式不正确"),
                                  metadata={"description": "可选：带访问令牌时可省略"})


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
    """Exactly one of `credit_code` (act for a company) and `subject_id` (act for a person who
    made the caller their family proxy, 亲友代办)."""

    credit_code = CreditCode(error_messages=_messages("credit_code"), metadata={"example": "91110000600037341L"})
    subject_id = fields.String(error_messages=_messages("subject_id"), validate=validate.Regexp(
        r"^p_[0-9a-f]{20}$", error="授权人标识应为 p_ 开头的用户标识"), metadata={"example": "p_3f9c2a7b1e4d5c6a8b90"})

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("credit_code" in data) == ("subject_id" in data):
            message = "credit_code 与 subject_id 须且只能提供其一"
            raise ValidationError({"credit_code": [message], "subject_id": [message]})


# ---- responses


class PersonSchema(Schema):
    """A registered person, ID number masked."""

    subject_id = fields.String(metadata={"example": "p_3f9c2a7b1e4d5c6a8b90"})
    subject_type = fields.Constant("person", metadata={"type": "string"})
    id_number_masked = fields.Function(lambda person: mask_id_number(person.id_number),
                                       metadata={"type": "string", "nullable": True, "example": "110105********002X"})
    name = fields.String(metadata={"example": "张三"})
    real_name_level = fields.Integer(metadata={"description": REAL_NAME_LEVELS, "example": 2})


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
    role = fields.String(metadata={"enum": ["representative", "agent", "proxy"]})
    scopes = fields.List(fields.String())


class MeSchema(Schema):
    """The caller. For a company token: the person acting, and `acting_for` the company."""

    subject_id = fields.String()
    subject_type = fields.String(metadata={"enum": ["person", "client"]})
    name = fields.String(allow_none=True)
    id_number_masked = fields.Function(lambda me: mask_id_number(me.get("id_number")),
                                       metadata={"type": "string", "nullable": True, "example": "110105********002X"})
    phone_masked = fields.Function(lambda me: mask_phone(me.get("phone")), metadata={"type": "string", "nullable": True, "example": "138****8000"})
    id_number = fields.String(metadata={"description": "仅在 reveal=true 时返回"})
    phone = fields.String(metadata={"description": "仅在 reveal=true 时返回"})
    real_name_level = fields.Integer(allow_none=True, metadata={"description": REAL_NAME_LEVELS})
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

    subject_id = fields.Function(lambda item: item["enterprise"].subject_id, metadata={"type": "string"})
    credit_code = fields.Function(lambda item: item["enterprise"].credit_code,
                                  metadata={"type": "string", "example": "91110000600037341L"})
    name = fields.Function(lambda item: item["enterprise"].name, metadata={"type": "string"})
    role = fields.String(metadata={"enum": ["representative", "agent"]})
    scopes = fields.List(fields.String())
    expires_at = UtcDateTime(allow_none=True, metadata={"description": "经办人授权的截止时间"})
    claimed_at = fields.Function(lambda item: isoformat_z(item["enterprise"].claimed_at), metadata={"type": "string", "format": "date-time", "nullable": True})


class EnterpriseListSchema(Schema):
    items = fields.List(fields.Nested(EnterpriseSchema))


class AgentSchema(Schema):
    """One agent grant; the agent's ID number masked."""

    agent_id = fields.String(metadata={"example": "ag_0c1d2e3f4a5b6c7d8e9f"})
    credit_code = fields.Function(lambda grant: grant.enterprise.credit_code, metadata={"type": "string"})
    id_number_masked = fields.Function(lambda grant: mask_id_number(grant.agent_id_number), metadata={"type": "string", "nullable": True})
    scopes = fields.List(fields.String())
    expires_at = UtcDateTime()
    created_at = UtcDateTime()
    revoked_at = UtcDateTime(allow_none=True)
    status = fields.Function(lambda grant: _grant_status(grant), metadata={"type": "string", "enum": ["active", "expired", "revoked"]})


class AgentListSchema(Schema):
    items = fields.List(fields.Nested(AgentSchema))


def _grant_status(grant) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    return "active" if as_aware(grant.expires_at) > utcnow() else "expired"


class SessionSchema(Schema):
    """One sign-in (a refresh-token family)."""

    session_id = fields.String(metadata={"example": "9f3c2a7b1e4d5c6a8b90a1b2c3d4e5f6"})
    created_at = UtcDateTime()
    last_used_at = UtcDateTime(metadata={"description": "最近一次登录或刷新令牌的时间"})
    channel = fields.String(metadata={"enum": list(CHANNELS)})
    current = fields.Boolean(metadata={"description": "是否为本次请求所用的会话"})
    acting_for = fields.String(allow_none=True, metadata={"description": "以企业或被代办人身份办事的会话：其主体标识"})


class SessionListSchema(Schema):
    items = fields.List(fields.Nested(SessionSchema))


class PhoneChangedSchema(Schema):
    phone_masked = fields.Function(lambda body: mask_phone(body["phone"]), metadata={"type": "string", "nullable": True, "example": "139****5678"})


class FaceVerificationSchema(Schema):
    """A face check (real-name level 3) at the face-check provider."""

    verification_id = fields.String(metadata={"example": "fv_0c1d2e3f4a5b6c7d8e9f"})
    status = fields.String(metadata={"enum": ["pending", "passed", "failed", "expired"]})
    url = fields.String(allow_none=True, metadata={
        "description": "待核验时：在手机浏览器中打开的人脸核验页面地址（由核验服务商提供）"})
    expires_at = UtcDateTime()
    completed_at = UtcDateTime(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "未通过时服务商给出的原因"})
    real_name_level = fields.Integer(metadata={"description": REAL_NAME_LEVELS})

