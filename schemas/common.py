"""Shared schema parts: strict input schemas, Chinese field messages, the control-character
rule, problem details, paging arguments and paged envelopes."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

# C0 controls and DEL; free text may still hold tab, line feed and carriage return.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
TEXT_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_MESSAGE = "包含不允许的控制字符"


class StrictSchema(Schema):
    """Unknown fields are rejected with a Chinese message."""

    error_messages = {"unknown": "不允许的字段", "type": "请求体应为 JSON 对象"}


def messages(label: str, **extra) -> dict:
    """A field's Chinese messages (missing, null, invalid), naming it by `label`."""
    return {"required": f"缺少必填字段：{label}", "null": f"{label}不能为空", "invalid": f"{label}格式不正确", **extra}


def labelled(labels: Mapping[str, str]) -> Callable[..., dict]:
    """`messages` taking a field's name, labelled from `labels` (the name itself when absent)."""
    return lambda name, **extra: messages(labels.get(name, name), **extra)


def printable(value: str) -> None:
    """Validator of free text: no C0 control character but tab, line feed and carriage return,
    and no DEL (PostgreSQL text cannot even hold NUL)."""
    if TEXT_CONTROL_CHARACTERS.search(value):
        raise ValidationError(CONTROL_MESSAGE)


class ProblemSchema(Schema):
    """RFC 9457 problem details (extension members such as `license_status` are allowed)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(metadata={"example": "http://127.0.0.1:5000/problems/validation-failed"})
    title = fields.String(metadata={"example": "请求参数校验失败"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String(metadata={"example": "page_size: 必须介于 1 和 100 之间"})
    instance = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"example": {"page_size": ["必须介于 1 和 100 之间"]}})


class PageArgsSchema(StrictSchema):
    """`page` from 1, `page_size` default 20, at most 100; unknown parameters are refused."""

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
