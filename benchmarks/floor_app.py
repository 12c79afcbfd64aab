"""The floor: a bare Flask app with one JSON route, served by gunicorn with the same config as the
real app (`gunicorn -c gunicorn.conf.py benchmarks.floor_app:app`). Nothing an API route does can be
cheaper than this on the same server, so the app's figures are reported as a fraction of it.

POST /verifications, GET /wallet/licenses and POST /auth/token are the ceiling rows for online
verification (`floor_verification.py`), a personal list (`floor_daily.py`) and a token refresh
(`floor_refresh.py`): the least work any implementation does, on the same server, Redis client (a
connection held per worker, as the app's store holds one), PostgreSQL driver and crypto libraries. They are answered before Flask's request handling, from the WSGI environ,
as the app answers its own common requests (`app/page_server.py`), so the app's early answers are held
to a ceiling that pays no more framework than they do."""
from __future__ import annotations

import json
from http import HTTPStatus

from flask import Flask, jsonify

from benchmarks.floor_daily import wallet_page
from benchmarks.floor_refresh import refresh
from benchmarks.floor_verification import verify_code

app = Flask(__name__)


@app.route("/healthz")
def healthz():
    return jsonify(status="ok")


def _json_body(environ) -> object:
    """The request's JSON body, or None when it is not JSON (as Flask's `get_json(silent=True)`)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return json.loads(environ["wsgi.input"].read(length)) if length > 0 else None
    except ValueError:
        return None


CEILINGS = {
    ("POST", "/verifications"): lambda environ: verify_code(_json_body(environ)),
    ("GET", "/wallet/licenses"): lambda environ: wallet_page(environ.get("HTTP_AUTHORIZATION", "")),
    ("POST", "/auth/token"): lambda environ: refresh(_json_body(environ), environ.get("REMOTE_ADDR") or "unknown"),
}


def _before_flask(flask_app):
    """The ceiling routes answered from the environ; any other request goes on to Flask."""
    def serve(environ, start_response):
        answer = CEILINGS.get((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        if answer is None:
            return flask_app(environ, start_response)
        body, status = answer(environ)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    return serve


app.wsgi_app = _before_flask(app.wsgi_app)
