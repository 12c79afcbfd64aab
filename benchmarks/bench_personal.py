"""Set-up of the personal daily-path rows (application list, inbox) for `benchmarks.run`: the
holder applies through the API for an instant-approval service with their ID card as material; for
the busy inbox, another holder's codes are verified in the background (`verifying`)."""
from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

from .loadgen import HttpClient
from .setup_data import API, SetupSkipped, bearer, create_presentations

RESIDENCE_PERMIT = "370102-000705015000"  # 居住证签发 at 济南市历下区: instant, the ID card as material
APPLICATIONS = 3


def _id_card(targets) -> str:
    for spec in targets.licenses():
        if spec.get("name") == "居民身份证":
            return spec["license_id"]
    raise SetupSkipped("the holder has no 居民身份证 to apply with")


def ensure_applications(targets, token: str) -> int:
    """At least APPLICATIONS applications of the holder; returns how many the list holds."""
    api, holder = targets.api, targets.holder()
    status, body = api.request("GET", f"{API}/applications", headers=bearer(token))
    if status != 200:
        raise SetupSkipped(f"GET /api/v1/applications answers {status}: {str(body)[:200]}")
    have = body.get("total", 0)
    license_id = _id_card(targets)
    for n in range(have, APPLICATIONS):
        form = {"name": holder.name, "id_number": holder.id_number, "phone": holder.phone,
                "address": f"济南市历下区泺源大街{n + 1}号", "residence_start": "2024-03-01", "residence_reason": "就业"}
        payload = {"service_code": RESIDENCE_PERMIT, "form": form,
                   "materials": [{"name": "居民身份证", "license_id": license_id},
                                 {"name": "居住证明", "commitment": True}]}
        status, body = _submit(api, token, payload)
        if status == 409 and isinstance(body, dict) and body.get("application_id"):
            # one open application per service: the earlier one (not 秒批 for this holder) is withdrawn
            api.request("POST", f"{API}/applications/{body['application_id']}/withdraw", {}, bearer(token))
            status, body = _submit(api, token, payload)
        if status not in (200, 201, 202):
            raise SetupSkipped(f"POST /api/v1/applications answers {status}: {str(body)[:300]}")
    status, body = api.request("GET", f"{API}/applications", headers=bearer(token))
    return body.get("total", 0) if status == 200 else 0


def _submit(api, token: str, payload: dict):
    return api.request("POST", f"{API}/applications", payload, {**bearer(token), "Idempotency-Key": str(uuid.uuid4())})


def ensure_inbox(targets, token: str, timeout_s: float = 30.0) -> int:
    """Messages in the holder's inbox: those of their applications, and of a few verifications of
    their licenses (written by the job worker); returns the total once there are some."""
    ensure_applications(targets, token)
    api = targets.api
    for code in create_presentations(targets.server.base_url, token, targets.licenses(), 3, deadline_s=60):
        api.request("POST", f"{API}/verifications", {"code": code})
    t0 = time.monotonic()
    while True:
        status, body = api.request("GET", f"{API}/inbox", headers=bearer(token))
        if status != 200:
            raise SetupSkipped(f"GET /api/v1/inbox answers {status}: {str(body)[:200]}")
        if body.get("total") or time.monotonic() - t0 > timeout_s:
            return body.get("total", 0)
        time.sleep(0.5)


@contextmanager
def verifying(base_url: str, codes: list[str], per_second: float) -> Iterator[dict]:
    """Verify `codes` one after another at `per_second` on a thread of its own until the block ends; yields
    the counts (`valid`, `other`: any other answer) as they grow."""
    counts, stop = {"valid": 0, "other": 0}, threading.Event()

    def run() -> None:
        api, started = HttpClient(base_url), time.monotonic()
        try:
            for n, code in enumerate(codes):
                if stop.wait(max(0.0, started + n / per_second - time.monotonic())):
                    return
                status, body = api.request("POST", f"{API}/verifications", {"code": code})
                counts["valid" if status == 200 and isinstance(body, dict) and body.get("valid") else "other"] += 1
        finally:
            api.close()

    thread = threading.Thread(target=run, name="background-verifications", daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=30)
