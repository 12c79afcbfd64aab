"""Family proxies (亲友代办, 适老化): a person lets a relative apply and show licenses for them.

The grantor names the relative by ID number and name (matched in the population registry), the
scopes (`applications:submit`, `applications:read`, `licenses:read`, `licenses:present`) and an
end date (at most a year). The relative acts through `POST /auth/act-as {"subject_id"}`: the
token has `sub` = the grantor, `act` = the relative and the grant's scopes; the domains check the
live grant on every use (`Actor.proxied_person`) and record the relative as "shown by". Revoking
a grant, or its end, stops the relative's proxy sessions.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from ..errors import Conflict, NotFound, ValidationFailed
from ..extensions import db
from ..security import audit
from ..security.pii import mask_id_number, mask_name
from ..security.rbac import Principal
from ..timeutil import as_aware, utcnow
from . import registries
from .account_models import MAX_PROXY_DAYS, PROXY_SCOPES, ProxyGrant
from .common import commit, field_id_number, grant_terms, new_id, registry_mismatch
from .models import Person
from .persons import acting_person, person_by_subject_id
from .sessions import issue_tokens, revoke_acting_sessions

NO_GRANT = "未找到您可以代办的该亲友"
# what a family proxy token may call (endpoint, method); the domains check the scopes
PROXY_ENDPOINTS = frozenset({
    ("identity.Me", "GET"), ("identity.Logout", "POST"),
    ("applications.ServiceForm", "GET"), ("applications.BundleForm", "GET"),
    ("applications.Applications", "GET"), ("applications.Applications", "POST"),
    ("applications.BundleApplications", "POST"), ("applications.ApplicationsById", "GET"),
    ("applications.ApplicationResubmissions", "POST"), ("applications.ApplicationWithdraw", "POST"),
    ("files.Files", "POST"),
    ("wallet.WalletLicenses", "GET"), ("wallet.WalletLicensesById", "GET"), ("wallet.AccessLog", "GET"),
    ("wallet.Presentations", "POST"), ("wallet.PresentationsById", "DELETE"), ("wallet.Verifications", "POST"),
})


def _live(query):
    return query.where(ProxyGrant.revoked_at.is_(None), ProxyGrant.expires_at > utcnow())


def _grants_between(grantor: Person, grantee_index: str) -> list[ProxyGrant]:
    return list(db.session.scalars(_live(select(ProxyGrant).where(
        ProxyGrant.grantor_subject_id == grantor.subject_id, ProxyGrant.grantee_id_number_index == grantee_index))))


def live_scopes(*, grantor: Person, grantee: Person) -> set[str] | None:
    """The scopes `grantee` holds for `grantor` now (None without a live grant)."""
    grants = _grants_between(grantor, grantee.id_number_index)
    return {scope for grant in grants for scope in grant.scopes} if grants else None


def grant_proxy(*, principal: Principal, id_number: str, name: str, scopes: list[str],
                expires_at: datetime) -> ProxyGrant:
    """The caller lets an adult relative (matched in the registry) act for them; commits."""
    person = acting_person(principal)
    id_number, name = field_id_number(id_number), (name or "").strip()
    if id_number == person.id_number:
        raise ValidationFailed.field("id_number", "不能授权本人为自己的代办人")
    if not registries.population().matches(id_number=id_number, name=name):
        raise registry_mismatch()
    if registries.is_minor(id_number):
        raise ValidationFailed.field("id_number", "代办人须为年满18周岁的成年人")
    scopes, expires_at = grant_terms(scopes=scopes, allowed=PROXY_SCOPES, expires_at=expires_at,
                                     max_days=MAX_PROXY_DAYS)
    grant = ProxyGrant(proxy_id=new_id("px"), grantor_subject_id=person.subject_id, grantee_name=name,
                       scopes=scopes, expires_at=expires_at, created_at=utcnow())
    grant.grantee_id_number = id_number
    if _grants_between(person, grant.grantee_id_number_index):
        raise Conflict("已为该亲友授权代办，如需调整请先撤销原授权")
    db.session.add(grant)
    db.session.flush()
    audit.record("proxy.granted", subject_id=person.subject_id, actor=person.subject_id,
                 details={"proxy_id": grant.proxy_id, "grantee": mask_id_number(id_number),
                          "scopes": grant.scopes, "expires_at": expires_at.isoformat()})
    commit("已为该亲友授权代办")
    return grant


def status_of(grant: ProxyGrant) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    return "active" if as_aware(grant.expires_at) > utcnow() else "expired"


def proxies_of(*, principal: Principal) -> dict:
    """Grants the caller gave (relatives' ID numbers masked) and live ones they received."""
    person = acting_person(principal)
    granted = db.session.scalars(select(ProxyGrant).where(ProxyGrant.grantor_subject_id == person.subject_id)
                                 .order_by(ProxyGrant.created_at.desc(), ProxyGrant.id.desc())).all()
    received = db.session.scalars(_live(select(ProxyGrant).where(
        ProxyGrant.grantee_id_number_index == person.id_number_index)).order_by(ProxyGrant.created_at.desc())).all()
    grantors = {row.subject_id: row for row in db.session.scalars(select(Person).where(
        Person.subject_id.in_({grant.grantor_subject_id for grant in received})))} if received else {}
    return {"granted": [{"grant": grant, "status": status_of(grant)} for grant in granted],
            "received": [{"grant": grant, "status": status_of(grant),
                          "grantor_name": mask_name(grantors[grant.grantor_subject_id].name)}
                         for grant in received if grantors.get(grant.grantor_subject_id) is not None
                         and grantors[grant.grantor_subject_id].active]}


def _end_proxy_sessions(grantor_subject_id: str, grantee_index: str) -> None:
    grantee = db.session.scalar(select(Person).where(Person.id_number_index == grantee_index))
    if grantee is not None:
        revoke_acting_sessions(subject_id=grantor_subject_id, actor_id=grantee.subject_id)


def revoke_proxy(*, principal: Principal, proxy_id: str) -> None:
    """The grantor ends a grant now; the relative's proxy sessions end with it; commits."""
    person = acting_person(principal)
    grant = db.session.scalar(select(ProxyGrant).where(ProxyGrant.proxy_id == proxy_id,
                                                       ProxyGrant.grantor_subject_id == person.subject_id))
    if grant is None:
        raise NotFound("代办授权不存在")
    if grant.revoked_at is not None:
        return
    grant.revoked_at = utcnow()
    _end_proxy_sessions(person.subject_id, grant.grantee_id_number_index)
    audit.record("proxy.revoked", subject_id=person.subject_id, actor=person.subject_id,
                 details={"proxy_id": grant.proxy_id})
    db.session.commit()


def end_grants_of(person: Person) -> int:
    """For a closed account: every live grant it gave or received ends (not committed; the
    closure ends the sessions)."""
    grants = db.session.scalars(_live(select(ProxyGrant).where(or_(
        ProxyGrant.grantor_subject_id == person.subject_id,
        ProxyGrant.grantee_id_number_index == person.id_number_index)))).all()
    for grant in grants:
        grant.revoked_at = utcnow()
    return len(grants)


def _proxy_pair(grantor: Person, grantee: Person, channel: str, family_id: str | None = None,
                refresh_token: str | None = None) -> dict:
    scopes = live_scopes(grantor=grantor, grantee=grantee)
    if scopes is None or not grantor.active:
        raise NotFound(NO_GRANT)
    extra = {"sub_type": "person", "channel": channel, "act": {"sub": grantee.subject_id}, "scopes": sorted(scopes)}
    return issue_tokens(grantor.subject_id, ["citizen"], extra, channel=channel, actor_id=grantee.subject_id,
                        family_id=family_id, refresh_token=refresh_token)


def act_for_person(*, principal: Principal, subject_id: str) -> dict:
    """A token pair acting for the person who granted the caller a live proxy; 404 otherwise."""
    grantee = acting_person(principal)
    grantor = person_by_subject_id(subject_id)
    if grantor is None or grantor.subject_id == grantee.subject_id:
        raise NotFound(NO_GRANT)
    body = _proxy_pair(grantor, grantee, principal.channel)
    audit.record("auth.act_as", subject_id=grantor.subject_id, actor=grantee.subject_id, details={"role": "proxy"})
    db.session.commit()
    return body


def refreshed_pair(row, refresh_token: str) -> dict:
    """The next proxy token pair of a rotated session (`row`: its subject, actor, channel and id; NotFound once
    the grant has ended)."""
    grantor, grantee = person_by_subject_id(row.subject_id), person_by_subject_id(row.actor_id or "")
    if grantor is None or grantee is None or not grantee.active:
        raise NotFound(NO_GRANT)
    return _proxy_pair(grantor, grantee, row.channel, family_id=row.family_id, refresh_token=refresh_token)


def acted_by(*, subject_id: str, actor_id: str | None) -> dict | None:
    """"Shown by" of a person's record written by a relative acting for them (else None)."""
    if not actor_id or actor_id == subject_id or not subject_id.startswith("p_"):
        return None
    relative = person_by_subject_id(actor_id)
    if relative is None:
        return None
    return {"role": "proxy", "subject_id": relative.subject_id, "name_masked": mask_name(relative.name)}

