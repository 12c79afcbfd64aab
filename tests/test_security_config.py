"""Security configuration (OWASP API8, GB/T 22239 level 3): production refuses to start with the
generated development secrets, without secrets, or with secrets that are not real keys; and the
headers every response carries."""
from __future__ import annotations

import base64
import json
import os

import pytest

import app as app_package
from app import create_app
from app.catalogue import halls as catalogue_halls
from app.config import SECRET_NAMES
from tests.conftest import make_test_config

PRODUCTION = {"APP_ENV": "production", "TESTING": False}


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def instance_root(tmp_path, monkeypatch):
    """create_app() keeps its instance/ (dev-secrets.json) under a temporary root."""
    monkeypatch.setattr(app_package, "ROOT", str(tmp_path))
    for name in SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _config(**overrides) -> dict:
    config = make_test_config(**PRODUCTION)
    config.update(overrides)
    return config


def _development_secrets(instance_root) -> dict:
    """Start a development app without secrets: it generates instance/dev-secrets.json."""
    create_app(make_test_config(APP_ENV="development", **{name: None for name in SECRET_NAMES}))
    path = instance_root / "instance" / "dev-secrets.json"
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    return json.loads(path.read_text())


def test_production_refuses_the_generated_development_secrets(instance_root):
    stored = _development_secrets(instance_root)
    assert set(stored) == set(SECRET_NAMES)
    with pytest.raises(RuntimeError, match="开发密钥"):
        create_app(_config(**stored))
    for name in SECRET_NAMES:  # a single reused development secret is enough to refuse
        with pytest.raises(RuntimeError, match=name):
            create_app(_config(**{**{n: _key() for n in SECRET_NAMES}, name: stored[name]}))
    production = create_app(_config(**{n: _key() for n in SECRET_NAMES}))
    assert production.config["APP_ENV"] == "production"


@pytest.mark.parametrize("missing", SECRET_NAMES)
def test_production_refuses_to_start_without_each_secret(instance_root, missing):
    secrets = {name: _key() for name in SECRET_NAMES}
    for absent in (None, ""):
        with pytest.raises(RuntimeError, match=missing):
            create_app(_config(**{**secrets, missing: absent}))
    assert not (instance_root / "instance" / "dev-secrets.json").exists()  # nothing generated in production


@pytest.mark.parametrize("weak", ["changeme", "secret", "c2VjcmV0", base64.b64encode(b"x" * 16).decode()])
@pytest.mark.parametrize("name", SECRET_NAMES)
def test_production_refuses_secrets_that_are_not_32_byte_keys(instance_root, name, weak):
    """Finding: SECRET_KEY and IDEMPOTENCY_HMAC_KEY accepted any string in production ("changeme")."""
    secrets = {n: _key() for n in SECRET_NAMES}
    with pytest.raises((RuntimeError, ValueError)):
        create_app(_config(**{**secrets, name: weak}))


def test_development_reuses_its_generated_secrets(instance_root):
    first = _development_secrets(instance_root)
    second = _development_secrets(instance_root)
    assert first == second


def test_responses_carry_security_headers(client):
    for url in ("/healthz", "/api/v1/halls", "/api/v1/me", "/api/v1/nope"):
        response = client.get(url, headers={"Authorization": "Bearer x"})
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", url
        assert headers["X-Frame-Options"] == "DENY", url
        assert "default-src 'none'" in headers["Content-Security-Policy"], url
        assert headers["Cache-Control"] == "no-store", url  # an Authorization header was sent
        assert "Server" not in headers or "Python" not in headers["Server"]


def test_production_adds_hsts(app_factory):
    production = app_factory(**PRODUCTION)
    response = production.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_metrics_only_on_loopback_and_not_behind_a_proxy(client):
    assert client.get("/metrics").status_code == 200
    forwarded = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert forwarded.status_code == 404 and forwarded.mimetype == "application/problem+json"
    remote = client.get("/metrics", environ_overrides={"REMOTE_ADDR": "203.0.113.7"})
    assert remote.status_code == 404


def test_errors_do_not_leak_internals(client, app, monkeypatch):
    """A crash answers a generic 500 problem: no traceback, exception text or SQL."""

    def boom(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM keys WHERE password='hunter2'")

    monkeypatch.setattr(catalogue_halls, "hall_tree", boom)
    response = client.get("/api/v1/halls")
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "Traceback" not in text and "SELECT" not in text
