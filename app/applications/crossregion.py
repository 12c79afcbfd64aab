"""全省通办: which hall handles what staff take in, and the hand-over from the hall that took it in.

Staff take in the services of their own hall, and the items flagged `cross_region` in the catalogue
for any hall in the province. `service_code` names a service of the base item; the responsible hall
is `responsible_hall` when given (e.g. the applicant's registered region, 户籍所在地), else the
hall of that service. When the staff member does not work at the responsible hall, the application
is created there with `accepting_hall_code` = the hall that took it in: both halls list it, the
responsible hall decides it, and the result is handed out at the accepting hall's pickup window.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..catalogue.models import Service
from ..errors import Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..security.rbac import Principal
from .models import Application
from ..halls_access import staff_role
from .service import record_event


@dataclass(frozen=True)
class Route:
    """Where an application staff take in goes: the responsible service, and the hall that took it
    in for it when that is another hall (None: taken in where it is handled)."""

    service: Service
    accepting_hall: str | None


def _published(base_code: str, hall_code: str) -> Service | None:
    return db.session.scalar(select(Service).where(Service.base_code == base_code, Service.hall_code == hall_code,
                                                   Service.status == "published"))


def _own_hall(principal: Principal, chosen: str | None) -> str:
    """The hall the staff member takes it in at: `accepting_hall` when given (one of theirs), else
    their only hall."""
    halls = sorted(principal.halls)
    if chosen is not None:
        if staff_role(principal, chosen) is None:
            raise ValidationFailed.field("accepting_hall", "您不是该大厅的工作人员")
        return chosen
    if len(halls) != 1:
        raise ValidationFailed.field("accepting_hall", "您在多个大厅任职，请指明受理大厅")
    return halls[0]


def route(principal: Principal, *, service_code: str, responsible_hall: str | None = None,
          accepting_hall: str | None = None) -> Route:
    """The responsible service for what staff take in; 404 for an unknown service, 422 naming
    `service_code` when their hall does not offer it and it is not 全省通办, or `responsible_hall`
    when that hall does not offer the item."""
    named = db.session.get(Service, service_code) if isinstance(service_code, str) else None
    if named is None or not named.active:
        raise NotFound("事项不存在")
    service = named
    if responsible_hall is not None and responsible_hall != named.hall_code:
        service = _published(named.base_code, responsible_hall)
        if service is None:
            raise ValidationFailed.field("responsible_hall", f"大厅 {responsible_hall} 不办理「{named.name}」")
    if staff_role(principal, service.hall_code) is not None and accepting_hall in (None, service.hall_code):
        return Route(service=service, accepting_hall=None)
    if not service.cross_region:
        raise ValidationFailed.field("service_code", f"本大厅不办理「{service.name}」（{service.hall_code}），"
                                                     "该事项也不属于全省通办事项")
    own = _own_hall(principal, accepting_hall)
    return Route(service=service, accepting_hall=None if own == service.hall_code else own)


def record_hand_over(app: Application, *, staff_id: str) -> None:
    """The timeline entry of the hand-over from the accepting hall to the responsible one."""
    record_event(app, "cross_region_hand_over", from_status=None, to_status=None, actor_id=staff_id, actor_role="staff",
                 comment="全省通办：受理大厅收件后转交办理大厅",
                 data={"from_hall": app.accepting_hall_code, "to_hall": app.hall_code, "department": app.department})


def handling_role(principal: Principal, app: Application, *, doing: str) -> str:
    """The caller's role at the hall that handles `app`; 403 saying who does `doing` for staff of the
    hall that only took it in, 404 for anyone who cannot see it."""
    staff = principal.subject_type == "person"
    role = staff_role(principal, app.hall_code) if staff else None
    if role is not None:
        return role
    if staff and app.accepting_hall_code and staff_role(principal, app.accepting_hall_code) is not None:
        raise Forbidden(f"全省通办：大厅 {app.accepting_hall_code} 收件后已转交办理大厅 {app.hall_code}，"
                        f"{doing}由办理大厅负责；收件大厅可查看办件，并在办理结果送达后于领取窗口交付",
                        extra={"hall_code": app.hall_code, "accepting_hall_code": app.accepting_hall_code})
    raise NotFound("办件不存在")
