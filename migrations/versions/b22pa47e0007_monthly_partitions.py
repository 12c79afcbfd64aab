"""monthly partitions of the append-only tables (PostgreSQL); the access log's entry id is unique per month

On PostgreSQL the access log, the inbox and the outbox become tables partitioned by month
(declarative RANGE partitioning on their time column), with partitions from the month of the
oldest row to three months ahead and a DEFAULT partition for anything outside them; `flask
partitions maintain` keeps months ahead and drops those past retention (app/partitions.py).
A partitioned table's primary key and unique constraints must include the partition key:
the primary key becomes (id, time) (ids still come from one sequence, so `id` alone still
identifies a row, which is what the models map), and the access log's journal entry id is
unique together with its time (a replayed journal entry carries the same time, so it is still
written once). SQLite keeps plain tables; only that unique constraint changes there too.
The audit chain is not partitioned: see app/partitions.py.

Revision ID: b22pa47e0007
Revises: b19wa11e0005
Create Date: 2026-12-01 23:50:00

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b22pa47e0007'
down_revision = 'b19wa11e0005'
branch_labels = None
depends_on = None

MONTHS_AHEAD = 3
# table -> (partition key, [(index name, columns)], [(unique constraint name, columns)])
TABLES = {
    "license_access_log": ("at", [("ix_license_access_log_license_at", "license_id, at")],
                           [("uq_license_access_log_event_id_at", "event_id, at")]),
    "notifications": ("created_at", [("ix_notifications_created_at", "created_at"),
                                     ("ix_notifications_subject_id", "subject_id")], []),
    "outbox_messages": ("created_at", [("ix_outbox_messages_status", "status"),
                                       ("ix_outbox_messages_subject_id", "subject_id")], []),
}
FOREIGN_KEYS = {"license_access_log": [("fk_license_access_log_license_id_licenses",
                                        "FOREIGN KEY (license_id) REFERENCES licenses (id) ON DELETE CASCADE")]}


def _month(value: datetime) -> datetime:
    return datetime(value.year, value.month, 1, tzinfo=timezone.utc)


def _next(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _partition(parent: str, table: str, month: datetime) -> None:
    op.execute(f'CREATE TABLE "{table}_p{month:%Y%m}" PARTITION OF "{parent}" '
               f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next(month).isoformat()}')")


def _constraints(table: str, key: str, *, partitioned: bool) -> None:
    _, indexes, uniques = TABLES[table]
    op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY '
               f'(id{", " + key if partitioned else ""})')
    for name, columns in indexes:
        op.execute(f'CREATE INDEX "{name}" ON "{table}" ({columns})')
    for name, columns in uniques:
        if not partitioned:  # back to the revision before: the entry id alone
            name, columns = "uq_license_access_log_event_id", "event_id"
        op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" UNIQUE ({columns})')
    for name, definition in FOREIGN_KEYS.get(table, []):
        op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')


def _rebuild(table: str, *, partitioned: bool) -> None:
    """Copy `table` into a new one (partitioned by month or plain), keeping its id sequence."""
    key = TABLES[table][0]
    staged = f"{table}_staged"
    by = f" PARTITION BY RANGE ({key})" if partitioned else ""
    op.execute(f'CREATE TABLE "{staged}" (LIKE "{table}" INCLUDING DEFAULTS){by}')
    if partitioned:
        oldest = op.get_bind().execute(sa.text(f'SELECT min("{key}") FROM "{table}"')).scalar()
        now = datetime.now(timezone.utc)
        month, last = _month(min(oldest or now, now)), _month(now)
        for _ in range(MONTHS_AHEAD):
            last = _next(last)
        while month <= last:
            _partition(staged, table, month)
            month = _next(month)
        op.execute(f'CREATE TABLE "{table}_pdefault" PARTITION OF "{staged}" DEFAULT')
    op.execute(f'INSERT INTO "{staged}" SELECT * FROM "{table}"')
    op.execute(f'ALTER SEQUENCE "{table}_id_seq" OWNED BY "{staged}".id')
    op.execute(f'DROP TABLE "{table}"')
    op.execute(f'ALTER TABLE "{staged}" RENAME TO "{table}"')
    _constraints(table, key, partitioned=partitioned)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            _rebuild(table, partitioned=True)
        return
    with op.batch_alter_table('license_access_log', schema=None) as batch_op:
        batch_op.drop_constraint('uq_license_access_log_event_id', type_='unique')
        batch_op.create_unique_constraint('uq_license_access_log_event_id_at', ['event_id', 'at'])


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            _rebuild(table, partitioned=False)
        return
    with op.batch_alter_table('license_access_log', schema=None) as batch_op:
        batch_op.drop_constraint('uq_license_access_log_event_id_at', type_='unique')
        batch_op.create_unique_constraint('uq_license_access_log_event_id', ['event_id'])
