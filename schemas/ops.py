"""Schemas of the operations endpoints."""
from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})


class ReadinessSchema(Schema):
    database = fields.String(metadata={"enum": ["ok", "down"]})
    redis = fields.String(metadata={"enum": ["ok", "down", "disabled"]})


class JwkSchema(Schema):
    class Meta:
        unknown = "include"

    kty = fields.String()
    crv = fields.String()
    x = fields.String()
    y = fields.String()
    kid = fields.String()
    use = fields.String()
    alg = fields.String()


class JwksSchema(Schema):
    keys = fields.List(fields.Nested(JwkSchema))
