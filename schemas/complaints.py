"""Schemas of complaints (找茬吐槽 / 12345): filing, replies, ratings and the hall's list."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.complaints.models import CATEGORIES, CATEGORY_LABELS, CLOSED, OPEN
from app.timeutil import beijing_today, isoformat_z

from .common import PageArgsSchema, PageSchema, StrictSchema, messages, printable

_CATEGORY = validate.OneOf(CATEGORIES, error="category 应为 " + "、".join(CATEGORIES) + " 之一")
_STATUS = validate.OneOf((OPEN, CLOSED), error="status 应为 open 或 closed")
_CODE = validate.Length(min=1, max=60, error="编码长度应为 {min} 至 {max} 个字符")


class ComplaintCreateSchema(StrictSchema):
    category = fields.String(required=True, validate=_CATEGORY, error_messages=messages("类别 category"),
                             metadata={"description": "consultation 咨询、complaint 投诉、suggestion 建议、report 举报"})
    content = fields.String(required=True, error_messages=messages("内容 content"),
                            validate=[validate.Length(min=5, max=2000, error="内容长度应为 {min} 至 {max} 个字符"), printable])
    hall_code = fields.String(required=True, validate=validate.Regexp(r"^\d{6,12}$", error="大厅编码格式不正确"),
                              error_messages=messages("大厅 hall_code"))
    service_code = fields.String(validate=_CODE, allow_none=True)
    application_id = fields.String(validate=_CODE, allow_none=True)


class ReplyCreateSchema(StrictSchema):
    content = fields.String(required=True, error_messages=messages("答复内容 content"),
                            validate=[validate.Length(min=1, max=2000, error="内容长度应为 {min} 至 {max} 个字符"), printable])
    close = fields.Boolean(load_default=False, metadata={"description": "答复并办结"})


class RatingCreateSchema(StrictSchema):
    rating = fields.Integer(required=True, strict=True, error_messages=messages("评分 rating"),
                            validate=validate.Range(min=1, max=5, error="评分应为 1（非常不满意）至 5（非常满意）"))
    comment = fields.String(allow_none=True, validate=[validate.Length(max=500, error="评价内容最多 {max} 个字符"),
                                                       printable])


class ReplySchema(Schema):
    reply_id = fields.String()
    content = fields.String()
    close = fields.Boolean(attribute="closes")
    created_at = fields.Function(lambda r: isoformat_z(r.created_at), metadata={"type": "string", "format": "date-time"})


def _overdue(view) -> bool:
    return view.complaint.status == OPEN and view.complaint.due_date < beijing_today()


class ComplaintSchema(Schema):
    """One complaint (the complainant's view); `replies` oldest first."""

    complaint_id = fields.Function(lambda v: v.complaint.complaint_id, metadata={"type": "string", "example": "cp_0123456789abcdef0123"})
    status = fields.Function(lambda v: v.complaint.status, metadata={"type": "string", "enum": [OPEN, CLOSED]})
    due_date = fields.Function(lambda v: v.complaint.due_date.isoformat(), metadata={"type": "string", "format": "date"})
    overdue = fields.Function(_overdue, metadata={"type": "boolean"})
    category = fields.Function(lambda v: v.complaint.category, metadata={"type": "string"})
    category_label = fields.Function(lambda v: CATEGORY_LABELS[v.complaint.category], metadata={"type": "string"})
    source = fields.Function(lambda v: v.complaint.source, metadata={"type": "string", "enum": ["app", "hotline12345"]})
    content = fields.Function(lambda v: v.complaint.content, metadata={"type": "string"})
    hall_code = fields.Function(lambda v: v.complaint.hall_code, metadata={"type": "string"})
    service_code = fields.Function(lambda v: v.complaint.service_code, metadata={"type": "string", "nullable": True})
    application_id = fields.Function(lambda v: v.complaint.application_id, metadata={"type": "string", "nullable": True})
    created_at = fields.Function(lambda v: isoformat_z(v.complaint.created_at), metadata={"type": "string", "format": "date-time"})
    closed_at = fields.Function(lambda v: isoformat_z(v.complaint.closed_at), metadata={"type": "string", "format": "date-time", "nullable": True})
    rating = fields.Function(lambda v: v.complaint.rating, metadata={"type": "integer", "nullable": True})
    replies = fields.Function(lambda v: ReplySchema(many=True).dump(v.complaint.replies), metadata={"type": "array", "items": {"type": "object"}})


class HallComplaintSchema(ComplaintSchema):
    """As the hall's staff see it: who complained only masked, and never for a report (举报)."""

    ticket_no = fields.Function(lambda v: v.complaint.external_id, metadata={"type": "string", "nullable": True, "description": "12345 工单号"})
    complainant_masked = fields.String(allow_none=True, metadata={"example": "张*"})
    contact_phone_masked = fields.String(allow_none=True, metadata={"example": "138****5678"})


class ComplaintArgsSchema(PageArgsSchema):
    status = fields.String(validate=_STATUS)


class HallComplaintArgsSchema(ComplaintArgsSchema):
    overdue = fields.Boolean(load_default=False, metadata={"description": "只看已逾期未办结的"})
    category = fields.String(validate=_CATEGORY)


class ComplaintPageSchema(PageSchema):
    items = fields.List(fields.Nested(ComplaintSchema))


class HallComplaintPageSchema(PageSchema):
    items = fields.List(fields.Nested(HallComplaintSchema))
