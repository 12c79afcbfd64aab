"""Halls: look-up, the province/city/county tree with service counts, who manages a hall, coverage."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import func, select

from ..errors import NotFound
from ..extensions import db
from ..security.rbac import Principal
from . import seed_data
from .index import fresh_index
from .models import Hall, Service

CITY_SERVICE_TARGET = seed_data.CITY_SERVICE_TARGET


MERGED_CITIES = {"3712": "3701"}  # 莱芜 joined 济南 in 2019; numbers issued there still start 3712


def city_of_division(code: str | None) -> str | None:
    """The city hall (e.g. 370200) of the division in the first digits of an ID number or of a credit
    code's region (GB/T 2260), or None where that is no city hall of ours."""
    if not code or len(code) < 4 or not code[:4].isdigit():
        return None
    city = MERGED_CITIES.get(code[:4], code[:4]) + "00"
    hall = db.session.get(Hall, city)
    return city if hall is not None and hall.level == "city" else None


def get_hall(code: str) -> Hall:
    """The hall with this code, or 404."""
    hall = db.session.get(Hall, code)
    if hall is None:
        raise NotFound(f"大厅 {code} 不存在")
    return hall


def hall_chain(code: str) -> list[Hall]:
    """The hall and its ancestors, nearest first (county, city, province); 404 when unknown."""
    chain = [get_hall(code)]
    while chain[-1].parent_code and len(chain) < 6:
        chain.append(get_hall(chain[-1].parent_code))
    return chain


def manages_hall(principal: Principal | None, hall: Hall, roles: Iterable[str] = ("hall_admin",)) -> bool:
    """Whether the caller holds one of `roles` at `hall`, or at the city hall above a county hall."""
    if principal is None:
        return False
    roles = set(roles)
    halls = principal.halls
    if halls.get(hall.code) in roles:
        return True
    if hall.level == "county" and hall.parent_code and halls.get(hall.parent_code) in roles:
        return True
    return False


def hall_tree(*, channel: str | None = None) -> list[dict]:
    """山东省 with its cities with their counties, each with its published service count."""
    index = fresh_index()

    def build():
        counts = index.hall_counts(channel)
        nodes = {code: {"code": h.code, "name": h.name, "full_name": h.full_name, "level": h.level,
                        "parent_code": h.parent_code, "service_count": counts.get(code, 0), "children": []}
                 for code, h in sorted(index.halls.items()) if h.level in ("province", "city", "county")}
        roots = []
        for node in nodes.values():
            parent = nodes.get(node["parent_code"]) if node["parent_code"] else None
            (parent["children"] if parent else roots).append(node)
        return roots

    return index.cached_response(("hall_tree", channel), build)


def hall_detail(code: str, *, channel: str | None = None) -> dict:
    """One hall with its service count (published, exposed to `channel` when given)."""
    index = fresh_index()
    hall = index.halls.get(code)
    if hall is None:
        raise NotFound(f"大厅 {code} 不存在")
    parent = index.halls.get(hall.parent_code) if hall.parent_code else None
    counts = index.hall_counts(channel)
    children = [{"code": h.code, "name": h.name, "level": h.level}
                for h in sorted(index.halls.values(), key=lambda h: h.code)
                if h.parent_code == code and h.level in ("city", "county")]
    return {"code": hall.code, "name": hall.name, "full_name": hall.full_name, "level": hall.level,
            "parent_code": hall.parent_code, "parent_name": parent.full_name if parent else None,
            "address": hall.address, "service_count": counts.get(code, 0), "children": children}


def high_frequency_items() -> tuple[tuple[int, str, str], ...]:
    """The current high-frequency base items as (rank, base_code, name), by rank (see ranking.py)."""
    rows = db.session.execute(select(Service.high_frequency_rank, Service.base_code, Service.name).where(
        Service.high_frequency_rank.is_not(None), Service.status == "published").distinct()).all()
    best: dict[str, tuple[int, str, str]] = {}
    for rank, base_code, name in rows:
        best[base_code] = min(best.get(base_code, (rank, base_code, name)), (rank, base_code, name))
    return tuple(sorted(best.values()))


def coverage(hall_code: str) -> dict:
    """How many services a hall publishes and which high-frequency ones it lacks."""
    get_hall(hall_code)
    published = (Service.hall_code == hall_code, Service.status == "published")
    base_codes = set(db.session.scalars(select(Service.base_code).where(*published)))
    count = db.session.scalar(select(func.count()).select_from(Service).where(*published))
    wanted = high_frequency_items()
    missing = [name for _, base_code, name in wanted if base_code not in base_codes]
    present = len(wanted) - len(missing)
    return {"hall_code": hall_code, "service_count": count, "high_frequency_present": present,
            "high_frequency_missing": missing, "target_service_count": CITY_SERVICE_TARGET,
            "meets_target": count >= CITY_SERVICE_TARGET and not missing}
