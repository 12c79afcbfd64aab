"""Schemas of results: the seal verification answer and the multipart body it takes."""
from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields


class SealVerificationUploadSchema(Schema):
    """`multipart/form-data` with one part `file`: the PDF to check."""

    file = Upload(required=True, metadata={"description": "要验证的 PDF 文件，不超过 10 MiB"})


class SealVerificationSchema(Schema):
    valid = fields.Boolean(metadata={"description": "印章可信、签名有效、签名后未被改动"})
    signer = fields.String(allow_none=True, metadata={"example": "济南市公安局"})
    signed_at = fields.String(allow_none=True, metadata={"description": "盖章时间（有可信时间戳时取时间戳）",
                                                          "example": "2026-12-01T08:30:00Z"})
    intact = fields.Boolean(metadata={"description": "签名覆盖的内容未被篡改"})
