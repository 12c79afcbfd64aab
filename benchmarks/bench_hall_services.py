"""Load rows of the hall services (预约): slot listing and booking, on the seeded deployment.

Both need the booking window open: `flask appointments open-slots` (every hall, today and the next
10 working days) runs once before the first of them, so listing measures reads only. Booking sends
each request a different slot (one person may hold one place per slot; a place is taken by the
conditional UPDATE in the request's transaction), each with a service of that slot's hall.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .loadgen import LoadgenError, log
from .setup_data import API, SetupSkipped, bearer, json_line, write_lines

if TYPE_CHECKING:  # pragma: no cover
    from .app_targets import AppTargets


def _open_window(targets: "AppTargets") -> dict:
    if getattr(targets, "_slots_opened", None) is None:
        proc = targets.dep.flask("appointments", "open-slots", timeout=600)
        if proc.returncode != 0:
            if "No such command" in (proc.stderr or ""):
                raise SetupSkipped("`flask appointments open-slots` is not available (appointments not built yet)")
            raise LoadgenError(f"flask appointments open-slots: {proc.stderr[-500:]}")
        targets._slots_opened = json.loads(proc.stdout.strip().splitlines()[-1])
        log(f"  booking window opened: {targets._slots_opened}")
    return targets._slots_opened


def _future_slots() -> list[tuple[str, str, str]]:
    """(slot_id, hall_code, day) of every slot still ahead, and one service per hall."""
    from sqlalchemy import select

    from app.appointments.models import AppointmentSlot
    from app.extensions import db
    rows = db.session.execute(select(AppointmentSlot.slot_id, AppointmentSlot.hall_code, AppointmentSlot.day)
                              .where(AppointmentSlot.start_at > datetime.now(timezone.utc))
                              .order_by(AppointmentSlot.day, AppointmentSlot.start_at, AppointmentSlot.hall_code)).all()
    return [(slot_id, hall, day.isoformat()) for slot_id, hall, day in rows]


def _service_per_hall() -> dict[str, str]:
    from sqlalchemy import select

    from app.catalogue.models import Service
    from app.extensions import db
    services: dict[str, str] = {}
    for code, hall in db.session.execute(select(Service.code, Service.hall_code).where(Service.status == "published")
                                         .order_by(Service.hall_code, Service.popularity.desc(), Service.code)):
        services.setdefault(hall, code)
    return services


def slot_listing(targets: "AppTargets") -> None:
    opened = _open_window(targets)
    with targets.dep.app().app_context():
        pairs = sorted({(hall, day) for _slot, hall, day in _future_slots()})
    if not pairs:
        raise SetupSkipped("no appointment slots ahead to list")
    paths = [f"{API}/halls/{hall}/appointment-slots?date={day}" for hall, day in pairs]
    status, body = targets.api.request("GET", paths[0])
    if status != 200 or not body.get("items"):
        raise SetupSkipped(f"slot listing answers {status}: {str(body)[:200]}")
    path_file = write_lines(targets.data_dir / "slot_paths.txt", paths)
    targets.runner.measure("appointment_slots", "GET /api/v1/halls/{code}/appointment-slots?date=...",
                           targets.server.base_url, script="paths.lua", script_args=[str(path_file)],
                           server=targets.server,
                           notes=[f"rotating {len(paths)} hall-days ({opened['halls']} halls, {opened['days']} days, "
                                  f"{len(body['items'])} slots on the first)"])


def booking(targets: "AppTargets") -> None:
    _open_window(targets)
    s = targets.settings
    with targets.dep.app().app_context():
        services = _service_per_hall()
        bodies = [json_line({"slot_id": slot_id, "service_code": services[hall]})
                  for slot_id, hall, _day in _future_slots() if hall in services]
    token = targets.holder_token()
    status, body = targets.api.request("POST", f"{API}/appointments", json.loads(bodies.pop()), bearer(token))
    if status != 201:
        raise SetupSkipped(f"booking answers {status}: {str(body)[:200]}")
    warm_n = min(len(bodies) // 5, 2000)
    warm = write_lines(targets.data_dir / "booking_warm.txt", bodies[:warm_n])
    main = write_lines(targets.data_dir / "booking_main.txt", bodies[warm_n:])
    threads, expect = str(s.wrk_threads), '"status"%s*:%s*"booked"'
    targets.runner.measure("appointment_booking", "POST /api/v1/appointments {slot_id, service_code} (person token)",
                           targets.server.url(f"{API}/appointments"), script="onetime.lua",
                           script_args=[str(main), threads, expect, "201"], warm_args=[str(warm), threads, expect, "201"],
                           headers=[f"Authorization: Bearer {token}"], server=targets.server,
                           notes=[f"each request books a different slot ({len(bodies) - warm_n} in the pool, one person; "
                                  "the per-person booking limit is raised for this server)"])
