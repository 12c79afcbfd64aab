"""Shared test helpers: valid identifiers, registered persons, staff, clients and tokens.

    from tests.support.helpers import register_person, auth_headers
    alice = register_person(client, app)            # registry entry + account + tokens
    client.get("/api/v1/me", headers=alice["headers"])
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from datetime import date, timedelta

import pytest

from app import create_app
from app.identity import clients, persons, registries
from app.identity.identifiers import CREDIT_ALPHABET, credit_check_char, id_check_char
from app.extensions import db
from app.timeutil import beijing_today

API = "/api/v1"


def needs_redis(why: str):
    """Skip (with the reason shown) in the SQLite pass: what `why` says only Redis shares. Marked
    `redis`: scripts/test.sh runs these once more on a Redis Cluster (`-m redis`)."""
    skip = pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason=f"{why}; runs with TEST_REDIS_URL")
    return lambda test: pytest.mark.redis(skip(test))
DEFAULT_PASSWORD = "Passw0rd2025"
SHANDONG_REGIONS = ("370102", "370103", "370202", "370203", "370302", "370602", "370702", "371002")
_rng = random.SystemRandom()


def _random(seed):
    return random.Random(seed) if seed is not None else _rng


def valid_id_number(seed=None, *, birth: date | None = None, region: str | None = None) -> str:
    """A GB 11643 ID number with a correct check digit (an adult unless `birth` says otherwise)."""
    rnd = _random(seed)
    region = region or rnd.choice(SHANDONG_REGIONS)
    if birth is None:
        birth = date(1960, 1, 1) + timedelta(days=rnd.randrange(0, 365 * 40))
    body = f"{region}{birth:%Y%m%d}{rnd.randrange(0, 1000):03d}"
    return body + id_check_char(body)


def minor_id_number(seed=None, *, age: int = 8) -> str:
    """A valid ID number of a child `age` years old."""
    today = beijing_today()
    birth = date(today.year - age, 1, 1) + timedelta(days=_random(seed).randrange(0, 300))
    return valid_id_number(seed, birth=birth)


def valid_credit_code(seed=None, *, region: str = "370102") -> str:
    """A GB 32100 unified social credit code with a correct check character (a company, 91...)."""
    rnd = _random(seed)
    body = "91" + region + "".join(rnd.choice(CREDIT_ALPHABET) for _ in range(9))
    return body + credit_check_char(body)


def valid_phone(seed=None) -> str:
    """A mainland mobile number."""
    rnd = _random(seed)
    return "1" + rnd.choice("3456789") + "".join(str(rnd.randrange(10)) for _ in range(9))


WORKER_CONFIG_KEYS = ("APP_ENV", "TESTING", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "SECRET_KEY",
                      "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "KEY_ENCRYPTION_KEY", "IDEMPOTENCY_HMAC_KEY")


@contextmanager
def another_worker(app, **overrides):
    """A second app instance sharing the test app's database, Redis and secrets, as a second
    gunicorn worker would (only Redis-backed state is really shared; without Redis each
    instance has its own in-process store). Disposed of on exit."""
    config = {key: app.config[key] for key in WORKER_CONFIG_KEYS if key in app.config}
    worker = create_app({**config, **overrides})
    worker.finish_setup()  # a gunicorn worker's views are registered before it forks
    try:
        yield worker
    finally:
        with worker.app_context():
            db.session.remove()
            db.engine.dispose()


def auth_headers(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def add_registry_person(app, *, id_number: str, name: str, phone: str | None = None,
                        guardian_of: tuple[str, ...] = ()) -> None:
    """Put a resident (and guardianships) into the development population registry."""
    with app.app_context():
        registries.add_person(id_number=id_number, name=name, phone=phone)
        for child in guardian_of:
            registries.add_guardian(parent_id_number=id_number, child_id_number=child)
        db.session.commit()


def add_registry_entity(app, *, credit_code: str, name: str, representative_id_number: str) -> None:
    with app.app_context():
        registries.add_entity(credit_code=credit_code, name=name,
                              representative_id_number=representative_id_number)
        db.session.commit()


def login(client, username: str, password: str = DEFAULT_PASSWORD) -> dict:
    """Password grant; returns the token body (asserts 200)."""
    response = client.post(f"{API}/auth/token", json={"grant_type": "password", "username": username,
                                                      "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def issue_sms_code(app, phone: str, purpose: str) -> str:
    """A fresh one-time code for (phone, purpose), made as `POST /auth/sms-codes` makes it but
    without its sending limits (set-up of tests that are not about SMS)."""
    from app.identity import sms
    from app.identity.identifiers import normalize_phone
    with app.app_context():
        return sms.new_code(normalize_phone(phone), purpose)


def register_person(client, app, name: str = "张三", id_number: str | None = None, phone: str | None = None,
                    password: str = DEFAULT_PASSWORD) -> dict:
    """Add the person to the dev registry, register and log in.

    Returns {"subject_id","id_number","phone","name","password","access_token","refresh_token","headers"}.
    """
    id_number = id_number or valid_id_number()
    phone = phone or valid_phone()
    add_registry_person(app, id_number=id_number, name=name)
    response = client.post(f"{API}/auth/register", json={"id_number": id_number, "name": name, "phone": phone,
                                                         "sms_code": issue_sms_code(app, phone, "register"),
                                                         "password": password})
    assert response.status_code == 201, response.get_json()
    tokens = login(client, id_number, password)
    return {"subject_id": response.get_json()["subject_id"], "id_number": id_number, "phone": phone,
            "name": name, "password": password, "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"], "headers": auth_headers(tokens["access_token"])}


def create_staff(app, hall_code: str | None, role: str = "hall_staff", *, id_number: str | None = None,
                 name: str = "李工作", password: str = DEFAULT_PASSWORD) -> dict:
    """A new staff member (hall_admin / hall_staff of `hall_code`, or platform_admin); returns auth headers."""
    id_number = id_number or valid_id_number()
    with app.app_context():
        persons.create_staff(role=role, hall_code=hall_code, id_number=id_number, name=name, password=password)
    tokens = login(app.test_client(), id_number, password)
    return auth_headers(tokens["access_token"])


def create_client(app, kind: str, license_types=(), scopes=(), *, name: str | None = None,
                  channel: str = "app", credit_code: str | None = None) -> tuple[str, str]:
    """A new issuer / verifier / third_party client; returns (client_id, client_secret)."""
    with app.app_context():
        client, secret = clients.create_client(kind=kind, name=name or f"测试{kind}", license_types=license_types,
                                               scopes=scopes, channel=channel, credit_code=credit_code)
        return client.client_id, secret


def client_token(client, client_id: str, secret: str) -> str:
    """Access token of a client (client_credentials grant)."""
    response = client.post(f"{API}/auth/token", json={"grant_type": "client_credentials",
                                                      "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]
