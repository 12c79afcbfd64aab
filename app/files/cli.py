"""`flask files gc`: remove files no application used within FILE_UNATTACHED_TTL (run daily from cron)."""
import json
from datetime import timezone

import click
from flask.cli import AppGroup

from ..jobs import enqueue
from .service import collect_unattached

files_cli = AppGroup("files")
GC_JOB = "app.files.service:collect_unattached"


@files_cli.command("gc")
@click.option("--now", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="以该时刻（无时区时按 UTC）计算期限，默认当前时间")
@click.option("--queue", is_flag=True, help="放入任务队列执行（需要 REDIS_URL），默认立即执行")
def gc(now, queue):
    """Remove unattached files older than FILE_UNATTACHED_TTL seconds and the stored objects nothing uses."""
    if queue:
        click.echo(json.dumps({"queued": enqueue(GC_JOB)}))
        return
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    click.echo(json.dumps(collect_unattached(now=now)))
