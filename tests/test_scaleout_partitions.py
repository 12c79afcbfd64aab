"""Monthly partitions on PostgreSQL: the migration turns the append-only tables into partitioned
ones without losing a row, `flask partitions maintain` keeps months ahead, moves rows waiting in
the default partition into their month and drops months past retention; the audit chain is never
partitioned nor dropped. (tests/test_migrations.py checks the partitioned schema still matches the
models on both databases.)"""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app.extensions import db
from app.partitions import (PARTITIONED, add_months, is_partitioned, maintain, month_start, partition_name,
                            partitions_of)

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="partitions exist on PostgreSQL only")

NOW = datetime.now(timezone.utc)
THIS_MONTH = month_start(NOW)
KEEP = {table: months for table, (_, months) in PARTITIONED.items()}


def _notify(connection, at: datetime, title: str) -> None:
    connection.execute(text("INSERT INTO notifications (subject_id, kind, title, body, data, created_at) "
                            "VALUES ('p_test', 'test', :title, '', '{}', :at)"), {"title": title, "at": at})


def _where(connection, title: str) -> str:
    return connection.scalar(text("SELECT tableoid::regclass::text FROM notifications WHERE title = :title"),
                             {"title": title})


def test_the_append_only_tables_are_partitioned_by_month_and_the_audit_chain_is_not(app):
    with app.app_context(), db.engine.connect() as connection:
        for table in PARTITIONED:
            assert is_partitioned(connection, table)
            names = partitions_of(connection, table)
            assert {partition_name(table, add_months(THIS_MONTH, n)) for n in range(4)} <= set(names)
            assert f"{table}_pdefault" in names
        assert not is_partitioned(connection, "audit_events")


def test_maintain_creates_months_ahead_moves_waiting_rows_and_drops_past_retention(app):
    with app.app_context(), db.engine.connect() as connection, connection.begin() as transaction:
        _notify(connection, NOW, "this month")
        _notify(connection, add_months(THIS_MONTH, 6) + timedelta(days=3), "half a year ahead")
        _notify(connection, add_months(THIS_MONTH, -30), "thirty months ago")
        audit_rows = connection.scalar(text("SELECT count(*) FROM audit_events"))
        assert _where(connection, "this month") == partition_name("notifications", THIS_MONTH)
        assert _where(connection, "half a year ahead") == "notifications_pdefault"
        assert _where(connection, "thirty months ago") == "notifications_pdefault"

        # a month long past gets its partition (as if maintained back then), then falls out of retention
        earlier = maintain(connection, now=add_months(THIS_MONTH, -26), ahead=0, retention=KEEP)
        old_month = partition_name("notifications", add_months(THIS_MONTH, -26))
        assert old_month in earlier.created and not earlier.dropped
        _notify(connection, add_months(THIS_MONTH, -26) + timedelta(hours=1), "twenty-six months ago")
        assert _where(connection, "twenty-six months ago") == old_month

        report = maintain(connection, now=NOW, ahead=7, retention=KEEP)
        ahead = {partition_name("notifications", add_months(THIS_MONTH, n)) for n in range(4, 8)}
        assert ahead <= set(report.created)
        moved_into = partition_name("notifications", add_months(THIS_MONTH, 6))
        assert report.moved[moved_into] == 1 and _where(connection, "half a year ahead") == moved_into
        assert old_month in report.dropped and _where(connection, "twenty-six months ago") is None
        assert report.purged == {"notifications": 1} and _where(connection, "thirty months ago") is None
        assert _where(connection, "this month") == partition_name("notifications", THIS_MONTH)
        assert connection.scalar(text("SELECT count(*) FROM audit_events")) == audit_rows
        assert not any(name.startswith("audit") for name in report.dropped)

        again = maintain(connection, now=NOW, ahead=7, retention=KEEP)
        assert (again.created, again.dropped, again.moved, again.purged) == ([], [], {}, {})
        transaction.rollback()  # DDL is transactional on PostgreSQL: the session database is untouched


def test_the_cli_maintains_and_refuses_an_unknown_retention(app, app_factory):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["partitions", "maintain", "--ahead", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    created = {partition_name(table, add_months(THIS_MONTH, 4)) for table in PARTITIONED}
    try:
        assert set(report["created"]) == created and report["dropped"] == []
        assert report["never_dropped"] == ["audit_events"]
        listing = json.loads(runner.invoke(args=["partitions", "list"]).output)
        assert all(partition_name(table, add_months(THIS_MONTH, 4)) in listing[table] for table in PARTITIONED)
    finally:
        with app.app_context(), db.engine.begin() as connection:
            for name in created:
                connection.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    wrong = app_factory(PARTITION_RETENTION_MONTHS={"audit_events": 12})
    refused = wrong.test_cli_runner().invoke(args=["partitions", "maintain"])
    assert refused.exit_code != 0 and "audit_events" in refused.output


@pytest.fixture
def fresh_database(app):
    """A database of its own on the suite's PostgreSQL, dropped afterwards."""
    import psycopg
    url = os.environ["TEST_DATABASE_URL"]
    parts = urlsplit(url.replace("+psycopg", ""))
    admin = f"{parts.scheme}://{parts.netloc}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute('DROP DATABASE IF EXISTS "ias_partitions"')
        connection.execute('CREATE DATABASE "ias_partitions"')
    yield url.rsplit("/", 1)[0] + "/ias_partitions"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute('DROP DATABASE IF EXISTS "ias_partitions" WITH (FORCE)')


def test_the_migration_keeps_every_row_both_ways(app, app_factory, fresh_database):
    from app.schema_migrations import alembic_config, downgrade_schema, upgrade_schema
    fresh = app_factory(DATABASE_URL=fresh_database)
    months = [add_months(THIS_MONTH, -14), add_months(THIS_MONTH, -1), NOW]
    with fresh.app_context():
        config = alembic_config()
        before = ScriptDirectory.from_config(config).get_revision("b22pa47e0007").down_revision
        upgrade_schema(revision=before)
        with db.engine.begin() as connection:
            for n, at in enumerate(months):
                _notify(connection, at, f"row {n}")
                connection.execute(text("INSERT INTO outbox_messages (subject_id, channel, open_id, template, payload, "
                                        "status, attempts, created_at) VALUES ('p_test', 'wechat', 'o', 't', '{}', "
                                        "'pending', 0, :at)"), {"at": at})
        upgrade_schema()
        with db.engine.begin() as connection:
            assert is_partitioned(connection, "notifications") and is_partitioned(connection, "outbox_messages")
            assert [_where(connection, f"row {n}") for n in range(3)] == [
                partition_name("notifications", month_start(at)) for at in months]
            _notify(connection, NOW, "after")
            ids = list(connection.scalars(text("SELECT id FROM notifications ORDER BY id")))
            assert ids == [1, 2, 3, 4]  # the id sequence carried over
            assert connection.scalar(text("SELECT count(*) FROM outbox_messages")) == 3
        downgrade_schema(revision=before)
        with db.engine.begin() as connection:
            assert not is_partitioned(connection, "notifications")
            assert connection.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'notifications'")) == "r"
            _notify(connection, NOW, "after the downgrade")
            assert list(connection.scalars(text("SELECT id FROM notifications ORDER BY id"))) == [1, 2, 3, 4, 5]
            assert not partitions_of(connection, "outbox_messages")
        db.engine.dispose()
