"""Who may see and show a license: its holder, the guardian of a minor holder, and a company's
representative or agents (scopes `licenses:read` / `licenses:present`).

Licenses name their holder by blind index (ID number or credit code), so every answer here
is an index comparison plus, for guardians and agents, a registry or grant look-up. A caller
who may not see a license gets 404, never a hint that it exists.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..errors import Forbidden, NotFound
from ..extensions import db
from ..identity import service as identity
from ..identity.models import Person, id_index
from ..security.ciphers import pii_cipher
from ..security.pii import mask_name
from ..security.rbac import Principal
from .models import License

ENTITY_DOMAIN = "credit_code"  # the domain the credit registry indexes credit codes with
READ, PRESENT = "read", "present"
SCOPES_FOR = {READ: {"licenses:read", "licenses:present"}, PRESENT: {"licenses:present"}}
NOT_FOUND = "证照不存在或您无权查看"


def person_index(id_number: str) -> str:
    """Holder index of a (normalised) ID number: equal to `persons.id_number_index`."""
    return id_index(id_number)


def entity_index(credit_code: str) -> str:
    """Holder index of a (normalised) unified social credit code."""
    return pii_cipher().blind_index(credit_code, domain=ENTITY_DOMAIN)


@dataclass(frozen=True)
class Actor:
    """The person acting on a license and in which capacity."""

    subject_id: str
    role: str  # holder | guardian | representative | agent
    name: str
    acting_for: str | None = None  # company subject id for representative / agent

    def shown_by(self) -> dict:
        """What the access log records about who showed the license."""
        body = {"role": self.role, "subject_id": self.subject_id, "name_masked": mask_name(self.name)}
        if self.acting_for:
            body["acting_for"] = self.acting_for
        return body


@dataclass(frozen=True)
class Wallet:
    """Whose licenses a caller is looking at: a holder type and index, and who looks."""

    holder_type: str
    holder_index: str
    actor: Actor


def _company_actor(principal: Principal, need: str):
    enterprise = identity.enterprise_for(principal)
    person = identity.person_by_subject_id(principal.actor_id)
    if enterprise is None or person is None or not person.active:
        raise NotFound("企业不存在或您已无权代表该企业")
    live = identity.agent_scopes(person, enterprise.credit_code)
    if live is None:
        raise NotFound("企业不存在或您已无权代表该企业")
    scopes = live & set(principal.scopes)
    if not scopes & SCOPES_FOR[need]:
        wanted = "licenses:present" if need == PRESENT else "licenses:read"
        raise Forbidden(f"您没有代表该企业{'亮证' if need == PRESENT else '查看证照'}的授权（{wanted}）")
    role = "representative" if enterprise.representative_id == person.id else "agent"
    return enterprise, Actor(subject_id=person.subject_id, role=role, name=person.name,
                             acting_for=enterprise.subject_id)


def _refuse_clients(principal: Principal) -> None:
    if principal.subject_type == "client":
        raise Forbidden("证照夹仅供个人或企业使用")


def wallet_of(principal: Principal, *, need: str = READ, child_id_number: str | None = None) -> Wallet:
    """The wallet the caller opens: their own, their company's, or (with `child_id_number`) the
    wallet of a minor child whose guardian they are (404 otherwise)."""
    _refuse_clients(principal)
    if principal.subject_type == "legal":
        if child_id_number:
            raise NotFound(NOT_FOUND)
        enterprise, actor = _company_actor(principal, need)
        return Wallet("legal", entity_index(enterprise.credit_code), actor)
    person = identity.acting_person(principal)
    actor = Actor(subject_id=person.subject_id, role="holder", name=person.name)
    if not child_id_number:
        return Wallet("person", person.id_number_index, actor)
    if not identity.guardian_of(person.id_number, child_id_number):
        raise NotFound("未找到您监护的该未成年人")
    guardian = Actor(subject_id=person.subject_id, role="guardian", name=person.name)
    return Wallet("person", person_index(child_id_number.strip().upper()), guardian)


def actor_for(principal: Principal, license: License | None, *, need: str = READ) -> Actor:
    """The capacity in which the caller may see (`read`) or show (`present`) this license;
    404 when they may not see it, 403 when an agent may see but not show it."""
    if license is None:
        raise NotFound(NOT_FOUND)
    _refuse_clients(principal)
    if principal.subject_type == "legal":
        enterprise = identity.enterprise_for(principal)
        if (enterprise is None or license.holder_type != "legal"
                or license.holder_index != entity_index(enterprise.credit_code)):
            raise NotFound(NOT_FOUND)
        return _company_actor(principal, need)[1]
    person = identity.acting_person(principal)
    if license.holder_index == person.id_number_index:
        return Actor(subject_id=person.subject_id, role="holder", name=person.name)
    if license.holder_type == "person" and identity.guardian_of(person.id_number, license.holder_ref):
        return Actor(subject_id=person.subject_id, role="guardian", name=person.name)
    raise NotFound(NOT_FOUND)


def holder_subject_id(license: License) -> str | None:
    """The registered subject that holds the license (person or company), or None when the
    holder has not registered (yet)."""
    return holder_subject_ids([license])[license.id]


def holder_subject_ids(licenses: list[License]) -> dict[int, str | None]:
    """`holder_subject_id` of several licenses: one query for the persons among them."""
    persons = [license for license in licenses if license.holder_type != "legal"]
    registered = {index: subject for index, subject in db.session.execute(
        select(Person.id_number_index, Person.subject_id).where(
            Person.id_number_index.in_({license.holder_index for license in persons})))} if persons else {}
    subjects = {license.id: registered.get(license.holder_index) for license in persons}
    for license in licenses:
        if license.holder_type == "legal":
            enterprise = identity.enterprise_for(license.holder_ref)
            subjects[license.id] = enterprise.subject_id if enterprise else None
    return subjects
