"""HTTP views of the identity domain (一号通行): /auth/..., /me, /enterprises..."""
from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView

from ..errors import Unauthorized
from ..extensions import ApiBlueprint, limiter
from ..security.rbac import auth_required, current_principal
from . import service, sms
from schemas.common import ProblemSchema
from schemas.identity import (ActAsSchema, AgentCreateSchema, AgentListSchema, AgentSchema,
                              EnterpriseCreateSchema, EnterpriseListSchema, EnterpriseSchema, LogoutSchema,
                              MeArgsSchema, MeSchema, PersonSchema, RegisterSchema, SmsCodeRequestSchema,
                              SmsCodeSentSchema, TokenPairSchema, TokenRequestSchema)

blp = ApiBlueprint("identity", __name__, description="统一身份认证（一号通行）：注册、登录、令牌、企业与经办人")

BEARER = [{"bearerAuth": []}]
OPTIONAL_BEARER = [{"bearerAuth": []}, {}]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_EXAMPLE = {"access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6ImFjY2Vzcy0yMDI1MDEwMS0xYTJiM2M0ZCIsInR5cCI6ImF0K2p3dCJ9...",
                 "token_type": "Bearer", "expires_in": 900, "refresh_token": "rt_Q2hh..."}


@blp.before_request
def _limit_auth() -> None:
    """Per-client-IP limit on /auth/..., shared by every worker through Redis; counted before the
    body is parsed, so malformed requests count too."""
    if "/auth/" in request.path:
        limiter.hit(current_app.config["AUTH_RATE_LIMIT"], "auth", request.remote_addr or "unknown",
                    detail="认证请求过于频繁，请稍后再试")


def _no_store(body, status=200):
    return body, status, NO_STORE


@blp.route("/auth/register")
class Register(MethodView):
    @blp.arguments(RegisterSchema, example={"id_number": "11010519491231002X", "name": "张三",
                                            "phone": "13800138000", "password": "Shandong2025"})
    @blp.response(201, PersonSchema, example={"subject_id": "p_3f9c2a7b1e4d5c6a8b90", "subject_type": "person",
                                              "id_number_masked": "110105********002X", "name": "张三",
                                              "real_name_level": 2})
    @blp.alt_response(409, schema=ProblemSchema, description="该身份证号码或手机号已注册")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    def post(self, data):
        """注册个人账号（姓名与身份证号码须与户籍库一致）

        核验不通过时返回 422，且不透露该身份证号码是否存在。
        """
        return service.register_person(**data)


@blp.route("/auth/sms-codes")
class SmsCodes(MethodView):
    @blp.arguments(SmsCodeRequestSchema, example={"phone": "13800138000", "purpose": "login"})
    @blp.response(202, SmsCodeSentSchema, example={"expires_in": 300, "resend_after": 60})
    @blp.alt_response(429, schema=ProblemSchema, description="同一手机号60秒内只能发送一次（带 Retry-After）")
    def post(self, data):
        """发送短信验证码（6位，5分钟有效，最多尝试5次）"""
        service.send_sms_code(phone=data["phone"], purpose=data["purpose"])
        return {"expires_in": sms.code_ttl(), "resend_after": sms.RESEND_INTERVAL}


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
            body = service.password_grant(username=data["username"], password=data["password"])
        elif grant == "sms":
            body = service.sms_grant(phone=data["phone"], code=data["code"])
        elif grant == "refresh_token":
            body = service.refresh_grant(refresh_token=data["refresh_token"])
        else:
            body = service.client_credentials_grant(client_id=data["client_id"],
                                                    client_secret=data["client_secret"])
        return _no_store(body)


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.arguments(LogoutSchema)
    @blp.response(204)
    @blp.doc(security=OPTIONAL_BEARER)
    def post(self, data):
        """退出登录：注销当前访问令牌和整个刷新令牌会话"""
        try:
            principal = current_principal(optional=True)
        except Unauthorized:  # an expired access token must not stop the session from ending
            principal = None
        service.logout(refresh_token=data["refresh_token"], access_claims=principal.claims if principal else None)
        return "", 204, NO_STORE


@blp.route("/auth/act-as")
class ActAs(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(ActAsSchema, example={"credit_code": "91110000600037341L"})
    @blp.response(200, TokenPairSchema, example=TOKEN_EXAMPLE)
    @blp.alt_response(404, schema=ProblemSchema, description="不是该企业的法定代表人或有效经办人")
    @blp.doc(security=BEARER)
    def post(self, data):
        """以企业身份办事：获取企业令牌（act 声明记录经办人）"""
        return _no_store(service.act_as(principal=current_principal(), credit_code=data["credit_code"]))


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
        body = service.me(current_principal(), reveal=args["reveal"])
        return (body, 200, NO_STORE) if args["reveal"] else body


@blp.route("/enterprises")
class Enterprises(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, EnterpriseListSchema)
    @blp.doc(security=BEARER)
    def get(self):
        """我的企业（作为法定代表人或经办人）"""
        return {"items": service.enterprises_of(principal=current_principal())}

    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(EnterpriseCreateSchema, example={"credit_code": "91110000600037341L", "name": "示例科技有限公司"})
    @blp.response(201, EnterpriseSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="已认领")
    @blp.doc(security=BEARER)
    def post(self, data):
        """认领企业（法人库登记的法定代表人为本人时成为企业管理人）"""
        principal = current_principal()
        enterprise = service.claim_enterprise(principal=principal, **data)
        return service.enterprise_view(principal=principal, credit_code=enterprise.credit_code)


@blp.route("/enterprises/<string:credit_code>")
class EnterprisesById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, EnterpriseSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="企业不存在或与您无关")
    @blp.doc(security=BEARER)
    def get(self, credit_code):
        """企业详情（法定代表人或经办人可见）"""
        return service.enterprise_view(principal=current_principal(), credit_code=credit_code)


@blp.route("/enterprises/<string:credit_code>/agents")
class EnterpriseAgents(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, AgentListSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="企业不存在或您不是其法定代表人")
    @blp.doc(security=BEARER)
    def get(self, credit_code):
        """经办人授权列表（仅法定代表人）"""
        return {"items": service.list_agents(principal=current_principal(), credit_code=credit_code)}

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
        return service.grant_agent(principal=current_principal(), credit_code=credit_code, **data)


@blp.route("/enterprises/<string:credit_code>/agents/<string:agent_id>")
class EnterpriseAgentsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="授权不存在或您不是该企业的法定代表人")
    @blp.doc(security=BEARER)
    def delete(self, credit_code, agent_id):
        """撤销经办人授权（其企业会话随即失效）"""
        service.revoke_agent(principal=current_principal(), credit_code=credit_code, agent_id=agent_id)
        return "", 204
