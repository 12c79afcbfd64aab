"""Who is acting (the person, the company they act for, their scopes), resolved once per request."""
from __future__ import annotations

from typing import Callable

from flask import g

from ..errors import Forbidden, NotFound
from ..security.rbac import Principal, current_principal
from . import proxies
from .enterprises import agent_scopes, enterprise_for
from .models import Enterprise, Person
from .persons import person_by_subject_id, personal

COMPANY_GONE = "企业不存在或您已无权代表该企业"


class Actor:
    """The caller behind a token: the person acting and, for a company token, the company and what
    the person may still do for it today. Each is looked up on first use, once; the domains decide
    what the caller may do with it (their own 403 / 404)."""

    def __init__(self, principal: Principal):
        self.principal = principal
        self._found: dict = {}

    def _once(self, name: str, look_up: Callable):
        # not functools.cached_property: before Python 3.12 it holds one lock for every instance,
        # so concurrent requests would queue behind each other's database look-ups
        if name not in self._found:
            self._found[name] = look_up()
        return self._found[name]

    def __repr__(self) -> str:
        return f"<Actor {self.principal.actor_id} for {self.principal.subject_id}>"

    @classmethod
    def for_person(cls, person: Person, *, channel: str) -> "Actor":
        """A person whom staff act for (at a hall window, as a helper): no token of theirs; `person`
        may be new and not yet in the session."""
        actor = cls(Principal(subject_id=person.subject_id, subject_type="person", roles=frozenset({"citizen"}),
                              claims={"channel": channel}))
        actor._found["person"] = person
        return actor

    @property
    def subject_type(self) -> str:
        """person | legal | client"""
        return self.principal.subject_type

    @property
    def subject_id(self) -> str:
        """Whom the action is for: the person, or the company of a company token."""
        return self.principal.subject_id

    @property
    def actor_id(self) -> str:
        """The person who acts (the `act` person of a company token)."""
        return self.principal.actor_id

    @property
    def is_company(self) -> bool:
        return self.subject_type == "legal"

    @property
    def is_client(self) -> bool:
        return self.subject_type == "client"

    @property
    def is_proxy(self) -> bool:
        """A family proxy (亲友代办): a relative (`act`) acting for the person of the token."""
        return self.principal.is_proxy

    @property
    def person(self) -> Person | None:
        """The person acting (for a family proxy: the person acted for, whose affairs these are);
        None for client tokens and accounts that do not exist."""
        who = self.subject_id if self.is_proxy else self.actor_id
        return self._once("person", lambda: None if self.is_client else person_by_subject_id(who))

    @property
    def relative(self) -> Person | None:
        """The relative acting through a family proxy token (None for other tokens)."""
        return self._once("relative", lambda: person_by_subject_id(self.actor_id) if self.is_proxy else None)

    @property
    def proxy_scopes(self) -> frozenset[str] | None:
        """What a family proxy may do today: the scopes both the token and the live grant hold;
        None when the grant (or either account) has ended."""
        return self._once("proxy_scopes", self._proxy_scopes)

    def _proxy_scopes(self) -> frozenset[str] | None:
        if not self.is_proxy or self.person is None or not self.person.active or self.relative is None \
                or not self.relative.active:
            return None
        live = proxies.live_scopes(grantor=self.person, grantee=self.relative)
        return frozenset(live) & self.principal.scopes if live is not None else None

    def proxied_person(self, wanted: set[str], refusal: str) -> Person:
        """The person a family proxy acts for, when one of `wanted` is still granted; 403 otherwise."""
        if self.proxy_scopes is None:
            raise Forbidden("亲友代办授权已到期或已被撤销")
        if not self.proxy_scopes & wanted:
            raise Forbidden(refusal)
        return self.person

    @property
    def enterprise(self) -> Enterprise | None:
        """The company of a company token (None for other tokens or a company that is gone)."""
        return self._once("enterprise", lambda: enterprise_for(self.principal) if self.is_company else None)

    @property
    def company_scopes(self) -> frozenset[str] | None:
        """What the person may do for the company today: every agent scope as its representative,
        the granted ones as an agent; None when they may not act for it (any more)."""
        return self._once("company_scopes", self._company_scopes)

    def _company_scopes(self) -> frozenset[str] | None:
        if self.enterprise is None or self.person is None:
            return None
        live = agent_scopes(self.person, self.enterprise.credit_code)
        return frozenset(live) if live is not None else None

    def own_person(self) -> Person:
        """The person behind a personal token; 403 for company and client tokens, 401 when the
        account is gone or disabled."""
        return personal(self.principal, lambda: self.person)

    def company(self) -> Enterprise:
        """The company of a company token with an active person acting for it; 404 otherwise."""
        if self.enterprise is None or self.person is None or not self.person.active:
            raise NotFound(COMPANY_GONE)
        return self.enterprise

    @property
    def subject_number(self) -> str:
        """The subject's ID number, or the company's unified social credit code."""
        return self.enterprise.credit_code if self.enterprise is not None else self.person.id_number

    @property
    def subject_name(self) -> str:
        return self.enterprise.name if self.enterprise is not None else self.person.name

    def profile(self) -> dict:
        """Profile values forms are prefilled from: the person's name, ID and phone numbers, and
        the company's name and credit code (company tokens)."""
        values = {"name": self.person.name, "id_number": self.person.id_number, "phone": self.person.phone}
        if self.enterprise is not None:
            values.update(company_name=self.enterprise.name, credit_code=self.enterprise.credit_code)
        return {k: v for k, v in values.items() if v}


def actor_of(who: Actor | Principal | None = None) -> Actor:
    """The Actor of `who` (by default the caller), one per principal and request (kept on flask.g)."""
    if isinstance(who, Actor):
        return who
    principal = who if who is not None else current_principal()
    cached = g.get("actor")
    if cached is None or cached.principal is not principal:
        cached = g.actor = Actor(principal)
    return cached


def current_actor() -> Actor:
    """The caller as an Actor (401 without a valid token)."""
    return actor_of()
