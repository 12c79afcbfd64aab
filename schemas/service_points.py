"""Schemas of 就近办: the nearest halls and township/village service points."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from .common import StrictSchema, messages

LEVELS = ("province", "city", "county", "township", "village")


class NearestArgsSchema(StrictSchema):
    lat = fields.Float(required=True, allow_nan=False, error_messages=messages("纬度 lat"),
                       validate=validate.Range(min=-90, max=90, error="纬度应介于 -90 和 90 之间"),
                       metadata={"description": "纬度（十进制度）", "example": 36.6512})
    lon = fields.Float(required=True, allow_nan=False, error_messages=messages("经度 lon"),
                       validate=validate.Range(min=-180, max=180, error="经度应介于 -180 和 180 之间"),
                       metadata={"description": "经度（十进制度）", "example": 117.1201})
    base_code = fields.String(validate=validate.Regexp(r"^[0-9A-Za-z]{1,20}$", error="基本目录编码格式不正确"),
                              metadata={"description": "只返回能办理该基本目录事项的服务点", "example": "000705012000"})
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=50, error="limit 应介于 {min} 和 {max} 之间"))


class ServicePointSchema(Schema):
    code = fields.String(metadata={"example": "370102001"})
    name = fields.String(metadata={"example": "济南市历下区第1街道便民服务中心"})
    level = fields.String(metadata={"enum": list(LEVELS)})
    address = fields.String(allow_none=True)
    lat = fields.Float()
    lon = fields.Float()
    distance_km = fields.Float(metadata={"description": "大圆距离（公里）", "example": 1.234})
    open_hours = fields.String(allow_none=True, metadata={"description": "工作日办公时间", "example": "09:00-12:00,13:00-17:00"})
    phone = fields.String(allow_none=True, metadata={"example": "0531-61234567"})


class ServicePointListSchema(Schema):
    items = fields.List(fields.Nested(ServicePointSchema))
