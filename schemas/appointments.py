"""Schemas of appointments (预约): slots, bookings and the hall's queue of the day.

Times of slots are Beijing time with their offset ("2026-12-02T09:00:00+08:00"): a slot is a time on
the hall's clock; record times (created, reminded) are UTC with "Z" as elsewhere.
"""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.appointments.models import STATUS_LABELS, STATUSES
from app.timeutil import isoformat_beijing

from .common import PageArgsSchema, PageSchema, StrictSchema, messages
from .identity import UtcDateTime

_SLOT_ID = validate.Regexp(r"^\d{6,12}-\d{8}-\d{4}$", error="预约时段编号格式不正确")
_SERVICE_CODE = validate.Length(min=1, max=60, error="事项编码长度应为 {min} 至 {max} 个字符")
_STATUS = validate.OneOf(STATUSES, error="status 应为 " + "、".join(STATUSES) + " 之一")


class SlotArgsSchema(StrictSchema):
    date = fields.Date(error_messages=messages("日期 date"), metadata={"description": "默认今天", "example": "2026-12-02"})
    service_code = fields.String(validate=_SERVICE_CODE, metadata={"description": "要办理的事项（须为本大厅事项）"})


class SlotSchema(Schema):
    slot_id = fields.String(metadata={"example": "370102-20261202-0900"})
    start = fields.String(metadata={"format": "date-time", "example": "2026-12-02T09:00:00+08:00"})
    end = fields.String(metadata={"format": "date-time", "example": "2026-12-02T09:30:00+08:00"})
    capacity = fields.Integer(metadata={"example": 10})
    remaining = fields.Integer(metadata={"example": 7})


class SlotListSchema(Schema):
    hall_code = fields.String()
    date = fields.Date()
    bookable_until = fields.Date(allow_none=True, metadata={"description": "可预约的最后一天（今天起第 10 个工作日）"})
    items = fields.List(fields.Nested(SlotSchema))


class AppointmentCreateSchema(StrictSchema):
    slot_id = fields.String(required=True, validate=_SLOT_ID, error_messages=messages("预约时段 slot_id"))
    service_code = fields.String(required=True, validate=_SERVICE_CODE, error_messages=messages("事项编码 service_code"))


class AppointmentSchema(Schema):
    appointment_id = fields.String(metadata={"example": "apt_0123456789abcdef0123"})
    status = fields.String(metadata={"enum": list(STATUSES)})
    status_label = fields.Function(lambda a: STATUS_LABELS.get(a.status, a.status), metadata={"type": "string"})
    slot_id = fields.Function(lambda a: a.slot.slot_id, metadata={"type": "string"})
    ticket = fields.String(metadata={"description": "取号凭证（时段-序号）", "example": "0900-003"})
    hall_code = fields.String()
    service_code = fields.String()
    service_name = fields.String()
    start = fields.Function(lambda a: isoformat_beijing(a.slot.start_at), metadata={"type": "string", "format": "date-time"})
    end = fields.Function(lambda a: isoformat_beijing(a.slot.end_at), metadata={"type": "string", "format": "date-time"})
    created_at = UtcDateTime()
    reminded_at = UtcDateTime(allow_none=True)


class AppointmentArgsSchema(PageArgsSchema):
    status = fields.String(validate=_STATUS)


class AppointmentPageSchema(PageSchema):
    items = fields.List(fields.Nested(AppointmentSchema))


class QueueArgsSchema(PageArgsSchema):
    date = fields.Date(error_messages=messages("日期 date"), metadata={"description": "默认今天"})
    status = fields.String(validate=_STATUS)


class QueueEntrySchema(Schema):
    appointment_id = fields.Function(lambda e: e.appointment.appointment_id, metadata={"type": "string"})
    ticket = fields.Function(lambda e: e.appointment.ticket, metadata={"type": "string", "nullable": True})
    status = fields.Function(lambda e: e.appointment.status, metadata={"type": "string"})
    start = fields.Function(lambda e: isoformat_beijing(e.appointment.slot.start_at), metadata={"type": "string", "format": "date-time"})
    end = fields.Function(lambda e: isoformat_beijing(e.appointment.slot.end_at), metadata={"type": "string", "format": "date-time"})
    service_code = fields.Function(lambda e: e.appointment.service_code, metadata={"type": "string", "nullable": True})
    service_name = fields.Function(lambda e: e.appointment.service_name, metadata={"type": "string", "nullable": True})
    name_masked = fields.String(allow_none=True, metadata={"example": "张*"})
    id_number_masked = fields.String(allow_none=True, metadata={"example": "370102********8819"})


class QueuePageSchema(PageSchema):
    items = fields.List(fields.Nested(QueueEntrySchema))
