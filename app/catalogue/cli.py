"""Operator commands of the catalogue domain: `flask catalogue generate --items N`, `import-items`,
`rank-high-frequency`."""
from __future__ import annotations

import json
import time

import click
from flask.cli import AppGroup

from . import importing, ranking, seed, seed_data

catalogue_cli = AppGroup("catalogue")


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


@catalogue_cli.command("import-items")
@click.option("--source", "source_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="公开事项清单 CSV（name, department, group, item_type, source_item_code）")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="输出文件（默认 app/catalogue/data/imported_items.csv）")
@click.option("--source-name", default=importing.SOURCE, show_default=True, help="来源（仓库或网站）")
def import_items(source_path, out_path, source_name):
    """Derive data/imported_items.csv from a public item list (same item -> same base code)."""
    rows = importing.derive_items(importing.read_csv(source_path), seed_data.load_own_items(),
                                  seed_data.load_departments(), source=source_name)
    importing.write_csv(rows, out_path or seed_data.DATA_DIR / seed_data.IMPORTED_FILE)
    matched = sum(row["matched"] == "1" for row in rows)
    click.echo(json.dumps({"items": len(rows), "matched": matched, "new": len(rows) - matched}, ensure_ascii=False))


@catalogue_cli.command("rank-high-frequency")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True, help="统计最近多少天的申请")
@click.option("--min-applications", type=click.IntRange(min=1), default=ranking.MIN_APPLICATIONS,
              show_default=True, help="申请数少于此数时沿用参考清单")
@click.option("--schedule", is_flag=True, help="并按月排队（每月1日）重新计算")
def rank_high_frequency(days, min_applications, schedule):
    """Recompute the 50 high-frequency items from application counts (monthly job)."""
    result = ranking.rank_high_frequency(days=days, min_applications=min_applications)
    if schedule:
        result["next_job"] = ranking.schedule_monthly()
    click.echo(json.dumps(result, ensure_ascii=False))
