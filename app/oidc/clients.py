"""Registering relying parties (operator command) and finding them; secrets are kept as hashes."""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from authlib.common.security import is_secure_transport
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select

from ..errors import ValidationFailed
from ..extensions import db
from ..identity.common import commit, new_id, sha256_hex
from ..security import audit
from ..timeutil import utcnow
from .claims import ACR_VALUES, level_of
from .models import AUTH_METHODS, BASE_SCOPES, EXTRA_SCOPES, OidcClient


def _checked_uri(value: str, field: str) -> str:
    """An absolute https URI (http only on loopback), without a fragment."""
    value = (value or "").strip()
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc or parts.fragment or not is_secure_transport(value):
        raise ValidationFailed.field(field, "应为不含片段（#）的 https 绝对地址（本机回环地址可用 http）")
    return value


def _checked_jwks(jwks) -> dict:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValidationFailed.field("jwks", "应为含 keys 数组的 JWKS（JSON Web Key Set）")
    try:
        keys = KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValidationFailed.field("jwks", f"公钥集合无法解析：{exc}") from None
    if not keys.keys or any(key.is_private for key in keys.keys):
        raise ValidationFailed.field("jwks", "公钥集合应至少含一个公钥，且不能含私钥")
    return {"keys": [key.as_dict(private=False) for key in keys.keys]}


def create_client(*, name: str, redirect_uris, post_logout_redirect_uris=(), backchannel_logout_uri=None,
                  scopes=(), sector_identifier: str | None = None, token_endpoint_auth_method="client_secret_basic",
                  jwks: dict | None = None, acr_minimum: str = "L1",
                  resource_server: bool = False) -> tuple[OidcClient, str | None]:
    """Register a relying party; returns (client, secret shown once, or None for private_key_jwt)."""
    if not (name or "").strip():
        raise ValidationFailed.field("name", "名称不能为空")
    redirect_uris = [_checked_uri(uri, "redirect_uri") for uri in redirect_uris]
    if not redirect_uris and not resource_server:
        raise ValidationFailed.field("redirect_uri", "至少需要一个回调地址")
    unknown = sorted(set(scopes) - set(BASE_SCOPES) - set(EXTRA_SCOPES))
    if unknown:
        raise ValidationFailed.field("scope", "授权范围应为以下之一：" + "、".join(BASE_SCOPES + EXTRA_SCOPES))
    if token_endpoint_auth_method not in AUTH_METHODS:
        raise ValidationFailed.field("token_auth_method", "应为 " + "、".join(AUTH_METHODS))
    if acr_minimum not in ACR_VALUES:
        raise ValidationFailed.field("acr_min", "应为 L1、L2 或 L3")
    uses_key = token_endpoint_auth_method == "private_key_jwt"
    if uses_key != bool(jwks):
        raise ValidationFailed.field("jwks", "private_key_jwt 认证须登记公钥集合（且仅此方式需要）")
    secret = None if uses_key else secrets.token_urlsafe(32)
    client = OidcClient(
        client_id=new_id("oc"), name=name.strip(), secret_hash=sha256_hex(secret) if secret else None,
        token_endpoint_auth_method=token_endpoint_auth_method, jwks=_checked_jwks(jwks) if uses_key else None,
        redirect_uris=list(dict.fromkeys(redirect_uris)),
        post_logout_redirect_uris=[_checked_uri(uri, "post_logout_redirect_uri") for uri in post_logout_redirect_uris],
        backchannel_logout_uri=_checked_uri(backchannel_logout_uri, "backchannel_logout_uri")
        if backchannel_logout_uri else None,
        scopes=list(dict.fromkeys(BASE_SCOPES + tuple(scopes))),
        sector_identifier=(sector_identifier or "").strip() or None, acr_minimum=level_of(acr_minimum),
        resource_server=bool(resource_server), active=True, created_at=utcnow())
    db.session.add(client)
    db.session.flush()
    audit.record("client.created", subject_id=client.client_id, actor="operator",
                 details={"kind": "oidc", "name": client.name, "scopes": client.scopes,
                          "redirect_uris": client.redirect_uris, "auth_method": token_endpoint_auth_method,
                          "sector": client.sector_identifier, "acr_minimum": acr_minimum})
    commit("客户端已存在")
    return client, secret


def client_by_id(client_id: str | None) -> OidcClient | None:
    """An active relying party by client_id, or None."""
    if not isinstance(client_id, str) or not client_id:
        return None
    return db.session.scalar(select(OidcClient).where(OidcClient.client_id == client_id,
                                                      OidcClient.active.is_(True)))
