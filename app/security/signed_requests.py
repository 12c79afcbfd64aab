"""Signed server-to-server requests of third-party platforms (the open API).

A `third_party` client signs each request with HMAC-SHA256 under its client secret:

    X-Client-Id: c_...
    X-Timestamp: 1735689600                 (unix seconds, within ±5 minutes of our clock)
    X-Nonce:     8-64 characters [A-Za-z0-9_-], never reused
    X-Signature: base64(HMAC-SHA256(client_secret, canonical))   (hex also accepted)

    canonical = METHOD "\n" PATH ["?" QUERY] "\n" TIMESTAMP "\n" NONCE "\n" hex(SHA-256(body))

METHOD is upper case; PATH the request path percent-encoded as sent (RFC 3986 unreserved
characters and sub-delims left alone); QUERY the query string exactly as sent, "?" omitted when
there is none; the body hash covers the raw bytes (the hash of nothing for GET).

Which clients exist and what their secrets are is the identity domain's business: it hands
`init_signed_requests(app, find_client)` a callable that maps a client id to
`(SignedClient, secret or None)` for an active client allowed to sign, or None
(`app.identity.clients.signing_credentials`).

`init_signed_requests` installs a before_request hook: when any signature header is
present the request must verify, or it ends with 401 (audited); replays of a nonce within
the window are 401 too; each client has a rate limit (429 with Retry-After). A verified
request sets `g.signed_client` (a SignedClient). Views use `signed_scope_required(...)` or
`signed_client(scope)`; `app.security.rbac.request_channel()` reads the client's channel.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from flask import Flask, current_app, g, request

from ..errors import Forbidden, Unauthorized
from ..extensions import app_api, db, limiter, store
from . import audit

HEADERS = ("X-Client-Id", "X-Timestamp", "X-Nonce", "X-Signature")
HEADER_KEYS = tuple("HTTP_" + name.upper().replace("-", "_") for name in HEADERS)  # as in the WSGI environ
OPEN_API_SCOPES = ("catalogue:read", "licenses:verify", "services:embed")
MAX_SKEW_SECONDS = 300            # OPEN_API_MAX_SKEW overrides
RATE_LIMIT = "600/minute"         # OPEN_API_RATE_LIMIT overrides (per client)
FAILURE_LIMIT = "60/minute"       # OPEN_API_FAILURE_LIMIT: audited rejections per client IP
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
HEX_SIGNATURE_RE = re.compile(r"^[0-9a-fA-F]{64}$")
PATH_SAFE = "/-._~!$&'()*+,;=:@"
SCHEME_HEADERS = {"WWW-Authenticate": 'HMAC-SHA256 realm="open-api", headers="X-Client-Id X-Timestamp X-Nonce X-Signature"'}
SECURITY = [{"openApiClientId": [], "openApiTimestamp": [], "openApiNonce": [], "openApiSignature": []}]


@dataclass(frozen=True)
class SignedClient:
    """The third-party platform a verified signed request comes from."""

    client_id: str
    name: str
    kind: str
    channel: str
    scopes: frozenset[str]

    def has_scope(self, *scopes: str) -> bool:
        return set(scopes) <= self.scopes


FindClient = Callable[[str], tuple[SignedClient, str | None] | None]  # client id -> (client, secret) or None


# ---- the canonical request


def canonical_request(method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The text that is signed (see the module docstring)."""
    target = path + ("?" + query if query else "")
    return "\n".join((method.upper(), target, timestamp, nonce, hashlib.sha256(body).hexdigest()))


def sign(secret: str, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes = b"") -> str:
    """base64 HMAC-SHA256 of the canonical request under `secret` (what a client sends)."""
    digest = hmac.new(secret.encode("utf-8"), canonical_request(method, path, query, timestamp, nonce, body).encode("utf-8"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _request_target() -> tuple[str, str]:
    path = quote(request.path, safe=PATH_SAFE)
    return path, request.query_string.decode("latin-1")


def _signature_bytes(text: str) -> bytes | None:
    text = text.strip()
    if HEX_SIGNATURE_RE.fullmatch(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                               validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


# ---- verification


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str, client: SignedClient | None = None):
        super().__init__(reason)
        self.reason, self.detail, self.client = reason, detail, client


def _load_client(client_id: str) -> tuple[SignedClient, str]:
    found = current_app.extensions["signed_request_clients"](client_id)
    if found is None:
        raise _Rejected("unknown_client", "客户端标识无效或未开通开放接口")
    client, secret = found
    if secret is None:
        raise _Rejected("no_signing_secret", "该客户端未开通签名访问，请重新申请客户端凭证", client)
    return client, secret


def verify_current_request() -> SignedClient:
    """Check the signature headers of the current request; raise _Rejected when they fail."""
    values = {name: (request.headers.get(name) or "").strip() for name in HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise _Rejected("missing_headers", "签名请求缺少请求头：" + "、".join(missing))
    timestamp, nonce = values["X-Timestamp"], values["X-Nonce"]
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise _Rejected("bad_timestamp", "X-Timestamp 应为 Unix 时间戳（秒）")
    if not NONCE_RE.fullmatch(nonce):
        raise _Rejected("bad_nonce", "X-Nonce 应为8至64位字母、数字、下划线或连字符")
    given = _signature_bytes(values["X-Signature"])
    if given is None:
        raise _Rejected("bad_signature", "X-Signature 应为 HMAC-SHA256 签名的 Base64 或十六进制编码")
    client, secret = _load_client(values["X-Client-Id"])
    path, query = _request_target()
    canonical = canonical_request(request.method, path, query, timestamp, nonce, request.get_data(cache=True))
    expected = hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        raise _Rejected("bad_signature", "签名校验失败，请检查签名原文与客户端密钥", client)
    skew = int(current_app.config.get("OPEN_API_MAX_SKEW", MAX_SKEW_SECONDS))
    if abs(time.time() - int(timestamp)) > skew:
        raise _Rejected("stale_timestamp", f"请求时间戳超出允许范围（前后{max(1, skew // 60)}分钟），"
                        "请校准服务器时间后重新签名", client)
    # the nonce lives as long as any timestamp that could still be accepted with it
    if not store.set_if_absent(f"open-api:nonce:{client.client_id}:{nonce}", "1", 2 * skew + 60):
        raise _Rejected("replayed_nonce", "该请求已处理过（X-Nonce 重复），请使用新的随机数重新签名", client)
    limiter.hit(current_app.config.get("OPEN_API_RATE_LIMIT", RATE_LIMIT), "open-api", client.client_id,
                detail="该客户端请求过于频繁，请稍后再试")
    return client


def _reject(exc: _Rejected):
    """Audit a refused signature (rate-limited per client IP so that forgeries cannot flood the chain)."""
    ip = request.remote_addr or "unknown"
    limiter.hit(current_app.config.get("OPEN_API_FAILURE_LIMIT", FAILURE_LIMIT), "open-api-fail", ip,
                detail="签名校验失败次数过多，请稍后再试")
    db.session.rollback()
    claimed = (request.headers.get("X-Client-Id") or "").strip()[:40]
    audit.record("open_api.signature_rejected", subject_id=exc.client.client_id if exc.client else None,
                 details={"reason": exc.reason, "client_id": claimed, "method": request.method,
                          "path": request.path[:200]})
    db.session.commit()
    raise Unauthorized(exc.detail, headers=dict(SCHEME_HEADERS), slug="invalid-signature")


def is_signed(environ) -> bool:
    """Whether the request carries any of the signature headers (then it is verified as a signed request)."""
    return any(map(environ.__contains__, HEADER_KEYS))


def _check_signature() -> None:
    if not is_signed(request.environ):
        return
    try:
        g.signed_client = verify_current_request()
    except _Rejected as exc:
        _reject(exc)


def init_signed_requests(app: Flask, find_client: FindClient) -> None:
    """Verify signed requests before every view, knowing clients through `find_client`;
    document the scheme in the OpenAPI spec."""
    app.extensions["signed_request_clients"] = find_client
    app.before_request(_check_signature)
    spec = app_api(app).spec
    if spec is not None:
        _document(spec)


def _document(spec) -> None:
    text = ("开放接口签名：HMAC-SHA256(client_secret, METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\n"
            "hex(SHA256(body)))，Base64 编码后放入 X-Signature；时间戳允许前后5分钟，随机数不可重复。")
    schemes = {
        "openApiClientId": ("X-Client-Id", "第三方平台的客户端标识（c_...）"),
        "openApiTimestamp": ("X-Timestamp", "Unix 时间戳（秒），与服务器时间相差不超过5分钟"),
        "openApiNonce": ("X-Nonce", "每个请求不同的随机数，8至64位字母、数字、下划线或连字符"),
        "openApiSignature": ("X-Signature", text),
    }
    for name, (header, description) in schemes.items():
        spec.components.security_scheme(name, {"type": "apiKey", "in": "header", "name": header,
                                               "description": description})


# ---- for views


def signed_client(*scopes: str) -> SignedClient | None:
    """The verified signed client of this request, or None; 403 when it lacks one of `scopes`."""
    client = g.get("signed_client")
    if client is not None and not client.has_scope(*scopes):
        missing = sorted(set(scopes) - client.scopes)
        raise Forbidden("该客户端未获授权范围：" + "、".join(missing))
    return client


def require_signed_client(*scopes: str) -> SignedClient:
    """The verified signed client with `scopes`; 401 when the request is not signed."""
    client = signed_client(*scopes)
    if client is None:
        raise Unauthorized("该接口需要签名请求（X-Client-Id、X-Timestamp、X-Nonce、X-Signature）",
                           headers=dict(SCHEME_HEADERS))
    return client


def signed_scope_required(*scopes: str):
    """View decorator: only signed third-party requests whose client holds every scope."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            require_signed_client(*scopes)
            return view(*args, **kwargs)
        return wrapper
    return decorator
