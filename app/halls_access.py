"""Hall staff access for a hall's own lists (queues, pickups, appointments, complaints): who works at a
hall, the answers for anyone else (404 for an unknown hall, 403 naming what only its staff may do),
and one page of such a list."""
from __future__ import annotations

from sqlalchemy import func, select

from .applications.bundles import hall_parent
from .catalogue.models import Hall
from .errors import Forbidden, NotFound
from .extensions import db
from .security.rbac import Principal


def staff_role(principal: Principal, hall_code: str) -> str | None:
    """hall_admin / hall_staff when the caller works at `hall_code`; a city's hall_admin also
    acts for the county halls of that city."""
    halls = principal.halls
    if hall_code in halls:
        return halls[hall_code]
    parent = hall_parent(hall_code)
    if parent and halls.get(parent) == "hall_admin":
        return "hall_admin"
    return None


def is_hall_staff(principal: Principal | None, hall_code: str) -> bool:
    """A person working at `hall_code` (or an admin of its city)."""
    return (principal is not None and principal.subject_type == "person"
            and staff_role(principal, hall_code) is not None)


def require_staff_of_hall(principal: Principal, hall_code: str, *, what: str) -> Hall:
    """The hall, for its staff; 404 when there is no such hall, 403 「仅该大厅的工作人员可以{what}」."""
    hall = db.session.get(Hall, hall_code) if isinstance(hall_code, str) and hall_code.isdigit() else None
    if hall is None:
        raise NotFound("大厅不存在")
    if not is_hall_staff(principal, hall.code):
        raise Forbidden(f"仅该大厅的工作人员可以{what}")
    return hall


def page_of(query, *order, page: int, page_size: int, options=()) -> tuple[list, int]:
    """One page of `query` in `order` (loader `options` applied to the rows only) and the total."""
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.options(*options).order_by(*order)
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total
