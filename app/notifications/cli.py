"""`flask outbox deliver`: send what the outbox still holds (after a restart, or from cron)."""
import json

import click
from flask.cli import AppGroup

from .service import deliver_pending

outbox_cli = AppGroup("outbox")


@outbox_cli.command("deliver")
def deliver():
    """Deliver pending channel notices now."""
    click.echo(json.dumps(deliver_pending(limit=1000), ensure_ascii=False))
