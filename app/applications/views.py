"""HTTP views of the applications domain (办件): forms, submissions, bundles, processing, work lists."""
from __future__ import annotations

from flask import jsonify, request, url_for
from flask.views import MethodView

from schemas.applications import (ApplicationCreateSchema, ApplicationListArgsSchema, ApplicationPageSchema,
                                  ApplicationSchema, BundleApplicationCreateSchema, BundleFormArgsSchema,
                                  BundleFormSchema, HallApplicationsArgsSchema, ResubmitSchema, RevealArgsSchema,
                                  ServiceFormSchema, TransitionSchema)
from schemas.common import ProblemSchema, paged

from ..extensions import ApiBlueprint
from ..security.rbac import auth_required, current_principal
from . import idempotency, service

blp = ApiBlueprint("applications", __name__, description="办件：表单预填、免证办、告知承诺、容缺、秒批、一件事、办理流程")

BEARER = [{"bearerAuth": []}]
IDEMPOTENCY_PARAM = {"in": "header", "name": idempotency.HEADER, "required": True,
                     "schema": {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH},
                     "description": "幂等键（如 UUID），24 小时内相同键与相同请求返回同一办件；相同键不同请求返回 422"}
CREATED_EXAMPLE = {"application_id": "ap_3f9c2a7b1e4d5c6a8b90", "service_code": "370102-000705015000",
                   "service_name": "居住证签发", "hall_code": "370102", "status": "approved", "deadline": "2026-09-30",
                   "instant_approval": True, "issued_license": {"license_id": "lic_0123456789abcdef0123"}}


def _created(submission):
    """201 with the body (the first answer, replayed verbatim for a repeated Idempotency-Key)."""
    response = jsonify(submission.body)
    response.status_code = 201
    response.headers["Location"] = url_for("applications.ApplicationsById", application_id=submission.application_id)
    if submission.replayed:
        response.headers[idempotency.REPLAY_HEADER] = "true"
    return response


@blp.route("/services/<string:service_code>/form")
class ServiceForm(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(RevealArgsSchema, location="query")
    @blp.response(200, ServiceFormSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="事项不存在")
    def get(self, args, service_code):
        """事项表单（按个人资料、历史申请和卡包证照预填）

        身份证号码、手机号码默认脱敏预填，原样提交即可；`reveal=true` 向本人返回完整值（记入审计）。
        每项材料的 `satisfied_by` 说明可用卡包中的证照（免证办）或告知承诺。
        """
        return service.service_form(principal=current_principal(), service_code=service_code,
                                    reveal=args["reveal"])


@blp.route("/bundles/<string:bundle_code>/form")
class BundleForm(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(BundleFormArgsSchema, location="query")
    @blp.response(200, BundleFormSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="一件事不存在")
    def get(self, args, bundle_code):
        """一件事表单（各子项表单的并集，字段与材料按名称去重）"""
        return service.bundle_form(principal=current_principal(), bundle_code=bundle_code,
                                   hall_code=args.get("hall_code"), reveal=args["reveal"])


@blp.route("/applications")
class Applications(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ApplicationListArgsSchema, location="query")
    @blp.response(200, ApplicationPageSchema)
    def get(self, args):
        """我的办件（分页，最新在前）"""
        rows, total = service.list_applications(principal=current_principal(), status=args.get("status"),
                                                page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])

    @auth_required()
    @blp.doc(security=BEARER, parameters=[IDEMPOTENCY_PARAM])
    @blp.arguments(ApplicationCreateSchema)
    @blp.response(201, ApplicationSchema, example=CREATED_EXAMPLE)
    @blp.alt_response(400, schema=ProblemSchema, description="缺少 Idempotency-Key 请求头")
    @blp.alt_response(404, schema=ProblemSchema, description="事项不存在，或证照不存在/不属于申请人")
    @blp.alt_response(409, schema=ProblemSchema, description="相同幂等键的请求仍在处理中（带 Retry-After）")
    @blp.alt_response(422, schema=ProblemSchema, description="表单或材料不符合要求；幂等键已用于不同的请求")
    def post(self, data):
        """提交办件申请（免证办、告知承诺、容缺受理；即办事项秒批并发证）

        须携带 `Idempotency-Key`：相同键与相同请求再次提交返回同一办件（201，带
        `Idempotent-Replayed: true`）；同一键的前一请求仍在处理时最多等待数秒，仍未完成返回 409。
        """
        key = idempotency.require_key(request.headers)
        submission = service.submit_application(principal=current_principal(), idempotency_key=key,
                                                path=request.path, body=request.get_json())
        return _created(submission)


@blp.route("/bundles/<string:bundle_code>/applications")
class BundleApplications(MethodView):
    @auth_required()
    @blp.doc(security=BEARER, parameters=[IDEMPOTENCY_PARAM])
    @blp.arguments(BundleApplicationCreateSchema)
    @blp.response(201, ApplicationSchema)
    @blp.alt_response(400, schema=ProblemSchema, description="缺少 Idempotency-Key 请求头")
    @blp.alt_response(404, schema=ProblemSchema, description="一件事不存在")
    @blp.alt_response(422, schema=ProblemSchema, description="表单或材料不符合要求")
    def post(self, data, bundle_code):
        """一件事：一次申请，分送各办理大厅（主件随子项办结而办结）"""
        key = idempotency.require_key(request.headers)
        submission = service.submit_bundle(principal=current_principal(), bundle_code=bundle_code,
                                           idempotency_key=key, path=request.path, body=request.get_json())
        return _created(submission)


@blp.route("/applications/<string:application_id>")
class ApplicationsById(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(RevealArgsSchema, location="query")
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在（或不是您的）")
    def get(self, args, application_id):
        """办件详情（状态、时间轴、表单、材料及证照核验结果）"""
        return service.application_detail(principal=current_principal(), application_id=application_id,
                                          reveal=args["reveal"])


@blp.route("/applications/<string:application_id>/transitions")
class ApplicationTransitions(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(TransitionSchema, example={"action": "accept", "comment": "材料齐全，予以受理"})
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是办理大厅的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="当前状态不允许该操作，或办件已被他人更新")
    def post(self, data, application_id):
        """办理（工作人员）：受理、办结、不予办理、要求补正"""
        return service.transition(principal=current_principal(), application_id=application_id,
                                  action=data["action"], comment=data.get("comment"), version=data.get("version"))


@blp.route("/applications/<string:application_id>/resubmit")
class ApplicationResubmit(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ResubmitSchema)
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在")
    @blp.alt_response(409, schema=ProblemSchema, description="办件不在待补正状态")
    def post(self, data, application_id):
        """补正后重新提交（修改表单字段、补充或替换材料）"""
        return service.resubmit(principal=current_principal(), application_id=application_id,
                                form=data.get("form"), materials=data.get("materials"))


@blp.route("/applications/<string:application_id>/withdraw")
class ApplicationWithdraw(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在")
    @blp.alt_response(409, schema=ProblemSchema, description="已受理或已办结，不能撤回")
    def post(self, application_id):
        """撤回申请（受理前，或待补正时）"""
        return service.withdraw(principal=current_principal(), application_id=application_id)


@blp.route("/halls/<string:hall_code>/applications")
class HallApplications(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(HallApplicationsArgsSchema, location="query")
    @blp.response(200, ApplicationPageSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是该大厅（或其所属市）的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def get(self, args, hall_code):
        """大厅办件列表（工作人员）：按状态、超期、临近到期筛选，按办结期限排序"""
        rows, total = service.hall_applications(
            principal=current_principal(), hall_code=hall_code, status=args.get("status"),
            overdue=args["overdue"], due_within_days=args.get("due_within_days"),
            page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])
