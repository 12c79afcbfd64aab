"""Shared schemas: problem details, paging arguments and paged envelopes."""
from marshmallow import INCLUDE, Schema, fields, validate


class ProblemSchema(Schema):
    """RFC 9457 problem details (extension members such as `license_status` are allowed)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(metadata={"example": "https://api.ishandong.example/problems/validation-failed"})
    title = fields.String(metadata={"example": "请求参数校验失败"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String(metadata={"example": "page_size: 必须介于 1 和 100 之间"})
    instance = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"example": {"page_size": ["必须介于 1 和 100 之间"]}})


class PageArgsSchema(Schema):
    """`page` from 1, `page_size` default 20, at most 100."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000, error="必须介于 {min} 和 {max} 之间"))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100, error="必须介于 {min} 和 {max} 之间"))


class PageSchema(Schema):
    """Envelope of a paged list; subclasses set `items`."""

    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def paged(items, total: int, page: int, page_size: int) -> dict:
    """The contract's list envelope."""
    return {"items": list(items), "total": int(total), "page": page, "page_size": page_size}
