"""Who is calling (Principal from the bearer token) and decorators for least privilege per role."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from flask import current_app, g, request

from ..errors import Forbidden, Unauthorized
from ..extensions import store
from ..page_server import EARLY_READS, early_reads
from .tokens import decode_access_token, revocation_keys, signed_claims

ROLES = ("citizen", "enterprise_agent", "hall_admin", "hall_staff", "issuer", "verifier",
         "third_party", "platform_admin")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller as the access token describes it."""

    subject_id: str
    subject_type: str
    roles: frozenset[str]
    claims: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def actor_id(self) -> str:
        """The person who acts: the `act` person for a company token, else the subject."""
        act = self.claims.get("act") or {}
        return act.get("sub") or self.subject_id

    @property
    def is_proxy(self) -> bool:
        """A family proxy's token (亲友代办): a person's token with another person acting (`act`)."""
        return self.subject_type == "person" and bool(self.claims.get("act"))

    @property
    def client_id(self) -> str | None:
        return self.claims.get("client_id")

    @property
    def channel(self) -> str:
        return self.claims.get("channel", "app")

    @property
    def halls(self) -> dict[str, str]:
        """hall code -> role for hall staff and admins."""
        return dict(self.claims.get("halls") or {})

    @property
    def license_types(self) -> frozenset[str]:
        return frozenset(self.claims.get("license_types") or ())

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.claims.get("scopes") or ())

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization` header's value; None without one, 401 for another scheme."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization 头应为 Bearer 令牌")
    return token.strip()


def _bearer_token() -> str | None:
    return bearer_token(request.headers.get("Authorization", ""))


def bearer_claims() -> dict | None:
    """The bearer token's claims with its signature, issuer and expiry checked but not yet its
    revocation (`current_principal(read=...)` does that); None without a token."""
    token = _bearer_token()
    return signed_claims(token) if token is not None else None


def current_principal(*, optional: bool = False, read: dict | None = None) -> Principal | None:
    """The caller, decoded once per request; None when optional and no token was sent.
    `read`: the values of the token's revocation keys the caller read already (`decode_access_token`)."""
    if "principal" in g:
        return g.principal
    token = _bearer_token()
    if read is None and token is not None and EARLY_READS in request.environ:  # the page server read them
        read = early_reads(request.environ, revocation_keys(signed_claims(token)))
    principal = principal_of(token, endpoint=(request.endpoint, request.method), optional=optional, read=read)
    if principal is not None:
        g.principal = principal
    return principal


def principal_of(token: str | None, *, endpoint: tuple[str | None, str], optional: bool = False,
                 read: dict | None = None) -> Principal | None:
    """The caller of `endpoint` (its name and method) whose bearer token is `token` (`current_principal`
    outside a request context). A family proxy's token works only on the endpoints in
    `app.extensions["proxy_endpoints"]` (app.identity.proxies): 403 elsewhere."""
    if token is None:
        if optional:
            return None
        raise Unauthorized("需要登录")
    claims = decode_access_token(token, read=read)
    principal = Principal(subject_id=claims["sub"], subject_type=claims.get("sub_type", "person"),
                          roles=frozenset(claims.get("roles") or ()), claims=claims)
    if principal.is_proxy and endpoint not in current_app.extensions.get("proxy_endpoints", ()):
        if optional:  # where a token is optional, a proxy's counts as none (e.g. browsing the catalogue)
            return None
        raise Forbidden("亲友代办令牌只能用于办件和亮证，请使用本人账号办理此操作")
    return principal


def auth_required(*roles: str):
    """Require a valid token, and one of `roles` when given."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if roles and not principal.has_role(*roles):
                raise Forbidden("当前身份无权执行此操作")
            return view(*args, **kwargs)
        return wrapper
    return decorator


def auth_reading(keys_of):
    """Like `auth_required()`, with the shared-store keys `keys_of(claims)` read in the round trip
    that checks the token's revocation; the view gets the values read as `reads` (key -> value)."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            claims = bearer_claims()
            if claims is None:
                current_principal()  # 401
            wanted = revocation_keys(claims) + keys_of(claims)
            values = early_reads(request.environ, wanted)
            if values is None:
                values = dict(zip(wanted, store.get_many(*wanted)))
            current_principal(read=values)
            return view(*args, reads=values, **kwargs)
        return wrapper
    return decorator


def request_channel() -> str | None:
    """The channel a request comes through: a signed third-party client's, the token's, or None."""
    signed = g.get("signed_client")
    if signed is not None:
        return signed.channel
    principal = current_principal(optional=True)
    if principal is None:
        return None
    return principal.claims.get("channel")
