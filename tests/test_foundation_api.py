"""The foundation: problem+json for every error, health, readiness, metrics, JWKS, docs, request ids."""
from __future__ import annotations

import json
import logging

import pytest
from flask_smorest import Blueprint


PROBLEM = "application/problem+json"


def assert_problem(response, status):
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert body["type"].startswith("http://localhost/problems/")  # the test app's PUBLIC_BASE_URL: a page explains it
    assert body["title"] and body["detail"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["title"] + body["detail"])
    return body


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_path_is_problem_404(client):
    assert_problem(client.get("/api/v1/no-such-thing"), 404)


def test_wrong_method_is_problem_405_with_allow(client):
    response = client.delete("/healthz")
    assert_problem(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert "GET" in allowed and "DELETE" not in allowed


def test_body_over_limit_is_problem_413(app_factory):
    limited = app_factory(MAX_CONTENT_LENGTH=1024)
    response = limited.test_client().post("/api/v1/auth/register", data=b"x" * 4096,
                                          content_type="application/json")
    assert_problem(response, 413)


def test_malformed_json_is_problem_400(client):
    response = client.post("/api/v1/auth/register", data=b"{not json",
                           content_type="application/json")
    assert response.status_code in (400, 422)
    assert response.mimetype == PROBLEM


def test_internal_error_is_problem_500_without_traceback(app_factory, caplog):
    broken = app_factory()
    blp = Blueprint("broken", __name__)

    @blp.route("/boom")
    def boom():
        raise RuntimeError("secret internals: password=hunter2")

    broken.register_blueprint(blp)
    with caplog.at_level(logging.ERROR, logger="app"):
        response = broken.test_client().get("/boom", headers={"X-Request-ID": "req-500-check"})
    body = assert_problem(response, 500)
    text = json.dumps(body, ensure_ascii=False)
    assert "Traceback" not in text and "hunter2" not in text and "RuntimeError" not in text
    assert body["instance"] == "urn:request:req-500-check"
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged and logged[0].exc_info is not None
    assert getattr(logged[0], "request_id", None) == "req-500-check"


def test_request_id_is_echoed_or_generated(client):
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] not in ("", "bad id with spaces")


def test_security_headers(client):
    response = client.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_readyz_reports_database_and_redis(client, app):
    response = client.get("/readyz")
    assert response.status_code == 200
    expected_redis = "ok" if app.config.get("REDIS_URL") else "disabled"
    assert response.get_json() == {"database": "ok", "redis": expected_redis}


def test_readyz_503_when_database_is_unreachable(app_factory):
    broken = app_factory(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "down"


def test_metrics_loopback_only(client):
    client.get("/healthz")
    local = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.status_code == 200
    assert "http_requests_total" in local.get_data(as_text=True)
    assert 'endpoint="/healthz"' in local.get_data(as_text=True)
    assert "http_request_duration_seconds_bucket" in local.get_data(as_text=True)
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert_problem(remote, 404)


def test_jwks_is_a_key_set(client):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.get_json()["keys"]
    assert isinstance(keys, list)
    assert all("kid" in key for key in keys)


def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/healthz" in spec["paths"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert operation.get("summary"), f"{method.upper()} {path} has no summary"
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger-ui" in docs.data
    asset = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_production_refuses_missing_secrets(app_factory):
    with pytest.raises(RuntimeError, match="密钥"):
        app_factory(APP_ENV="production", PII_ENCRYPTION_KEY=None)


def test_database_outage_is_problem_503_with_retry_after(app_factory):
    broken = app_factory(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = broken.test_client().get("/api/v1/license-types")
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "5"
    assert "数据库" in body["detail"]
