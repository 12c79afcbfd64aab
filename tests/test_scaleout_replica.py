"""Reads routed to a real streaming replica (`scripts/services.sh start-replica`, pg_basebackup -R):
plain reads of the listed GET views go to the replica, writes and everything after a write stay on
the primary, and a replica that cannot be reached sends the read to the primary.

Where a query ran is the server's own answer (`pg_is_in_recovery()` is true on the replica only),
and pausing the replica's WAL replay shows which copy of a row a request read.
"""
from __future__ import annotations

import logging
import os

import pytest
from sqlalchemy import create_engine, func, select, text

from app.db_routing import REPLICA_ENDPOINTS
from app.extensions import db
from app.notifications.models import Notification
from app.wallet.models import LicenseType
from tests.support.helpers import API
from tests.support.procs import wait_for
from tests.support.wallet import issue

WALLET = f"{API}/wallet/licenses"

REPLICA_URL = os.environ.get("TEST_DATABASE_REPLICA_URL")
pytestmark = pytest.mark.skipif(not (REPLICA_URL and os.environ.get("TEST_DATABASE_URL")),
                                reason="needs the streaming replica of scripts/services.sh start-replica "
                                       "(TEST_DATABASE_REPLICA_URL)")
LIST = f"{API}/license-types"


@pytest.fixture
def replicated(app_factory):
    application = app_factory(DATABASE_REPLICA_URL=REPLICA_URL)
    yield application
    made = application.extensions.get("db_replica")
    if made:
        made[1].dispose()
    with application.app_context():
        db.engine.dispose()


def _on_replica() -> bool:
    return db.session.scalar(select(func.pg_is_in_recovery()))


def test_listed_get_views_read_the_replica_and_everything_else_the_primary(replicated):
    assert "wallet.LicenseTypes" in REPLICA_ENDPOINTS
    with replicated.test_request_context(LIST, method="GET"):
        assert _on_replica() is True
        some = db.session.scalars(select(LicenseType).limit(1).with_for_update()).first()  # locks: primary
        assert some is not None
        assert _on_replica() is False  # the lock was a write of sorts: the rest of the request stays
        db.session.rollback()
    with replicated.test_request_context(LIST, method="GET"):
        assert _on_replica() is True
        db.session.add(Notification(subject_id="p_replica", kind="test", title="written"))
        db.session.flush()
        assert _on_replica() is False  # read-your-writes: after a write, the primary
        db.session.rollback()
    with replicated.test_request_context(LIST, method="POST"):
        assert _on_replica() is False
    with replicated.test_request_context(f"{API}/inbox", method="GET"):
        assert _on_replica() is False  # not listed: the inbox catches up with the journal first
    with replicated.app_context():
        assert _on_replica() is False  # commands and jobs: the primary


def test_a_request_reads_the_replica_s_copy_of_a_row(replicated):
    client = replicated.test_client()
    primary = create_engine(os.environ["TEST_DATABASE_URL"])
    replica = create_engine(REPLICA_URL)
    code = client.get(LIST).get_json()["items"][0]["code"]
    detail = f"{API}/license-types/{code}"
    with primary.connect() as connection:
        original = connection.scalar(text("SELECT name FROM license_types WHERE code = :code"), {"code": code})
    try:
        with replica.connect() as standby:
            standby.execute(text("SELECT pg_wal_replay_pause()"))
            try:
                with primary.begin() as connection:
                    connection.execute(text("UPDATE license_types SET name = :name WHERE code = :code"),
                                       {"name": original + "（新）", "code": code})
                assert client.get(detail).get_json()["name"] == original  # the replica has not replayed it
                with replicated.test_request_context(f"{API}/inbox", method="GET"):
                    assert db.session.get(LicenseType, code).name == original + "（新）"  # the primary has
            finally:
                standby.execute(text("SELECT pg_wal_replay_resume()"))
        assert wait_for(lambda: client.get(detail).get_json()["name"] == original + "（新）", 10)
    finally:
        with primary.begin() as connection:
            connection.execute(text("UPDATE license_types SET name = :name WHERE code = :code"),
                               {"name": original, "code": code})
        primary.dispose()
        replica.dispose()


def test_a_wallet_page_kept_by_version_reads_the_primary_and_other_pages_the_replica(replicated, client, alice,
                                                                                     police):
    reader = replicated.test_client()
    card = issue(client, police, holder_id_number=alice["id_number"])

    def statuses(query=""):
        return [item["status"] for item in reader.get(WALLET + query, headers=alice["headers"]).get_json()["items"]]

    assert wait_for(lambda: statuses("?page=1") == ["valid"], 10)  # the replica has the card
    assert statuses() == statuses() == ["valid"]  # kept for this version of her wallet
    replica = create_engine(REPLICA_URL)
    try:
        with replica.connect() as standby:
            standby.execute(text("SELECT pg_wal_replay_pause()"))
            try:
                changed = client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "suspended"},
                                      headers=police)
                assert changed.status_code == 200
                assert statuses("?page=1") == ["valid"]  # a listed view's plain read: the replica, not replayed yet
                assert statuses() == ["suspended"]  # a page to keep under the new version: the primary
            finally:
                standby.execute(text("SELECT pg_wal_replay_resume()"))
    finally:
        replica.dispose()
    assert wait_for(lambda: statuses("?page=1") == ["suspended"], 10)


def test_a_replica_that_cannot_be_reached_sends_the_read_to_the_primary(app_factory, caplog):
    unreachable = app_factory(DATABASE_REPLICA_URL="postgresql+psycopg://ias@127.0.0.1:9/ias_test")
    caplog.set_level(logging.WARNING, logger="app.db")
    response = unreachable.test_client().get(LIST)
    assert response.status_code == 200 and response.get_json()["items"]
    assert any("replica lost" in record.getMessage() for record in caplog.records if record.name == "app.db")
    with unreachable.app_context():
        db.engine.dispose()
