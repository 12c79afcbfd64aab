"""Who a code or token is for (a person, or a company with its agent acting), pairwise subject
identifiers, the real-name level as `acr`, and the claims each scope releases."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import scope_to_list

from ..identity.enterprises import agent_scopes, enterprise_for
from ..identity.persons import person_by_subject_id
from ..security import audit
from ..security.ciphers import pii_cipher
from ..security.jose import b64url_encode
from ..security.pii import mask_phone
from .models import OidcClient

ACR_VALUES = ("L1", "L2", "L3")
SCOPE_LABELS = {
    "openid": "识别您的身份（为该应用单独生成的匿名标识）",
    "profile": "姓名和实名认证等级",
    "phone": "手机号码（脱敏，如 138****5678）",
    "id_number": "完整的居民身份证号码（依法授权的部门，每次提供均记录审计）",
}


@dataclass
class Grantee:
    """The subject of a code or token: a person ("p_"), or a company ("e_") with `actor_id` the
    person acting for it; with how and when they signed in, and the client it is for."""

    subject_id: str
    actor_id: str | None = None
    auth_time: int = 0
    acr: str = "L1"
    amr: list[str] = field(default_factory=list)
    sid: str | None = None
    client: OidcClient | None = None

    @property
    def person_id(self) -> str:
        """The person who signed in (the agent for a company login)."""
        return self.actor_id or self.subject_id


def acr_for(level: int | None) -> str:
    """`L1`..`L3` for a real-name level."""
    return f"L{min(3, max(1, int(level or 1)))}"


def level_of(acr: str | None) -> int:
    """The real-name level an `acr` value names (0 for anything else)."""
    return int(acr[1]) if acr in ACR_VALUES else 0


def pairwise_sub(subject_id: str, client: OidcClient) -> str:
    """HMAC of the subject id under a secret of the client's sector: two sectors never see the
    same `sub` for one person, the clients of one sector always do."""
    sector_secret = pii_cipher().blind_index(client.sector, domain="oidc-sector-secret").encode()
    digest = hmac.new(sector_secret, subject_id.encode(), hashlib.sha256).digest()
    return b64url_encode(digest)


def live_parties(grantee: Grantee):
    """(person, enterprise or None) while the subject may still be served: the person active and,
    for a company, still its representative or agent; None otherwise."""
    person = person_by_subject_id(grantee.person_id)
    if person is None or not person.active:
        return None
    if grantee.actor_id is None:
        return person, None
    enterprise = enterprise_for(grantee.subject_id)
    if enterprise is None or agent_scopes(person, enterprise.credit_code) is None:
        return None
    return person, enterprise


def released_claims(grantee: Grantee, scope: str, *, via: str) -> dict:
    """The claims `scope` releases to the grantee's client; the full ID number is audited per release."""
    client, scopes = grantee.client, set(scope_to_list(scope) or [])
    parties = live_parties(grantee)
    claims = {"sub": pairwise_sub(grantee.subject_id, client)}
    if parties is None:
        return claims
    person, enterprise = parties
    if enterprise is not None:
        claims["act"] = {"sub": pairwise_sub(person.subject_id, client)}
        claims["agent_scopes"] = sorted(agent_scopes(person, enterprise.credit_code) or ())
        if "profile" in scopes:
            claims.update(name=enterprise.name, credit_code=enterprise.credit_code, subject_type="legal",
                          act={**claims["act"], "name": person.name})
        return claims
    if "profile" in scopes:
        claims.update(name=person.name, real_name_level=person.real_name_level, subject_type="person")
    if "phone" in scopes and person.phone:
        claims["phone_masked"] = mask_phone(person.phone)
    if "id_number" in scopes and "id_number" in (client.scopes or ()):
        claims["id_number"] = person.id_number
        audit.record("oidc.id_number_released", subject_id=person.subject_id, actor=client.client_id,
                     details={"client_id": client.client_id, "client_name": client.name, "via": via})
    return claims
