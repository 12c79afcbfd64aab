"""The write-behind journal: verifications answered first, written to the access log, inbox and
audit chain in batches, exactly once, by a real RQ worker or by the reader that needs them."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app import journal
from app.extensions import db, store
from app.security import audit
from app.security.models import AuditEvent
from app.wallet import access_log, status_registry
from app.wallet.models import AccessLogEntry, License
from tests.support.helpers import API, needs_redis, register_person
from tests.support.wallet import (ID_CARD, id_card_fields, issue, issuer_headers, person_id_number, present,
                                  verifier_headers, verify)

NEEDS_REDIS = needs_redis("queued journal writes need Redis (without it they run in the request)")


@pytest.fixture
def shown_card(app, client, alice):
    police = issuer_headers(app, client, types=(ID_CARD,))
    card = issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields())
    return alice, police, card


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _license_pk(app, license_id: str) -> int:
    with app.app_context():
        return db.session.scalar(select(License.id).where(License.license_id == license_id))


def _unknown_code_line(license_pk: int) -> str:
    return access_log.journal_line(license_pk=license_pk, presentation_id=None, verifier_client_id=None,
                                   result="unknown", disclosed=[], actor=None, ip="127.0.0.1")


@NEEDS_REDIS
def test_answers_come_first_and_a_real_rq_worker_writes_them_once(app, client, shown_card):
    from rq import Queue, SimpleWorker

    from app.jobs import QUEUE_NAME, use_app
    from app.redis_topology import queue_connection
    alice, _, card = shown_card
    hotel = verifier_headers(app, client, types=(ID_CARD,), name="泉城大酒店")
    pk = _license_pk(app, card["license_id"])
    with app.app_context():
        journal.catch_up()
        connection = queue_connection()  # RQ_REDIS_URL when the store is a cluster
        Queue(QUEUE_NAME, connection=connection).empty()
    codes = [present(client, alice["headers"], card["license_id"], purpose="入住登记")["code"] for _ in range(3)]
    assert [verify(client, hotel, code=code)["valid"] for code in codes] == [True] * 3
    assert verify(client, hotel, code=codes[0])["reason"] == "used"
    assert _count(app, AccessLogEntry, AccessLogEntry.license_id == pk) == 0  # answered, not yet written
    queue = Queue(QUEUE_NAME, connection=connection)
    assert queue.count == 1  # one drainer woken for the four answers

    use_app(app)
    with app.app_context():
        SimpleWorker([queue], connection=connection).work(burst=True)
    rows = _count(app, AccessLogEntry, AccessLogEntry.license_id == pk)
    assert rows == 4
    with app.app_context():
        results = sorted(db.session.scalars(select(AccessLogEntry.result).where(AccessLogEntry.license_id == pk)))
        verifiers = set(db.session.scalars(select(AccessLogEntry.verifier).where(AccessLogEntry.license_id == pk)))
        assert results == ["used", "valid", "valid", "valid"] and verifiers == {"泉城大酒店"}
        assert journal.backlog() == 0
        assert audit.verify().ok
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()
    assert sum(1 for item in inbox["items"] if item["kind"] == "license_access") == 4


@NEEDS_REDIS
def test_an_entry_sent_without_waiting_wakes_a_drainer_when_its_reply_is_read(app, client, shown_card):
    """The answer's entry of a claimed use is sent without waiting (`journal.push_claimed`); when its reply
    says it took the awake flag, reading that reply (before the next command, here outside any app) queues
    the drainer. A cluster's client waits for every reply."""
    from rq import Queue

    from app.jobs import QUEUE_NAME
    from app.redis_topology import queue_connection
    _, _, card = shown_card
    pk = _license_pk(app, card["license_id"])
    shared = app.extensions["shared_store"]
    with app.app_context():
        journal.catch_up()
        queue = Queue(QUEUE_NAME, connection=queue_connection())
        queue.empty()
        store.delete(*journal._flags())
        journal.push_claimed(_unknown_code_line(pk), use="wallet:code:unclaimed")
        deferred = shared._held.pending()
        assert deferred == (shared.name == "redis") and queue.count == (0 if deferred else 1)
    assert shared.journal_lengths([journal.JOURNAL]) == [1]  # read after the reply, which woke a drainer
    assert queue.count == 1


@NEEDS_REDIS
def test_entries_in_different_lists_wake_one_drainer_that_writes_them_all(app, client, shown_card):
    """Held sessions' rotations go to a list beside each session (three lists here on a cluster, the
    one rotations list on one Redis) and an answer to the journal's own. Either way one drainer is
    queued and one worker run writes every list; a reader of answers alone checks one list."""
    from rq import Queue, SimpleWorker

    from app.identity import held_sessions
    from app.jobs import QUEUE_NAME, use_app
    from app.redis_topology import queue_connection
    _, _, card = shown_card
    pk = _license_pk(app, card["license_id"])
    with app.app_context():
        journal.catch_up()
        queue = Queue(QUEUE_NAME, connection=queue_connection())
        queue.empty()
        sessions: dict[str, str] = {}
        for n in range(1000):
            sessions.setdefault(journal.beside(held_sessions.key(f"{n:032x}")), f"{n:032x}")
            if len(sessions) == min(3, len(journal.lists()) - 1):
                break
        for name, session in sessions.items():  # rotations of sessions no row has: they change nothing
            line = journal.entry(held_sessions.KIND, session=session, generation=1, hash="0" * 64, used=1.0, until=2.0)
            if store.journal_push(name, line, awake_ttl=journal.AWAKE_SECONDS).wake:
                journal.wake()
        assert journal.push(_unknown_code_line(pk)) is False
        lengths = dict(zip(journal.lists(), store.journal_lengths(journal.lists())))
        expected = {name: 1 for name in sessions}
        expected[journal.JOURNAL] = expected.get(journal.JOURNAL, 0) + 1
        assert {name: length for name, length in lengths.items() if length} == expected
        assert journal.lists(rotations=False) == [journal.JOURNAL]
        assert queue.count == 1
    use_app(app)
    with app.app_context():
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        assert journal.backlog() == 0 and queue.count == 0
        assert audit.verify().ok
    assert _count(app, AccessLogEntry, AccessLogEntry.license_id == pk) == 1


@NEEDS_REDIS
def test_readers_catch_up_with_what_was_answered_before_them(app, client, shown_card):
    alice, _, card = shown_card
    code = present(client, alice["headers"], card["license_id"], purpose="银行开户")["code"]
    assert verify(client, code=code)["valid"] is True
    with app.app_context():
        assert journal.backlog()  # still queued: no worker runs in this test
    log = client.get(f"{API}/wallet/licenses/{card['license_id']}/access-log", headers=alice["headers"]).get_json()
    assert [(entry["verifier"], entry["result"], entry["purpose"]) for entry in log["items"]] == [
        ("匿名", "valid", "银行开户")]


@NEEDS_REDIS
def test_a_reader_catches_up_only_when_an_entry_names_them(app, client, shown_card):
    """A verification names the holder among its readers: another subject's catch-up leaves it queued, the
    holder's writes it and its mark goes with it; a mark from before (written already) holds no one up."""
    alice, _, card = shown_card
    assert verify(client, code=present(client, alice["headers"], card["license_id"])["code"])["valid"] is True
    mark = journal.pending_mark(alice["subject_id"])
    with app.app_context():
        assert json.loads(store.journal_head(journal.JOURNAL, 1)[0][1])["readers"] == [alice["subject_id"]]
        assert store.get(mark) == str(store.journal_sequence(journal.JOURNAL))
        assert journal.catch_up(reader="p_" + "0" * 32) == 0 and journal.backlog() == 1
        assert journal.caught_up(reader="p_" + "0" * 32) is True
        assert journal.catch_up(reader=alice["subject_id"]) == 1
        assert journal.backlog() == 0 and store.get(mark) is None
        store.set(mark, "1")  # a mark whose drop was lost: its entry is written
        assert journal.caught_up(reader=alice["subject_id"]) is True
    assert _count(app, AccessLogEntry, AccessLogEntry.license_id == _license_pk(app, card["license_id"])) == 1


@NEEDS_REDIS
def test_an_access_log_waits_for_its_holders_entries_alone(app, client, shown_card):
    alice, police, card = shown_card
    bob = register_person(client, app, name="李四", id_number=person_id_number())
    bobs = issue(client, police, holder_id_number=bob["id_number"], fields=id_card_fields("李四"))
    assert verify(client, code=present(client, bob["headers"], bobs["license_id"])["code"])["valid"] is True
    log = f"{API}/wallet/licenses/{card['license_id']}/access-log"
    assert client.get(log, headers=alice["headers"]).get_json()["total"] == 0
    with app.app_context():
        assert journal.backlog() == 1  # his entry: not hers to wait for
    assert verify(client, code=present(client, alice["headers"], card["license_id"])["code"])["valid"] is True
    assert client.get(log, headers=alice["headers"]).get_json()["total"] == 1
    with app.app_context():
        assert journal.backlog() == 0


def test_a_replayed_batch_is_written_once(app, client, shown_card):
    _, _, card = shown_card
    pk = _license_pk(app, card["license_id"])
    with app.app_context():
        journal.catch_up()
        line = _unknown_code_line(pk)
        before = db.session.scalar(select(func.count()).select_from(AuditEvent))
        journal._write([line])
        journal._write([line])  # the worker died after the commit, before the entries left the list
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before + 1
        assert audit.verify().ok
    assert _count(app, AccessLogEntry, AccessLogEntry.license_id == pk) == 1


def test_an_entry_that_cannot_be_written_is_dead_lettered_not_blocking(app, client, shown_card):
    _, _, card = shown_card
    pk = _license_pk(app, card["license_id"])
    with app.app_context():
        journal.catch_up()
        good = _unknown_code_line(pk)
        bad = json.loads(good)
        del bad["result"]
        bad["id"] = "0" * 32
        journal._write([json.dumps(bad), good])
        dead = [text for _, text in store.journal_head(journal.DEAD_LETTERS, 10)]
        assert [json.loads(text)["id"] for text in dead] == ["0" * 32]
        store.delete(journal.DEAD_LETTERS)
    assert _count(app, AccessLogEntry, AccessLogEntry.license_id == pk) == 1


def test_entries_of_unknown_kinds_are_refused_when_made(app):
    with pytest.raises(ValueError):
        journal.entry("no.such.kind", x=1)


@NEEDS_REDIS
def test_a_revocation_in_one_worker_reaches_the_copy_another_worker_holds(app, client, shown_card):
    from tests.support.helpers import another_worker
    alice, police, card = shown_card
    first, second = (present(client, alice["headers"], card["license_id"])["code"] for _ in range(2))
    with another_worker(app) as worker:
        other = worker.test_client()
        assert verify(other, code=first)["valid"] is True  # the worker now holds a copy of the list
        client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "revoked"}, headers=police)
        assert verify(other, code=second) == {"valid": False, "reason": "revoked", "detail": "证照已被签发机关撤销"}


def test_a_worker_copy_of_a_status_list_lives_no_longer_than_the_published_ttl(app, client, shown_card, monkeypatch):
    alice, _, card = shown_card
    first, second, third = (present(client, alice["headers"], card["license_id"])["code"] for _ in range(3))
    assert verify(client, code=first)["valid"] is True
    with app.app_context():  # a change whose announcement was lost (the store failed after the commit)
        license = db.session.scalar(select(License).where(License.license_id == card["license_id"]))
        license.status = "suspended"
        db.session.commit()
    assert verify(client, code=second)["valid"] is True  # the copy is still trusted...
    later = status_registry.time.monotonic() + status_registry.CACHE_SECONDS + 1
    monkeypatch.setattr(status_registry.time, "monotonic", lambda: later)
    assert verify(client, code=third)["reason"] == "suspended"  # ...but not past the token's ttl


WORKER_PROBE = """
import gc, sys, rq
from sqlalchemy import inspect
from app import create_app
seen = {}
class Worker:
    def __init__(self, queues, connection):
        seen["queues"] = queues
    def work(self, **options):
        from app.identity.models import AuthSession
        seen["handlers"] = sorted(m for m in ("app.identity.held_sessions", "app.wallet.access_log") if m in sys.modules)
        seen["mapped"] = inspect(AuthSession).configured
        seen["frozen"] = gc.get_freeze_count() > 10000
rq.Worker = Worker
app = create_app({"REDIS_URL": "redis://127.0.0.1:9/0", "APP_ENV": "testing"})
assert "app.identity.held_sessions" not in sys.modules and "app.wallet.access_log" not in sys.modules
with app.app_context():  # as `flask` gives its commands one
    result = app.test_cli_runner().invoke(args=["worker"])
print(result.exit_code, seen, "" if result.exit_code == 0 else repr(result.exception) + result.output)
"""


def test_the_job_worker_loads_the_journal_handlers_before_it_forks_work_horses(tmp_path):
    """RQ forks a work horse per job; what the worker has loaded, each horse inherits. A drain that had to
    import its handler and map the models in every horse spent most of a short job doing that. What it
    inherits is frozen, so that a horse's full collections leave the app's 127,000 objects alone."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DATABASE_", "REDIS_"))}
    env.update(INSTANCE_PATH=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/probe.db")
    out = subprocess.run([sys.executable, "-c", WORKER_PROBE], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith(
        "0 {'queues': ['ishandong'], 'handlers': ['app.identity.held_sessions', 'app.wallet.access_log'], "
        "'mapped': True, 'frozen': True}"), out.stdout[-500:]
