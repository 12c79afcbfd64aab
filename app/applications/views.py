"""HTTP views of the applications domain (办件): forms, submissions, bundles, processing, work lists."""
from __future__ import annotations

from flask import jsonify, request, url_for
from flask.views import MethodView

from schemas.applications import (ApplicationListArgsSchema, ApplicationPageSchema,
                                  ApplicationSchema, BundleApplicationCreateSchema,
                                  BundleFormArgsSchema, BundleFormSchema, HallApplicationsArgsSchema,
                                  MaterialReviewSchema, ResubmitSchema, RevealArgsSchema, ServiceFormSchema,
                                  SpotCheckSampleResultSchema, SpotCheckSampleSchema, SpotCheckSchema,
                                  TransitionSchema)
from schemas.common import ProblemSchema, paged
from schemas.hall_desk import WindowApplicationCreateSchema

from .. import personal_pages
from ..extensions import BEARER, ApiBlueprint
from ..identity.actors import current_actor
from ..page_server import EarlyPage, serve_early
from ..security.rbac import auth_reading, auth_required
from . import idempotency, processing, resubmission, review, service, spot_checks, submission, window

blp = ApiBlueprint("applications", __name__, description="办件：表单预填、免证办、告知承诺、容缺、秒批、一件事、办理流程")

IDEMPOTENCY_PARAM = {"in": "header", "name": idempotency.HEADER, "required": True,
                     "schema": {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH},
                     "description": "幂等键（如 UUID），24 小时内相同键与相同请求返回同一办件；相同键不同请求返回 422"}
CREATED_EXAMPLE = {"application_id": "ap_3f9c2a7b1e4d5c6a8b90", "service_code": "370102-000705015000",
                   "service_name": "居住证签发", "hall_code": "370102", "status": "approved", "deadline": "2026-09-30",
                   "instant_approval": True, "issued_license": {"license_id": "lic_0123456789abcdef0123"}}
APPLICATION_PAGE = ApplicationPageSchema()
ANSWER = ApplicationSchema()  # what a new application is answered with, and replayed for its Idempotency-Key


def _created(created: submission.Submission):
    """201 with the new application, or the first answer replayed verbatim for a repeated Idempotency-Key."""
    headers = {"Location": url_for("applications.ApplicationsById", application_id=created.application_id)}
    if not created.replayed:
        return created.view, 201, headers
    response = jsonify(created.replay)
    response.status_code = 201
    response.headers.update({**headers, idempotency.REPLAY_HEADER: "true"})
    return response


def _submitted(submit, data, **kwargs):
    """Submit under the request's Idempotency-Key; the answer kept for replays is the one @blp.response gives."""
    created = submit(actor=current_actor(), idempotency_key=idempotency.require_key(request.headers),
                     path=request.path, data=data, answer=ANSWER.dump, **kwargs)
    return _created(created)


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
        return submission.service_form(actor=current_actor(), service_code=service_code, reveal=args["reveal"])


@blp.route("/bundles/<string:bundle_code>/form")
class BundleForm(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(BundleFormArgsSchema, location="query")
    @blp.response(200, BundleFormSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="一件事不存在")
    def get(self, args, bundle_code):
        """一件事表单（各子项表单的并集，字段与材料按名称去重）"""
        return submission.bundle_form(actor=current_actor(), bundle_code=bundle_code,
                                      hall_code=args.get("hall_code"), reveal=args["reveal"])


serve_early(EarlyPage("applications.Applications", "applications"))


@blp.route("/applications")
class Applications(MethodView):
    @auth_reading(lambda claims: personal_pages.opening_keys("applications", claims))
    @blp.doc(security=BEARER)
    @blp.arguments(ApplicationListArgsSchema, location="query")
    @blp.response(200, ApplicationPageSchema)
    def get(self, args, reads):
        """我的办件（分页，最新在前）"""
        actor = current_actor()

        def read_page() -> dict:
            rows, total = service.list_applications(actor=actor, status=args.get("status"),
                                                    page=args["page"], page_size=args["page_size"])
            return paged(rows, total, args["page"], args["page_size"])

        if personal_pages.page_key("applications", actor.subject_id) not in reads:
            return read_page()
        return personal_pages.opened("applications", actor.subject_id, reads, read_page=read_page,
                                     schema=APPLICATION_PAGE)

    @auth_required()
    @blp.doc(security=BEARER, parameters=[IDEMPOTENCY_PARAM])
    @blp.arguments(WindowApplicationCreateSchema)
    @blp.response(201, ApplicationSchema, example=CREATED_EXAMPLE)
    @blp.alt_response(400, schema=ProblemSchema, description="缺少 Idempotency-Key 请求头")
    @blp.alt_response(403, schema=ProblemSchema, description="带 applicant 但不是大厅工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="事项不存在，或证照不存在/不属于申请人")
    @blp.alt_response(409, schema=ProblemSchema, description="相同幂等键的请求仍在处理中（带 Retry-After）")
    @blp.alt_response(422, schema=ProblemSchema, description="表单或材料不符合要求；幂等键已用于不同的请求；"
                                                             "本大厅不办理该事项；申请人与人口库不一致")
    def post(self, data):
        """提交办件申请（免证办、告知承诺、容缺受理；即办事项秒批并发证；窗口一窗受理）

        须携带 `Idempotency-Key`：相同键与相同请求再次提交返回同一办件（201，带
        `Idempotent-Replayed: true`）；同一键的前一请求仍在处理时最多等待数秒，仍未完成返回 409。
        大厅工作人员为到窗口的申请人提交时带 `applicant` 与 `identity_check`：办件属于申请人
        （`channel: window`），工作人员记入时间轴；全省通办事项可受理其他大厅的（`responsible_hall`）。
        """
        if "applicant" in data:
            return _submitted(window.submit_at_window, data)
        return _submitted(submission.submit_application, data)


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
        return _submitted(submission.submit_bundle, data, bundle_code=bundle_code)


@blp.route("/applications/<string:application_id>")
class ApplicationsById(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(RevealArgsSchema, location="query")
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在（或不是您的）")
    def get(self, args, application_id):
        """办件详情（状态、时间轴、表单、材料及证照核验结果）"""
        return service.application_detail(actor=current_actor(), application_id=application_id,
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
    @blp.alt_response(422, schema=ProblemSchema, description="缺少理由、补正材料、证照字段或邮件单号")
    def post(self, data, application_id):
        """办理（工作人员）：受理、办结、不予办理、要求补正、寄出结果

        `approve` 须所有上传的文件审核通过、容缺材料已补齐；事项签发证照时由办理部门签发，
        只有部门业务系统才知道的证照字段在 `license_fields` 中填写。`request_more` 在
        `materials` 中列出需要重新提供的材料。`dispatch` 记录寄出（`tracking_number`）或可领取。
        """
        return processing.transition(actor=current_actor(), application_id=application_id,
                                     action=data["action"], comment=data.get("comment"), version=data.get("version"),
                                     materials=data.get("materials"), license_fields=data.get("license_fields"),
                                     tracking_number=data.get("tracking_number"))


@blp.route("/applications/<string:application_id>/materials/<string:name>/review")
class MaterialReview(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(MaterialReviewSchema, example={"decision": "rejected", "reason": "照片模糊，无法辨认"})
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件或材料不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="办件不在办理中，或材料尚未提交")
    def post(self, data, application_id, name):
        """审核材料（工作人员）：通过，或不通过并说明理由"""
        return review.review_material(actor=current_actor(), application_id=application_id, name=name,
                                      decision=data["decision"], reason=data.get("reason"),
                                      version=data.get("version"))


@blp.route("/applications/<string:application_id>/resubmissions")
class ApplicationResubmissions(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ResubmitSchema)
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在")
    @blp.alt_response(409, schema=ProblemSchema, description="办件已办结或已撤回")
    @blp.alt_response(422, schema=ProblemSchema, description="缺少要求补正的材料，或材料、表单不符合要求")
    def post(self, data, application_id):
        """补正后重新提交，或办理中补交容缺材料

        待补正时：修改表单字段、重新提供材料（须包含工作人员要求补正的全部材料），进入新一轮审核；
        已提交或已受理时：只补交容缺后补的材料。
        """
        return resubmission.resubmit(actor=current_actor(), application_id=application_id,
                                     form=data["form"], materials_=data["materials"])


@blp.route("/applications/<string:application_id>/spot-check")
class ApplicationSpotCheck(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(SpotCheckSchema, example={"outcome": "breach", "comment": "经核查无居住事实",
                                             "materials": ["居住证明"]})
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="不是待抽查的秒批办件")
    def post(self, data, application_id):
        """秒批事后抽查结论（工作人员）：承诺属实，或承诺不实并撤销办理结果"""
        return spot_checks.conclude(actor=current_actor(), application_id=application_id, outcome=data["outcome"],
                                    comment=data.get("comment"), materials=data.get("materials"))


@blp.route("/halls/<string:hall_code>/spot-checks")
class HallSpotChecks(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(SpotCheckSampleSchema)
    @blp.response(200, SpotCheckSampleResultSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是该大厅的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def post(self, data, hall_code):
        """抽取秒批办件进行事后抽查（随机抽取以告知承诺办结、尚未抽查的办件）"""
        return {"items": spot_checks.sample(actor=current_actor(), hall_code=hall_code, count=data["count"])}


@blp.route("/applications/<string:application_id>/withdraw")
class ApplicationWithdraw(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在")
    @blp.alt_response(409, schema=ProblemSchema, description="已受理或已办结，不能撤回")
    def post(self, application_id):
        """撤回申请（受理前，或待补正时）"""
        return processing.withdraw(actor=current_actor(), application_id=application_id)


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
            actor=current_actor(), hall_code=hall_code, status=args.get("status"),
            overdue=args["overdue"], due_within_days=args.get("due_within_days"),
            page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])
