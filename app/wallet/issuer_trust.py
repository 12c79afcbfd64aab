"""Which issuer keys a presentation may be signed with (the published ones, named by kid) and the
check made once when the platform builds an online presentation, whose result is sealed with the code."""
from __future__ import annotations

import re
from collections.abc import Mapping

from ..security import keys
from ..timeutil import epoch
from .sdjwt import SdJwtError, VerifiedPresentation, verify_presentation

KID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # the kids we hand out
CHECKED = "checked"  # the sealed entry's key for what checked_at_presentation returned


class _PublishedIssuerKeys(Mapping):
    """Issuer keys still published, by kid, looked up as a presentation names one."""

    def __getitem__(self, kid):
        published = keys.published_key(kid) if isinstance(kid, str) and KID_RE.fullmatch(kid) else None
        if published is None or not published[0].startswith("issuer:"):
            raise KeyError(kid)
        return published[1]

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


ISSUER_KEYS = _PublishedIssuerKeys()


def signed_by(verified: VerifiedPresentation) -> str:
    """The purpose (`issuer:<client id>`) of the key that signed a verified presentation."""
    published = keys.published_key(verified.kid)
    return published[0] if published is not None else None


def checked_at_presentation(sd_jwt: str, shown: dict, *, audience: str) -> dict:
    """Verify a presentation the platform just made (both signatures, the digests, the key
    binding, that it names this license and was signed by its issuer's key) and return what a
    later verification of its online code needs: the disclosed claims and the credential's
    validity window. Sealed with the card (AES-GCM, bound to the code), so a verification
    trusts it without checking the signatures again. SdJwtError when it does not verify."""
    verified = verify_presentation(sd_jwt, issuer_keys=ISSUER_KEYS, expected_aud=audience,
                                   expected_nonce=shown["nonce"], now=epoch())
    if (verified.payload.get("identifier") != shown["identifier"]
            or signed_by(verified) != f"issuer:{shown['issuer_client_id']}"):
        raise SdJwtError("bad_signature", "not this license's credential, or not signed by its issuer")
    return {"disclosed": verified.disclosed, "exp": verified.payload.get("exp"), "nbf": verified.payload.get("nbf")}
