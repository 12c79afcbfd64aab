"""The caller's city for a catalogue search that names neither a hall nor a city, from what the caller is
registered as: a person's ID number (GB 11643: the first six digits are the division of the household
registration where the number was issued) or a company token's unified social credit code (GB 32100:
characters 3-8 are the division of the registering authority). Nothing else is guessed: an anonymous
caller, a client, a family proxy or a code outside Shandong gets the provincial entry."""
from __future__ import annotations

import functools

from ..identity.persons import person_by_subject_id
from ..security.rbac import Principal, current_principal
from .halls import city_of_division


@functools.lru_cache(maxsize=4096)
def _person_city(subject_id: str) -> str | None:
    """A person's city by their ID number (which never changes), read once per process."""
    person = person_by_subject_id(subject_id)
    return city_of_division(person.id_number) if person is not None else None


def caller_city(principal: Principal | None) -> str | None:
    """The city a signed-in person or company is registered in, or None when it cannot honestly be told."""
    if principal is None or principal.is_proxy:
        return None
    if principal.subject_type == "legal":
        credit_code = principal.claims.get("credit_code") or ""
        return city_of_division(credit_code[2:8])
    if principal.subject_type == "person":
        return _person_city(principal.subject_id)
    return None


def search_city(principal: Principal | None, args) -> str | None:
    """The city a /services search with these arguments is answered for: the caller's (`caller_city`) when they
    name neither `hall` nor `city`, else None."""
    if args.get("hall") or args.get("city"):
        return None
    return caller_city(principal)


def with_caller_city(args: dict) -> tuple[dict, str | None]:
    """`args` of a /services search with the caller's city added when `search_city` gives one, and that city."""
    city = search_city(current_principal(optional=True), args)
    return ({**args, "city": city} if city else args), city
