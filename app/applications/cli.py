"""`flask applications ...`: housekeeping of the applications domain."""
import json
from datetime import date

import click
from flask.cli import AppGroup

from ..jobs import enqueue
from ..timeutil import beijing_today
from . import missing, outcomes, spot_checks
from .deadlines import add_working_days, in_calendar_range
from .idempotency import purge_expired

applications_cli = AppGroup("applications")


@applications_cli.command("purge-idempotency-keys")
def purge_idempotency_keys():
    """Delete Idempotency-Key records older than 24 hours (run daily from cron)."""
    click.echo(json.dumps({"deleted": purge_expired()}, ensure_ascii=False))


@applications_cli.command("deadline")
@click.option("--days", type=int, required=True, help="working days")
@click.option("--from", "start", default=None, help="start date (YYYY-MM-DD), default today in Beijing")
def deadline(days, start):
    """Print the date N working days after a date (official calendar, 法定节假日与调休)."""
    day = date.fromisoformat(start) if start else beijing_today()
    click.echo(json.dumps({"from": day.isoformat(), "days": days,
                           "deadline": add_working_days(day, days).isoformat(),
                           "calendar_known": in_calendar_range(day)}, ensure_ascii=False))


@applications_cli.command("overdue-missing")
@click.option("--today", default=None, help="以该日期（YYYY-MM-DD）为今天，默认北京时间今天")
@click.option("--queue", is_flag=True, help="放入任务队列执行（需要 REDIS_URL），默认立即执行")
def overdue_missing(today, queue):
    """Remind of 容缺 materials due soon; return overdue ones to request_more (run daily from cron)."""
    if today:
        date.fromisoformat(today)
    if queue:
        click.echo(json.dumps({"queued": enqueue(missing.JOB, today)}))
        return
    click.echo(json.dumps(missing.enforce(today), ensure_ascii=False))


@applications_cli.command("spot-check")
@click.option("--hall", "hall_code", required=True, help="大厅编码")
@click.option("--count", type=click.IntRange(1, spot_checks.MAX_SAMPLE), default=10, help="抽取的办件数")
def spot_check(hall_code, count):
    """Draw a random sample of the hall's 秒批 applications approved on commitments for 抽查."""
    rows = spot_checks.draw_sample(hall_code=hall_code, count=count, actor_id=None)
    click.echo(json.dumps({"hall_code": hall_code, "selected": [row.application_id for row in rows]},
                          ensure_ascii=False))


@applications_cli.command("settle")
@click.option("--limit", type=int, default=500, help="最多处理的办件数")
def settle(limit):
    """Issue the decision documents and archive packages that final applications still lack."""
    done = [outcomes.settle(application_id) for application_id in outcomes.unsettled(limit)]
    click.echo(json.dumps({"settled": len([d for d in done if d["settled"]])}, ensure_ascii=False))
