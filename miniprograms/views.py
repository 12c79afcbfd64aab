"""HTTP views of the mini-program channels (WeChat, Alipay) and of the signed open API."""
from __future__ import annotations

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app.extensions import BEARER, limiter
from app.security.rbac import auth_required, current_principal
from app.security.signed_requests import SECURITY as SIGNED, signed_scope_required
from schemas.common import ProblemSchema
from schemas.miniprograms import (AlipayPhoneCreateSchema, AlipaySessionCreateSchema, BindingCreateSchema,
                                  OpenDataSchema, OpenPingSchema, PhoneResultSchema, SessionResultSchema,
                                  WeChatDecryptSchema, WeChatPhoneCreateSchema, WeChatSessionCreateSchema)

from . import service

blp = Blueprint("miniprograms", __name__, description="微信、支付宝小程序登录与绑定；第三方平台签名开放接口")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
OPEN_API_TAG = ["开放平台"]
TOKEN_EXAMPLE = {"access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6ImFjY2Vzcy0yMDI1MDEwMS0xYTJiM2M0ZCIsInR5cCI6ImF0K2p3dCJ9...",
                 "token_type": "Bearer", "expires_in": 900, "refresh_token": "rt_Q2hh..."}
SESSION_EXAMPLES = {
    "bound": {"summary": "已绑定：直接返回令牌", "value": TOKEN_EXAMPLE},
    "bind_required": {"summary": "未绑定：返回绑定凭证", "value": {
        "bind_required": True, "bind_ticket": "bt_X3JhbmRvbS1iaW5kLXRpY2tldC1leGFtcGxl",
        "bind_ticket_expires_in": 600}},
}
BINDING_EXAMPLE = {"bind_ticket": "bt_X3JhbmRvbS1iaW5kLXRpY2tldC1leGFtcGxl", "id_number": "11010519491231002X",
                   "name": "张三", "phone": "13800138000", "sms_code": "123456"}
UPSTREAM = {502: "微信或支付宝接口返回异常或无法解析的数据", 503: "微信或支付宝暂不可用、超时或繁忙，或本渠道未开通"}


@blp.before_request
def _limit_sign_in() -> None:
    """Sign-in and binding share the per-IP limit of /auth/... (they mint tokens)."""
    if request.path.endswith(("/sessions", "/bindings")):
        limiter.hit(current_app.config["AUTH_RATE_LIMIT"], "miniprogram-auth", request.remote_addr or "unknown",
                    detail="登录请求过于频繁，请稍后再试")


def _no_store(body, status=200):
    return body, status, NO_STORE


def _upstream_errors(view):
    for status, description in UPSTREAM.items():
        view = blp.alt_response(status, schema=ProblemSchema, description=description)(view)
    return view


# ---- WeChat


@blp.route("/miniprograms/wechat/sessions")
class WeChatSessions(MethodView):
    @blp.arguments(WeChatSessionCreateSchema, example={"code": "0a3Xyz000pQrSt1AbC000uvW4Xyz0X3h"})
    @blp.response(200, SessionResultSchema, examples=SESSION_EXAMPLES)
    @blp.alt_response(400, schema=ProblemSchema, description="登录凭证 code 无效")
    @blp.alt_response(401, schema=ProblemSchema, description="登录凭证 code 已被使用")
    @blp.alt_response(403, schema=ProblemSchema, description="微信判定该用户存在风险，或账号已停用")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    @_upstream_errors
    def post(self, data):
        """微信小程序登录（code2session）

        openid（或同一开放平台下的 unionid）已绑定时直接返回令牌（channel = wechat）；未绑定时返回
        一次性绑定凭证，session_key 只保存在服务端。
        """
        return _no_store(service.start_session(channel="wechat", code=data["code"]))


@blp.route("/miniprograms/wechat/bindings")
class WeChatBindings(MethodView):
    @blp.arguments(BindingCreateSchema, example=BINDING_EXAMPLE)
    @blp.response(200, SessionResultSchema, example=TOKEN_EXAMPLE)
    @blp.alt_response(401, schema=ProblemSchema, description="绑定凭证无效、已使用或已过期")
    @blp.alt_response(409, schema=ProblemSchema, description="该微信账号或手机号已绑定其他用户")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    @_upstream_errors
    def post(self, data):
        """绑定实名账号（微信）

        须先以 purpose = bind 获取短信验证码；已有账号则关联，否则在姓名、身份证号码与户籍库一致时创建。
        核验不通过时返回 422，且不透露该身份证号码是否存在；失败时不绑定任何账号。
        """
        return _no_store(service.bind(channel="wechat", **data))


@blp.route("/miniprograms/wechat/phone")
class WeChatPhone(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(WeChatPhoneCreateSchema)
    @blp.response(200, PhoneResultSchema, example={"phone_masked": "138****8000"})
    @blp.alt_response(400, schema=ProblemSchema, description="手机号授权凭证 code 无效或已过期")
    @blp.alt_response(403, schema=ProblemSchema, description="不是通过本微信小程序登录的已绑定用户")
    @blp.alt_response(409, schema=ProblemSchema, description="该手机号已绑定其他账号")
    @_upstream_errors
    @blp.doc(security=BEARER)
    def post(self, data):
        """获取并保存微信手机号（getPhoneNumber）"""
        return service.store_phone(channel="wechat", principal=current_principal(), proof=data["code"])


@blp.route("/miniprograms/wechat/decrypt")
class WeChatDecrypt(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录，或微信会话已过期需重新登录")
    @blp.arguments(WeChatDecryptSchema)
    @blp.response(200, OpenDataSchema)
    @blp.alt_response(400, schema=ProblemSchema, description="数据无法解密或已过期（水印时间超过5分钟）")
    @blp.alt_response(403, schema=ProblemSchema, description="数据水印与本小程序不符，或不是本小程序的已绑定用户")
    @blp.doc(security=BEARER)
    def post(self, data):
        """解密微信开放数据（encryptedData）

        使用最近一次登录时保存在服务端的 session_key；校验水印中的 appid 与时间，手机号脱敏返回。
        """
        data = service.decrypt_open_data(channel="wechat", principal=current_principal(), **data)
        return {"data": data}, 200, NO_STORE


# ---- Alipay


@blp.route("/miniprograms/alipay/sessions")
class AlipaySessions(MethodView):
    @blp.arguments(AlipaySessionCreateSchema, example={"auth_code": "4b203fe6c11548bcabd8da5bb087a83b"})
    @blp.response(200, SessionResultSchema, examples=SESSION_EXAMPLES)
    @blp.alt_response(400, schema=ProblemSchema, description="授权码 auth_code 无效或已过期")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    @_upstream_errors
    def post(self, data):
        """支付宝小程序登录（alipay.system.oauth.token）

        账号已绑定时直接返回令牌（channel = alipay），否则返回一次性绑定凭证。
        """
        return _no_store(service.start_session(channel="alipay", code=data["auth_code"]))


@blp.route("/miniprograms/alipay/bindings")
class AlipayBindings(MethodView):
    @blp.arguments(BindingCreateSchema, example=BINDING_EXAMPLE)
    @blp.response(200, SessionResultSchema, example=TOKEN_EXAMPLE)
    @blp.alt_response(401, schema=ProblemSchema, description="绑定凭证无效、已使用或已过期")
    @blp.alt_response(409, schema=ProblemSchema, description="该支付宝账号或手机号已绑定其他用户")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    @_upstream_errors
    def post(self, data):
        """绑定实名账号（支付宝）

        与微信相同：短信验证码（purpose = bind）加户籍库核验；失败时不绑定任何账号。
        """
        return _no_store(service.bind(channel="alipay", **data))


@blp.route("/miniprograms/alipay/phone")
class AlipayPhone(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(AlipayPhoneCreateSchema, example={
        "response": "3Yx5kF0pW6b1tQm8xZr2Lw==", "sign": "T4Jk9aM...==", "sign_type": "RSA2",
        "encrypt_type": "AES", "charset": "UTF-8"})
    @blp.response(200, PhoneResultSchema, example={"phone_masked": "138****8000"})
    @blp.alt_response(400, schema=ProblemSchema, description="验签或解密失败")
    @blp.alt_response(403, schema=ProblemSchema, description="不是通过本支付宝小程序登录的已绑定用户")
    @blp.alt_response(409, schema=ProblemSchema, description="该手机号已绑定其他账号")
    @_upstream_errors
    @blp.doc(security=BEARER)
    def post(self, data):
        """获取并保存支付宝手机号（my.getPhoneNumber）"""
        return service.store_phone(channel="alipay", principal=current_principal(), proof=data)


# ---- signed open API for third-party platforms


@blp.route("/open/ping")
class OpenPing(MethodView):
    @signed_scope_required()
    @blp.response(200, OpenPingSchema)
    @blp.alt_response(401, schema=ProblemSchema, description="未签名、签名错误、时间戳超出范围或随机数重复")
    @blp.alt_response(429, schema=ProblemSchema, description="该客户端请求过于频繁（带 Retry-After）")
    @blp.doc(security=SIGNED, tags=OPEN_API_TAG)
    def get(self):
        """开放接口连通性与签名自检

        返回签名请求所属的第三方客户端、渠道与授权范围；签名方法见 README「Open API signing」。
        """
        return g.signed_client
