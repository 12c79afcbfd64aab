"""The dashboard's desk panel: the department queues (受审分离), 全省通办 items and the pickup window."""
from __future__ import annotations

from sqlalchemy import case, func, or_, select

from ..applications.models import ACCEPTED, OPEN_STATUSES, STATUS_LABELS, Application
from ..applications.routing import READY, at_pickup_hall
from ..catalogue.models import Hall
from ..extensions import db
from ..timeutil import beijing_today

CROSS_REGION_SHOWN = 20


def build(hall_code: str) -> dict:
    return {"departments": department_queues(hall_code), "cross_region": cross_region(hall_code),
            "pickups_ready": db.session.scalar(select(func.count()).select_from(Application).where(
                Application.pickup_status == READY, at_pickup_hall(hall_code))) or 0}


def department_queues(hall_code: str) -> list[dict]:
    """Accepted applications waiting for each department's decision, and how many are overdue."""
    overdue = func.sum(case((Application.deadline < beijing_today(), 1), else_=0))
    rows = db.session.execute(
        select(Application.department, func.count(), overdue)
        .where(Application.hall_code == hall_code, Application.status == ACCEPTED, Application.service_code.is_not(None))
        .group_by(Application.department).order_by(func.count().desc(), Application.department)).all()
    return [{"department": department or "（未注明部门）", "waiting": waiting, "overdue": int(late or 0)}
            for department, waiting, late in rows]


def cross_region(hall_code: str) -> dict:
    """Open 全省通办 items: taken in here for another hall (sent) or handed to this hall (received)."""
    sent = Application.accepting_hall_code == hall_code
    received = (Application.hall_code == hall_code) & Application.accepting_hall_code.is_not(None)
    open_ = or_(Application.status.in_(OPEN_STATUSES), Application.pickup_status == READY)
    counts = db.session.execute(select(func.sum(case((sent, 1), else_=0)), func.sum(case((received, 1), else_=0)))
                                .where(open_, or_(sent, received))).one()
    rows = db.session.scalars(select(Application).where(open_, or_(sent, received))
                              .order_by(Application.submitted_at.desc(), Application.id.desc())
                              .limit(CROSS_REGION_SHOWN)).all()
    others = {row.hall_code if row.accepting_hall_code == hall_code else row.accepting_hall_code for row in rows}
    names = dict(db.session.execute(select(Hall.code, Hall.full_name).where(Hall.code.in_(others))).all()) if others else {}
    items = []
    for row in rows:
        outgoing = row.accepting_hall_code == hall_code
        other = row.hall_code if outgoing else row.accepting_hall_code
        items.append({"application_id": row.application_id, "service_name": row.service_name,
                      "direction": "代收转出" if outgoing else "转入办理", "other_hall": names.get(other, other),
                      "status": "待领取" if row.pickup_status == READY else STATUS_LABELS[row.status]})
    return {"sent": int(counts[0] or 0), "received": int(counts[1] or 0), "rows": items}
