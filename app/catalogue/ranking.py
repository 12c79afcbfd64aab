"""The 50 high-frequency items, ranked from application counts (a monthly job), not a fixed list.

`rank_high_frequency` counts the applications of the last `days` per base item (bundle parents
excluded, their children counted), takes the 50 most applied-for items, and writes their ranks to
every service of those items (the rest lose theirs) in one catalogue change that every worker follows. With fewer than `min_applications` applications the reference list
(`high_frequency_services.csv`, as in base_items.json) is used. `schedule_monthly` queues the job
for the first day of the next month; the job queues its next run itself.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from ..extensions import db
from ..timeutil import utcnow
from . import seed_data
from .index import catalogue_index
from .models import Service
from .publishing import next_catalogue_version

HIGH_FREQUENCY_COUNT = seed_data.HIGH_FREQUENCY_COUNT
MIN_APPLICATIONS = 500
JOB = "app.catalogue.ranking:monthly_job"


def reference_ranks() -> dict[str, int]:
    """base_code -> rank of the reference list."""
    return {b["base_code"]: b["high_frequency_rank"] for b in seed_data.load_own_items()
            if b["high_frequency_rank"] is not None}


def application_counts(*, days: int) -> list[tuple[str, int]]:
    """(base_code, applications) of the last `days`, most first (ties by base code)."""
    from ..applications.models import Application  # the applications domain depends on the catalogue, not back
    since = utcnow() - timedelta(days=days)
    count = func.count(Application.id)
    rows = db.session.execute(
        select(Application.base_code, count).where(
            Application.submitted_at >= since, Application.base_code.is_not(None),
            Application.bundle_code.is_(None) | Application.parent_id.is_not(None))
        .group_by(Application.base_code).order_by(count.desc(), Application.base_code)).all()
    return [(base_code, int(n)) for base_code, n in rows]


def rank_high_frequency(*, days: int = 30, min_applications: int = MIN_APPLICATIONS) -> dict:
    """Recompute and store the ranks; returns what was decided and why."""
    counts = application_counts(days=days)
    published = set(db.session.scalars(select(Service.base_code).where(Service.status == "published").distinct()))
    total = sum(n for _, n in counts)
    if total >= min_applications:
        ranked = [base for base, _ in counts if base in published][:HIGH_FREQUENCY_COUNT]
        reference = sorted(reference_ranks().items(), key=lambda pair: pair[1])
        ranked += [base for base, _ in reference if base not in ranked][:HIGH_FREQUENCY_COUNT - len(ranked)]
        ranks, source = {base: i + 1 for i, base in enumerate(ranked)}, "applications"
    else:
        ranks, source = reference_ranks(), "reference"
    current = dict(db.session.execute(select(Service.base_code, Service.high_frequency_rank).where(
        Service.high_frequency_rank.is_not(None)).distinct()).all())
    changed = {base for base in set(current) | set(ranks) if current.get(base) != ranks.get(base)}
    if changed:
        seq = next_catalogue_version()
        db.session.execute(update(Service).where(Service.base_code.in_(changed), Service.base_code.not_in(ranks))
                           .values(high_frequency_rank=None, change_seq=seq)
                           .execution_options(synchronize_session=False))
        for base, rank in ranks.items():
            if base in changed:
                db.session.execute(update(Service).where(Service.base_code == base)
                                   .values(high_frequency_rank=rank, change_seq=seq)
                                   .execution_options(synchronize_session=False))
        db.session.commit()
        catalogue_index(current_app._get_current_object()).changed()
    else:
        db.session.rollback()
    return {"source": source, "applications": total, "days": days, "ranked": len(ranks),
            "changed": len(changed), "top": [base for base, _ in sorted(ranks.items(), key=lambda p: p[1])[:10]]}


def seconds_to_next_month(now=None) -> int:
    now = now or utcnow()
    first = (now.replace(day=1, hour=2, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    return max(60, int((first - now).total_seconds()))


def monthly_job() -> dict:
    """The monthly job: rank, then queue the next run (on the first day of next month)."""
    from ..jobs import enqueue, runs_inline
    result = rank_high_frequency()
    if not runs_inline():
        enqueue(JOB, delay=seconds_to_next_month(), retries=1)
    return result


def schedule_monthly() -> str | None:
    """Queue the first run of the monthly job (RQ's scheduler runs it on the first of next month)."""
    from ..jobs import enqueue
    return enqueue(JOB, delay=seconds_to_next_month(), retries=1)
