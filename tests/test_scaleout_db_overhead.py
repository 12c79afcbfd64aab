"""Per-request database overhead on PostgreSQL: a read-only request costs its statements and
nothing else (no pre-ping, no BEGIN, no ROLLBACK), what needs a transaction still gets one, and a
connection the server dropped is replaced without the caller noticing (a plain read is retried
once; a transaction that wrote is never silently replayed).

Round trips are counted on the wire: a pool `checkout` listener turns on libpq's protocol trace
for the connection, and every round trip ends with one ReadyForQuery from the server.
"""
from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager

import pytest
from psycopg import pq
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.db_routing import engine_options
from app.extensions import db, store
from app.identity import held_sessions, sessions
from app.notifications.models import Notification
from app.wallet.models import LicenseType
from tests.support.helpers import API

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="PostgreSQL's wire protocol")


class Wire:
    """libpq's trace of every connection the engine makes while counting, from its first byte (so a
    pre-ping before a checkout would show); `mark()` starts counting afresh."""

    def __init__(self, engine):
        self.engine, self.file = engine, tempfile.TemporaryFile("w+")
        self.statements: list[str] = []
        self.traced: list = []
        self._lines: list[str] | None = None
        event.listen(engine, "connect", self._trace)
        event.listen(engine, "before_cursor_execute", self._statement)

    def _trace(self, dbapi_connection, _record):
        dbapi_connection.pgconn.trace(self.file.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self.traced.append(dbapi_connection)

    def _statement(self, _conn, _cursor, statement, *_args):
        self.statements.append(statement)

    def _untrace(self) -> list:
        live = [connection for connection in self.traced if not connection.closed]
        for connection in live:
            connection.pgconn.untrace()
        self.file.seek(0)
        self._lines = self.file.read().splitlines()
        self.file.close()
        return live

    def mark(self) -> None:
        """Count from here: what came before (connecting, warming up) is left out."""
        live = self._untrace()
        self.file, self.traced, self.statements, self._lines = tempfile.TemporaryFile("w+"), [], [], None
        for connection in live:
            self._trace(connection, None)

    def lines(self) -> list[str]:
        assert self._lines is not None, "read the trace after the counting block"
        return self._lines

    def round_trips(self) -> int:
        return sum(1 for line in self.lines() if line.startswith("B\t") and "\tReadyForQuery" in line)

    def overhead(self) -> list[str]:
        """Simple queries the client sent that were not SQLAlchemy's statements: BEGIN, COMMIT,
        ROLLBACK, pings."""
        ours = {statement.splitlines()[0].strip() for statement in self.statements}
        sent = [line.split("Query\t", 1)[1].strip().strip('"') for line in self.lines()
                if line.startswith("F\t") and "\tQuery\t" in line]
        return [query for query in sent if query not in ours]

    def close(self):
        event.remove(self.engine, "connect", self._trace)
        event.remove(self.engine, "before_cursor_execute", self._statement)
        self._untrace()


@contextmanager
def wire(engine):
    counter = Wire(engine)
    try:
        yield counter
    finally:
        counter.close()


def _read_only_unit(session) -> None:
    assert session.scalars(select(LicenseType.code)).first() is not None
    session.close()


def test_a_read_only_unit_costs_one_round_trip_where_it_cost_four(app):
    url = os.environ["TEST_DATABASE_URL"]
    before = create_engine(url, pool_pre_ping=True, pool_size=1)  # the previous settings
    try:
        with wire(before) as old:
            _read_only_unit(Session(before))  # connects: what follows is what every request pays
            old.mark()
            _read_only_unit(Session(before))
        ping, begin, rollback = old.overhead()  # the ping is whatever the dialect sends (";")
        assert old.round_trips() == 4 and (begin, rollback) == ("BEGIN", "ROLLBACK")
        assert len(old.statements) == 1  # SQLAlchemy ran one statement; the other three are overhead
    finally:
        before.dispose()
    assert "pool_pre_ping" not in engine_options(url)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
        with wire(db.engine) as new:
            _read_only_unit(db.session)
            db.session.remove()
            new.mark()
            _read_only_unit(db.session)
            db.session.remove()
        assert new.round_trips() == 1 and new.overhead() == [] and len(new.statements) == 1


def test_a_get_request_sends_its_statements_only(app, client):
    with app.app_context():
        db.engine.dispose()
        with wire(db.engine) as counted:
            assert client.get(f"{API}/license-types").status_code == 200  # connects, fills caches
            counted.mark()
            response = client.get(f"{API}/license-types")
    assert response.status_code == 200 and response.get_json()["items"]
    assert counted.round_trips() == len(counted.statements) >= 1
    assert counted.overhead() == []


def test_what_needs_a_transaction_gets_one(app):
    with app.app_context(), db.engine.connect() as observer:
        session = db.session
        assert session.scalar(select(func.count()).select_from(LicenseType)) > 0  # autocommit read
        session.add(Notification(subject_id="p_lazy", kind="test", title="one"))
        session.flush()
        session.add(Notification(subject_id="p_lazy", kind="test", title="two"))
        session.flush()
        row = session.execute(select(Notification).where(Notification.title == "one").with_for_update()).scalar_one()
        session.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        assert row.title == "one"
        backend = session.scalar(select(func.pg_backend_pid()))
        # one open transaction holds the advisory lock and the row lock until the end
        assert observer.scalar(text("SELECT state FROM pg_stat_activity WHERE pid = :pid"),
                               {"pid": backend}) == "idle in transaction"
        assert observer.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 "
                                    "AND pid = :pid"), {"pid": backend}) == 1
        assert observer.scalar(text("SELECT count(*) FROM notifications WHERE subject_id = 'p_lazy'")) == 0
        session.rollback()  # both inserts go: they were one transaction
        assert observer.scalar(text("SELECT count(*) FROM notifications WHERE subject_id = 'p_lazy'")) == 0
        assert observer.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")) == 0
        session.remove()


def _refreshed(client, token: str):
    return client.post(f"{API}/auth/token", json={"grant_type": "refresh_token", "refresh_token": token})


def _from_the_row(app, token: str) -> None:
    """The shared store lets go of the token's session: the database's rotation decides its next refresh."""
    with app.app_context():
        store.delete(held_sessions.key(sessions.parse_refresh_token(token)[0]))


def test_a_refresh_is_one_round_trip_that_commits_alone(app, client, alice):
    with app.app_context():
        db.engine.dispose()
        with wire(db.engine) as counted:
            _from_the_row(app, alice["refresh_token"])
            warm = _refreshed(client, alice["refresh_token"])  # connects, fills caches
            _from_the_row(app, alice["refresh_token"])
            counted.mark()
            response = _refreshed(client, warm.get_json()["refresh_token"])
    assert response.status_code == 200
    assert counted.round_trips() == 1 and counted.overhead() == []  # no BEGIN, no COMMIT: the UPDATE was its own
    assert _refreshed(client, warm.get_json()["refresh_token"]).status_code == 401  # rotated for good: a reuse
    assert _refreshed(client, response.get_json()["refresh_token"]).status_code == 401  # which ended the session


def test_a_write_that_commits_alone_joins_a_transaction_already_open(app, alice):
    session_id, generation = sessions.parse_refresh_token(alice["refresh_token"])
    with app.app_context(), db.engine.connect() as observer:
        db.session.add(Notification(subject_id=alice["subject_id"], kind="test", title="first write"))
        db.session.flush()  # a transaction is open
        assert sessions.rotate_refresh_token(session_id, generation=generation, presented=alice["refresh_token"])
        db.session.rollback()
        assert observer.scalar(text("SELECT refresh_generation FROM auth_sessions WHERE session_id = :id"),
                               {"id": session_id}) == generation  # the rotation went with the rollback
        db.session.remove()


def _drop_app_connections() -> int:
    """What a database restart does to the app's pooled connections (psycopg directly, not the app)."""
    import psycopg
    with psycopg.connect(os.environ["TEST_DATABASE_URL"].replace("+psycopg", ""), autocommit=True) as admin:
        return admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                             ).fetchone()[0]


def test_a_dropped_connection_is_replaced_and_the_read_retried_once(app, client, caplog):
    assert client.get(f"{API}/license-types").status_code == 200  # the pool holds a connection
    caplog.set_level(logging.WARNING, logger="app.db")
    with app.app_context():
        before = db.session.scalar(select(func.pg_backend_pid()))
        db.session.remove()
        assert _drop_app_connections() >= 1
        after = db.session.scalar(select(func.pg_backend_pid()))  # the stale connection fails, the retry answers
        db.session.remove()
    assert after != before
    assert [r.getMessage() for r in caplog.records if r.name == "app.db" and "retried once" in r.getMessage()]
    assert _drop_app_connections() >= 1
    response = client.get(f"{API}/license-types")  # a request right after a restart: answered, no error
    assert response.status_code == 200 and response.get_json()["items"]
    with app.app_context():
        db.engine.dispose()  # the suite's next statement may be a write, which is never retried


def test_a_refresh_on_a_dropped_connection_is_a_clean_503_and_the_next_one_is_answered(app, client, alice):
    """The rotation runs as a prepared statement on a pooled connection (app/prepared.py): a connection the
    server dropped is taken out of the pool and the refresh refused as any statement's failure is; the token
    was not rotated, so the client's retry is answered."""
    _from_the_row(app, alice["refresh_token"])
    first = _refreshed(client, alice["refresh_token"])
    assert first.status_code == 200  # the pool holds the connection the rotation ran on
    assert _drop_app_connections() >= 1
    _from_the_row(app, alice["refresh_token"])
    failed = _refreshed(client, first.get_json()["refresh_token"])
    assert failed.status_code == 503 and failed.mimetype == "application/problem+json"
    assert failed.get_json()["detail"] == "数据库暂不可用，请稍后重试"
    retried = _refreshed(client, first.get_json()["refresh_token"])
    assert retried.status_code == 200, retried.get_json()
    with app.app_context():
        db.engine.dispose()


def test_a_transaction_that_wrote_is_not_replayed_on_a_new_connection(app):
    with app.app_context():
        db.session.add(Notification(subject_id="p_lost", kind="test", title="lost"))
        db.session.flush()
        assert _drop_app_connections() >= 1
        with pytest.raises(OperationalError):
            db.session.scalar(select(func.count()).select_from(Notification))
        db.session.rollback()
        assert db.session.scalar(select(func.count()).where(Notification.subject_id == "p_lost")) == 0
        db.session.remove()
        db.engine.dispose()
