"""Who may see and show a license: its holder, the guardian of a minor holder, and a company's
representative or agents (scopes `licenses:read` / `licenses:present`).

Licenses name their holder by blind index (ID number or credit code), so every answer here
is an index comparison plus, for guardians and agents, a registry or grant look-up. A caller
who may not see a license gets 404, never a hint that it exists. Who is acting comes as an
`identity.actors.Actor` (a Principal is resolved to the request's Actor).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..bulk import among
from ..errors import Forbidden, NotFound
from ..extensions import db
from ..identity.enterprises import enterprise_for
from ..identity.persons import guardian_of
from ..identity.actors import COMPANY_GONE, Actor, actor_of
from ..identity.models import Enterprise, Person, id_index
from ..identity.identifiers import IdentifierError, normalize_credit_code, normalize_id_number
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
class Capacity:
    """The person acting on a license and in which capacity."""

    subject_id: str
    role: str  # holder | guardian | representative | agent | proxy
    name: str
    acting_for: str | None = None  # company subject id for representative / agent, person for proxy

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
    capacity: Capacity


def _company_capacity(actor: Actor, need: str) -> tuple[Enterprise, Capacity]:
    enterprise = actor.company()
    if actor.company_scopes is None:
        raise NotFound(COMPANY_GONE)
    if not actor.company_scopes & actor.principal.scopes & SCOPES_FOR[need]:
        wanted = "licenses:present" if need == PRESENT else "licenses:read"
        raise Forbidden(f"您没有代表该企业{'亮证' if need == PRESENT else '查看证照'}的授权（{wanted}）")
    person = actor.person
    role = "representative" if enterprise.representative_id == person.id else "agent"
    return enterprise, Capacity(subject_id=person.subject_id, role=role, name=person.name,
                                acting_for=enterprise.subject_id)


def _proxy_capacity(actor: Actor, need: str) -> tuple[Person, Capacity]:
    wanted = "licenses:present" if need == PRESENT else "licenses:read"
    person = actor.proxied_person(SCOPES_FOR[need], f"您没有代亲友{'亮证' if need == PRESENT else '查看证照'}的授权（{wanted}）")
    relative = actor.relative
    return person, Capacity(subject_id=relative.subject_id, role="proxy", name=relative.name,
                            acting_for=person.subject_id)


def _acting(who: Actor | Principal) -> Actor:
    actor = actor_of(who)
    if actor.is_client:
        raise Forbidden("证照夹仅供个人或企业使用")
    return actor


def wallet_of(who: Actor | Principal, *, need: str = READ, child_id_number: str | None = None) -> Wallet:
    """The wallet the caller opens: their own, their company's, or (with `child_id_number`) the
    wallet of a minor child whose guardian they are (404 otherwise)."""
    actor = _acting(who)
    if actor.is_company:
        if child_id_number:
            raise NotFound(NOT_FOUND)
        enterprise, capacity = _company_capacity(actor, need)
        return Wallet("legal", entity_index(enterprise.credit_code), capacity)
    if actor.is_proxy:
        if child_id_number:
            raise NotFound(NOT_FOUND)
        person, capacity = _proxy_capacity(actor, need)
        return Wallet("person", person.id_number_index, capacity)
    person = actor.own_person()
    if not child_id_number:
        return Wallet("person", person.id_number_index, Capacity(subject_id=person.subject_id, role="holder",
                                                                 name=person.name))
    if not guardian_of(person.id_number, child_id_number):
        raise NotFound("未找到您监护的该未成年人")
    guardian = Capacity(subject_id=person.subject_id, role="guardian", name=person.name)
    return Wallet("person", person_index(child_id_number.strip().upper()), guardian)


def actor_for(who: Actor | Principal, license: License | None, *, need: str = READ) -> Capacity:
    """The capacity in which the caller may see (`read`) or show (`present`) this license;
    404 when they may not see it, 403 when an agent may see but not show it."""
    if license is None:
        raise NotFound(NOT_FOUND)
    actor = _acting(who)
    if actor.is_company:
        if (actor.enterprise is None or license.holder_type != "legal"
                or license.holder_index != entity_index(actor.enterprise.credit_code)):
            raise NotFound(NOT_FOUND)
        return _company_capacity(actor, need)[1]
    if actor.is_proxy:
        if actor.person is None or license.holder_type != "person" \
                or license.holder_index != actor.person.id_number_index:
            raise NotFound(NOT_FOUND)
        return _proxy_capacity(actor, need)[1]
    person = actor.own_person()
    if license.holder_index == person.id_number_index:
        return Capacity(subject_id=person.subject_id, role="holder", name=person.name)
    if license.holder_type == "person" and guardian_of(person.id_number, license.holder_ref):
        return Capacity(subject_id=person.subject_id, role="guardian", name=person.name)
    raise NotFound(NOT_FOUND)


def holder_subject_id(license: License) -> str | None:
    """The registered subject that holds the license (person or company), or None when the
    holder has not registered (yet)."""
    return holder_subject_ids([license])[license.id]


def told_of_use(holder_subject: str | None, shown_by: dict | None) -> list[str]:
    """Whose inbox hears of a use of a license: its holder (when registered), then whoever showed it for them."""
    told = [holder_subject] if holder_subject else []
    presenter = (shown_by or {}).get("subject_id")
    return told + [presenter] if presenter and presenter not in told else told


def holder_subject_ids(licenses: list[License]) -> dict[int, str | None]:
    """`holder_subject_id` of several licenses: one query for the persons among them."""
    persons = [license for license in licenses if license.holder_type != "legal"]
    registered = {index: subject for index, subject in db.session.execute(
        select(Person.id_number_index, Person.subject_id).where(
            among(Person.id_number_index, {license.holder_index for license in persons})))} if persons else {}
    subjects = {license.id: registered.get(license.holder_index) for license in persons}
    for license in licenses:
        if license.holder_type == "legal":
            enterprise = enterprise_for(license.holder_ref)
            subjects[license.id] = enterprise.subject_id if enterprise else None
    return subjects


def license_belongs_to(license_id: str, *, id_number: str) -> bool:
    """Whether the license is held by the person with this ID number (or the company with this
    credit code): a mother's card offered as 母亲居民身份证 must be the mother's. False for an
    unknown license or a malformed number."""
    license = (db.session.scalar(select(License).where(License.license_id == license_id))
               if isinstance(license_id, str) else None)
    if license is None or not isinstance(id_number, str):
        return False
    try:
        if license.holder_type == "person":
            return license.holder_index == person_index(normalize_id_number(id_number))
        return license.holder_index == entity_index(normalize_credit_code(id_number))
    except IdentifierError:
        return False
