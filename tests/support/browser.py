"""Support for the web page tests (no tests here): a live server on loopback, headless
Chromium through Playwright, wallet set-up through the API, and dashboard data for a hall.

    with live_server(app) as base_url, chromium() as browser: ...
"""
from __future__ import annotations

import os
import re
import secrets
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select
from werkzeug.serving import make_server

from app.applications.models import Application
from app.catalogue.models import Service
from app.evaluations.models import Evaluation, RectificationTicket
from app.extensions import db
from app.identity import persons
from app.timeutil import beijing_today
from tests.support.helpers import API, DEFAULT_PASSWORD, auth_headers, client_token, create_client, valid_id_number

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}  # a common phone viewport (CSS pixels)
ID_CARD = "11100000000013100M001"  # 居民身份证
ISSUER_NAME = "济南市公安局历下区分局"
VERIFIER_NAME = "泉城大酒店"


# ---- server and browser


@contextmanager
def live_server(app):
    """Serve `app` with werkzeug on 127.0.0.1:<free port> in a thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@contextmanager
def chromium():
    """Debian's Chromium, headless, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def artifact(name: str) -> str:
    """A path under test-artifacts/ (gitignored) for a screenshot."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)


class ConsoleWatch:
    """Collects console errors and CSP violations of a page, to assert there were none."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e or "Refused to" in e]


# ---- wallet through the API


def id_card_fields(name: str, id_number: str) -> dict:
    today = beijing_today()
    return {"name": name, "gender": "男" if int(id_number[16]) % 2 else "女", "ethnicity": "汉",
            "birth_date": f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}",
            "address": "山东省济南市历下区泉城路188号", "issuing_authority": ISSUER_NAME,
            "valid_from": (today - timedelta(days=30)).isoformat(),
            "valid_until": (today + timedelta(days=3650)).isoformat()}


def issue_id_card(app, client, holder: dict) -> str:
    """An issuer client issues a 居民身份证 to `holder` (from register_person); returns license_id."""
    client_id, secret = create_client(app, "issuer", license_types=[ID_CARD], name=ISSUER_NAME)
    today = beijing_today()
    response = client.post(f"{API}/licenses", headers=auth_headers(client_token(client, client_id, secret)), json={
        "license_type": ID_CARD, "holder_id_number": holder["id_number"],
        "fields": id_card_fields(holder["name"], holder["id_number"]),
        "valid_from": (today - timedelta(days=30)).isoformat(),
        "valid_until": (today + timedelta(days=3650)).isoformat()})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["license_id"]


def present(client, holder: dict, license_id: str, *, mode: str = "online",
            disclose=("name", "gender", "birth_date"), purpose: str = "酒店入住登记") -> dict:
    response = client.post(f"{API}/wallet/licenses/{license_id}/presentations", headers=holder["headers"],
                           json={"disclose": list(disclose), "purpose": purpose, "mode": mode, "ttl_seconds": 300})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def verifier_client(app) -> tuple[str, str]:
    return create_client(app, "verifier", license_types=[ID_CARD], name=VERIFIER_NAME)


# ---- hall admins and dashboard data


def hall_admin(app, hall_code: str, *, name: str = "王管理") -> dict:
    """A hall admin of `hall_code` who signs in with ID number + password."""
    id_number = valid_id_number()
    with app.app_context():
        persons.create_staff(role="hall_admin", hall_code=hall_code, id_number=id_number, name=name,
                             password=DEFAULT_PASSWORD)
    return {"id_number": id_number, "password": DEFAULT_PASSWORD, "name": name}


def login_form(client, hall_code: str, username: str, password: str):
    """GET the login page, then POST the form with its CSRF token."""
    page = client.get(f"/halls/{hall_code}/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post(f"/halls/{hall_code}/dashboard/login",
                       data={"csrf_token": token, "username": username, "password": password})


def seed_hall_activity(app, hall_code: str) -> dict:
    """Applications in every status (two overdue), ratings over the last months for three
    services and two open rectification tickets, written straight to the models."""
    today = beijing_today()
    now = datetime.now(timezone.utc)
    with app.app_context():
        services = db.session.execute(
            select(Service.code, Service.name).where(Service.hall_code == hall_code, Service.status == "published")
            .order_by(Service.code).limit(3)).all()
        plan = [("submitted", 3, None), ("accepted", 2, None), ("request_more", 1, None), ("approved", 6, None),
                ("rejected", 1, None), ("withdrawn", 1, None),
                ("accepted", 1, today - timedelta(days=20)), ("submitted", 1, today - timedelta(days=9))]
        apps = []
        for status, count, deadline in plan:
            for n in range(count):
                code, name = services[n % len(services)]
                row = Application(application_id="ap_" + secrets.token_hex(10), subject_id="p_" + secrets.token_hex(10),
                                  subject_type="person", actor_id="p_seed", service_code=code, base_code=None,
                                  service_name=name, hall_code=hall_code, status=status,
                                  deadline=deadline or today + timedelta(days=10), created_at=now,
                                  submitted_at=now, updated_at=now)
                db.session.add(row)
                apps.append(row)
        db.session.flush()
        finished = [a for a in apps if a.status in ("approved", "rejected")]
        ratings = [5, 4, 5, 2, 4, 1, 5]
        tickets = 0
        for index, (application, rating) in enumerate(zip(finished, ratings)):
            created = now - timedelta(days=35 * (index % 4))
            evaluation = Evaluation(evaluation_id="ev_" + secrets.token_hex(10), application_id=application.id,
                                    subject_id=application.subject_id, actor_id=application.subject_id,
                                    hall_code=hall_code, service_code=application.service_code,
                                    service_name=application.service_name, rating=rating, dimensions={},
                                    created_at=created)
            db.session.add(evaluation)
            if rating <= 2:
                db.session.flush()
                db.session.add(RectificationTicket(
                    ticket_id="rt_" + secrets.token_hex(10), evaluation_id=evaluation.id,
                    application_id=application.application_id, subject_id=application.subject_id,
                    hall_code=hall_code, service_code=application.service_code, rating=rating, status="open",
                    due_date=today + timedelta(days=5) if tickets == 0 else today - timedelta(days=2),
                    created_at=created))
                tickets += 1
        db.session.commit()
        return {"applications": len(apps), "overdue": 2, "ratings": len(ratings), "tickets": tickets,
                "services": [name for _, name in services]}
