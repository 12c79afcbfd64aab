"""What the sub-hall dashboard shows, read straight from the domain services and models."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select

from ..applications.deadlines import working_days_between
from ..applications.models import RUNNING_STATUSES, STATUS_LABELS, STATUSES, Application
from ..catalogue import halls as catalogue
from ..catalogue.models import Hall
from ..evaluations import service as evaluations
from ..evaluations.models import OPEN, RATING_LABELS, SATISFIED_RATINGS, Evaluation, RectificationTicket
from ..extensions import db
from ..identity.persons import person_by_subject_id, staff_roles
from ..security.rbac import Principal
from ..timeutil import BEIJING, as_aware, beijing_today
from . import charts

PERIODS = {"month": 12, "week": 12}
OVERDUE_SHOWN = 20
TICKETS_SHOWN = 50
SERVICES_CHARTED = 10
CHART_STATUS_LABELS = {"approved": "准予办结", "rejected": "不予办结"}  # short enough for a phone's bar chart


# ---- who may look


def staff_principal(subject_id: str | None) -> Principal | None:
    """A Principal for a signed-in person with their current hall roles (read fresh each request,
    so a role taken away stops working at once); None for nobody."""
    if not subject_id:
        return None
    person = person_by_subject_id(subject_id)
    if person is None or not person.active:
        return None
    roles, halls = staff_roles(subject_id)
    return Principal(subject_id=subject_id, subject_type="person", roles=frozenset(roles),
                     claims={"sub": subject_id, "halls": halls, "name": person.name})


def is_hall_admin(principal: Principal | None, hall: Hall) -> bool:
    """Admins of this hall, or of the city hall above a county hall (the catalogue's rule)."""
    return catalogue.manages_hall(principal, hall)


# ---- sections


@dataclass
class Dashboard:
    hall: Hall
    period: str
    coverage: dict | None = None
    applications: dict | None = None
    satisfaction: dict | None = None
    rectifications: dict | None = None
    generated_at: datetime = field(default_factory=lambda: datetime.now(BEIJING))


def build(hall: Hall, *, principal: Principal, period: str = "month") -> Dashboard:
    board = Dashboard(hall=hall, period=period if period in PERIODS else "month")
    board.coverage = coverage_section(hall.code)
    board.applications = applications_section(hall.code)
    board.satisfaction = satisfaction_section(hall.code, board.period)
    board.rectifications = rectifications_section(hall.code)
    return board


def coverage_section(hall_code: str) -> dict:
    data = catalogue.coverage(hall_code)
    target = data.get("target_service_count") or catalogue.CITY_SERVICE_TARGET
    wanted = len(catalogue.high_frequency_items())
    present = data["high_frequency_present"]
    return {**data, "target": target, "high_frequency_total": wanted,
            "service_gauge": charts.progress_bar(data["service_count"], target, title="事项数量与目标", unit="项"),
            "high_frequency_gauge": charts.progress_bar(present, wanted, title="高频事项覆盖", unit="项")}


def applications_section(hall_code: str) -> dict:
    rows = db.session.execute(
        select(Application.status, func.count()).where(Application.hall_code == hall_code,
                                                       Application.service_code.is_not(None))
        .group_by(Application.status)).all()
    counts = {status: 0 for status in STATUSES}
    for status, count in rows:
        counts[status] = counts.get(status, 0) + int(count)
    total = sum(counts.values())
    today = beijing_today()
    overdue_query = select(Application).where(
        Application.hall_code == hall_code, Application.service_code.is_not(None),
        Application.status.in_(RUNNING_STATUSES), Application.deadline < today)
    overdue_total = db.session.scalar(select(func.count()).select_from(overdue_query.subquery())) or 0
    overdue = [{"application_id": row.application_id, "service_name": row.service_name,
                "status": STATUS_LABELS.get(row.status, row.status), "deadline": row.deadline,
                "late_days": working_days_between(row.deadline, today)}
               for row in db.session.scalars(overdue_query.order_by(Application.deadline, Application.id)
                                             .limit(OVERDUE_SHOWN))]
    items = [(STATUS_LABELS.get(status, status), counts[status]) for status in counts]
    bars = [(CHART_STATUS_LABELS.get(status) or STATUS_LABELS.get(status, status), counts[status]) for status in counts]
    return {"total": total, "by_status": items, "overdue_total": overdue_total, "overdue": overdue,
            "chart": charts.bar_chart(bars, title="办件按状态分布") if total else None}


def _bucket_starts(period: str, today: date) -> list[date]:
    count = PERIODS[period]
    if period == "week":
        monday = today - timedelta(days=today.weekday())
        return [monday - timedelta(weeks=count - 1 - i) for i in range(count)]
    starts, year, month = [], today.year, today.month
    for _ in range(count):
        starts.append(date(year, month, 1))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return starts[::-1]


def _bucket_label(period: str, start: date) -> str:
    return f"{start.month}/{start.day}" if period == "week" else f"{start.year % 100:02d}年{start.month}月"


def satisfaction_section(hall_code: str, period: str) -> dict:
    summary = evaluations.hall_summary(hall_code=hall_code)
    satisfied = set(SATISFIED_RATINGS)
    starts = _bucket_starts(period, beijing_today())
    since = datetime.combine(starts[0], datetime.min.time(), BEIJING).astimezone(timezone.utc)
    buckets = {start: [0, 0] for start in starts}  # start -> [satisfied, total]
    for created_at, rating in db.session.execute(
            select(Evaluation.created_at, Evaluation.rating).where(Evaluation.hall_code == hall_code,
                                                                    Evaluation.created_at >= since)):
        day = as_aware(created_at).astimezone(BEIJING).date()
        start = day - timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)
        if start in buckets:
            buckets[start][1] += 1
            buckets[start][0] += rating in satisfied
    points = [charts.Point(_bucket_label(period, start), (ok / total * 100) if total else None,
                           f"{total} 条评价")
              for start, (ok, total) in buckets.items()]
    by_service = sorted(summary["by_service"], key=lambda s: (-s["total"], s["service_code"]))
    rated_periods = sum(1 for _, total in buckets.values() if total)
    return {
        "total": summary["total"], "rate": summary["satisfaction_rate"],
        "counts": [(RATING_LABELS[int(level)], count) for level, count in sorted(summary["counts"].items(),
                                                                                 reverse=True)],
        "by_service": by_service,
        "trend": charts.line_chart(points, title="满意度变化（%）") if rated_periods else None,
        "service_chart": charts.hbar_chart(
            [(s["service_name"], s["satisfaction_rate"] * 100, f"{s['satisfaction_rate'] * 100:.0f}%")
             for s in by_service[:SERVICES_CHARTED]], title="各事项满意度") if by_service else None,
        "periods": [(start, ok, total) for start, (ok, total) in buckets.items()],
    }


def rectifications_section(hall_code: str) -> dict:
    query = (select(RectificationTicket, Evaluation.service_name)
             .join(Evaluation, Evaluation.id == RectificationTicket.evaluation_id)
             .where(RectificationTicket.hall_code == hall_code, RectificationTicket.status == OPEN))
    total = db.session.scalar(select(func.count()).select_from(
        select(RectificationTicket.id).where(RectificationTicket.hall_code == hall_code,
                                             RectificationTicket.status == OPEN).subquery())) or 0
    today = beijing_today()
    tickets = [{"ticket_id": t.ticket_id, "application_id": t.application_id, "service_name": name,
                "rating": t.rating, "rating_label": RATING_LABELS.get(t.rating, str(t.rating)),
                "due_date": t.due_date, "overdue": t.due_date < today}
               for t, name in db.session.execute(query.order_by(RectificationTicket.due_date, RectificationTicket.id)
                                                 .limit(TICKETS_SHOWN))]
    return {"total": total, "tickets": tickets, "overdue_total": sum(1 for t in tickets if t["overdue"])}
