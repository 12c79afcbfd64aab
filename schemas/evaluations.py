"""Schemas of 好差评: ratings, hall summaries and rectification tickets."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.evaluations.models import DIMENSIONS, RATING_LABELS
from app.timeutil import isoformat_z

from .common import PageArgsSchema, PageSchema, StrictSchema, messages, printable

_LEVEL = validate.Range(min=1, max=5, error="评分应为 1（非常不满意）至 5（非常满意）")


class DimensionsSchema(StrictSchema):
    efficiency = fields.Integer(validate=_LEVEL, metadata={"description": DIMENSIONS["efficiency"]})
    guide_accuracy = fields.Integer(validate=_LEVEL, metadata={"description": DIMENSIONS["guide_accuracy"]})
    convenience = fields.Integer(validate=_LEVEL, metadata={"description": DIMENSIONS["convenience"]})
    attitude = fields.Integer(validate=_LEVEL, metadata={"description": DIMENSIONS["attitude"]})


class EvaluationCreateSchema(StrictSchema):
    rating = fields.Integer(required=True, strict=True, validate=_LEVEL, error_messages=messages("评分"),
                            metadata={"description": "1 非常不满意 … 5 非常满意", "example": 5})
    dimensions = fields.Nested(DimensionsSchema, load_default=dict, error_messages=messages("分项评价"))
    comment = fields.String(allow_none=True,
                            validate=[validate.Length(max=500, error="评价内容最多 {max} 个字符"), printable],
                            metadata={"example": "办理很快，指南清楚"})


class TicketBriefSchema(Schema):
    ticket_id = fields.String()
    status = fields.String()
    due_date = fields.Function(lambda t: t.due_date.isoformat(), metadata={"type": "string", "format": "date"})


class EvaluationSchema(Schema):
    evaluation_id = fields.String()
    application_id = fields.Function(lambda e: e.application.application_id, metadata={"type": "string"})
    hall_code = fields.String()
    service_code = fields.String()
    service_name = fields.String()
    rating = fields.Integer()
    rating_label = fields.Function(lambda e: RATING_LABELS[e.rating], metadata={"type": "string"})
    dimensions = fields.Dict()
    comment = fields.String(allow_none=True)
    created_at = fields.Function(lambda e: isoformat_z(e.created_at), metadata={"type": "string", "format": "date-time"})
    rectification = fields.Function(lambda e: TicketBriefSchema().dump(e.ticket) if e.ticket else None, metadata={"type": "object", "nullable": True})


class ServiceSummarySchema(Schema):
    service_code = fields.String()
    service_name = fields.String()
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    satisfaction_rate = fields.Float()


class SummaryArgsSchema(StrictSchema):
    service_code = fields.String(validate=[validate.Length(min=1, max=60), printable])


class SummarySchema(Schema):
    hall_code = fields.String()
    service_code = fields.String(allow_none=True)
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"example": {"1": 0, "2": 1, "3": 2, "4": 10, "5": 37}})
    satisfaction_rate = fields.Float(metadata={"description": "4-5 分占全部评价的比例（0..1，保留4位小数）",
                                               "example": 0.94})
    by_service = fields.List(fields.Nested(ServiceSummarySchema))


class RectificationArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(["open", "closed"], error="status 应为 open 或 closed"))


class FollowUpCreateSchema(StrictSchema):
    note = fields.String(required=True, validate=[validate.Length(min=1, max=1000, error="内容长度应为 {min} 至 {max} 个字符"),
                                                  printable],
                         error_messages=messages("跟进情况"))


class CloseTicketSchema(StrictSchema):
    resolution = fields.String(required=True,
                               validate=[validate.Length(min=1, max=1000, error="内容长度应为 {min} 至 {max} 个字符"),
                                         printable],
                               error_messages=messages("整改结果"))


class FollowUpSchema(Schema):
    note = fields.String()
    created_at = fields.Function(lambda f: isoformat_z(f.created_at), metadata={"type": "string", "format": "date-time"})


class RectificationSchema(Schema):
    ticket_id = fields.String()
    application_id = fields.String()
    service_code = fields.String()
    service_name = fields.Function(lambda t: t.evaluation.service_name, metadata={"type": "string", "nullable": True})
    hall_code = fields.String()
    rating = fields.Integer()
    comment = fields.Function(lambda t: t.evaluation.comment, metadata={"type": "string", "nullable": True})
    status = fields.String(metadata={"enum": ["open", "closed"]})
    due_date = fields.Function(lambda t: t.due_date.isoformat(), metadata={"type": "string", "format": "date"})
    created_at = fields.Function(lambda t: isoformat_z(t.created_at), metadata={"type": "string", "format": "date-time"})
    closed_at = fields.Function(lambda t: isoformat_z(t.closed_at), metadata={"type": "string", "format": "date-time", "nullable": True})
    resolution = fields.String(allow_none=True)
    follow_ups = fields.List(fields.Nested(FollowUpSchema))


class RectificationPageSchema(PageSchema):
    items = fields.List(fields.Nested(RectificationSchema))
