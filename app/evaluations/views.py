"""HTTP views of 好差评: ratings, hall summaries and rectification tickets."""
from __future__ import annotations

from flask.views import MethodView

from schemas.common import ProblemSchema, paged
from schemas.evaluations import (CloseTicketSchema, EvaluationCreateSchema, EvaluationSchema, FollowUpCreateSchema,
                                 RectificationArgsSchema, RectificationPageSchema, RectificationSchema,
                                 SummaryArgsSchema, SummarySchema)

from ..extensions import BEARER, ApiBlueprint
from ..security.rbac import auth_required, current_principal
from . import service

blp = ApiBlueprint("evaluations", __name__, description="好差评：办件评价、满意度统计与差评整改")


@blp.route("/applications/<string:application_id>/evaluation")
class ApplicationEvaluation(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, EvaluationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在或尚未评价")
    def get(self, application_id):
        """我对该办件的评价"""
        return service.evaluation_of(principal=current_principal(), application_id=application_id)

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(EvaluationCreateSchema, example={
        "rating": 5, "dimensions": {"efficiency": 5, "guide_accuracy": 4, "convenience": 5, "attitude": 5},
        "comment": "办理很快，指南清楚"})
    @blp.response(201, EvaluationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="办件不存在（或不是您的）")
    @blp.alt_response(409, schema=ProblemSchema, description="办件尚未办结，或已评价过")
    @blp.alt_response(422, schema=ProblemSchema, description="超过办结后5个工作日的评价期限，或内容未通过审核")
    def post(self, data, application_id):
        """评价办件（好差评：1 非常不满意 … 5 非常满意；差评自动生成整改工单）"""
        return service.rate(principal=current_principal(), application_id=application_id, rating=data["rating"],
                            dimensions=data.get("dimensions"), comment=data.get("comment")), 201


@blp.route("/halls/<string:hall_code>/evaluations/summary")
class HallEvaluationSummary(MethodView):
    @blp.arguments(SummaryArgsSchema, location="query")
    @blp.response(200, SummarySchema)
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def get(self, args, hall_code):
        """大厅满意度统计（各评分数量、满意率，按事项分列；公开）"""
        return service.hall_summary(hall_code=hall_code, service_code=args.get("service_code"))


@blp.route("/halls/<string:hall_code>/rectifications")
class HallRectifications(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(RectificationArgsSchema, location="query")
    @blp.response(200, RectificationPageSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是该大厅（或其所属市）的管理员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def get(self, args, hall_code):
        """差评整改工单（大厅管理员）"""
        rows, total = service.rectifications(principal=current_principal(), hall_code=hall_code,
                                             status=args.get("status"), page=args["page"],
                                             page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])


@blp.route("/rectifications/<string:ticket_id>")
class RectificationById(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, RectificationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="工单不存在（或不属于您的大厅）")
    def get(self, ticket_id):
        """整改工单详情（含跟进记录）"""
        return service.ticket_detail(principal=current_principal(), ticket_id=ticket_id)


@blp.route("/rectifications/<string:ticket_id>/follow-ups")
class RectificationFollowUps(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(FollowUpCreateSchema, example={"note": "已约谈窗口工作人员，完善一次性告知清单"})
    @blp.response(201, RectificationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="工单不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="工单已关闭")
    def post(self, data, ticket_id):
        """添加整改跟进记录"""
        return service.add_follow_up(principal=current_principal(), ticket_id=ticket_id, note=data["note"]), 201


@blp.route("/rectifications/<string:ticket_id>/close")
class RectificationClose(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(CloseTicketSchema, example={"resolution": "已优化办事指南并向申请人致歉说明"})
    @blp.response(200, RectificationSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="工单不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="工单已关闭")
    def post(self, data, ticket_id):
        """关闭整改工单（整改结果通知评价人）"""
        return service.close_ticket(principal=current_principal(), ticket_id=ticket_id,
                                    resolution=data["resolution"])
