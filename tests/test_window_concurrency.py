"""The same walk-in applicant taken in at several windows at once: one person record, one application,
every other window told 409 (never a 500, never a second person with that ID number)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from app.applications.models import Application
from app.identity.models import Person, id_index
from tests.support.applications import upload
from tests.support.window import LIXIA, count, service_code, staff_member, take_in, walk_in

WINDOWS = 10


def test_one_new_person_at_ten_windows_at_once(client, app):
    visitor = walk_in(app)
    code = service_code(app, LIXIA)
    staff = [staff_member(app, LIXIA, name=f"窗口{i}") for i in range(WINDOWS)]
    scans = [upload(client, member["headers"]) for member in staff]
    barrier = threading.Barrier(WINDOWS)

    def window(index):
        barrier.wait()
        response = take_in(app.test_client(), staff[index]["headers"], visitor, code, scans[index])
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=WINDOWS) as pool:
        results = list(pool.map(window, range(WINDOWS)))
    statuses = sorted(status for status, _body in results)
    assert statuses == [201] + [409] * (WINDOWS - 1), [body for _status, body in results]
    assert all(body["type"].endswith("/conflict") for status, body in results if status == 409)
    with app.app_context():
        index = id_index(visitor["id_number"])
    assert count(app, Person, Person.id_number_index == index) == 1
    assert count(app, Application) == 1
