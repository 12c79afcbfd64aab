"""HTTP views of complaints: filing and following one's own, the hall's list, replies and ratings."""
from __future__ import annotations

from flask.views import MethodView

from schemas.common import ProblemSchema, paged
from schemas.complaints import (ComplaintArgsSchema, ComplaintCreateSchema, ComplaintPageSchema, ComplaintSchema,
                                HallComplaintArgsSchema, HallComplaintPageSchema, HallComplaintSchema,
                                RatingCreateSchema, ReplyCreateSchema)

from ..extensions import BEARER, ApiBlueprint
from ..security.rbac import auth_required, current_principal
from . import service

blp = ApiBlueprint("complaints", __name__, description="找茬吐槽：咨询、投诉、建议、举报，大厅答复与评价（对接 12345）")


@blp.route("/complaints")
class Complaints(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ComplaintArgsSchema, location="query")
    @blp.response(200, ComplaintPageSchema)
    def get(self, args):
        """我的诉求"""
        rows, total = service.my_complaints(principal=current_principal(), status=args.get("status"),
                                            page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ComplaintCreateSchema, example={"category": "complaint", "content": "窗口排队时间过长，叫号系统故障",
                                                   "hall_code": "370102"})
    @blp.response(201, ComplaintSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="所涉办件不存在（或不是您的）")
    @blp.alt_response(422, schema=ProblemSchema, description="类别不对，或大厅、事项不存在")
    @blp.alt_response(429, schema=ProblemSchema, description="提交过于频繁")
    def post(self, data):
        """提出咨询、投诉、建议或举报（转办到大厅，按工作日计答复期限）"""
        return service.create_complaint(principal=current_principal(), category=data["category"],
                                        content=data["content"], hall_code=data["hall_code"],
                                        service_code=data.get("service_code"),
                                        application_id=data.get("application_id")), 201


@blp.route("/complaints/<string:complaint_id>")
class ComplaintById(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, ComplaintSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="诉求不存在（或不是您的）")
    def get(self, complaint_id):
        """我的一个诉求（含答复）"""
        return service.complaint_detail(principal=current_principal(), complaint_id=complaint_id)


@blp.route("/complaints/<string:complaint_id>/replies")
class ComplaintReplies(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ReplyCreateSchema, example={"content": "已核实，已增派窗口人员并修复叫号系统。", "close": True})
    @blp.response(201, HallComplaintSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="诉求人本人不能答复")
    @blp.alt_response(404, schema=ProblemSchema, description="诉求不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="诉求已办结")
    def post(self, data, complaint_id):
        """答复诉求（承办大厅工作人员；可同时办结，答复送达诉求人消息中心）"""
        return service.reply(principal=current_principal(), complaint_id=complaint_id, content=data["content"],
                             close=data["close"]), 201


@blp.route("/complaints/<string:complaint_id>/rating")
class ComplaintRating(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(RatingCreateSchema, example={"rating": 5, "comment": "答复及时"})
    @blp.response(201, ComplaintSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="诉求不存在（或不是您的）")
    @blp.alt_response(409, schema=ProblemSchema, description="尚未办结，或已评价")
    def post(self, data, complaint_id):
        """评价诉求办理情况（办结后一次）"""
        return service.rate(principal=current_principal(), complaint_id=complaint_id, rating=data["rating"],
                            comment=data.get("comment")), 201


@blp.route("/halls/<string:hall_code>/complaints")
class HallComplaints(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(HallComplaintArgsSchema, location="query")
    @blp.response(200, HallComplaintPageSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是该大厅的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def get(self, args, hall_code):
        """大厅收到的诉求（工作人员；可筛选已逾期）"""
        rows, total = service.hall_complaints(principal=current_principal(), hall_code=hall_code,
                                              status=args.get("status"), overdue=args["overdue"],
                                              category=args.get("category"), page=args["page"],
                                              page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])
