"""Monthly partitions of the append-only tables on PostgreSQL (migration b22pa47e0007):
`flask partitions maintain` creates the months ahead and drops the months past retention.

The access log, the inbox and the outbox are partitioned by their time column. The audit chain
is not, and is never dropped: its `seq`, `prev_hash` and `hash` are unique over the whole table,
which is what keeps the chain from forking, and a partitioned table can only enforce uniqueness
together with its partition key; a chain whose old links were dropped could not be verified from
its start either. It grows by about one row per security event and stays one table.

Settings: `PARTITION_MONTHS_AHEAD` [3], `PARTITION_RETENTION_MONTHS` (JSON, table -> months;
defaults below). Run `maintain` daily (cron or a systemd timer); a row outside every month lands
in the table's DEFAULT partition and is moved into its month when that month is created.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import text

from .extensions import db

# table -> (partition key, months kept by default)
PARTITIONED = {
    "license_access_log": ("at", 36),  # who looked at a license: three years for the holder
    "notifications": ("created_at", 24),  # the inbox
    "outbox_messages": ("created_at", 6),  # channel notices: delivered or given up long before
}
NEVER_DROPPED = ("audit_events",)
MONTHS_AHEAD = 3
_MONTH_SUFFIX = re.compile(r"_p(\d{4})(\d{2})$")


def month_start(value: datetime) -> datetime:
    return datetime(value.year, value.month, 1, tzinfo=timezone.utc)


def add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y%m}"


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    moved: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    purged: dict[str, int] = field(default_factory=dict)


def retention_months(config) -> dict[str, int]:
    configured = config.get("PARTITION_RETENTION_MONTHS") or {}
    if isinstance(configured, str):
        configured = json.loads(configured)
    unknown = set(configured) - set(PARTITIONED)
    if unknown:
        raise click.ClickException(f"PARTITION_RETENTION_MONTHS 中的表未分区或不可删除：{', '.join(sorted(unknown))}")
    return {table: int(configured.get(table, months)) for table, (_, months) in PARTITIONED.items()}


def partitions_of(connection, table: str) -> list[str]:
    return list(connection.scalars(text(
        "SELECT child.relname FROM pg_inherits JOIN pg_class child ON child.oid = inhrelid "
        "JOIN pg_class parent ON parent.oid = inhparent WHERE parent.relname = :table ORDER BY 1"),
        {"table": table}))


def is_partitioned(connection, table: str) -> bool:
    return bool(connection.scalar(text(
        "SELECT count(*) FROM pg_partitioned_table JOIN pg_class ON pg_class.oid = partrelid "
        "WHERE relname = :table"), {"table": table}))


def _ensure_month(connection, table: str, key: str, month: datetime, report: Report) -> None:
    name, default = partition_name(table, month), f"{table}_pdefault"
    bounds = {"lo": month, "hi": add_months(month, 1)}
    values = f"FOR VALUES FROM ('{month.isoformat()}') TO ('{bounds['hi'].isoformat()}')"
    waiting = connection.scalar(text(f'SELECT count(*) FROM "{default}" WHERE "{key}" >= :lo AND "{key}" < :hi'),
                                bounds)
    if not waiting:
        connection.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{table}" {values}'))
    else:  # rows of this month wait in the default partition: move them into the new month
        connection.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS)'))
        connection.execute(text(f'WITH moved AS (DELETE FROM "{default}" WHERE "{key}" >= :lo AND "{key}" < :hi '
                                f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'), bounds)
        connection.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" {values}'))
        report.moved[name] = waiting
    report.created.append(name)


def maintain(connection, *, now: datetime, ahead: int, retention: dict[str, int]) -> Report:
    """Create every month from this one to `ahead` months ahead; drop whole months older than
    each table's retention, and purge the default partition's rows that old."""
    report = Report()
    this_month = month_start(now)
    for table, (key, _) in PARTITIONED.items():
        if not is_partitioned(connection, table):
            continue
        existing = set(partitions_of(connection, table))
        for offset in range(ahead + 1):
            month = add_months(this_month, offset)
            if partition_name(table, month) not in existing:
                _ensure_month(connection, table, key, month, report)
        cutoff = add_months(this_month, -retention[table])
        for name in sorted(existing):
            found = _MONTH_SUFFIX.search(name)
            if found and datetime(int(found[1]), int(found[2]), 1, tzinfo=timezone.utc) < cutoff:
                connection.execute(text(f'DROP TABLE "{name}"'))
                report.dropped.append(name)
        purged = connection.execute(text(f'DELETE FROM "{table}_pdefault" WHERE "{key}" < :cutoff'),
                                    {"cutoff": cutoff}).rowcount
        if purged:
            report.purged[table] = purged
    return report


def partition_tables(connection) -> set[str]:
    """Names of every partition (what schema comparisons leave out: the parents stand for them)."""
    if connection.dialect.name != "postgresql":
        return set()
    return set(connection.scalars(text("SELECT relname FROM pg_class WHERE relispartition")))


partitions_cli = AppGroup("partitions")


@partitions_cli.command("maintain")
@click.option("--ahead", type=int, default=None, help="提前创建的月数（默认 PARTITION_MONTHS_AHEAD 或 3）")
def maintain_command(ahead):
    """Create the months ahead and drop the months past retention (run it daily)."""
    if db.engine.dialect.name != "postgresql":
        click.echo("partitions: SQLite 不分区，无需维护")
        return
    ahead = ahead if ahead is not None else int(current_app.config.get("PARTITION_MONTHS_AHEAD") or MONTHS_AHEAD)
    with db.engine.begin() as connection:
        report = maintain(connection, now=datetime.now(timezone.utc), ahead=ahead,
                          retention=retention_months(current_app.config))
    click.echo(json.dumps({"created": report.created, "moved": report.moved, "dropped": report.dropped,
                           "purged": report.purged, "never_dropped": list(NEVER_DROPPED)}, ensure_ascii=False))


@partitions_cli.command("list")
def list_command():
    """The partitions of each partitioned table."""
    if db.engine.dialect.name != "postgresql":
        click.echo("partitions: SQLite 不分区")
        return
    with db.engine.connect() as connection:
        click.echo(json.dumps({table: partitions_of(connection, table) for table in PARTITIONED}, ensure_ascii=False))
