"""HTTP views of the account's own affairs: /me/data-exports, DELETE /me, /me/proxies (亲友代办)."""
from __future__ import annotations

from flask.views import MethodView

from schemas.accounts import (AccountCloseSchema, DataExportCreatedSchema, DataExportSchema, ProxyCreateSchema,
                              ProxyGrantedSchema, ProxyListSchema)
from schemas.common import ProblemSchema

from ..extensions import BEARER, ApiBlueprint
from ..security.rbac import auth_required, current_principal
from . import closure, exports, proxies

blp = ApiBlueprint("accounts", __name__, description="个人信息与账号：个人信息导出、注销账号、亲友代办")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
UNAUTHORIZED = "未登录或访问令牌无效"
PERSONAL_ONLY = "仅限本人使用个人令牌办理（企业、亲友代办与客户端令牌不可）"
GRANT_EXAMPLE = {"proxy_id": "px_0c1d2e3f4a5b6c7d8e9f", "grantee_name": "王芳",
                 "grantee_id_number_masked": "370102********123X",
                 "scopes": ["applications:submit", "applications:read", "licenses:present"],
                 "expires_at": "2027-06-30T15:59:59Z", "created_at": "2026-12-01T08:00:00Z", "revoked_at": None,
                 "status": "active"}


@blp.record_once
def _allow_proxy_endpoints(state) -> None:
    """The endpoints a family proxy's token may call (app.security.rbac refuses the others)."""
    state.app.extensions["proxy_endpoints"] = proxies.PROXY_ENDPOINTS


@blp.route("/me/data-exports")
class DataExports(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description=UNAUTHORIZED)
    @blp.response(202, DataExportCreatedSchema, example={"export_id": "ex_5d1c0e9a7b3f2e4d6c8a", "status": "pending"})
    @blp.alt_response(403, schema=ProblemSchema, description=PERSONAL_ONLY)
    @blp.alt_response(429, schema=ProblemSchema, description="每人每天最多导出5次（带 Retry-After）")
    @blp.doc(security=BEARER)
    def post(self):
        """导出我的个人信息（个人信息保护法第45条）：后台生成，加密保存7天

        生成后用 GET /me/data-exports/{export_id} 取回；内容含完整的身份证号码和手机号码。
        """
        return exports.request_export(principal=current_principal()), 202, NO_STORE


@blp.route("/me/data-exports/<string:export_id>")
class DataExportsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description=UNAUTHORIZED)
    @blp.response(200, DataExportSchema, example={
        "export_id": "ex_5d1c0e9a7b3f2e4d6c8a", "status": "ready", "created_at": "2026-12-01T08:00:00Z",
        "expires_at": "2026-12-08T08:00:00Z",
        "data": {"profile": {"name": "张三", "id_number": "11010519491231002X", "phone": "13800138000"},
                 "applications": [], "licenses": [], "inbox": [], "consents": []}})
    @blp.alt_response(404, schema=ProblemSchema, description="导出记录不存在、已过期或不属于您")
    @blp.doc(security=BEARER)
    def get(self, export_id):
        """取回个人信息导出（仅本人；pending 时 data 为 null）"""
        return exports.export_view(principal=current_principal(), export_id=export_id), 200, NO_STORE


@blp.route("/me")
class Account(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description=UNAUTHORIZED)
    @blp.arguments(AccountCloseSchema, examples={
        "password": {"value": {"password": "Shandong2025"}},
        "sms": {"value": {"sms_code": "123456"}, "description": "先以 purpose=login 获取验证码"}})
    @blp.response(204)
    @blp.alt_response(403, schema=ProblemSchema, description=PERSONAL_ONLY)
    @blp.alt_response(429, schema=ProblemSchema, description="验证次数过多（带 Retry-After）")
    @blp.doc(security=BEARER)
    def delete(self, data):
        """注销账号（个人信息保护法第47条）：验证密码或短信验证码后立即生效

        所有令牌立即失效、登录失败，手机号与小程序绑定被删除，身份证号码可重新注册；
        法律要求保存的办件记录与审计记录保留（不含联系方式）。
        """
        closure.close_account(principal=current_principal(), **data)
        return "", 204, NO_STORE


@blp.route("/me/proxies")
class Proxies(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description=UNAUTHORIZED)
    @blp.response(200, ProxyListSchema, example={"granted": [GRANT_EXAMPLE], "received": [
        {"proxy_id": "px_1a2b3c4d5e6f7a8b9c0d", "grantor_subject_id": "p_3f9c2a7b1e4d5c6a8b90", "grantor_name": "张*",
         "scopes": ["licenses:present"], "expires_at": "2027-01-31T15:59:59Z", "created_at": "2026-12-01T08:00:00Z",
         "status": "active"}]})
    @blp.alt_response(403, schema=ProblemSchema, description=PERSONAL_ONLY)
    @blp.doc(security=BEARER)
    def get(self):
        """亲友代办：我授权的亲友与授权我代办的亲友"""
        return proxies.proxies_of(principal=current_principal())

    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description=UNAUTHORIZED)
    @blp.arguments(ProxyCreateSchema, example={"id_number": "37010219850315123X", "name": "王芳",
                                               "scopes": ["applications:submit", "applications:read",
                                                          "licenses:present"],
                                               "expires_at": "2027-06-30T23:59:59+08:00"})
    @blp.response(201, ProxyGrantedSchema, example=GRANT_EXAMPLE)
    @blp.alt_response(403, schema=ProblemSchema, description=PERSONAL_ONLY)
    @blp.alt_response(409, schema=ProblemSchema, description="已为该亲友授权")
    @blp.doc(security=BEARER)
    def post(self, data):
        """授权亲友代办（姓名与身份证号码须与户籍库一致，最长一年）

        亲友以 POST /auth/act-as {"subject_id"} 取得代办令牌，在授权范围内申请办件、查看和出示证照，
        每次使用都记入办件时间线和证照查看记录（shown_by）。
        """
        grant = proxies.grant_proxy(principal=current_principal(), **data)
        return {"grant": grant, "status": proxies.status_of(grant)}


@blp.route("/me/proxies/<string:proxy_id>")
class ProxiesById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description=UNAUTHORIZED)
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="代办授权不存在或不是您授予的")
    @blp.doc(security=BEARER)
    def delete(self, proxy_id):
        """撤销亲友代办授权（亲友的代办会话随即失效）"""
        proxies.revoke_proxy(principal=current_principal(), proxy_id=proxy_id)
        return "", 204
