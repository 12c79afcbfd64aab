"""HTTP views of the wallet domain (电子证照): license types, issuance, the holder's wallet,
亮证, verifications, access log and status lists."""
from __future__ import annotations

from flask import Response, request
from flask.views import MethodView

from ..extensions import BEARER, OPTIONAL_BEARER, ApiBlueprint
from .. import personal_pages
from ..guards import refuse_control_characters
from ..page_server import EarlyPage, serve_early
from ..security.rbac import auth_reading, auth_required, current_principal
from . import collection, service
from .early_verification import prefetched_verification
from .status_registry import CACHE_SECONDS
from schemas.common import PageArgsSchema, ProblemSchema, paged
from schemas.wallet import (AccessLogPageSchema, IssuedLicenseSchema, LicenseDetailArgsSchema,
                            LicenseIssueSchema, LicenseStatusChangeSchema, LicenseStatusSchema,
                            LicenseTypeListSchema, LicenseTypeSchema, PresentationCreateSchema,
                            PresentationSchema, VerificationRequestSchema, VerificationResultSchema,
                            WalletArgsSchema, WalletLicenseDetailSchema, WalletLicensePageSchema)

blp = ApiBlueprint("wallet", __name__, description="电子证照：证照目录、签发、证照夹、亮证、核验、状态列表")
refuse_control_characters(blp)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
STATUS_LIST_MIME = "application/statuslist+jwt"
WALLET_PAGE = WalletLicensePageSchema()


@blp.route("/license-types")
class LicenseTypes(MethodView):
    @blp.response(200, LicenseTypeListSchema)
    def get(self):
        """电子证照目录（证照类型及其字段）"""
        return {"items": service.license_types()}, 200, {"Cache-Control": "public, max-age=3600"}


@blp.route("/license-types/<string:code>")
class LicenseTypesByCode(MethodView):
    @blp.response(200, LicenseTypeSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="证照类型不存在")
    def get(self, code):
        """证照类型详情"""
        return service.license_type(code), 200, {"Cache-Control": "public, max-age=3600"}


@blp.route("/licenses")
class Licenses(MethodView):
    @auth_required("issuer")
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(LicenseIssueSchema, example={
        "license_type": "11100000000013100M001", "holder_id_number": "11010519491231002X",
        "fields": {"name": "张三", "gender": "男", "ethnicity": "汉", "birth_date": "1949-12-31",
                   "address": "山东省济南市历下区泉城路1号"},
        "valid_from": "2025-01-01", "valid_until": "2045-01-01"})
    @blp.response(201, IssuedLicenseSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是签发方，或无权签发该证照类型")
    @blp.doc(security=BEARER)
    def post(self, data):
        """签发电子证照（签发方客户端，仅限其授权的证照类型）

        持证人尚未注册时证照会保留，注册后自动出现在其证照夹中。
        """
        return service.issue_license(principal=current_principal(), license_type=data["license_type"],
                                     holder_id_number=data.get("holder_id_number"),
                                     holder_credit_code=data.get("holder_credit_code"),
                                     fields=data["field_values"], valid_from=data["valid_from"],
                                     valid_until=data["valid_until"])


@blp.route("/licenses/<string:license_id>/status")
class LicenseStatus(MethodView):
    @auth_required("issuer")
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(LicenseStatusChangeSchema, example={"status": "suspended", "reason": "证照信息核查中"})
    @blp.response(200, LicenseStatusSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="证照不存在或不是由您签发的")
    @blp.alt_response(409, schema=ProblemSchema, description="证照已撤销")
    @blp.doc(security=BEARER)
    def post(self, data, license_id):
        """变更证照状态：暂停、恢复、撤销（签发方）"""
        return service.change_status(principal=current_principal(), license_id=license_id, **data)


def _marker_keys(subject_id: str) -> list[str]:
    return [collection.collected_key(subject_id)]


def _collected(subject_id: str, reads: dict) -> bool:
    """The hourly pull from the issuers is not due: the kept page may be shown."""
    return bool(reads.get(collection.collected_key(subject_id)))


def _own_wallet_marker(claims: dict) -> list[str]:
    """A person opening their wallet: read the collection marker with the token's revocation, and
    for their first page the page kept for them (`personal_pages`)."""
    if not personal_pages.own_list(claims):
        return []
    return [*_marker_keys(claims["sub"]), *personal_pages.opening_keys("wallet", claims)]


serve_early(EarlyPage("wallet.WalletLicenses", "wallet", extra_keys=_marker_keys, fresh=_collected))


@blp.route("/wallet/licenses")
class WalletLicenses(MethodView):
    @auth_reading(_own_wallet_marker)
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(WalletArgsSchema, location="query")
    @blp.response(200, WalletLicensePageSchema)
    @blp.doc(security=BEARER)
    def get(self, args, reads):
        """我的证照夹（可按证照类型、状态筛选；企业身份为企业证照）"""
        principal = current_principal()
        collected = _collected(principal.subject_id, reads)

        def read_page() -> dict:
            rows, total = service.wallet_licenses(
                principal=principal, page=args["page"], page_size=args["page_size"],
                license_type=args.get("license_type"), status=args.get("status"),
                holder_id_number=args.get("holder_id_number"), collected=collected)
            return paged(rows, total, args["page"], args["page_size"])

        if personal_pages.page_key("wallet", principal.subject_id) not in reads:
            return read_page()
        return personal_pages.opened("wallet", principal.subject_id, reads, read_page=read_page, schema=WALLET_PAGE,
                                     fresh=collected)  # an hourly pull that is due may add licenses


@blp.route("/wallet/licenses/<string:license_id>")
class WalletLicensesById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(LicenseDetailArgsSchema, location="query")
    @blp.response(200, WalletLicenseDetailSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="证照不存在或您无权查看")
    @blp.doc(security=BEARER)
    def get(self, args, license_id):
        """证照详情（敏感字段默认脱敏）"""
        body = service.wallet_license(principal=current_principal(), license_id=license_id,
                                      reveal=args["reveal"])
        return (body, 200, NO_STORE) if args["reveal"] else body


@blp.route("/wallet/licenses/<string:license_id>/presentations")
class Presentations(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(PresentationCreateSchema, example={"disclose": ["name", "valid_until"], "purpose": "酒店入住登记",
                                                      "mode": "online", "ttl_seconds": 180})
    @blp.response(201, PresentationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="证照不存在或您无权亮证")
    @blp.alt_response(409, schema=ProblemSchema, description="证照已撤销、暂停或过期")
    @blp.doc(security=BEARER)
    def post(self, data, license_id):
        """亮证：按所选字段生成一次性亮证码（在线）或带持有人绑定的 SD-JWT（离线）及二维码"""
        body = service.create_presentation(principal=current_principal(), license_id=license_id, **data)
        return body, 201, NO_STORE


@blp.route("/wallet/licenses/<string:license_id>/presentations/<string:presentation_id>")
class PresentationsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="证照或亮证记录不存在")
    @blp.doc(security=BEARER)
    def delete(self, license_id, presentation_id):
        """结束亮证（关闭二维码后亮证码和离线凭证立即失效）"""
        service.cancel_presentation(principal=current_principal(), license_id=license_id,
                                    presentation_id=presentation_id)
        return "", 204


@blp.route("/wallet/licenses/<string:license_id>/access-log")
class AccessLog(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, AccessLogPageSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="证照不存在或您无权查看")
    @blp.doc(security=BEARER)
    def get(self, args, license_id):
        """证照访问记录：谁在何时为何核验或使用了证照（含失败的核验）"""
        rows, total = service.access_log_page(principal=current_principal(), license_id=license_id,
                                              page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])


@blp.route("/verifications")
class Verifications(MethodView):
    @blp.arguments(VerificationRequestSchema, examples={
        "online": {"value": {"code": "q3Vb0_4mZ2kD8xYw1LcR9tNf6HsJpA7e"}},
        "offline": {"value": {"sd_jwt": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImRjK3NkLWp3dCIs...~WyJ...~eyJhbGciOi..."}}})
    @blp.response(200, VerificationResultSchema, example={
        "valid": True, "license_type": "11100000000013100M001", "license_name": "居民身份证",
        "issuer": "济南市公安局", "status": "valid", "disclosure": "basic", "disclosed": {"name": "张*"}})
    @blp.alt_response(400, schema=ProblemSchema, description="不是亮证码，或根本不是 SD-JWT")
    @blp.alt_response(429, schema=ProblemSchema, description="请求过于频繁（带 Retry-After）")
    @blp.doc(security=OPTIONAL_BEARER)
    @prefetched_verification
    def post(self, data, *, principal, reads, use):
        """核验亮证（在线亮证码或离线 SD-JWT；核验方令牌可选）

        失败也返回 200：`{"valid": false, "reason": "expired|used|revoked|suspended|bad_signature|unknown|cancelled|device_removed|device_binding_required|wrong_audience"}`。
        已登记并获该证照类型授权的核验方可获得持证人选择披露的字段，其他人仅获得有效性、类型、签发机关和脱敏姓名。
        一次亮证可被完整核验一次（获授权的核验方）、基本核验一次（其他人），匿名核验不会用掉核验方的那一次。
        `require_device_binding: true` 时只接受持证人手机设备密钥生成的亮证。
        """
        return service.verify(principal=principal, address=request.remote_addr, code=data.get("code"),
                              sd_jwt=data.get("sd_jwt"), require_device_binding=data["require_device_binding"],
                              reads=reads, use=use), 200, NO_STORE


@blp.route("/status-lists/<string:list_id>")
class StatusLists(MethodView):
    @blp.response(200, content_type=STATUS_LIST_MIME)
    @blp.doc(responses={"200": {"description": "IETF Token Status List（JWT，2 位：0 有效、1 失效、2 暂停）",
                                "content": {STATUS_LIST_MIME: {"schema": {"type": "string"}}}}})
    @blp.alt_response(304, description="未变化（If-None-Match）")
    @blp.alt_response(404, schema=ProblemSchema, description="状态列表不存在")
    def get(self, list_id):
        """证照状态列表（statuslist+jwt）"""
        token, etag = service.status_list_token(list_id)
        headers = {"Cache-Control": f"public, max-age={CACHE_SECONDS}", "ETag": etag}
        wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
        if etag in wanted or "*" in wanted:
            return Response(status=304, headers=headers)
        return Response(token, status=200, mimetype=STATUS_LIST_MIME, headers=headers)


from . import device_views  # noqa: E402,F401 - device keys and verifier requests, on this blueprint
