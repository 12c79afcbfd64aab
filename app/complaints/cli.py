"""`flask complaints sync-12345`: work orders in from the 12345 platform, replies out (for cron)."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from ..errors import ApiError
from . import hotline_sync

complaints_cli = AppGroup("complaints")


@complaints_cli.command("sync-12345")
def sync_12345():
    """Import the work orders dispatched to us and send back the pending replies."""
    try:
        result = hotline_sync.sync()
    except ApiError as exc:
        raise click.ClickException(f"与 12345 平台同步失败：{exc.detail}") from exc
    if result.get("configured") is False:
        raise click.ClickException("未配置 12345 平台（HOTLINE12345_BASE_URL、HOTLINE12345_APP_ID、HOTLINE12345_SECRET）")
    click.echo(json.dumps(result, ensure_ascii=False))
