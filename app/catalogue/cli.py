"""Operator commands of the catalogue domain: `flask catalogue generate --items N`."""
from __future__ import annotations

import json
import time

import click
from flask.cli import AppGroup

from . import seed

catalogue_cli = AppGroup("catalogue", help="政务服务事项目录")


@catalogue_cli.command("generate")
@click.option("--items", "count", type=click.IntRange(min=0), required=True,
              help="事项总数（省、市、县大厅的事项之后为乡镇、村便民服务点的事项）")
@click.option("--batch", "batch_size", type=click.IntRange(min=100), default=seed.BATCH, show_default=True,
              help="每批插入的行数")
def generate(count, batch_size):
    """Build a province-wide four-level list of N items (replaces earlier seed/generated items)."""
    started = time.perf_counter()
    with click.progressbar(length=count, label="生成事项", show_pos=True) as bar:
        result = seed.generate_catalogue(count, batch_size=batch_size, progress=bar.update)
    result["seconds"] = round(time.perf_counter() - started, 1)
    click.echo(json.dumps(result, ensure_ascii=False))


commands = [catalogue_cli]
