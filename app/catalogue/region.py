"""The caller's city for a catalogue search that names neither a hall nor a city, from what the caller is
registered as: a person's ID number (GB 11643: the first six digits are the division of the household
registration where the number was issued) or a company token's unified social credit code (GB 32100:
characters 3-8 are the division of the registering authority). Nothing else is guessed: an anonymous
caller, a client, a family proxy or a code outside Shandong gets the provincial entry."""
from __future__ import annotations

import threading
from collections import OrderedDict

from ..identity.persons import person_by_subject_id
from ..security.rbac import Principal, current_principal
from .index import fresh_index

PROVINCE_PREFIX = "37"
MERGED_CITIES = {"3712": "370100"}  # 莱芜 joined 济南 in 2019; numbers issued there still start 3712
PERSON_CACHE_SIZE = 4096

_person_cities: OrderedDict[str, str | None] = OrderedDict()
_lock = threading.Lock()


def city_of_division(code: str | None) -> str | None:
    """The Shandong prefecture-level city (GB/T 2260, e.g. 370200) of a six-digit division code, else None."""
    if not code or len(code) < 6 or not code[:6].isdigit() or not code.startswith(PROVINCE_PREFIX):
        return None
    prefix = code[:4]
    if prefix.endswith("00"):  # the province itself names no city
        return None
    city = MERGED_CITIES.get(prefix, f"{prefix}00")
    hall = fresh_index().halls.get(city)
    return city if hall is not None and hall.level == "city" else None


def _person_city(subject_id: str) -> str | None:
    with _lock:
        if subject_id in _person_cities:
            _person_cities.move_to_end(subject_id)
            return _person_cities[subject_id]
    person = person_by_subject_id(subject_id)
    city = city_of_division(person.id_number) if person is not None else None
    with _lock:
        _person_cities[subject_id] = city
        while len(_person_cities) > PERSON_CACHE_SIZE:
            _person_cities.popitem(last=False)
    return city


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


def with_caller_city(args: dict, etag: str) -> tuple[dict, str]:
    """`args` of a /services search with the caller's city when it names neither `hall` nor `city` and the
    caller's city is known; the ETag then names that city, so one URL never answers 304 across cities."""
    if args.get("hall") or args.get("city"):
        return args, etag
    city = caller_city(current_principal(optional=True))
    if city is None:
        return args, etag
    return {**args, "city": city}, f"{etag}-{city}"
