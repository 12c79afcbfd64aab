"""容缺 due dates: a reminder in the inbox before a missing material is due, and the application
back to `request_more` (asking for those materials) once the day has passed. Run daily:
`flask applications overdue-missing` (or the job JOB); `--today` sets the day, for tests and replays."""
from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import select

from ..errors import ApiError
from ..extensions import db
from ..notifications.service import schedule_delivery
from ..timeutil import beijing_today, utcnow
from .deadlines import add_working_days
from .models import MISSING, RUNNING_STATUSES, Application, ApplicationMaterial
from .processing import change
from .service import notify_applicant, version_checked

logger = logging.getLogger("app.applications")
JOB = "app.applications.missing:enforce"
REMIND_WORKING_DAYS = 1  # remind when the material is due within this many working days


def _open_missing(query_filter) -> dict[int, list[ApplicationMaterial]]:
    rows = db.session.scalars(select(ApplicationMaterial).join(Application).where(
        ApplicationMaterial.kind == MISSING, Application.status.in_(RUNNING_STATUSES), query_filter)
        .order_by(ApplicationMaterial.application_id, ApplicationMaterial.position)).all()
    grouped: dict[int, list[ApplicationMaterial]] = {}
    for row in rows:
        grouped.setdefault(row.application_id, []).append(row)
    return grouped


def _remind(today: date) -> int:
    horizon = add_working_days(today, REMIND_WORKING_DAYS)
    sent = 0
    for rows in _open_missing((ApplicationMaterial.due_date >= today) & (ApplicationMaterial.due_date <= horizon)
                              & ApplicationMaterial.reminded_at.is_(None)).values():
        app = rows[0].application
        notify_applicant(app, "missing_due", materials="、".join(row.name for row in rows),
                         due=min(row.due_date for row in rows).isoformat())
        for row in rows:
            row.reminded_at = utcnow()
        db.session.commit()
        sent += 1
    return sent


def _return_overdue(today: date) -> int:
    returned = 0
    for application_id, rows in _open_missing(ApplicationMaterial.due_date < today).items():
        app = db.session.get(Application, application_id)
        names = [row.name for row in rows]
        try:
            with version_checked():
                change(app, "request_more", actor_id=None, actor_role="system",
                       comment="容缺材料逾期未补齐：" + "、".join(names), data={"materials": names, "overdue": True})
                for row in app.materials:
                    row.requested = row.name in names
                notify_applicant(app, "missing_overdue", materials="、".join(names))
                db.session.commit()
        except ApiError:  # a concurrent change of one application must not stop the others
            db.session.rollback()
            logger.warning("overdue 容缺 of %s not returned this run", app.application_id, exc_info=True)
            continue
        returned += 1
    return returned


def enforce(today: str | None = None) -> dict:
    """Remind of missing materials due soon and return the overdue ones (each commits)."""
    day = date.fromisoformat(today) if today else beijing_today()
    result = {"today": day.isoformat(), "reminded": _remind(day), "returned": _return_overdue(day)}
    schedule_delivery()
    logger.info("容缺: %(reminded)d reminded, %(returned)d returned to request_more", result)
    return result
