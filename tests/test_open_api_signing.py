"""Signed open API for third-party platforms: HMAC-SHA256 request signatures, clock window,
nonce replay, per-client rate limits, scopes, audit, and the OpenAPI description.

Signatures are computed here independently of app.security.signed_requests, from the scheme
as README.md documents it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from types import SimpleNamespace

import pytest
from flask import jsonify
from sqlalchemy import select

from app.errors import ValidationFailed
from app.extensions import db
from app.identity import clients
from app.identity.models import ApiClient, ClientSigningSecret
from app.security.models import AuditEvent
from app.security import signed_requests
from app.security.rbac import request_channel
from app.security.signed_requests import _Rejected, signed_client, signed_scope_required, verify_current_request
from tests.support.helpers import API, another_worker, create_client

PING = f"{API}/open/ping"


def signature_headers(client_id: str, secret: str, method: str, target: str, body: bytes = b"", *,
                      timestamp: int | None = None, nonce: str | None = None, encoding: str = "base64") -> dict:
    """The documented scheme: HMAC-SHA256(secret, METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nhex(SHA256(body)))."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    canonical = "\n".join([method, target, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    mac = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).digest()
    signature = mac.hex() if encoding == "hex" else base64.b64encode(mac).decode()
    return {"X-Client-Id": client_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signature}


@pytest.fixture
def third_party(app):
    return create_client(app, "third_party", scopes=["catalogue:read", "licenses:verify"], channel="wechat",
                         name="某银行开放平台")


def rejections(app) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "open_api.signature_rejected").order_by(AuditEvent.seq)))


def assert_401(response) -> dict:
    assert response.status_code == 401, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("HMAC-SHA256")
    body = response.get_json()
    assert not body["detail"].isascii()
    return body


def test_signed_ping(client, third_party):
    client_id, secret = third_party
    response = client.get(PING, headers=signature_headers(client_id, secret, "GET", "/api/v1/open/ping"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["client_id"], body["name"], body["channel"]) == (client_id, "某银行开放平台", "wechat")
    assert body["scopes"] == ["catalogue:read", "licenses:verify"]
    assert abs(body["server_time"] - time.time()) < 5


def test_hex_signature_and_query_string(client, third_party):
    client_id, secret = third_party
    target = "/api/v1/open/ping?q=%E8%90%A5%E4%B8%9A%E6%89%A7%E7%85%A7&page=1"
    headers = signature_headers(client_id, secret, "GET", target, encoding="hex")
    assert client.get(target, headers=headers).status_code == 200
    # the query is part of what is signed
    headers = signature_headers(client_id, secret, "GET", target)
    assert_401(client.get("/api/v1/open/ping?q=x&page=1", headers=headers))


def test_unsigned_request_to_signed_endpoint_is_401(client, third_party):
    assert_401(client.get(PING))
    assert rejections(client.application) == []  # nothing was signed, nothing to audit


def test_forged_signature_is_401_and_audited(client, app, third_party):
    client_id, _ = third_party
    body = assert_401(client.get(PING, headers=signature_headers(client_id, "not-the-secret", "GET", PING)))
    assert "签名" in body["detail"]
    rows = rejections(app)
    assert [(r.details["reason"], r.subject_id) for r in rows] == [("bad_signature", client_id)]


def test_replayed_nonce_is_401_and_audited(client, app, third_party):
    client_id, secret = third_party
    headers = signature_headers(client_id, secret, "GET", PING)
    assert client.get(PING, headers=headers).status_code == 200
    body = assert_401(client.get(PING, headers=headers))
    assert "X-Nonce" in body["detail"]
    assert [r.details["reason"] for r in rejections(app)] == ["replayed_nonce"]


@pytest.fixture
def server_now(monkeypatch):
    """The server's clock held at one second, so a timestamp 1 s past the window stays past it on a busy machine."""
    now = int(time.time())
    monkeypatch.setattr(signed_requests, "time", SimpleNamespace(time=lambda: float(now)))
    return now


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_stale_or_future_timestamp_is_401_and_audited(client, app, third_party, server_now, offset):
    client_id, secret = third_party
    headers = signature_headers(client_id, secret, "GET", PING, timestamp=server_now + offset)
    body = assert_401(client.get(PING, headers=headers))
    assert "时间戳" in body["detail"]
    assert [r.details["reason"] for r in rejections(app)] == ["stale_timestamp"]


def test_timestamp_within_window_is_accepted(client, third_party, server_now):
    client_id, secret = third_party
    for offset in (-300, 300):
        headers = signature_headers(client_id, secret, "GET", PING, timestamp=server_now + offset)
        assert client.get(PING, headers=headers).status_code == 200


@pytest.mark.parametrize("change, reason", [
    (lambda h: h.pop("X-Nonce"), "missing_headers"),
    (lambda h: h.update({"X-Timestamp": "yesterday"}), "bad_timestamp"),
    (lambda h: h.update({"X-Nonce": "short"}), "bad_nonce"),
    (lambda h: h.update({"X-Signature": "not a signature"}), "bad_signature"),
    (lambda h: h.update({"X-Client-Id": "c_00000000000000000000"}), "unknown_client"),
])
def test_malformed_signature_headers(client, app, third_party, change, reason):
    client_id, secret = third_party
    headers = signature_headers(client_id, secret, "GET", PING)
    change(headers)
    assert_401(client.get(PING, headers=headers))
    assert [r.details["reason"] for r in rejections(app)] == [reason]


def test_only_active_third_party_clients_may_sign(client, app):
    verifier_id, verifier_secret = create_client(app, "verifier")
    assert_401(client.get(PING, headers=signature_headers(verifier_id, verifier_secret, "GET", PING)))
    tp_id, tp_secret = create_client(app, "third_party", scopes=["catalogue:read"])
    with app.app_context():
        db.session.scalar(select(ApiClient).where(ApiClient.client_id == tp_id)).active = False
        db.session.commit()
    assert_401(client.get(PING, headers=signature_headers(tp_id, tp_secret, "GET", PING)))
    assert [r.details["reason"] for r in rejections(app)] == ["unknown_client", "unknown_client"]


def test_body_is_covered_by_the_signature(app, third_party):
    client_id, secret = third_party
    body = b'{"code":"123456"}'
    headers = signature_headers(client_id, secret, "POST", "/api/v1/verifications", body)
    with app.test_request_context("/api/v1/verifications", method="POST", data=body, headers=headers,
                                  content_type="application/json"):
        signed = verify_current_request()
        assert signed.client_id == client_id and signed.has_scope("licenses:verify")
    tampered = signature_headers(client_id, secret, "POST", "/api/v1/verifications", body)
    with app.test_request_context("/api/v1/verifications", method="POST", data=b'{"code":"654321"}',
                                  headers=tampered, content_type="application/json"):
        with pytest.raises(_Rejected) as caught:
            verify_current_request()
        assert caught.value.reason == "bad_signature"


def test_per_client_rate_limit(app, third_party):
    client_id, secret = third_party
    with another_worker(app, OPEN_API_RATE_LIMIT="3/minute") as worker:
        http = worker.test_client()
        for _ in range(3):
            assert http.get(PING, headers=signature_headers(client_id, secret, "GET", PING)).status_code == 200
        response = http.get(PING, headers=signature_headers(client_id, secret, "GET", PING))
        assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
        assert response.mimetype == "application/problem+json"
        other_id, other_secret = create_client(app, "third_party", scopes=["catalogue:read"])
        assert http.get(PING, headers=signature_headers(other_id, other_secret, "GET", PING)).status_code == 200


def test_audited_failures_are_rate_limited_per_ip(app, third_party):
    client_id, _ = third_party
    with another_worker(app, OPEN_API_FAILURE_LIMIT="2/minute") as worker:
        http = worker.test_client()
        statuses = [http.get(PING, headers=signature_headers(client_id, "forged", "GET", PING)).status_code
                    for _ in range(4)]
    assert statuses == [401, 401, 429, 429]
    assert len(rejections(app)) == 2


def test_scopes_and_channel_for_views(app, third_party):
    client_id, secret = third_party
    with another_worker(app) as worker:
        @signed_scope_required("services:embed")
        def embed():
            return jsonify({"ok": True})

        def channel():
            signed_client("catalogue:read")
            return jsonify({"channel": request_channel()})

        worker.add_url_rule("/test/embed", view_func=embed)
        worker.add_url_rule("/test/channel", view_func=channel)
        http = worker.test_client()
        response = http.get("/test/embed", headers=signature_headers(client_id, secret, "GET", "/test/embed"))
        assert response.status_code == 403 and "services:embed" in response.get_json()["detail"]
        response = http.get("/test/channel", headers=signature_headers(client_id, secret, "GET", "/test/channel"))
        assert response.get_json() == {"channel": "wechat"}
        assert http.get("/test/channel").get_json() == {"channel": None}


def test_secret_kept_encrypted_and_scopes_validated(app):
    client_id, secret = create_client(app, "third_party", scopes=["services:embed"])
    with app.app_context():
        row = db.session.scalar(select(ClientSigningSecret).where(ClientSigningSecret.client_id == client_id))
        assert row is not None and secret not in row.secret_enc
        with pytest.raises(ValidationFailed):
            clients.create_client(kind="third_party", name="越权平台", scopes=["licenses:issue"])
        db.session.rollback()
    issuer_id, _ = create_client(app, "issuer", license_types=["11100000000013100M001"])
    with app.app_context():  # only clients that may sign keep their secret
        assert db.session.scalar(select(ClientSigningSecret).where(
            ClientSigningSecret.client_id == issuer_id)) is None


def test_client_credentials_grant_still_works(client, third_party):
    client_id, secret = third_party
    response = client.post(f"{API}/auth/token", json={"grant_type": "client_credentials",
                                                      "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200


def test_openapi_documents_the_signature_scheme(client):
    spec = client.get("/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert {schemes[name]["name"] for name in ("openApiClientId", "openApiTimestamp", "openApiNonce",
                                                "openApiSignature")} == {"X-Client-Id", "X-Timestamp",
                                                                         "X-Nonce", "X-Signature"}
    assert spec["paths"]["/api/v1/open/ping"]["get"]["security"] == [
        {"openApiClientId": [], "openApiTimestamp": [], "openApiNonce": [], "openApiSignature": []}]
