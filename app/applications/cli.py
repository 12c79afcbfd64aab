"""`flask applications ...`: housekeeping of the applications domain."""
import json

import click
from flask.cli import AppGroup

from .deadlines import add_working_days, in_calendar_range
from .idempotency import purge_expired
from ..timeutil import beijing_today

applications_cli = AppGroup("applications", help="办件")


@applications_cli.command("purge-idempotency-keys")
def purge_idempotency_keys():
    """Delete Idempotency-Key records older than 24 hours (run daily from cron)."""
    click.echo(json.dumps({"deleted": purge_expired()}, ensure_ascii=False))


@applications_cli.command("deadline")
@click.option("--days", type=int, required=True, help="working days")
@click.option("--from", "start", default=None, help="start date (YYYY-MM-DD), default today in Beijing")
def deadline(days, start):
    """Print the date N working days after a date (official calendar, 法定节假日与调休)."""
    from datetime import date
    day = date.fromisoformat(start) if start else beijing_today()
    click.echo(json.dumps({"from": day.isoformat(), "days": days,
                           "deadline": add_working_days(day, days).isoformat(),
                           "calendar_known": in_calendar_range(day)}, ensure_ascii=False))


commands = [applications_cli]
