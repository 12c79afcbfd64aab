"""Online verification's caller and reads, and its common form answered before the framework.

`caller_and_reads(code)`: the caller (token optional) and, in the round trip that counts the caller's
address, the token's revocation entries, what checking the code reads and a claim on the use the caller's
kind of check takes (`verification.CodeUse`), so that the answer's journal entry, which consumes it, need
not be waited for: one blocking round trip per verification. The view takes them through
`prefetched_verification`; the page server (`page_server.EarlyPost`) answers a JSON body of exactly a
`code` (and `require_device_binding`) with the same functions, in the app's context (no request context),
and sends the answer as `verify` returns it: already in the form `VerificationResultSchema` gives it. A
body of any other form (an SD-JWT, other fields) goes on to the view."""
from __future__ import annotations

import functools

from flask import current_app, g, request

from .. import journal
from ..errors import Unauthorized
from ..extensions import limiter
from ..page_server import NO_STORE, EarlyPost, answer_early
from ..json_output import json_bytes
from ..security import tokens
from ..ratelimit import window
from ..security.rbac import Principal, bearer_token, principal_of
from . import verification

VERIFY_RATE_LIMIT = "600/minute"
VERIFY_RATE_SCOPE = "verify"
TOO_MANY_VERIFICATIONS = "核验请求过于频繁，请稍后再试"
ENDPOINT = ("wallet.Verifications", "POST")


def count_verification(address: str, wanted: list[str]) -> dict:
    """Count a verification against the caller's address (429 past the limit), reading `wanted` with it."""
    return limiter.count(_window(address), wanted)


def _window(address: str):
    limit = current_app.config.get("VERIFY_RATE_LIMIT", VERIFY_RATE_LIMIT)
    return window(limit, VERIFY_RATE_SCOPE, address, detail=TOO_MANY_VERIFICATIONS)


def caller_and_reads(code, *, address: str, authorization: str,
                     claim: bool = True) -> tuple[Principal | None, dict, verification.CodeUse]:
    """The caller (from the `Authorization` header's value), the shared-store values `verification.verify`
    takes as `reads` and, with `claim` and a code, the claim on its use (`use`), counted against `address` in
    one round trip; a bad token is counted too, then refused (401). A token the store marks revoked, or a
    caller past the limit, claims nothing."""
    try:
        token = bearer_token(authorization)
        claims = tokens.signed_claims(token) if token is not None else None
    except Unauthorized:
        count_verification(address, [])
        raise
    revocation = tokens.revocation_keys(claims) if claims is not None else []
    wanted = revocation + verification.store_reads(code)
    use = verification.CodeUse()
    if claim and verification.is_code(code):
        use.claim = verification.use_claim(code, claims)
        reads, use.claimed = limiter.count_and_claim(_window(address), wanted, len(revocation), use.claim)
        if use.claimed.wake:
            journal.wake()
    else:
        reads = count_verification(address, wanted)
    try:
        principal = principal_of(token, endpoint=ENDPOINT, optional=True, read=reads if revocation else None)
    except BaseException:
        use.give_back()
        raise
    return principal, reads, use


def prefetched_verification(view):
    """Hand a verification view the caller (`principal`), `reads` and `use` (`caller_and_reads`)."""

    @functools.wraps(view)
    def wrapper(self, data, **kwargs):
        code_form = data.get("sd_jwt") is None and not data.get("require_device_binding")
        principal, reads, use = caller_and_reads(data.get("code"), address=_address(request.environ),
                                                 authorization=request.headers.get("Authorization", ""),
                                                 claim=code_form)
        if principal is not None:
            g.principal = principal
        return view(self, data, principal=principal, reads=reads, use=use, **kwargs)

    return wrapper


def verified(environ, document: dict) -> bytes | None:
    """The answer to a code's verification; None for the view to answer another form."""
    code, binding = document.get("code"), document.get("require_device_binding", False)
    if not document.keys() <= {"code", "require_device_binding"} or not isinstance(binding, bool) \
            or not verification.is_code(code):
        return None
    principal, reads, use = caller_and_reads(code, address=_address(environ),
                                             authorization=environ.get("HTTP_AUTHORIZATION", ""), claim=not binding)
    return json_bytes(verification.verify(principal=principal, address=environ.get("REMOTE_ADDR"), code=code,
                                          reads=reads, use=use, require_device_binding=binding))


def _address(environ) -> str:
    return environ.get("REMOTE_ADDR") or "unknown"


answer_early(EarlyPost(ENDPOINT[0], verified, headers=NO_STORE))
