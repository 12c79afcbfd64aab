"""API clients (issuers, verifiers, third-party platforms): registration, look-ups, signing secrets."""
from __future__ import annotations

import secrets
import time

from flask import current_app
from sqlalchemy import select

from ..errors import ValidationFailed
from ..extensions import db
from ..security import audit
from ..security.pii import PiiDecryptError
from ..security.signed_requests import OPEN_API_SCOPES, SignedClient
from ..timeutil import utcnow
from ..wallet.models import LicenseType
from .common import commit, new_id, sha256_hex
from .identifiers import CREDIT_ALPHABET, IdentifierError, credit_check_char, normalize_credit_code
from .models import CHANNELS, CLIENT_KINDS, SIGNING_KINDS, ApiClient, ClientSigningSecret

CLIENT_CACHE_SECONDS = 30  # how long a worker trusts its copy of a client's registration


def client_claims(client: ApiClient) -> tuple[list[str], dict]:
    """Roles and claims of a client's access token."""
    extra = {"sub_type": "client", "channel": client.channel or "app", "client_id": client.client_id,
             "client_kind": client.kind}
    if client.kind in ("issuer", "verifier"):
        extra["license_types"] = list(client.license_types or [])
    if client.scopes:
        extra["scopes"] = list(client.scopes)
    if client.credit_code:
        extra["credit_code"] = client.credit_code
    return [client.kind], extra


def generated_credit_code() -> str:
    """A valid GB 32100 code for an authority whose own code was not given (development)."""
    body = "11370000" + "".join(secrets.choice(CREDIT_ALPHABET) for _ in range(9))
    return body + credit_check_char(body)


def create_client(*, kind: str, name: str, license_types=(), scopes=(), channel: str = "app",
                  credit_code: str | None = None, client_id: str | None = None,
                  secret: str | None = None) -> tuple[ApiClient, str]:
    """Register an issuer / verifier / third-party client; returns (client, secret shown once).
    `client_id` and `secret` are chosen here unless given (the development demo derives its own)."""
    if kind not in CLIENT_KINDS:
        raise ValidationFailed.field("kind", "客户端类型应为 issuer、verifier 或 third_party")
    if channel not in CHANNELS:
        raise ValidationFailed.field("channel", "渠道应为 app、wechat 或 alipay")
    if not (name or "").strip():
        raise ValidationFailed.field("name", "名称不能为空")
    license_types = sorted({str(t).strip() for t in license_types if str(t).strip()})
    if kind == "issuer" and not license_types:
        raise ValidationFailed.field("license_type", "签发方客户端至少需要一个证照类型")
    unknown = [code for code in license_types if db.session.get(LicenseType, code) is None]
    if unknown:
        raise ValidationFailed.field("license_type", "证照目录中没有这些证照类型：" + "、".join(unknown))
    if credit_code:
        try:
            credit_code = normalize_credit_code(credit_code)
        except IdentifierError as exc:
            raise ValidationFailed.field("credit_code", exc.message) from None
    elif kind == "issuer":
        credit_code = generated_credit_code()
    if kind == "third_party" and set(scopes) - set(OPEN_API_SCOPES):
        raise ValidationFailed.field("scope", "第三方客户端的授权范围应为以下之一：" + "、".join(OPEN_API_SCOPES))
    secret = secret or secrets.token_urlsafe(32)
    client = ApiClient(client_id=client_id or new_id("c"), secret_hash=sha256_hex(secret), kind=kind, name=name.strip(),
                       license_types=license_types, scopes=sorted(set(scopes)), channel=channel,
                       credit_code=credit_code, active=True, created_at=utcnow())
    db.session.add(client)
    db.session.flush()
    if kind in SIGNING_KINDS:  # signed open-API requests need the secret itself, kept encrypted
        _remember_signing_secret(client, secret)
    audit.record("client.created", subject_id=client.client_id, actor="operator",
                 details={"kind": kind, "name": client.name, "license_types": license_types,
                          "scopes": client.scopes})
    commit("客户端已存在")
    return client, secret


def client_by_id(client_id: str) -> ApiClient | None:
    """An API client by its client_id ("c_...")."""
    return db.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))


def client_license_types(client_id: str) -> frozenset[str]:
    """The license types an active client is registered for now (empty when inactive or
    unknown); each worker reads a client again after CLIENT_CACHE_SECONDS."""
    cache = current_app.extensions.setdefault("client_license_types", {})
    hit = cache.get(client_id)
    if hit is None or hit[1] < time.monotonic():
        client = client_by_id(client_id)
        types = frozenset(client.license_types or ()) if client is not None and client.active else frozenset()
        hit = cache[client_id] = (types, time.monotonic() + CLIENT_CACHE_SECONDS)
    return hit[0]


# ---- signing secrets: the client_credentials grant keeps only a hash, which cannot serve as an
# HMAC key, so a signing client's secret is also kept encrypted under KEY_ENCRYPTION_KEY, bound
# to the client id, for app.security.signed_requests to recompute request signatures.


def _cipher():
    return current_app.extensions["key_cipher"]


def _secret_context(client_id: str) -> str:
    return f"api-client:{client_id}:signing-secret"


def _remember_signing_secret(client: ApiClient, secret: str) -> None:
    db.session.add(ClientSigningSecret(
        client_id=client.client_id, created_at=utcnow(),
        secret_enc=_cipher().encrypt(secret, context=_secret_context(client.client_id))))


def signing_credentials(client_id: str) -> tuple[SignedClient, str | None] | None:
    """For signed requests: an active signing client and its secret (None when it has no usable
    secret), or None when no such client may sign."""
    row = db.session.execute(
        select(ApiClient, ClientSigningSecret.secret_enc)
        .join(ClientSigningSecret, ClientSigningSecret.client_id == ApiClient.client_id, isouter=True)
        .where(ApiClient.client_id == client_id)).first()
    if row is None or not row[0].active or row[0].kind not in SIGNING_KINDS:
        return None
    client, sealed = row
    signed = SignedClient(client_id=client.client_id, name=client.name, kind=client.kind,
                          channel=client.channel or "app", scopes=frozenset(client.scopes or ()))
    try:
        return signed, _cipher().decrypt(sealed, context=_secret_context(client_id)) if sealed else None
    except PiiDecryptError:
        return signed, None
