"""Enterprises and their agents: claiming a company, agent grants, the scopes a person may use."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from ..errors import Conflict, NotFound, ValidationFailed
from ..extensions import db
from ..security import audit
from ..security.pii import mask_id_number
from ..security.rbac import Principal
from ..timeutil import utcnow
from . import registries
from .common import commit, field_id_number, grant_terms, new_id
from .identifiers import IdentifierError, normalize_credit_code
from .models import AGENT_SCOPES, MAX_AGENT_GRANT_DAYS, AgentGrant, Enterprise, Person, id_index
from .persons import acting_person, person_by_subject_id
from .sessions import revoke_acting_sessions

ENTITY_MISMATCH = "企业核验未通过：统一社会信用代码、企业名称或法定代表人与登记信息不一致"


def enterprise_for(ref) -> Enterprise | None:
    """The enterprise named by a Principal (company token), a subject id ("e_...") or a credit code."""
    if isinstance(ref, Principal):
        if ref.subject_type != "legal":
            return None
        ref = ref.subject_id
    if not isinstance(ref, str):
        return None
    if ref.startswith("e_"):
        return db.session.scalar(select(Enterprise).where(Enterprise.subject_id == ref))
    try:
        code = normalize_credit_code(ref)
    except IdentifierError:
        return None
    return db.session.scalar(select(Enterprise).where(Enterprise.credit_code == code))


def _active_grants(enterprise: Enterprise, id_number_index: str) -> list[AgentGrant]:
    return list(db.session.scalars(select(AgentGrant).where(
        AgentGrant.enterprise_id == enterprise.id, AgentGrant.agent_id_number_index == id_number_index,
        AgentGrant.revoked_at.is_(None), AgentGrant.expires_at > utcnow())))


def agent_scopes(person_id, credit_code: str) -> set[str] | None:
    """Scopes the person may use for the company: all of AGENT_SCOPES for its representative,
    the granted ones for an agent, None when the person may not act for it at all.
    `person_id` is a Person or a subject id ("p_...")."""
    person = person_id if isinstance(person_id, Person) else person_by_subject_id(person_id)
    enterprise = enterprise_for(credit_code)
    if person is None or enterprise is None:
        return None
    if enterprise.representative_id == person.id:
        return set(AGENT_SCOPES)
    grants = _active_grants(enterprise, person.id_number_index)
    if not grants:
        return None
    return {scope for grant in grants for scope in grant.scopes}


def enterprise_claims(enterprise: Enterprise, person: Person, channel: str) -> tuple[list[str], dict]:
    """Roles and claims of a company token whose `act` claim names `person`; 404 when they may not act."""
    scopes = agent_scopes(person, enterprise.credit_code)
    if scopes is None:
        raise NotFound("未找到您可以代办的该企业")
    role = "representative" if enterprise.representative_id == person.id else "agent"
    return ["enterprise_agent"], {"sub_type": "legal", "channel": channel, "act": {"sub": person.subject_id},
                                  "credit_code": enterprise.credit_code, "enterprise_role": role,
                                  "scopes": sorted(scopes)}


def _revoke_company_sessions(enterprise: Enterprise, person: Person) -> None:
    revoke_acting_sessions(subject_id=enterprise.subject_id, actor_id=person.subject_id)


def claim_enterprise(*, principal: Principal, credit_code: str, name: str) -> Enterprise:
    """The caller becomes the company's representative when the legal-entity registry names them."""
    person = acting_person(principal)
    try:
        credit_code = normalize_credit_code(credit_code)
    except IdentifierError as exc:
        raise ValidationFailed.field("credit_code", exc.message) from None
    record = registries.legal_entities().lookup(credit_code)
    if (record is None or not registries.same_name(record.name, name)
            or record.representative_id_number != person.id_number):
        raise ValidationFailed(ENTITY_MISMATCH, errors={"credit_code": [ENTITY_MISMATCH]})
    enterprise = enterprise_for(credit_code)
    if enterprise is not None and enterprise.representative_id == person.id:
        raise Conflict("您已认领该企业")
    if enterprise is None:
        enterprise = Enterprise(subject_id=new_id("e"), credit_code=credit_code, name=record.name,
                                representative_id=person.id, claimed_at=utcnow())
        db.session.add(enterprise)
    else:  # the registry now names the caller: representation passes to them
        previous = db.session.get(Person, enterprise.representative_id)
        enterprise.representative_id, enterprise.name, enterprise.claimed_at = person.id, record.name, utcnow()
        if previous is not None:
            _revoke_company_sessions(enterprise, previous)
    db.session.flush()
    audit.record("enterprise.claimed", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"credit_code": credit_code})
    commit("该企业已被认领")
    return enterprise


def enterprises_of(*, principal: Principal) -> list[dict]:
    """Companies the caller represents or may act for as an agent."""
    person = acting_person(principal)
    items = [{"enterprise": e, "role": "representative", "scopes": list(AGENT_SCOPES), "expires_at": None}
             for e in db.session.scalars(select(Enterprise).where(Enterprise.representative_id == person.id)
                                         .order_by(Enterprise.claimed_at))]
    seen = {item["enterprise"].id for item in items}
    grants = db.session.scalars(select(AgentGrant).where(
        AgentGrant.agent_id_number_index == person.id_number_index, AgentGrant.revoked_at.is_(None),
        AgentGrant.expires_at > utcnow()).order_by(AgentGrant.created_at))
    for grant in grants:
        if grant.enterprise_id in seen:
            continue
        seen.add(grant.enterprise_id)
        scopes = agent_scopes(person, grant.enterprise.credit_code) or set()
        items.append({"enterprise": grant.enterprise, "role": "agent", "scopes": sorted(scopes),
                      "expires_at": grant.expires_at})
    return items


def enterprise_view(*, principal: Principal, credit_code: str) -> dict:
    """One company as the caller sees it (representative or agent); 404 for anyone else."""
    for item in enterprises_of(principal=principal):
        if item["enterprise"].credit_code == (credit_code or "").upper():
            return item
    raise NotFound("企业不存在或您无权查看")


def _represented(principal: Principal, credit_code: str) -> tuple[Person, Enterprise]:
    person = acting_person(principal)
    enterprise = enterprise_for(credit_code)
    if enterprise is None or enterprise.representative_id != person.id:
        raise NotFound("企业不存在或您不是其法定代表人")
    return person, enterprise


def grant_agent(*, principal: Principal, credit_code: str, id_number: str, scopes: list[str],
                expires_at: datetime) -> AgentGrant:
    """The representative lets a person act for the company within `scopes` until `expires_at`."""
    person, enterprise = _represented(principal, credit_code)
    id_number = field_id_number(id_number)
    if id_number == person.id_number:
        raise ValidationFailed.field("id_number", "法定代表人无需为自己授权")
    scopes, expires_at = grant_terms(scopes=scopes, allowed=AGENT_SCOPES, expires_at=expires_at,
                                     max_days=MAX_AGENT_GRANT_DAYS)
    if _active_grants(enterprise, id_index(id_number)):
        raise Conflict("该人员已有有效授权，如需调整请先撤销原授权")
    grant = AgentGrant(agent_id=new_id("ag"), enterprise_id=enterprise.id, scopes=scopes,
                       expires_at=expires_at, granted_by=person.subject_id, created_at=utcnow())
    grant.agent_id_number = id_number
    db.session.add(grant)
    db.session.flush()
    audit.record("enterprise.agent_granted", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"agent_id": grant.agent_id, "agent": mask_id_number(id_number),
                          "scopes": grant.scopes, "expires_at": expires_at.isoformat()})
    commit("该人员已有有效授权")
    return grant


def list_agents(*, principal: Principal, credit_code: str) -> list[AgentGrant]:
    """Every grant of the company, newest first (representative only)."""
    _, enterprise = _represented(principal, credit_code)
    return list(db.session.scalars(select(AgentGrant).where(AgentGrant.enterprise_id == enterprise.id)
                                   .order_by(AgentGrant.created_at.desc(), AgentGrant.id.desc())))


def revoke_agent(*, principal: Principal, credit_code: str, agent_id: str) -> None:
    """End a grant now; the agent's company sessions stop working too."""
    person, enterprise = _represented(principal, credit_code)
    grant = db.session.scalar(select(AgentGrant).where(AgentGrant.agent_id == agent_id,
                                                       AgentGrant.enterprise_id == enterprise.id))
    if grant is None:
        raise NotFound("授权不存在")
    if grant.revoked_at is not None:
        return
    grant.revoked_at = utcnow()
    agent = db.session.scalar(select(Person).where(Person.id_number_index == grant.agent_id_number_index))
    if agent is not None and agent_scopes(agent, enterprise.credit_code) is None:
        _revoke_company_sessions(enterprise, agent)
    audit.record("enterprise.agent_revoked", subject_id=enterprise.subject_id, actor=person.subject_id,
                 details={"agent_id": agent_id})
    db.session.commit()
