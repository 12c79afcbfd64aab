"""Schemas of the inbox."""
from marshmallow import Schema, fields, validate

from .common import PageArgsSchema, PageSchema
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
    unread_count = fields.Integer(metadata={"description": "整个消息中心的未读条数（不受筛选影响）", "example": 3})


KIND = validate.Regexp(r"^[a-z][a-z_]{0,39}$", error="kind 应为消息类型（如 application_status、license_access）")


class InboxArgsSchema(PageArgsSchema):
    unread = fields.Boolean(error_messages={"invalid": "unread 应为 true 或 false"},
                            metadata={"description": "true：只看未读；false：只看已读"})
    kind = fields.String(validate=KIND, metadata={"description": "消息类型", "example": "application_status"})


class InboxReadAllSchema(Schema):
    updated = fields.Integer(metadata={"description": "本次标记为已读的条数", "example": 3})
    unread_count = fields.Integer(metadata={"example": 0})
