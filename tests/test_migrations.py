"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""
import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.schema_migrations import alembic_config
from app.partitions import partition_tables
from tests.support.newcomer import FLASK, ROOT, process_env


def test_migrated_schema_matches_models(app):
    with app.app_context(), db.engine.connect() as connection:
        partitions = partition_tables(connection)  # PostgreSQL's monthly partitions: their parent stands for them
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_name": lambda name, kind, _parents: not (kind == "table" and name in partitions)})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_database_is_at_the_latest_revision(app):
    from alembic.script import ScriptDirectory
    with app.app_context():
        config = alembic_config()
        head = ScriptDirectory.from_config(config).get_current_head()
    with app.app_context(), db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head


def test_an_interrupted_first_upgrade_on_sqlite_leaves_nothing_and_the_next_one_succeeds(app_factory, tmp_path):
    from app.schema_migrations import upgrade_schema
    from sqlalchemy import create_engine, inspect, text
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    blocker = create_engine(url)
    with blocker.begin() as connection:  # a name a late table of the first migration needs
        connection.execute(text("CREATE VIEW rectification_follow_ups AS SELECT 1 AS x"))
    fresh = app_factory(DATABASE_URL=url)
    with fresh.app_context(), pytest.raises(OperationalError, match="already exists"):
        upgrade_schema()
    assert set(inspect(blocker).get_table_names()) == set()  # no half-built schema, no revision
    with blocker.begin() as connection:
        connection.execute(text("DROP VIEW rectification_follow_ups"))
    with fresh.app_context():
        upgrade_schema()
        with db.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() is not None
            assert "persons" in inspect(connection).get_table_names()
        db.engine.dispose()
    blocker.dispose()


def test_autogenerate_sees_every_model_from_the_command_line(tmp_path):
    """`flask db check` in a fresh process (where views and most models are not imported yet) finds the
    migrated schema complete: a `flask db migrate` there would not write a migration dropping tables."""
    env = process_env(tmp_path)
    upgraded = subprocess.run([*FLASK, "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    checked = subprocess.run([*FLASK, "db", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert checked.returncode == 0 and "No new upgrade operations detected" in checked.stdout + checked.stderr, \
        (checked.stdout + checked.stderr)[-2000:]
