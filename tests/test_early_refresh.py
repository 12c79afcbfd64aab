"""The common token refresh is answered before the framework (app/identity/early_refresh.py) as the view
answers it: same body and headers, the address counted once, and every other form of the request (a reused
or unknown token, other fields, a body the input guards refuse) left to the view."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.identity.models import AuthSession, Person
from tests.support.framework import without_page_server
from tests.support.helpers import API, another_worker, auth_headers, register_person

pytestmark = pytest.mark.redis

TOKEN = f"{API}/auth/token"


def _refresh(client, token, **kwargs):
    return client.post(TOKEN, json={"grant_type": "refresh_token", "refresh_token": token}, **kwargs)


def _headers(response) -> list:
    return sorted((name, value) for name, value in response.headers.items()
                  if name not in ("X-Request-ID", "Content-Length"))


def test_a_common_refresh_is_answered_before_the_framework_as_the_view_answers_it(app, client, entered, monkeypatch):
    person = register_person(client, app)
    entered.clear()
    early = _refresh(client, person["refresh_token"])
    assert early.status_code == 200 and entered == []
    pair = early.get_json()
    assert sorted(pair) == ["access_token", "expires_in", "refresh_token", "token_type"]
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == app.config["ACCESS_TOKEN_TTL"]
    assert client.get(f"{API}/me", headers=auth_headers(pair["access_token"])).status_code == 200

    without_page_server(app, monkeypatch)  # the view answers
    entered.clear()
    by_view = _refresh(client, pair["refresh_token"])
    assert by_view.status_code == 200 and len(entered) == 1
    assert _headers(early) == _headers(by_view)
    assert ("Cache-Control", "no-store") in _headers(early) and ("Pragma", "no-cache") in _headers(early)
    assert sorted(by_view.get_json()) == sorted(pair)


def test_a_reused_token_goes_on_to_the_view_which_ends_the_session_and_the_address_is_counted_once(app):
    with another_worker(app, AUTH_RATE_LIMIT="3/minute") as worker:
        web = worker.test_client()
        person, other = register_person(app.test_client(), app), register_person(app.test_client(), app, name="李四")
        address = {"REMOTE_ADDR": "10.9.8.7"}
        first = _refresh(web, person["refresh_token"], environ_base=address)
        assert first.status_code == 200
        reused = _refresh(web, person["refresh_token"], environ_base=address)  # the early path and the view ran
        assert reused.status_code == 401 and reused.mimetype == "application/problem+json"
        assert reused.get_json()["instance"].startswith("urn:request:")
        third = _refresh(web, other["refresh_token"], environ_base=address)
        assert third.status_code == 200  # 429 had the reused token been counted twice
        over = _refresh(web, third.get_json()["refresh_token"], environ_base=address)
        assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0
        assert over.mimetype == "application/problem+json"
        with worker.app_context():
            assert db.session.scalar(select(AuthSession.revoked_at).where(
                AuthSession.subject_id == person["subject_id"])) is not None
        assert _refresh(web, third.get_json()["refresh_token"]).status_code == 200  # not rotated when refused


@pytest.mark.parametrize("body, field", [
    ({"grant_type": "refresh_token", "refresh_token": "{token}", "username": "x"}, "username"),
    ({"grant_type": "refresh_token", "refresh_token": "{token}\u0000"}, "refresh_token"),
])
def test_other_forms_go_on_to_the_view(app, client, entered, body, field):
    person = register_person(client, app)
    entered.clear()
    body = {key: value.replace("{token}", person["refresh_token"]) for key, value in body.items()}
    refused = client.post(TOKEN, json=body)
    assert refused.status_code == 422 and field in refused.get_json()["errors"] and len(entered) == 1
    assert _refresh(client, person["refresh_token"]).status_code == 200  # nothing was rotated


@pytest.mark.parametrize("raw", [
    b'{"grant_type":"refresh_token","refresh_token":NaN}',  # the standard library reads NaN; the early parser does not
    b'{"grant_type":"refresh_token","refresh_token":"\\ud800"}',  # a lone surrogate, likewise
    b'{"grant_type":"refresh_token","refresh_token":123456789012345678901234567890}',
])
def test_a_body_only_the_views_parser_reads_is_the_views_to_answer(app, client, entered, raw):
    person = register_person(client, app)
    entered.clear()
    refused = client.post(TOKEN, data=raw, content_type="application/json")
    assert len(entered) == 1 and refused.status_code in (400, 422)
    assert refused.mimetype == "application/problem+json" and "refresh_token" in str(refused.get_json())
    assert _refresh(client, person["refresh_token"]).status_code == 200  # nothing was rotated


def test_a_form_encoded_or_unknown_token_is_the_views_to_answer(app, client, entered):
    person = register_person(client, app)
    entered.clear()
    form = client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": person["refresh_token"]})
    unknown = _refresh(client, "rt_" + "0" * 32 + ".0." + "A" * 32)
    assert len(entered) == 2 and unknown.status_code == 401
    assert form.status_code in (415, 422) and form.mimetype == "application/problem+json"


def test_an_error_after_the_rotation_is_answered_by_the_apps_error_handlers(app, client, entered, caplog):
    person = register_person(client, app)
    with app.app_context():
        db.session.scalar(select(Person).where(Person.subject_id == person["subject_id"])).active = False
        db.session.commit()
    entered.clear()
    caplog.set_level("INFO", logger="app.access")
    refused = _refresh(client, person["refresh_token"], headers={"X-Request-ID": "a" * 32})
    assert refused.status_code == 401 and entered == []
    assert refused.mimetype == "application/problem+json"
    problem = refused.get_json()
    assert problem["detail"] == "登录会话已失效，请重新登录" and problem["instance"] == "urn:request:" + "a" * 32
    assert refused.headers["X-Request-ID"] == "a" * 32
    logged = [record for record in caplog.records if record.name == "app.access"]
    assert logged and logged[-1].status == 401 and logged[-1].path == TOKEN
