"""Online verification's caller and reads, and its common form answered before the framework.

`caller_and_reads(code)`: the caller (token optional) and, in the round trip that counts the caller's
address, the token's revocation entries and what checking the code reads. The view takes them through
`prefetched_verification`; the page server (`page_server.EarlyPost`) answers a JSON body of exactly a
`code` (and `require_device_binding`) with the same functions, in the app's context (no request context),
and sends the answer as `verify` returns it: already in the form `VerificationResultSchema` gives it. A
body of any other form (an SD-JWT, other fields) goes on to the view."""
from __future__ import annotations

import functools

from flask import current_app, g, request

from ..errors import Unauthorized
from ..extensions import limiter
from ..page_server import NO_STORE, EarlyPost, answer_early
from ..json_output import json_bytes
from ..security import tokens
from ..security.rbac import Principal, bearer_token, principal_of
from . import verification

VERIFY_RATE_LIMIT = "600/minute"
VERIFY_RATE_SCOPE = "verify"
TOO_MANY_VERIFICATIONS = "核验请求过于频繁，请稍后再试"
ENDPOINT = ("wallet.Verifications", "POST")


def count_verification(address: str, wanted: list[str]) -> dict:
    """Count a verification against the caller's address (429 past the limit), reading `wanted` with it."""
    limit = current_app.config.get("VERIFY_RATE_LIMIT", VERIFY_RATE_LIMIT)
    return limiter.hit_and_read(limit, VERIFY_RATE_SCOPE, address, wanted, detail=TOO_MANY_VERIFICATIONS)


def caller_and_reads(code, *, address: str, authorization: str) -> tuple[Principal | None, dict]:
    """The caller (from the `Authorization` header's value) and the shared-store values
    `verification.verify` takes as `reads`, counted against `address` in one round trip; a bad token is
    counted too, then refused (401)."""
    try:
        token = bearer_token(authorization)
        claims = tokens.signed_claims(token) if token is not None else None
    except Unauthorized:
        count_verification(address, [])
        raise
    revocation = tokens.revocation_keys(claims) if claims is not None else []
    reads = count_verification(address, revocation + verification.store_reads(code))
    return principal_of(token, endpoint=ENDPOINT, optional=True, read=reads if revocation else None), reads


def prefetched_verification(view):
    """Hand a verification view the caller (`principal`) and `reads` (`caller_and_reads`)."""

    @functools.wraps(view)
    def wrapper(self, data, **kwargs):
        principal, reads = caller_and_reads(data.get("code"), address=_address(request.environ),
                                            authorization=request.headers.get("Authorization", ""))
        if principal is not None:
            g.principal = principal
        return view(self, data, principal=principal, reads=reads, **kwargs)

    return wrapper


def verified(environ, document: dict) -> bytes | None:
    """The answer to a code's verification; None for the view to answer another form."""
    code, binding = document.get("code"), document.get("require_device_binding", False)
    if not document.keys() <= {"code", "require_device_binding"} or not isinstance(binding, bool) \
            or not verification.is_code(code):
        return None
    principal, reads = caller_and_reads(code, address=_address(environ),
                                        authorization=environ.get("HTTP_AUTHORIZATION", ""))
    return json_bytes(verification.verify(principal=principal, address=environ.get("REMOTE_ADDR"), code=code,
                                          reads=reads, require_device_binding=binding))


def _address(environ) -> str:
    return environ.get("REMOTE_ADDR") or "unknown"


answer_early(EarlyPost(ENDPOINT[0], verified, headers=NO_STORE))
