"""Logs hold no secrets and no personal data (GB/T 22239 level 3 audit and PII protection; OWASP API
"sensitive data exposure"): a full flow (register, SMS, login with a wrong and the right password,
refresh, issue, present, verify, apply, reveal, client credentials, logout, a crash) is logged, and
neither the JSON lines our handler writes nor the raw log records contain a full ID number, a phone
number, a password, a client secret, a token, a one-time code, a key or a private key."""
from __future__ import annotations

import io
import logging
import re
import uuid

import pytest

from app.catalogue import halls as catalogue_halls
from app.config import SECRET_NAMES
from app.identity import sms
from app.observability import JsonFormatter, RequestIdFilter
from tests.support.helpers import (API, DEFAULT_PASSWORD, auth_headers, client_token, create_client, issue_sms_code,
                           valid_id_number, valid_phone)
from tests.support.applications import hukou_body, id_card, residence_body
from tests.support.world import build_world, registry_person
from tests.support.wallet import ID_CARD, id_card_fields, issue, present

ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[0-9Xx](?![0-9A-Za-z])")
PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
STANDARD_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}")


@pytest.fixture
def json_log():
    """Our JSON formatter (with its request-id filter) on a buffer, for every `app.*` logger."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("app")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _full_flow(app, client) -> tuple[list[str], dict]:
    """Run the flow; returns (secrets that must not appear, a few named values)."""
    world = build_world(app, client)
    alice, bob = world.alice, world.bob
    secrets = list(world.secrets) + [alice["access_token"], bob["access_token"], world.ids["code"]]
    secrets += [app.config[name] for name in SECRET_NAMES]

    # registration of a new person, SMS login, wrong and right passwords
    id_number, phone = registry_person(app, name="赵六")
    password = "Zhao6-" + uuid.uuid4().hex[:10]
    assert client.post(f"{API}/auth/register", json={"id_number": id_number, "name": "赵六", "phone": phone,
                                                     "sms_code": issue_sms_code(app, phone, "register"),
                                                     "password": password}).status_code == 201
    assert client.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": "login"}).status_code == 202
    with app.app_context():
        code = sms.last_outbox_code(phone)
    assert code
    secrets.append(code)
    assert client.post(f"{API}/auth/token", json={"grant_type": "sms", "phone": phone,
                                                  "code": code}).status_code == 200
    assert client.post(f"{API}/auth/token", json={"grant_type": "password", "username": phone,
                                                  "password": password + "x"}).status_code == 401
    assert client.post(f"{API}/auth/token", json={"grant_type": "password", "username": id_number,
                                                  "password": "Wrong-" + password}).status_code == 401
    tokens = client.post(f"{API}/auth/token", json={"grant_type": "password", "username": id_number,
                                                    "password": password}).get_json()
    refreshed = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                       "refresh_token": tokens["refresh_token"]}).get_json()
    reused = client.post(f"{API}/auth/token", json={"grant_type": "refresh_token",
                                                    "refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401  # reuse: the family is revoked and a warning logged
    secrets += [password, password + "x", "Wrong-" + password, tokens["access_token"], tokens["refresh_token"],
                refreshed["access_token"], refreshed["refresh_token"]]
    zhao = auth_headers(client.post(f"{API}/auth/token", json={"grant_type": "password", "username": id_number,
                                                               "password": password}).get_json()["access_token"])

    # clients, issuance, presentations both ways, verification by a verifier
    client_id, client_secret = create_client(app, "verifier", license_types=(ID_CARD,), name="某银行")
    verifier = auth_headers(client_token(client, client_id, client_secret))
    bad = client.post(f"{API}/auth/token", json={"grant_type": "client_credentials", "client_id": client_id,
                                                 "client_secret": client_secret + "x"})
    assert bad.status_code == 401
    secrets += [client_secret, client_secret + "x"]
    card = issue(client, world.issuer, holder_id_number=id_number, fields=id_card_fields(name="赵六"))
    online = present(client, zhao, card["license_id"], mode="online", disclose=["name", "address"])
    offline = present(client, zhao, card["license_id"], mode="offline", disclose=["name"])
    secrets += [online["code"], offline["sd_jwt"]]
    assert client.post(f"{API}/verifications", json={"code": online["code"]}, headers=verifier).get_json()["valid"]
    assert client.post(f"{API}/verifications", json={"sd_jwt": offline["sd_jwt"]}).get_json()["valid"]
    assert client.post(f"{API}/verifications", json={"code": online["code"]}).get_json()["reason"] == "used"

    # applications, reveal of full values to the holder, the access log, logout
    person = {"id_number": id_number, "name": "赵六", "phone": phone, "headers": zhao}
    assert client.post(f"{API}/applications", json=hukou_body(person, app),
                       headers={**zhao, "Idempotency-Key": str(uuid.uuid4())}).status_code == 201
    assert client.post(f"{API}/applications", json=residence_body(person, id_card(app, person)),
                       headers={**zhao, "Idempotency-Key": str(uuid.uuid4())}).status_code == 201
    assert client.get(f"{API}/me?reveal=true", headers=zhao).status_code == 200
    assert client.get(f"{API}/wallet/licenses/{card['license_id']}?reveal=true", headers=zhao).status_code == 200
    assert client.get(f"{API}/wallet/licenses/{card['license_id']}/access-log", headers=zhao).status_code == 200
    # a registration that the registry refuses, and one of an already registered person
    assert client.post(f"{API}/auth/register", json={"id_number": id_number, "name": "赵六", "phone": valid_phone(),
                                                     "password": DEFAULT_PASSWORD}).status_code in (409, 422)
    assert client.post(f"{API}/auth/logout", json={"refresh_token": refreshed["refresh_token"]},
                       headers=zhao).status_code == 204
    values = {"id_numbers": [id_number, alice["id_number"], bob["id_number"]],
              "phones": [phone, alice["phone"], bob["phone"]]}
    return secrets, values


def _crash_with_pii(app, client, monkeypatch, values):
    """An unhandled error whose message names a person: the traceback is logged, masked."""

    def boom(*_args, **_kwargs):
        raise RuntimeError(f"lookup failed for {values['id_numbers'][0]} / {values['phones'][0]}")

    monkeypatch.setattr(catalogue_halls, "hall_tree", boom)
    assert client.get(f"{API}/halls", headers={"If-None-Match": "x"}).status_code in (200, 500)


def _offences(text: str, secrets: list[str], values: dict) -> list[str]:
    found = []
    for secret in secrets:
        if secret and len(secret) >= 6 and secret in text:
            found.append(f"secret {secret[:6]}...")
    for value in values["id_numbers"] + values["phones"]:
        if value in text:
            found.append(f"personal value {value[:3]}...")
    for pattern in (ID_NUMBER, PHONE, PEM, JWT):
        match = pattern.search(text)
        if match:
            found.append(f"{pattern.pattern[:20]}: {text[max(0, match.start() - 60):match.end() + 20]!r}")
    return found


def test_a_full_flow_logs_no_secret_and_no_personal_data(app, client, json_log, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    secrets, values = _full_flow(app, client)
    _crash_with_pii(app, client, monkeypatch, values)

    written = json_log.getvalue()
    assert written.count("\n") > 50  # the flow was logged (access log, audit, warnings)
    assert _offences(f'{{"msg": "{secrets[0]} {values["phones"][0]}"}}', secrets, values)  # the detector works
    assert not _offences(written, secrets, values)

    captured = capfd.readouterr()
    assert not _offences(captured.out + captured.err, secrets, values)

    # the raw records too (another handler, a syslog one, would see them unformatted)
    raw = []
    for record in caplog.records:
        raw.append(record.getMessage())
        raw.extend(str(value) for key, value in vars(record).items() if key not in STANDARD_RECORD_ATTRIBUTES)
    offences = _offences("\n".join(raw), secrets, values)
    # the crash message names a person on purpose: only the formatted output is required to mask it
    offences = [o for o in offences if "lookup failed" not in o]
    assert not offences, offences


def test_the_json_formatter_masks_what_a_careless_message_contains(json_log):
    id_number, phone = valid_id_number(), valid_phone()
    logging.getLogger("app.test").warning("person %s phone %s", id_number, phone, extra={"subject": id_number})
    line = json_log.getvalue()
    assert id_number not in line and phone not in line
    assert id_number[:6] + "********" + id_number[-4:] in line and phone[:3] + "****" + phone[-4:] in line
