"""HTTP views of device keys, device binding and verifier-initiated requests (on the wallet blueprint)."""
from __future__ import annotations

from flask import Response, request
from flask.views import MethodView

from ..extensions import BEARER, OPTIONAL_BEARER
from ..security.rbac import auth_required, current_principal
from . import service
from .early_verification import count_verification
from .views import NO_STORE, blp
from schemas.common import PageArgsSchema, ProblemSchema, paged
from schemas.wallet import (LicenseBindingCreateSchema, LicenseBindingSchema, DeviceCreateSchema, DevicePageSchema,
                            DeviceRemoveArgsSchema, DeviceSchema, VerificationResultSchema,
                            VerifierRequestCreateSchema, VerifierRequestCreatedSchema, VerifierRequestStatusSchema,
                            VerifierResponseSchema)

REQUEST_OBJECT_MIME = "application/oauth-authz-req+jwt"


@blp.route("/wallet/devices")
class Devices(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(DeviceCreateSchema, example={"name": "我的手机", "jwk": {
        "kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}})
    @blp.response(201, DeviceSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="该密钥已登记过，或设备数量已达上限")
    @blp.doc(security=BEARER)
    def post(self, data):
        """登记手机设备公钥（P-256，私钥只保存在手机上）"""
        return service.register_device(principal=current_principal(), name=data["name"], jwk=data["jwk"])

    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, DevicePageSchema)
    @blp.doc(security=BEARER)
    def get(self, args):
        """我的设备"""
        rows, total = service.devices_page(principal=current_principal(), page=args["page"],
                                           page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])


@blp.route("/wallet/devices/<string:device_id>")
class DevicesById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(DeviceRemoveArgsSchema, location="query")
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="设备不存在")
    @blp.doc(security=BEARER)
    def delete(self, args, device_id):
        """移除设备或挂失（reason=lost）：绑定到该设备的证照立即失效"""
        service.remove_device(principal=current_principal(), device_id=device_id, reason=args["reason"])
        return "", 204


@blp.route("/wallet/licenses/<string:license_id>/bindings")
class Bindings(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(LicenseBindingCreateSchema, example={"device_id": "dev_0a1b2c3d4e5f60718293a4b5"})
    @blp.response(200, LicenseBindingSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="证照不存在或您无权亮证")
    @blp.alt_response(409, schema=ProblemSchema, description="设备已移除，或证照已撤销、暂停或过期")
    @blp.doc(security=BEARER)
    def post(self, data, license_id):
        """把证照绑定到手机设备密钥：重新签发 cnf.jwk 为设备公钥的 SD-JWT VC（含全部披露），供手机离线自行亮证"""
        body = service.bind_license(principal=current_principal(), license_id=license_id, device_id=data["device_id"])
        return body, 200, NO_STORE


@blp.route("/verification-requests")
class VerifierRequests(MethodView):
    @auth_required("verifier")
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(VerifierRequestCreateSchema, example={"license_type": "11100000000013100M001",
                                                         "fields": ["name", "id_number"], "purpose": "酒店入住登记"})
    @blp.response(201, VerifierRequestCreatedSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是已登记的核验方")
    @blp.doc(security=BEARER)
    def post(self, data):
        """核验方发起核验请求（OpenID4VP 风格：DCQL 查询、direct_post 答复），返回二维码"""
        body = service.create_request(principal=current_principal(), license_type=data["license_type"],
                                      fields=data["field_names"], purpose=data["purpose"],
                                      require_device_binding=data["require_device_binding"])
        return body, 201, NO_STORE


@blp.route("/verification-requests/<string:request_id>")
class VerifierRequestsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, VerifierRequestStatusSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="核验请求不存在（或不是您发起的）")
    @blp.doc(security=BEARER)
    def get(self, request_id):
        """核验请求状态与结果（仅发起的核验方）"""
        return service.request_status(principal=current_principal(), request_id=request_id), 200, NO_STORE


@blp.route("/verification-requests/<string:request_id>/request-object")
class VerifierRequestObjects(MethodView):
    @blp.response(200, content_type=REQUEST_OBJECT_MIME)
    @blp.doc(responses={"200": {"description": "OpenID4VP 授权请求对象（签名 JWT，typ oauth-authz-req+jwt）",
                                "content": {REQUEST_OBJECT_MIME: {"schema": {"type": "string"}}}}})
    @blp.alt_response(404, schema=ProblemSchema, description="核验请求不存在、已答复或已过期")
    def get(self, request_id):
        """核验请求对象（二维码中 request_uri 指向的签名请求）"""
        return Response(service.signed_request_object(request_id), status=200, mimetype=REQUEST_OBJECT_MIME,
                        headers=NO_STORE)


@blp.route("/verification-requests/<string:request_id>/responses")
class VerifierResponses(MethodView):
    @blp.arguments(VerifierResponseSchema, examples={
        "device": {"value": {"sd_jwt": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImRjK3NkLWp3dCIs...~WyJ...~eyJhbGciOi..."}},
        "platform": {"value": {"license_id": "lic_9f2c4e1a7b3d5f60a1b2c3d4e5f60718", "disclose": ["name"]}}})
    @blp.response(200, VerificationResultSchema)
    @blp.alt_response(400, schema=ProblemSchema, description="不是 SD-JWT")
    @blp.alt_response(404, schema=ProblemSchema, description="核验请求不存在")
    @blp.alt_response(409, schema=ProblemSchema, description="核验请求已答复或已过期")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    @blp.doc(security=OPTIONAL_BEARER)
    def post(self, data, request_id):
        """答复核验请求（一次）：手机用设备密钥生成的亮证，或登录后由平台用平台托管密钥答复"""
        count_verification(request.remote_addr or "unknown", [])
        body = service.respond(principal=current_principal(optional=True), request_id=request_id, **data)
        return body, 200, NO_STORE
