"""Schemas of the mini-program channels (WeChat, Alipay) and the signed open API.

Requests reject unknown fields; the phone number handed back is masked here, from the
person the service returns.
"""
from __future__ import annotations

import time

from marshmallow import Schema, fields, post_dump, validate

from app.security.pii import mask_phone
from schemas.common import StrictSchema, labelled
from schemas.identity import IdNumber, PersonName, Phone

LABELS = {"code": "登录凭证 code", "auth_code": "授权码 auth_code", "bind_ticket": "绑定凭证",
          "id_number": "身份证号码", "name": "姓名", "phone": "手机号码", "sms_code": "短信验证码",
          "response": "手机号密文 response", "sign": "签名 sign", "sign_type": "签名类型",
          "encrypt_type": "加密类型", "charset": "字符集", "encrypted_data": "加密数据 encryptedData",
          "iv": "初始向量 iv"}
PHONE_FIELDS = ("phoneNumber", "purePhoneNumber")


_messages = labelled(LABELS)


def _text(name: str, max_length: int, **kw) -> fields.String:
    return fields.String(required=True, error_messages=_messages(name),
                         validate=validate.Length(min=1, max=max_length, error=f"{LABELS[name]}长度不正确"), **kw)


# ---- requests


class WeChatSessionCreateSchema(StrictSchema):
    code = _text("code", 128, metadata={"description": "wx.login() 返回的登录凭证（5分钟内有效，只能使用一次）",
                                        "example": "0a3Xyz000pQrSt1AbC000uvW4Xyz0X3h"})


class AlipaySessionCreateSchema(StrictSchema):
    auth_code = _text("auth_code", 128, metadata={"description": "my.getAuthCode() 返回的授权码",
                                                  "example": "4b203fe6c11548bcabd8da5bb087a83b"})


class BindingCreateSchema(StrictSchema):
    """Bind the signed-in mini-program account to a real-name person."""

    bind_ticket = _text("bind_ticket", 128, metadata={"description": "登录接口返回的绑定凭证（10分钟内有效，只能使用一次）",
                                                      "example": "bt_X3JhbmRvbS1iaW5kLXRpY2tldC1leGFtcGxl"})
    id_number = IdNumber(required=True, error_messages=_messages("id_number"),
                         metadata={"description": "居民身份证号码（GB 11643）", "example": "11010519491231002X"})
    name = PersonName(required=True, error_messages=_messages("name"), metadata={"example": "张三"})
    phone = Phone(required=True, error_messages=_messages("phone"), metadata={"example": "13800138000"})
    sms_code = fields.String(required=True, error_messages=_messages("sms_code"),
                             validate=validate.Regexp(r"^[0-9]{6}$", error="短信验证码应为6位数字"),
                             metadata={"description": "POST /auth/sms-codes（purpose = bind）发送的验证码",
                                       "example": "123456"})


class WeChatPhoneCreateSchema(StrictSchema):
    code = _text("code", 128, metadata={"description": "getPhoneNumber 事件返回的动态令牌 code",
                                        "example": "e31968a7f94cc5ee25fafc2aef2773f0bb8c3937b22520eb8ee345274d00c144"})


class AlipayPhoneCreateSchema(StrictSchema):
    """What my.getPhoneNumber hands the front end, passed on unchanged."""

    response = _text("response", 4096, metadata={"description": "AES 加密的手机号数据（Base64）",
                                                 "example": "3Yx5kF0pW6b1tQm8xZr2Lw=="})
    sign = _text("sign", 1024, metadata={"description": "支付宝对 response 的 RSA2 签名",
                                         "example": "T4Jk9aM...=="})
    sign_type = fields.String(load_default="RSA2", error_messages=_messages("sign_type"),
                              validate=validate.OneOf(["RSA2"], error="签名类型应为 RSA2"),
                              metadata={"example": "RSA2"})
    encrypt_type = fields.String(load_default="AES", error_messages=_messages("encrypt_type"),
                                 validate=validate.OneOf(["AES"], error="加密类型应为 AES"),
                                 metadata={"example": "AES"})
    charset = fields.String(load_default="UTF-8", error_messages=_messages("charset"),
                            validate=validate.OneOf(["UTF-8", "utf-8", "UTF8", "utf8"], error="字符集应为 UTF-8"),
                            metadata={"example": "UTF-8"})


class WeChatDecryptSchema(StrictSchema):
    encrypted_data = _text("encrypted_data", 16384, data_key="encryptedData",
                           metadata={"description": "开放数据 encryptedData（Base64）"})
    iv = _text("iv", 64, metadata={"description": "加密算法的初始向量（Base64）", "example": "r7BXXKkLb8qrSNn05n0qiA=="})


# ---- responses


class SessionResultSchema(Schema):
    """Either a token pair (the account is bound) or a bind ticket (`bind_required`)."""

    access_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"example": 900})
    refresh_token = fields.String()
    bind_required = fields.Boolean(metadata={"description": "为 true 时须先绑定实名账号"})
    bind_ticket = fields.String(metadata={"description": "绑定凭证，提交给 /bindings"})
    bind_ticket_expires_in = fields.Integer(metadata={"description": "绑定凭证剩余有效秒数", "example": 600})


class PhoneResultSchema(Schema):
    """The phone number now on the account, masked."""

    phone_masked = fields.Function(lambda person: mask_phone(person.phone), metadata={"type": "string", "nullable": True, "example": "138****8000"})


class OpenDataSchema(Schema):
    """Decrypted open data without its watermark; phone numbers masked."""

    data = fields.Dict(metadata={"example": {"openId": "oGZUI0egBJY1zhBYw2KhdUfwVJJE", "nickName": "微信用户"}})

    @post_dump
    def _mask_phones(self, body, **kwargs):
        data = dict(body.get("data") or {})
        for name in PHONE_FIELDS:
            if isinstance(data.get(name), str):
                data[name] = mask_phone(data[name])
        body["data"] = data
        return body


class OpenPingSchema(Schema):
    """Who the signed request comes from."""

    client_id = fields.String(metadata={"example": "c_0a1b2c3d4e5f6a7b8c9d"})
    name = fields.String(metadata={"example": "某银行开放平台"})
    channel = fields.String(metadata={"enum": ["app", "wechat", "alipay"]})
    scopes = fields.Function(lambda client: sorted(client.scopes),
                             metadata={"type": "array", "items": {"type": "string"}, "example": ["catalogue:read", "licenses:verify"]})
    server_time = fields.Function(lambda _client: int(time.time()), metadata={"type": "integer", "description": "服务器当前 Unix 时间（秒），便于校准时钟",
                                           "example": 1735689600})
