"""Schemas of uploads: the multipart body (documented) and the stored file's metadata."""
from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields

from app.timeutil import isoformat_z


class FileUploadSchema(Schema):
    """`multipart/form-data` with one part `file` (PDF, JPEG or PNG, at most 10 MiB)."""

    file = Upload(required=True, metadata={"description": "PDF、JPEG 或 PNG，按内容判断类型，不超过 10 MiB"})


class FileSchema(Schema):
    file_id = fields.String(attribute="id", metadata={"example": "f_3c9d0e5b7a1f2e4d6c8b"})
    name = fields.String(metadata={"example": "身份证正面.jpg"})
    content_type = fields.String(metadata={"example": "image/jpeg"})
    size = fields.Integer(metadata={"example": 482113})
    sha256 = fields.String(metadata={"description": "明文内容的 SHA-256（十六进制）"})
    created_at = fields.Function(lambda row: isoformat_z(row.created_at), metadata={"type": "string", "format": "date-time"})
    attached = fields.Function(lambda row: row.attached_at is not None,
                               metadata={"type": "boolean", "description": "是否已被办件使用（未使用的文件一天后删除）"})
