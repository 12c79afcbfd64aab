"""Consents: what a person let each client know (remembered per client and scope), listed and
revocable by them; revoking (or closing the account) stops the client's tokens and tells it
through back-channel logout."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import func, or_, select, update

from ..errors import NotFound
from ..extensions import db
from ..security import audit
from ..timeutil import isoformat_z, utcnow
from .logout import notify_logout
from .models import OidcAuthorizationCode, OidcClient, OidcConsent
from .tokens import revoke_for_person


def consent_of(person_id: str, client_id: str) -> OidcConsent | None:
    return db.session.scalar(select(OidcConsent).where(OidcConsent.subject_id == person_id,
                                                       OidcConsent.client_id == client_id))


def covers(person_id: str, client_id: str, scope: str) -> bool:
    """Whether the person already consented to everything `scope` asks of this client."""
    consent = consent_of(person_id, client_id)
    return consent is not None and set(scope_to_list(scope) or []) <= set(consent.scopes or [])


def remember(person_id: str, client: OidcClient, scope: str, *, via: str) -> None:
    """Record (or widen) the person's consent; the caller commits."""
    scopes, now = scope_to_list(scope) or [], utcnow()
    consent = consent_of(person_id, client.client_id)
    if consent is None:
        consent = OidcConsent(subject_id=person_id, client_id=client.client_id, scopes=[], granted_at=now)
        db.session.add(consent)
    added = [item for item in scopes if item not in (consent.scopes or [])]
    if not added and consent.id is not None:
        return
    consent.scopes, consent.updated_at = list(consent.scopes or []) + added, now
    audit.record("oidc.consent_granted", subject_id=person_id, actor=person_id,
                 details={"client_id": client.client_id, "scopes": consent.scopes, "via": via})
    db.session.flush()


def _item(consent: OidcConsent, client: OidcClient | None) -> dict:
    return {"client_id": consent.client_id, "client_name": client.name if client else None,
            "scopes": list(consent.scopes or []), "granted_at": consent.granted_at,
            "updated_at": consent.updated_at}


def consents_page(person_id: str, *, page: int, page_size: int) -> tuple[list[dict], int]:
    """The person's consents, newest first."""
    where = OidcConsent.subject_id == person_id
    total = db.session.scalar(select(func.count()).select_from(OidcConsent).where(where))
    rows = db.session.execute(
        select(OidcConsent, OidcClient).outerjoin(OidcClient, OidcClient.client_id == OidcConsent.client_id)
        .where(where).order_by(OidcConsent.updated_at.desc(), OidcConsent.id.desc())
        .limit(page_size).offset((page - 1) * page_size)).all()
    return [_item(consent, client) for consent, client in rows], total


def consents_for_export(subject_id: str) -> list[dict]:
    """Every consent of a person, JSON-ready, for the data export."""
    rows = db.session.execute(
        select(OidcConsent, OidcClient).outerjoin(OidcClient, OidcClient.client_id == OidcConsent.client_id)
        .where(OidcConsent.subject_id == subject_id).order_by(OidcConsent.granted_at)).all()
    return [{**item, "granted_at": isoformat_z(item["granted_at"]), "updated_at": isoformat_z(item["updated_at"])}
            for item in (_item(consent, client) for consent, client in rows)]


def revoke_consent(*, person_id: str, client_id: str) -> None:
    """Withdraw a consent: the client's tokens for the person stop and the client is told; commits."""
    consent = consent_of(person_id, client_id)
    if consent is None:
        raise NotFound("未找到对该应用的授权")
    db.session.delete(consent)
    revoked = revoke_for_person(person_id, client_id=client_id)
    _close_codes(person_id, client_id=client_id)
    audit.record("oidc.consent_revoked", subject_id=person_id, actor=person_id,
                 details={"client_id": client_id, "tokens_revoked": len(revoked)})
    db.session.commit()
    notify_logout(revoked)


def _close_codes(person_id: str, *, client_id: str | None = None) -> None:
    query = update(OidcAuthorizationCode).where(
        or_(OidcAuthorizationCode.subject_id == person_id, OidcAuthorizationCode.actor_id == person_id),
        OidcAuthorizationCode.used_at.is_(None))
    if client_id is not None:
        query = query.where(OidcAuthorizationCode.client_id == client_id)
    db.session.execute(query.values(used_at=utcnow()).execution_options(synchronize_session=False))


def revoke_all_for_subject(subject_id: str) -> int:
    """For a closed account: every token, code and consent of the person ends and each client is
    told through back-channel logout. Does not commit (the closing transaction does); returns the
    number of tokens revoked."""
    revoked = revoke_for_person(subject_id)
    _close_codes(subject_id)
    consents = db.session.scalars(select(OidcConsent).where(OidcConsent.subject_id == subject_id)).all()
    for consent in consents:
        db.session.delete(consent)
    audit.record("oidc.subject_revoked", subject_id=subject_id, actor=subject_id,
                 details={"tokens_revoked": len(revoked), "consents_removed": len(consents)})
    db.session.flush()
    notify_logout(revoked)
    return len(revoked)
