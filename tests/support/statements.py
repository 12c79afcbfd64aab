"""Helper for the tests that count SQL statements (no tests here): every statement an app's engine runs."""
from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import psycopg
from sqlalchemy import event

from app.extensions import db


@contextmanager
def statements(app):
    """Every SQL statement the app's engine runs inside the block (whitespace collapsed): through
    SQLAlchemy, and on its pooled psycopg connections directly (`app.prepared`)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()))

    driver_execute = psycopg.Connection.execute

    def record_driver(connection, query, *args, **kwargs):
        seen.append(" ".join(str(query).split()))
        return driver_execute(connection, query, *args, **kwargs)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with mock.patch.object(psycopg.Connection, "execute", record_driver):
            yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
