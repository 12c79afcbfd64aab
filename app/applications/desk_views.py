"""HTTP views of the hall desk: 帮办代办 and its confirmation, the department queues (受审分离) and the
pickup window. Window intake (一窗受理) is POST /applications with `applicant` (views.py)."""
from __future__ import annotations

from flask import request
from flask.views import MethodView

from schemas.applications import ApplicationPageSchema, ApplicationSchema
from schemas.common import PageArgsSchema, ProblemSchema, paged
from schemas.hall_desk import (AssistedApplicationCreateSchema, AssistedApplicationPageSchema,
                               AssistedApplicationSchema, AssistedListArgsSchema, ConfirmationSchema,
                               DepartmentQueueArgsSchema, HandoverSchema)

from ..extensions import BEARER, ApiBlueprint
from ..identity.actors import current_actor
from ..security.rbac import auth_required
from . import assisted, routing
from .views import ANSWER, _created

blp = ApiBlueprint("hall_desk", __name__, description="大厅窗口：帮办代办、受审分离（部门审批队列）、统一出件窗口、全省通办")


@blp.route("/assisted-applications")
class AssistedApplications(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(AssistedListArgsSchema, location="query")
    @blp.response(200, AssistedApplicationPageSchema)
    def get(self, args):
        """工作人员为我帮办的申请（`status=pending`：待我确认的）"""
        rows, total = assisted.my_drafts(actor=current_actor(), status=args.get("status"), page=args["page"],
                                         page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(AssistedApplicationCreateSchema)
    @blp.response(201, AssistedApplicationSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是大厅工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="事项不存在")
    @blp.alt_response(422, schema=ProblemSchema, description="本大厅不办理该事项、申请人与人口库不一致、表单或材料不符合要求")
    def post(self, data):
        """帮办代办（工作人员）：为申请人填写申请，待申请人在爱山东确认后提交

        申请人的收件箱收到确认提醒；确认前不产生办件。证照材料由申请人确认时从本人卡包提供。
        """
        return assisted.create_assisted(actor=current_actor(), data=data), 201


@blp.route("/assisted-applications/<string:application_id>")
class AssistedApplicationsById(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, AssistedApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="帮办申请不存在（或不是您的）")
    def get(self, application_id):
        """一件帮办申请（申请人，或帮办人所在大厅的工作人员）"""
        return assisted.readable_draft(actor=current_actor(), application_id=application_id)

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="帮办申请不存在（或不是您的）")
    @blp.alt_response(409, schema=ProblemSchema, description="已确认、已拒绝、已撤销或已过期")
    def delete(self, application_id):
        """拒绝（申请人）或撤销（帮办人所在大厅的工作人员）一件待确认的帮办申请"""
        assisted.withdraw_draft(actor=current_actor(), application_id=application_id)


@blp.route("/applications/<string:application_id>/confirmations")
class ApplicationConfirmations(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ConfirmationSchema)
    @blp.response(201, ApplicationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="帮办申请不存在（或不是您的）")
    @blp.alt_response(409, schema=ProblemSchema, description="已确认、已拒绝、已撤销或已过期")
    @blp.alt_response(422, schema=ProblemSchema, description="表单或材料不符合要求")
    def post(self, data, application_id):
        """申请人确认帮办申请并提交（办件编号即帮办申请的编号）"""
        return _created(assisted.confirm(actor=current_actor(), application_id=application_id, path=request.path,
                                         added_materials=data["materials"], answer=ANSWER.dump))


@blp.route("/applications/<string:application_id>/handovers")
class ApplicationHandovers(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(HandoverSchema, example={"identity_check": "id_card_reader"})
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是领取窗口所在大厅的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="没有待领取的办理结果，或已领取")
    def post(self, data, application_id):
        """统一出件窗口（工作人员）：核验身份后向申请人交付办理结果"""
        return routing.hand_over(actor=current_actor(), application_id=application_id,
                                 identity_check=data["identity_check"], comment=data.get("comment"))


@blp.route("/halls/<string:hall_code>/queues/<string:department>")
class DepartmentQueue(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(DepartmentQueueArgsSchema, location="query")
    @blp.response(200, ApplicationPageSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是该大厅的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在，或该大厅没有此部门")
    def get(self, args, hall_code, department):
        """部门审批队列（受审分离）：已受理、待该部门审批的办件，按办结期限排序"""
        rows, total = routing.department_queue(actor=current_actor(), hall_code=hall_code, department=department,
                                               status=args.get("status"), page=args["page"],
                                               page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])


@blp.route("/halls/<string:hall_code>/pickups")
class HallPickups(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, ApplicationPageSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是该大厅的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def get(self, args, hall_code):
        """统一出件窗口：待领取的办理结果（含全省通办代收的）"""
        rows, total = routing.pickups(actor=current_actor(), hall_code=hall_code, page=args["page"],
                                      page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])
