"""Schemas of the inbox."""
from marshmallow import Schema, fields

from .common import PageSchema
from .identity import UtcDateTime


class NotificationSchema(Schema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(metadata={"example": "application_status"})
    title = fields.String(metadata={"example": "您的办件已受理"})
    body = fields.String()
    data = fields.Dict()
    created_at = UtcDateTime()
    read_at = UtcDateTime(allow_none=True)


class InboxPageSchema(PageSchema):
    items = fields.List(fields.Nested(NotificationSchema))
