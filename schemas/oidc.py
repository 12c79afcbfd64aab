"""Schemas of 一号通行 for other systems: the app's one-call consent and the person's consents."""
from marshmallow import Schema, fields, validate

from .common import PageSchema, StrictSchema, labelled, printable
from .identity import UtcDateTime

_messages = labelled({"client_id": "应用标识", "redirect_uri": "回调地址", "scope": "授权范围", "state": "state",
                      "nonce": "nonce", "code_challenge": "code_challenge", "code_challenge_method": "code_challenge_method",
                      "acr_values": "acr_values"})
_PKCE = r"^[A-Za-z0-9\-._~]{43,128}$"


class AuthorizationRequestSchema(StrictSchema):
    """What the relying party asked for (its authorization request), confirmed in the app."""

    client_id = fields.String(required=True, validate=[validate.Length(1, 40), printable],
                              error_messages=_messages("client_id"), metadata={"example": "oc_0a1b2c3d4e5f6a7b8c9d"})
    redirect_uri = fields.String(required=True, validate=[validate.Length(1, 2000), printable],
                                 error_messages=_messages("redirect_uri"),
                                 metadata={"example": "https://gaj.jinan.example/oidc/callback"})
    scope = fields.String(required=True, validate=[validate.Length(1, 200), printable],
                          error_messages=_messages("scope"), metadata={"example": "openid profile"})
    state = fields.String(load_default=None, validate=[validate.Length(1, 500), printable],
                          error_messages=_messages("state"))
    nonce = fields.String(load_default=None, validate=[validate.Length(1, 255), printable],
                          error_messages=_messages("nonce"))
    code_challenge = fields.String(required=True, validate=validate.Regexp(
        _PKCE, error="应为 43 至 128 位 base64url 字符（PKCE S256）"), error_messages=_messages("code_challenge"))
    code_challenge_method = fields.String(required=True, validate=validate.OneOf(
        ["S256"], error="只支持 S256"), error_messages=_messages("code_challenge_method"))
    acr_values = fields.String(load_default=None, validate=[validate.Length(1, 50), printable],
                               error_messages=_messages("acr_values"))


class AuthorizationRedirectSchema(Schema):
    redirect_to = fields.String(metadata={"example": "https://gaj.jinan.example/oidc/callback?code=...&state=af0ifjsldkj"})


class ConsentSchema(Schema):
    client_id = fields.String()
    client_name = fields.String(allow_none=True)
    scopes = fields.List(fields.String(), metadata={"example": ["openid", "profile"]})
    granted_at = UtcDateTime()
    updated_at = UtcDateTime()


class ConsentPageSchema(PageSchema):
    items = fields.List(fields.Nested(ConsentSchema))
