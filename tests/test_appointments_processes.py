"""No overbooking across processes: gunicorn with several workers on PostgreSQL + Redis of our own,
20 people booking one slot at once over HTTP: exactly `capacity` places, the rest 409, and the
database agrees (the CHECK constraint and the conditional UPDATE hold on every worker)."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.hall import LIXIA, service_of, working_day
from tests.support.helpers import API, register_person
from tests.support.procs import process_tools_missing, served_stack

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(process_tools_missing()), reason=str(process_tools_missing()))]

PEOPLE = 20
TIMEOUT = 30
SPREAD = {"X-Test-Delay": "0.05"}
NAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许"


@pytest.fixture(scope="module")
def stack():
    with served_stack("ias-appt-", "ias_appointments", workers=3) as stack:
        yield stack


def _scalar(stack, sql: str, *params):
    with stack["cluster"].connect(stack["database"]) as conn:
        return conn.execute(sql, params).fetchone()[0]


def test_twenty_people_across_workers_get_exactly_capacity_places(stack):
    app, base = stack["app"], stack["server"].url
    client = app.test_client()
    people = [register_person(client, app, name=NAMES[i] + "明") for i in range(PEOPLE)]
    service = service_of(app, LIXIA)
    listed = requests.get(f"{base}{API}/halls/{LIXIA}/appointment-slots", timeout=TIMEOUT,
                          params={"date": working_day(3).isoformat()})
    assert listed.status_code == 200, listed.text
    slot = listed.json()["items"][0]
    assert slot["capacity"] < PEOPLE
    barrier = threading.Barrier(PEOPLE)

    def one(index):
        barrier.wait(TIMEOUT)
        return requests.post(f"{base}{API}/appointments", timeout=TIMEOUT,
                             json={"slot_id": slot["slot_id"], "service_code": service},
                             headers={**people[index]["headers"], **SPREAD})

    with ThreadPoolExecutor(max_workers=PEOPLE) as pool:
        responses = list(pool.map(one, range(PEOPLE)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: slot["capacity"], 409: PEOPLE - slot["capacity"]}, \
        [(r.status_code, r.text[:200]) for r in responses]
    assert len({r.headers.get("X-Test-Worker") for r in responses}) >= 2
    assert _scalar(stack, "SELECT booked FROM appointment_slots WHERE slot_id = %s", slot["slot_id"]) == slot["capacity"]
    assert _scalar(stack, "SELECT count(*) FROM appointments a JOIN appointment_slots s ON s.id = a.slot_pk "
                          "WHERE s.slot_id = %s AND a.active_slot_id IS NOT NULL", slot["slot_id"]) == slot["capacity"]
    again = requests.get(f"{base}{API}/halls/{LIXIA}/appointment-slots", timeout=TIMEOUT,
                         params={"date": working_day(3).isoformat()}).json()["items"][0]
    assert again["remaining"] == 0
