"""`flask --app wsgi --help` builds the app without importing what only some commands and requests
need: the views and their schemas (registered on first use), each command group's module, the search engine (jieba, pypinyin, numpy), PDF rendering and sealing (fpdf2, pyHanko,
asn1crypto, aiohttp), upload inspection (pikepdf, Pillow), S3 (boto3) and, on SQLite, the PostgreSQL driver
and, without `REDIS_URL`, the Redis client, Alembic (bound when a `db` command runs) and the
identity and wallet models (imported by the first signed request or view),
and without writing the OpenAPI document. (Start-up time itself is measured,
not asserted: `time .venv/bin/flask --app wsgi --help`.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.extensions import db
from app.schema_migrations import alembic_config
from tests.conftest import make_test_config

ROOT = Path(__file__).resolve().parent.parent
DEFERRED = ("jieba", "pypinyin", "numpy", "fpdf", "fontTools", "pyhanko", "pyhanko_certvalidator", "asn1crypto",
            "aiohttp", "app.catalogue.search", "pikepdf", "PIL", "psycopg", "boto3", "botocore", "redis", "app.redis_store",
            "alembic", "flask_migrate", "mako", "app.identity.models", "app.wallet.models", "app.identity.clients",
            "app.identity.views", "app.wallet.views", "app.applications.views", "schemas.applications",
            "app.catalogue.cli", "app.applications.cli", "app.identity.cli", "app.devtools.cli", "app.oidc.server")
PROBE = """
import json, sys
from flask.cli import main
sys.argv = ["flask", "--app", "wsgi", "--help"]
try:
    main()
except SystemExit as exit:
    code = exit.code
loaded = sorted(name for name in {deferred!r} if name in sys.modules)
print(json.dumps({{"code": code, "loaded": loaded}}), file=sys.stderr)
"""


def test_help_imports_none_of_the_heavy_modules_views_or_command_groups(tmp_path):
    env = {**os.environ, "APP_ENV": "development", "PYTHONPATH": str(ROOT)}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", PROBE.format(deferred=DEFERRED)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None) and "partitions" in done.stdout and "seed" in done.stdout
    assert report["loaded"] == []


def test_the_openapi_document_is_complete_when_first_read(app, client):
    document = client.get("/openapi.json").get_json()
    tags = {tag["name"] for tag in document["tags"]}
    assert {"wallet", "catalogue", "identity"} <= tags
    assert "/api/v1/license-types" in document["paths"] and "/api/v1/verifications" in document["paths"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_lazy_command_group_names_the_group_it_loads(app):
    from app.cli import COMMAND_GROUPS, LazyGroup
    for name, _help, _target in COMMAND_GROUPS:
        registered = app.cli.commands[name]
        with app.app_context():  # `db` is Flask-Migrate's own group once the schema was migrated
            group = registered.loaded() if isinstance(registered, LazyGroup) else registered
        assert group.name == name and group.commands, name
        listed = app.test_cli_runner().invoke(args=[name, "--help"])
        assert listed.exit_code == 0 and all(command in listed.output for command in group.commands), listed.output


def test_migrations_bind_when_a_db_command_first_runs(tmp_path):
    from app import create_app
    fresh = create_app(make_test_config(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}"))
    assert "migrate" not in fresh.extensions
    upgraded = fresh.test_cli_runner().invoke(args=["db", "--directory", "migrations", "upgrade"])  # the group's options
    assert upgraded.exit_code == 0, upgraded.output
    with fresh.app_context(), db.engine.connect() as connection:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(connection).get_current_revision() == head


def test_a_fresh_app_registers_its_views_on_the_first_request_and_for_the_route_map(tmp_path):
    from app import create_app
    served = create_app(make_test_config(DATABASE_URL=f"sqlite:///{tmp_path / 'served.db'}"))
    assert served._pending_setup and "catalogue.ServicesById" not in served.view_functions
    answer = served.test_client().get("/api/v1/no-such-resource")
    assert answer.status_code == 404 and answer.mimetype == "application/problem+json"
    assert not served._pending_setup and "catalogue.ServicesById" in served.view_functions

    listed = create_app(make_test_config(DATABASE_URL=f"sqlite:///{tmp_path / 'listed.db'}"))
    endpoints = {rule.endpoint for rule in listed.url_map.iter_rules()}  # what `flask routes` reads
    assert {"catalogue.ServicesById", "wallet.Verifications", "oidc_pages.resume"} <= endpoints
