"""A code's verification is answered before the framework (app/wallet/early_verification.py) as the view
answers it: same body and headers, the same count per address, the same refusals, the caller's address in
the audit trail; an SD-JWT or any other form is the view's."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app import journal
from app.wallet import verification
from app.extensions import db
from app.security.models import AuditEvent
from app.wallet.models import AccessLogEntry
from tests.support.applications import person_in
from tests.support.framework import without_page_server
from tests.support.proxies import act_for, grant
from tests.support.helpers import API
from schemas.wallet import VerificationResultSchema
from tests.support.wallet import ID_CARD, id_card_fields, issue, issuer_headers, present, verifier_headers

pytestmark = pytest.mark.redis

VERIFY = f"{API}/verifications"


@pytest.fixture
def card(app, client, alice):
    police = issuer_headers(app, client, types=(ID_CARD,))
    return issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields("张三"))


def _headers(response) -> list:
    return sorted((name, value) for name, value in response.headers.items()
                  if name not in ("X-Request-ID", "Content-Length"))


@pytest.mark.parametrize("scoped", [True, False])
def test_a_code_is_verified_before_the_framework_as_the_view_verifies_it(app, client, alice, card, entered,
                                                                         monkeypatch, scoped):
    hotel = verifier_headers(app, client) if scoped else {}
    codes = [present(client, alice["headers"], card["license_id"], disclose=["name", "gender"])["code"]
             for _ in range(2)]
    entered.clear()
    early = client.post(VERIFY, json={"code": codes[0]}, headers=hotel)
    assert early.status_code == 200 and entered == []
    without_page_server(app, monkeypatch)  # the view answers
    by_view = client.post(VERIFY, json={"code": codes[1]}, headers=hotel)
    assert by_view.status_code == 200 and len(entered) == 1
    assert early.get_json() == by_view.get_json()
    assert early.get_json()["valid"] is True
    assert early.get_json()["disclosure"] == ("full" if scoped else "basic")
    assert _headers(early) == _headers(by_view)
    used = client.post(VERIFY, json={"code": codes[0]}, headers=hotel)
    assert used.get_json()["reason"] == "used"


def test_an_early_verification_is_audited_with_the_callers_address(app, client, alice, card):
    code = present(client, alice["headers"], card["license_id"])["code"]
    assert client.post(VERIFY, json={"code": code}, environ_base={"REMOTE_ADDR": "10.7.7.7"}).get_json()["valid"]
    with app.app_context():
        journal.drain()
        db.session.commit()
        addresses = db.session.scalars(select(AuditEvent.ip).where(AuditEvent.event == "license.verified")).all()
    assert addresses == ["10.7.7.7"]


def test_refusals_and_the_rate_limit_are_the_views(app, client, alice, card, entered, monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_RATE_LIMIT", "3/minute")
    code = present(client, alice["headers"], card["license_id"])["code"]
    entered.clear()
    bad_token = client.post(VERIFY, json={"code": code}, headers={"Authorization": "Bearer nonsense"})
    assert bad_token.status_code == 401 and bad_token.mimetype == "application/problem+json"
    assert bad_token.get_json()["instance"].startswith("urn:request:")
    assert client.post(VERIFY, json={"code": "A" * 32}).get_json()["reason"] == "unknown"
    assert client.post(VERIFY, json={"code": code, "require_device_binding": True}).get_json()["reason"] \
        == "device_binding_required"
    over = client.post(VERIFY, json={"code": code})
    assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 61
    assert over.get_json()["detail"] == "核验请求过于频繁，请稍后再试" and entered == []


@pytest.mark.parametrize("body", [{"sd_jwt": "not.an.sd-jwt"}, {"code": "{code}", "purpose": "x"},
                                  {"code": "short"}, {"code": "{code}", "require_device_binding": "yes"}])
def test_other_forms_are_the_views(app, client, alice, card, entered, body):
    code = present(client, alice["headers"], card["license_id"])["code"]
    entered.clear()
    response = client.post(VERIFY, json={key: value.replace("{code}", code) if isinstance(value, str) else value
                                         for key, value in body.items()})
    assert len(entered) == 1 and response.status_code in (200, 400, 422)
    assert client.post(VERIFY, json={"code": code}).get_json()["valid"] is True  # not used by what was refused


def test_verify_runs_outside_a_request_and_answers_in_the_schemas_form(app, client, alice, card):
    """The early path sends `verify`'s answer as it is, from the app's context alone: each kind of answer must
    already be what VerificationResultSchema makes of it, in JSON's own types."""
    codes = [present(client, alice["headers"], card["license_id"], disclose=["name"])["code"] for _ in range(2)]
    with app.app_context():
        answers = [verification.verify(principal=None, address="10.6.6.6", code=code) for code in codes]
        answers += [verification.verify(principal=None, address="10.6.6.6", code=codes[0]),
                    verification.verify(principal=None, address=None, code="A" * 32),
                    verification.verify(principal=None, address=None, code=codes[1], require_device_binding=True)]
        journal.drain()
        db.session.commit()
        addresses = db.session.scalars(select(AuditEvent.ip).where(AuditEvent.event == "license.verified")).all()
        results = db.session.scalars(select(AccessLogEntry.result).order_by(AccessLogEntry.id)).all()
    assert results == ["valid", "valid", "used", "device_binding_required"]  # the longest reason fits its column
    assert [answer.get("reason") for answer in answers] == [None, None, "used", "unknown", "device_binding_required"]
    assert answers[0]["valid"] is True and answers[0]["valid_from"] == card["valid_from"]
    for answer in answers:
        assert VerificationResultSchema().dump(answer) == answer
        assert json.loads(json.dumps(answer)) == answer
    assert sorted(addresses, key=str) == ["10.6.6.6"] * 3 + [None]


def test_a_relatives_token_verifies_early_as_on_the_view(app, client, alice, card, entered, monkeypatch):
    """A family proxy's token is judged by the verification endpoint's name without a request context: its
    principal (the grantor, as the token's subject) is the verification's actor, early as on the view. Were
    the endpoint not recognised, the token would count as none and the actor would be empty."""
    son = person_in(client, app, name="李建国")
    grant(client, alice, son, scopes=["licenses:present"])
    proxy = {"Authorization": f"Bearer {act_for(client, son, alice)['access_token']}"}
    codes = [present(client, alice["headers"], card["license_id"])["code"] for _ in range(2)]
    entered.clear()
    early = client.post(VERIFY, json={"code": codes[0]}, headers=proxy)
    assert early.status_code == 200 and early.get_json()["valid"] is True and entered == []
    without_page_server(app, monkeypatch)
    by_view = client.post(VERIFY, json={"code": codes[1]}, headers=proxy)
    assert by_view.get_json() == early.get_json() and len(entered) == 1
    with app.app_context():
        journal.drain()
        db.session.commit()
        actors = db.session.scalars(select(AuditEvent.actor).where(AuditEvent.event == "license.verified")).all()
    assert actors == [alice["subject_id"]] * 2
