"""The `oidc` kind of `flask clients create`: the relying-party options and their registration."""
from __future__ import annotations

import functools
import json

import click

from ..errors import ValidationFailed
from .clients import create_client
from .models import AUTH_METHODS

OPTIONS = (
    click.option("--redirect-uri", "redirect_uris", multiple=True, help="OIDC 回调地址（精确匹配，可多次）"),
    click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True,
                 help="OIDC 退出后回跳地址（精确匹配，可多次）"),
    click.option("--backchannel-logout-uri", default=None, help="OIDC 后端退出通知地址"),
    click.option("--sector-identifier", default=None, help="OIDC 同一部门多个系统共用的 sector，得到相同的 sub"),
    click.option("--token-auth-method", default="client_secret_basic", type=click.Choice(AUTH_METHODS),
                 help="OIDC 令牌端点的客户端认证方式"),
    click.option("--jwks-file", default=None, type=click.Path(exists=True, dir_okay=False),
                 help="OIDC private_key_jwt 的公钥集合（JWKS JSON 文件）"),
    click.option("--acr-min", default="L1", type=click.Choice(["L1", "L2", "L3"]), help="OIDC 最低实名等级"),
    click.option("--resource-server", is_flag=True, default=False, help="OIDC 资源服务器（可调用令牌自省）"),
)


def oidc_options(command):
    """Add the relying-party options to a click command (they arrive as keyword arguments)."""
    return functools.reduce(lambda wrapped, option: option(wrapped), reversed(OPTIONS), command)


def create_oidc_client(*, name: str, scopes=(), redirect_uris=(), post_logout_redirect_uris=(),
                       backchannel_logout_uri=None, sector_identifier=None, token_auth_method="client_secret_basic",
                       jwks_file=None, acr_min="L1", resource_server=False) -> dict:
    """Register a relying party; returns the JSON the command prints (the secret is shown once)."""
    jwks = None
    if jwks_file:
        try:
            with open(jwks_file, encoding="utf-8") as handle:
                jwks = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ValidationFailed.field("jwks", f"公钥集合文件无法读取：{exc}") from None
    client, secret = create_client(
        name=name, redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout_redirect_uris,
        backchannel_logout_uri=backchannel_logout_uri, scopes=[s for s in scopes if s not in ("openid",)],
        sector_identifier=sector_identifier, token_endpoint_auth_method=token_auth_method, jwks=jwks,
        acr_minimum=acr_min, resource_server=resource_server)
    return {"client_id": client.client_id, "client_secret": secret}
