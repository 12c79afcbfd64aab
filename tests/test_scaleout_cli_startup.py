"""`flask --app wsgi --help` builds the app without importing what only some commands and requests
need: the search engine (jieba, pypinyin, numpy), PDF rendering and sealing (fpdf2, pyHanko,
asn1crypto, aiohttp), upload inspection (pikepdf, Pillow), S3 (boto3) and, on SQLite, the PostgreSQL driver,
and without writing the OpenAPI document. (Start-up time itself is measured,
not asserted: `time .venv/bin/flask --app wsgi --help`.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFERRED = ("jieba", "pypinyin", "numpy", "fpdf", "fontTools", "pyhanko", "pyhanko_certvalidator", "asn1crypto",
            "aiohttp", "app.catalogue.search", "pikepdf", "PIL", "psycopg", "boto3", "botocore")
PROBE = """
import json, sys
from flask.cli import main
sys.argv = ["flask", "--app", "wsgi", "--help"]
try:
    main()
except SystemExit as exit:
    code = exit.code
from app.extensions import api
loaded = sorted(name for name in {deferred!r} if name in sys.modules)
print(json.dumps({{"code": code, "loaded": loaded, "pending_docs": len(api._pending_docs)}}), file=sys.stderr)
"""


def test_help_imports_none_of_the_heavy_modules_and_defers_the_openapi_document(tmp_path):
    env = {**os.environ, "APP_ENV": "development", "PYTHONPATH": str(ROOT)}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", PROBE.format(deferred=DEFERRED)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None) and "partitions" in done.stdout and "seed" in done.stdout
    assert report["loaded"] == []
    assert report["pending_docs"] > 0  # the blueprints' documentation waits for the first reader


def test_the_openapi_document_is_complete_when_first_read(app, client):
    document = client.get("/openapi.json").get_json()
    tags = {tag["name"] for tag in document["tags"]}
    assert {"wallet", "catalogue", "identity"} <= tags
    assert "/api/v1/license-types" in document["paths"] and "/api/v1/verifications" in document["paths"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
