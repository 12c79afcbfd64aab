"""HTTP views of appointments: slots, bookings, and the hall's queue of the day."""
from __future__ import annotations

from flask.views import MethodView
from werkzeug.wrappers import Response

from schemas.appointments import (AppointmentArgsSchema, AppointmentCreateSchema, AppointmentPageSchema,
                                  AppointmentSchema, QueueArgsSchema, QueueEntrySchema, QueuePageSchema,
                                  SlotArgsSchema, SlotListSchema)
from schemas.common import ProblemSchema, paged

from ..extensions import BEARER, ApiBlueprint
from ..json_output import json_text
from ..security.rbac import auth_required, current_principal
from . import booking, desk, slots

blp = ApiBlueprint("appointments", __name__, description="预约办事：可预约时段、预约与取消、大厅当日队列")


@blp.route("/halls/<string:hall_code>/appointment-slots")
class HallSlots(MethodView):
    @blp.arguments(SlotArgsSchema, location="query")
    @blp.response(200, SlotListSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    @blp.alt_response(422, schema=ProblemSchema, description="日期已过去，或该大厅不办理所选事项")
    def get(self, args, hall_code):
        """大厅某日可预约的时段（今天及此后 10 个工作日开放）"""
        listed = slots.list_slots(hall_code=hall_code, day=args.get("date"), service_code=args.get("service_code"))
        return Response(json_text(listed), status=200, mimetype="application/json")  # SlotListSchema's shape


@blp.route("/appointments")
class Appointments(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(AppointmentArgsSchema, location="query")
    @blp.response(200, AppointmentPageSchema)
    def get(self, args):
        """我的预约"""
        rows, total = booking.my_appointments(principal=current_principal(), status=args.get("status"),
                                              page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(AppointmentCreateSchema, example={"slot_id": "370102-20261202-0900",
                                                     "service_code": "370102-000705012000"})
    @blp.response(201, AppointmentSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="非个人身份，或近期爽约次数过多")
    @blp.alt_response(409, schema=ProblemSchema, description="该时段已约满，或您已预约该时段")
    @blp.alt_response(422, schema=ProblemSchema, description="时段不存在或已过去，或该大厅不办理此事项")
    @blp.alt_response(429, schema=ProblemSchema, description="预约过于频繁")
    def post(self, data):
        """预约一个时段办理本大厅的事项"""
        return booking.book(principal=current_principal(), slot_id=data["slot_id"],
                            service_code=data["service_code"]), 201


@blp.route("/appointments/<string:appointment_id>")
class AppointmentById(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, AppointmentSchema)
    @blp.alt_response(404, schema=ProblemSchema, description="预约不存在（或不是您的）")
    def get(self, appointment_id):
        """我的一个预约"""
        return booking.appointment_detail(principal=current_principal(), appointment_id=appointment_id)

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="预约不存在（或不是您的）")
    @blp.alt_response(409, schema=ProblemSchema, description="已取消、已结束，或时段已经开始")
    def delete(self, appointment_id):
        """取消预约（名额退回该时段）"""
        booking.cancel(principal=current_principal(), appointment_id=appointment_id)


@blp.route("/appointments/<string:appointment_id>/check-in")
class AppointmentCheckIn(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, QueueEntrySchema)
    @blp.alt_response(404, schema=ProblemSchema, description="预约不存在（或不属于您的大厅）")
    @blp.alt_response(409, schema=ProblemSchema, description="已取消、已结束，或不是当天的预约")
    def post(self, appointment_id):
        """窗口签到（该大厅工作人员）"""
        return desk.check_in(principal=current_principal(), appointment_id=appointment_id)


@blp.route("/halls/<string:hall_code>/appointments")
class HallQueue(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(QueueArgsSchema, location="query")
    @blp.response(200, QueuePageSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是该大厅的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def get(self, args, hall_code):
        """大厅某日的预约队列（默认今天；该大厅工作人员）"""
        rows, total = desk.hall_queue(principal=current_principal(), hall_code=hall_code, day=args.get("date"),
                                      status=args.get("status"), page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])
