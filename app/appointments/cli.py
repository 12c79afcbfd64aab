"""`flask appointments open-slots | remind | close-day`: the daily jobs of appointments (for cron)."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from . import daily, slots

appointments_cli = AppGroup("appointments")


def _echo(result: dict) -> None:
    click.echo(json.dumps(result, ensure_ascii=False, default=str))


@appointments_cli.command("open-slots")
@click.option("--hall", "halls", multiple=True, help="只开放这些大厅（默认全部有窗口的大厅）")
def open_slots(halls):
    """Create the slots of today and the next working days for every hall (idempotent)."""
    _echo(slots.open_window(list(halls) or None))


@appointments_cli.command("remind")
def remind():
    """Remind tomorrow's bookings through the inbox and the channel notices (run daily)."""
    _echo(daily.remind_due())


@appointments_cli.command("close-day")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="关闭到这一天（默认今天）为止已结束的时段")
def close_day(day):
    """Mark unattended bookings of ended slots as no-shows and count them per person (run each evening)."""
    _echo(daily.close_day(day=day.date() if day else None))
