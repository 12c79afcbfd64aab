"""Test fixtures: an app per session on SQLite or PostgreSQL (+ Redis), cleaned between tests."""
from __future__ import annotations

import base64
import os
import secrets
import shutil
import tempfile

import pytest

pytest.register_assert_rewrite("tests.support")

from app import create_app  # noqa: E402
from app.cli import REFERENCE_TABLES, run_seeders  # noqa: E402
from app.extensions import db  # noqa: E402

# Shared fixtures live in tests/support/ and are loaded here, so no test module imports another.
pytest_plugins = ["tests.support.applications", "tests.support.wallet", "tests.support.devices",
                  "tests.support.files", "tests.support.catalogue", "tests.support.oidc", "tests.support.clock",
                  "tests.support.framework"]



def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def backend() -> str:
    return "postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"


def make_test_config(**overrides) -> dict:
    """Config for one test app: the session database and store unless overridden."""
    config = {
        "APP_ENV": "test", "TESTING": True,
        "DATABASE_URL": os.environ.get("TEST_DATABASE_URL") or _SQLITE_URL,
        "REDIS_URL": os.environ.get("TEST_REDIS_URL") or None,
        "PUBLIC_BASE_URL": "http://localhost",
        "FILE_STORAGE_DIR": os.path.join(_TMP, "files"),  # stored uploads never land in the repo's instance/
        **_SECRETS,
    }
    config.update(overrides)
    return config


_TMP = tempfile.mkdtemp(prefix="ias-test-")
_SQLITE_URL = "sqlite:///" + os.path.join(_TMP, "test.db")
_SECRETS = {name: _key() for name in ("SECRET_KEY", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY",
                                        "KEY_ENCRYPTION_KEY", "IDEMPOTENCY_HMAC_KEY")}


def _create_schema(app) -> None:
    """The schema the Alembic migrations build (tests/test_migrations.py checks it matches the models)."""
    from app.schema_migrations import upgrade_schema
    with app.app_context():
        upgrade_schema()
        run_seeders()


@pytest.fixture(scope="session")
def app():
    application = create_app(make_test_config())
    _create_schema(application)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Empty every table but the reference ones and the shared store (rate counters included) after each test."""
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    with application.app_context():
        db.session.rollback()
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in REFERENCE_TABLES]
        if db.engine.dialect.name == "postgresql" and tables:
            names = ", ".join(f'"{t.name}"' for t in tables)
            db.session.execute(db.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                db.session.execute(table.delete())
        db.session.commit()
        application.extensions["shared_store"].flush()
        application.extensions.pop("signing_key_cache", None)


@pytest.fixture
def app_factory(app):
    """Build another app from the session app's config with overrides (second worker, broken DB...)."""
    def build(**overrides):
        return create_app(make_test_config(**overrides))
    return build


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield
