"""HTTP views of the identity domain (一号通行): /auth/..., /me, /enterprises..."""
from __future__ import annotations

from flask import request
from flask.views import MethodView

from ..errors import Unauthorized
from ..extensions import BEARER, OPTIONAL_BEARER, ApiBlueprint
from ..security.rbac import auth_required, current_principal
from . import channels, credentials, enterprises, face_check, grants, persons, profile, sessions, sms
from .early_refresh import count_auth_request
from .persons import acting_person
from schemas.common import ProblemSchema
from schemas.identity import (ActAsSchema, AgentCreateSchema, AgentListSchema, AgentSchema,
                              EnterpriseCreateSchema, EnterpriseListSchema, EnterpriseSchema,
                              FaceVerificationSchema, LogoutSchema, MeArgsSchema, MeSchema, PasswordChangeSchema,
                              PasswordResetSchema, PersonSchema, PhoneChangedSchema, PhoneChangeSchema,
                              RegisterSchema, SessionListSchema, SmsCodeRequestSchema, SmsCodeSentSchema,
                              TokenPairSchema, TokenRequestSchema)

blp = ApiBlueprint("identity", __name__, description="统一身份认证（一号通行）：注册、登录、令牌、企业与经办人")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_EXAMPLE = {"access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6ImFjY2Vzcy0yMDI1MDEwMS0xYTJiM2M0ZCIsInR5cCI6ImF0K2p3dCJ9...",
                 "token_type": "Bearer", "expires_in": 900, "refresh_token": "rt_Q2hh..."}


@blp.before_request
def _limit_auth() -> None:
    """Per-client-IP limit on /auth/..., shared by every worker through Redis; counted before the
    body is parsed, so malformed requests count too."""
    if "/auth/" in request.path:
        count_auth_request(request.environ)


def _no_store(body, status=200):
    return body, status, NO_STORE


@blp.route("/auth/register")
class Register(MethodView):
    @blp.arguments(RegisterSchema, example={"id_number": "11010519491231002X", "name": "张三",
                                            "phone": "13800138000", "sms_code": "123456",
                                            "password": "Shandong2025"})
    @blp.response(201, PersonSchema, example={"subject_id": "p_3f9c2a7b1e4d5c6a8b90", "subject_type": "person",
                                              "id_number_masked": "110105********002X", "name": "张三",
                                              "real_name_level": 2})
    @blp.alt_response(409, schema=ProblemSchema, description="该身份证号码或手机号已注册（手机号验证通过后才会告知）")
    @blp.alt_response(422, schema=ProblemSchema, description="短信验证码错误（errors.sms_code），或姓名、身份证号码与户籍库不一致")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    def post(self, data):
        """注册个人账号（先验证手机号，姓名与身份证号码须与户籍库一致）

        `sms_code` 为发送到 `phone`、用途为 register 的验证码，在查看其他任何信息之前先核对；
        核验不通过时返回 422，且不透露该身份证号码是否存在。验证码只在注册成功时才被用掉。
        """
        return persons.register_person(**data)


@blp.route("/auth/sms-codes")
class SmsCodes(MethodView):
    @blp.arguments(SmsCodeRequestSchema, example={"phone": "13800138000", "purpose": "login"})
    @blp.response(202, SmsCodeSentSchema, example={"expires_in": 300, "resend_after": 60})
    @blp.alt_response(429, schema=ProblemSchema, description="按手机号、客户端地址限流（带 Retry-After）")
    def post(self, data):
        """发送短信验证码（6位，5分钟有效，最多核对5次）

        无论该手机号是否已注册，回答都相同（202）；login、reset_password 用途下，未注册的手机号收到的是提示短信而非验证码。
        """
        sms.send_sms_code(phone=data["phone"], purpose=data["purpose"], address=request.remote_addr)
        return {"expires_in": sms.code_ttl(), "resend_after": sms.resend_after()}


@blp.route("/auth/password-resets")
class PasswordResets(MethodView):
    @blp.arguments(PasswordResetSchema, example={"phone": "13800138000", "sms_code": "123456",
                                                 "new_password": "Shandong2026"})
    @blp.response(204)
    @blp.alt_response(422, schema=ProblemSchema, description="短信验证码错误或已失效（errors.sms_code），或新密码不符合要求")
    @blp.alt_response(423, schema=ProblemSchema, description="账户已锁定（带 Retry-After）")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    def post(self, data):
        """凭短信验证码重置密码（该账号的所有登录会话随即结束）"""
        credentials.reset_password(**data)
        return "", 204, NO_STORE


@blp.route("/auth/token")
class Token(MethodView):
    @blp.arguments(TokenRequestSchema, examples={
        "password": {"value": {"grant_type": "password", "username": "11010519491231002X",
                               "password": "Shandong2025"}},
        "sms": {"value": {"grant_type": "sms", "phone": "13800138000", "code": "123456"}},
        "refresh_token": {"value": {"grant_type": "refresh_token", "refresh_token": "rt_Q2hh..."}},
        "client_credentials": {"value": {"grant_type": "client_credentials", "client_id": "c_0a1b2c3d4e5f6a7b8c9d",
                                         "client_secret": "..."}}})
    @blp.response(200, TokenPairSchema, example=TOKEN_EXAMPLE)
    @blp.alt_response(401, schema=ProblemSchema, description="凭证错误；已用过的刷新令牌会注销整个会话")
    @blp.alt_response(423, schema=ProblemSchema, description="15分钟内密码错误5次，账户锁定15分钟（带 Retry-After）")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    def post(self, data):
        """获取令牌（password / sms / refresh_token / client_credentials）"""
        grant = data["grant_type"]
        if grant == "password":
            body = grants.password_grant(username=data["username"], password=data["password"])
        elif grant == "sms":
            body = grants.sms_grant(phone=data["phone"], code=data["code"])
        elif grant == "refresh_token":
            body = grants.refresh_grant(refresh_token=data["refresh_token"])
        else:
            body = grants.client_credentials_grant(client_id=data["client_id"],
                                                   client_secret=data["client_secret"])
        return _no_store(body)


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.arguments(LogoutSchema, example={"refresh_token": "rt_Q2hh..."})
    @blp.response(204)
    @blp.alt_response(401, schema=ProblemSchema, description="既没有有效的访问令牌，也没有有效的刷新令牌")
    @blp.doc(security=OPTIONAL_BEARER)
    def post(self, data):
        """退出登录：结束访问令牌或刷新令牌所属的整个登录会话（二者有其一即可）"""
        try:
            principal = current_principal(optional=True)
        except Unauthorized:  # an expired access token must not stop the session from ending
            principal = None
        sessions.logout(refresh_token=data.get("refresh_token"), access_claims=principal.claims if principal else None)
        return "", 204, NO_STORE


@blp.route("/auth/act-as")
class ActAs(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(ActAsSchema, examples={
        "company": {"value": {"credit_code": "91110000600037341L"}},
        "family_proxy": {"value": {"subject_id": "p_3f9c2a7b1e4d5c6a8b90"}}})
    @blp.response(200, TokenPairSchema, example=TOKEN_EXAMPLE)
    @blp.alt_response(404, schema=ProblemSchema, description="不是该企业的法定代表人或有效经办人，或没有该亲友的有效代办授权")
    @blp.doc(security=BEARER)
    def post(self, data):
        """代办：以企业身份（credit_code）或为授权的亲友（subject_id）获取令牌（act 声明记录经办人）"""
        return _no_store(grants.act_as(principal=current_principal(), **data))


@blp.route("/me")
class Me(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(MeArgsSchema, location="query")
    @blp.response(200, MeSchema, example={
        "subject_id": "p_3f9c2a7b1e4d5c6a8b90", "subject_type": "person", "name": "张三",
        "id_number_masked": "110105********002X", "phone_masked": "138****8000", "real_name_level": 2,
        "roles": ["citizen"], "bindings": [{"channel": "wechat", "bound_at": "2025-01-01T08:00:00Z"}],
        "acting_for": None})
    @blp.doc(security=BEARER)
    def get(self, args):
        """当前用户信息（证件号、手机号默认脱敏）"""
        body = profile.me(current_principal(), reveal=args["reveal"])
        return (body, 200, NO_STORE) if args["reveal"] else body


@blp.route("/me/password")
class MePassword(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(PasswordChangeSchema, examples={
        "with_old_password": {"value": {"old_password": "Shandong2025", "new_password": "Shandong2026"}},
        "first_password": {"value": {"sms_code": "123456", "new_password": "Shandong2026"}}})
    @blp.response(204)
    @blp.alt_response(403, schema=ProblemSchema, description="请使用个人身份的令牌")
    @blp.alt_response(422, schema=ProblemSchema, description="原密码不正确（errors.old_password）、验证码错误或新密码不符合要求")
    @blp.alt_response(423, schema=ProblemSchema, description="密码错误次数过多，账户已锁定（带 Retry-After）")
    @blp.doc(security=BEARER)
    def post(self, data):
        """修改密码（其他登录会话随即结束，本会话保留）

        已设置密码的账号提供原密码；经小程序注册、尚无密码的账号提供发送到本人手机号、用途为 reset_password 的短信验证码。
        """
        credentials.change_password(principal=current_principal(), **data)
        return "", 204, NO_STORE


@blp.route("/me/phone")
class MePhone(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(PhoneChangeSchema, example={"old_sms_code": "123456", "phone": "13912345678",
                                               "sms_code": "654321"})
    @blp.response(200, PhoneChangedSchema, example={"phone_masked": "139****5678"})
    @blp.alt_response(403, schema=ProblemSchema, description="请使用个人身份的令牌")
    @blp.alt_response(409, schema=ProblemSchema, description="新手机号已绑定其他账号")
    @blp.alt_response(422, schema=ProblemSchema, description="原手机号或新手机号的验证码错误（errors.old_sms_code / errors.sms_code）")
    @blp.doc(security=BEARER)
    def post(self, data):
        """更换手机号（原手机号和新手机号各凭一条用途为 change_phone 的验证码；其他登录会话随即结束）"""
        phone = credentials.change_phone(principal=current_principal(), **data)
        return {"phone": phone}, 200, NO_STORE


@blp.route("/me/sessions")
class MeSessions(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, SessionListSchema, example={"items": [
        {"session_id": "9f3c2a7b1e4d5c6a8b90a1b2c3d4e5f6", "created_at": "2025-01-01T08:00:00Z",
         "last_used_at": "2025-01-02T09:30:00Z", "channel": "app", "current": True, "acting_for": None}]})
    @blp.alt_response(403, schema=ProblemSchema, description="请使用个人身份的令牌")
    @blp.doc(security=BEARER)
    def get(self):
        """我的登录会话（每个刷新令牌家族一项，最近使用的在前）"""
        principal = current_principal()
        person = acting_person(principal)
        return {"items": sessions.sessions_of(person, current_session=principal.claims.get("sid"))}, 200, NO_STORE


@blp.route("/me/sessions/<string:session_id>")
class MeSessionsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(204)
    @blp.alt_response(403, schema=ProblemSchema, description="请使用个人身份的令牌")
    @blp.alt_response(404, schema=ProblemSchema, description="会话不存在、已结束或不属于您")
    @blp.doc(security=BEARER)
    def delete(self, session_id):
        """结束一个登录会话（其刷新令牌和访问令牌立即失效）"""
        sessions.end_own_session(acting_person(current_principal()), session_id)
        return "", 204


@blp.route("/me/bindings/<string:channel>")
class MeBindingsByChannel(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(204)
    @blp.alt_response(403, schema=ProblemSchema, description="请使用个人身份的令牌")
    @blp.alt_response(404, schema=ProblemSchema, description="未绑定该渠道（channel 为 wechat 或 alipay）")
    @blp.doc(security=BEARER)
    def delete(self, channel):
        """解除微信或支付宝小程序绑定（该渠道的登录会话随即结束，再次登录需重新绑定）"""
        channels.unbind(principal=current_principal(), channel=channel)
        return "", 204


@blp.route("/me/face-verifications")
class FaceVerifications(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(201, FaceVerificationSchema, example={
        "verification_id": "fv_0c1d2e3f4a5b6c7d8e9f", "status": "pending",
        "url": "https://faceid.example/h5?token=...", "expires_at": "2025-01-01T08:10:00Z", "completed_at": None,
        "reason": None, "real_name_level": 2})
    @blp.alt_response(403, schema=ProblemSchema, description="请使用个人身份的令牌")
    @blp.alt_response(502, schema=ProblemSchema, description="人脸核验服务商返回错误")
    @blp.alt_response(503, schema=ProblemSchema, description="未开通人脸核验服务或服务商暂不可用")
    @blp.doc(security=BEARER)
    def post(self):
        """发起人脸识别核验（通过后实名等级升为 L3）：打开返回的 url 完成活体检测，再查询结果"""
        return face_check.start(principal=current_principal()), 201, NO_STORE


@blp.route("/me/face-verifications/<string:verification_id>")
class FaceVerificationsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, FaceVerificationSchema, example={
        "verification_id": "fv_0c1d2e3f4a5b6c7d8e9f", "status": "passed", "url": None,
        "expires_at": "2025-01-01T08:10:00Z", "completed_at": "2025-01-01T08:02:11Z", "reason": None,
        "real_name_level": 3})
    @blp.alt_response(403, schema=ProblemSchema, description="请使用个人身份的令牌")
    @blp.alt_response(404, schema=ProblemSchema, description="核验不存在或不属于您")
    @blp.alt_response(502, schema=ProblemSchema, description="人脸核验服务商返回错误")
    @blp.alt_response(503, schema=ProblemSchema, description="未开通人脸核验服务或服务商暂不可用")
    @blp.doc(security=BEARER)
    def get(self, verification_id):
        """人脸识别核验结果（待核验时向服务商查询；通过且与本人身份一致时实名等级升为 L3）"""
        return face_check.result(principal=current_principal(), verification_id=verification_id), 200, NO_STORE


@blp.route("/enterprises")
class Enterprises(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, EnterpriseListSchema)
    @blp.doc(security=BEARER)
    def get(self):
        """我的企业（作为法定代表人或经办人）"""
        return {"items": enterprises.enterprises_of(principal=current_principal())}

    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(EnterpriseCreateSchema, example={"credit_code": "91110000600037341L", "name": "示例科技有限公司"})
    @blp.response(201, EnterpriseSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="已认领")
    @blp.doc(security=BEARER)
    def post(self, data):
        """认领企业（法人库登记的法定代表人为本人时成为企业管理人）"""
        principal = current_principal()
        enterprise = enterprises.claim_enterprise(principal=principal, **data)
        return enterprises.enterprise_view(principal=principal, credit_code=enterprise.credit_code)


@blp.route("/enterprises/<string:credit_code>")
class EnterprisesById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, EnterpriseSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="企业不存在或与您无关")
    @blp.doc(security=BEARER)
    def get(self, credit_code):
        """企业详情（法定代表人或经办人可见）"""
        return enterprises.enterprise_view(principal=current_principal(), credit_code=credit_code)


@blp.route("/enterprises/<string:credit_code>/agents")
class EnterpriseAgents(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, AgentListSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="企业不存在或您不是其法定代表人")
    @blp.doc(security=BEARER)
    def get(self, credit_code):
        """经办人授权列表（仅法定代表人）"""
        return {"items": enterprises.list_agents(principal=current_principal(), credit_code=credit_code)}

    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(AgentCreateSchema, example={"id_number": "440524188001010014",
                                               "scopes": ["applications:submit", "applications:read"],
                                               "expires_at": "2026-12-31T23:59:59+08:00"})
    @blp.response(201, AgentSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="企业不存在或您不是其法定代表人")
    @blp.alt_response(409, schema=ProblemSchema, description="该人员已有有效授权")
    @blp.doc(security=BEARER)
    def post(self, data, credit_code):
        """授权经办人（授权范围与截止时间）"""
        return enterprises.grant_agent(principal=current_principal(), credit_code=credit_code, **data)


@blp.route("/enterprises/<string:credit_code>/agents/<string:agent_id>")
class EnterpriseAgentsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="授权不存在或您不是该企业的法定代表人")
    @blp.doc(security=BEARER)
    def delete(self, credit_code, agent_id):
        """撤销经办人授权（其企业会话随即失效）"""
        enterprises.revoke_agent(principal=current_principal(), credit_code=credit_code, agent_id=agent_id)
        return "", 204
