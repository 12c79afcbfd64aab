"""One online code verified at once by many threads (and by two workers sharing Redis) is valid
exactly once; every attempt is in the holder's access log."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from app import journal
from app.extensions import db
from app.wallet.models import AccessLogEntry, License
from tests.support.helpers import API, another_worker, needs_redis, register_person
from tests.support.wallet import ID_CARD, id_card_fields, issue, issuer_headers, present

THREADS = 12


def _race(clients, code):
    barrier = threading.Barrier(len(clients))

    def attempt(test_client):
        barrier.wait()
        response = test_client.post(f"{API}/verifications", json={"code": code})
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(attempt, clients))


def _shown(app, client):
    alice = register_person(client, app, name="张三")
    police = issuer_headers(app, client, types=(ID_CARD,))
    card = issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields())
    return card, present(client, alice["headers"], card["license_id"])


def _assert_exactly_once(app, results, license_id):
    assert [status for status, _ in results] == [200] * len(results), results
    assert sum(1 for _, body in results if body["valid"]) == 1
    assert sorted(body.get("reason", "") for _, body in results if not body["valid"]) == ["used"] * (len(results) - 1)
    with app.app_context():
        journal.catch_up()  # the answers are journalled; the access log is written behind them
        lic = db.session.scalar(select(License).where(License.license_id == license_id))
        rows = db.session.scalars(select(AccessLogEntry.result).where(AccessLogEntry.license_id == lic.id)).all()
        assert sorted(rows) == ["used"] * (len(results) - 1) + ["valid"]


def test_same_code_from_many_threads_is_valid_once(app, client):
    card, shown = _shown(app, client)
    results = _race([app.test_client() for _ in range(THREADS)], shown["code"])
    _assert_exactly_once(app, results, card["license_id"])


@needs_redis("workers share one-time codes through Redis only")
def test_same_code_across_two_workers_is_valid_once(app, client):
    card, shown = _shown(app, client)
    with another_worker(app) as worker:
        clients = [(app if i % 2 else worker).test_client() for i in range(THREADS)]
        results = _race(clients, shown["code"])
    _assert_exactly_once(app, results, card["license_id"])
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AccessLogEntry)) == THREADS
