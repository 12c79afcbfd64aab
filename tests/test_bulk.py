"""Multi-row inserts: COPY on PostgreSQL and executemany on SQLite store the same values; `among` finds the
same rows as IN, with one parameter on PostgreSQL however many values."""
from __future__ import annotations

import os

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from app.bulk import among, insert_rows
from app.extensions import db
from app.notifications.models import Notification
from app.wallet.models import AccessLogEntry


def test_rows_come_back_as_written_json_text_and_times_included(app_ctx):
    at = datetime(2026, 11, 21, 8, 30, 15, 123456, tzinfo=timezone.utc)
    rows = [{"subject_id": f"p_{n}", "kind": "license_access", "title": "您的居民身份证被核验：核验通过",
             "body": "制表符\t换行\n反斜杠\\ 与 \\N", "data": {"verifier": "泉城大酒店", "disclosed": ["name"], "n": n,
                                                     "nested": {"none": None, "quote": '"'}},
             "created_at": at} for n in range(3)]
    insert_rows(Notification.__table__, rows)
    insert_rows(Notification.__table__, [])
    db.session.commit()
    stored = db.session.scalars(select(Notification).order_by(Notification.id)).all()
    assert [(n.subject_id, n.kind, n.title, n.body, n.data) for n in stored] == [
        (r["subject_id"], r["kind"], r["title"], r["body"], r["data"]) for r in rows]
    assert all(n.created_at.replace(tzinfo=timezone.utc) == at for n in stored)  # SQLite keeps no zone
    assert len({n.id for n in stored}) == 3 and all(n.read_at is None for n in stored)


def test_a_failing_row_leaves_nothing_behind(app_ctx):
    rows = [{"license_id": 999_999, "at": datetime.now(timezone.utc), "kind": "verification", "verifier": "匿名",
             "verifier_client_id": None, "purpose": None, "disclosed": [], "result": "valid", "shown_by": None,
             "presentation_id": None, "event_id": "e" * 32}]
    with pytest.raises(IntegrityError):  # no such license: the foreign key refuses the batch
        insert_rows(AccessLogEntry.__table__, rows)
    db.session.rollback()
    assert db.session.scalar(select(db.func.count()).select_from(AccessLogEntry)) == 0


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="COPY runs on PostgreSQL; runs with TEST_DATABASE_URL")
def test_a_lost_connection_is_the_transient_error_callers_retry(app_ctx):
    backend_pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
    with db.engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
    try:
        with pytest.raises(OperationalError):  # what the journal leaves queued instead of dead-lettering
            insert_rows(Notification.__table__, [{"subject_id": "p_1", "kind": "k", "title": "t", "body": "",
                                                  "data": {}, "created_at": datetime.now(timezone.utc)}])
    finally:
        db.session.connection().invalidate()
        db.session.rollback()


def test_among_finds_what_in_finds_with_one_parameter_on_postgresql(app_ctx):
    at = datetime(2026, 11, 21, 8, 30, tzinfo=timezone.utc)
    insert_rows(Notification.__table__, [{"subject_id": f"p_{n}", "kind": "k", "title": "t", "body": "", "data": {},
                                          "created_at": at} for n in range(600)])
    db.session.commit()
    wanted = {f"p_{n}" for n in range(0, 1200, 2)}  # 600 values, half of them stored
    found = set(db.session.scalars(select(Notification.subject_id).where(among(Notification.subject_id, wanted))))
    assert found == set(db.session.scalars(select(Notification.subject_id).where(Notification.subject_id.in_(wanted))))
    assert len(found) == 300 and not db.session.scalars(select(Notification.id).where(among(Notification.id, []))).all()
    compiled = select(Notification.id).where(among(Notification.subject_id, wanted)).compile(db.engine)
    if db.engine.dialect.name == "postgresql":
        assert "= ANY" in str(compiled) and len(compiled.params) == 1
