"""The floor: a bare Flask app with one JSON route, served by gunicorn with the same config as the
real app (`gunicorn -c gunicorn.conf.py benchmarks.floor_app:app`). Nothing an API route does can be
cheaper than this on the same server, so the app's figures are reported as a fraction of it.

POST /verifications, GET /wallet/licenses and POST /auth/token are the ceiling rows for online
verification (`floor_verification.py`), a personal list (`floor_daily.py`) and a token refresh
(`floor_refresh.py`): the least work any implementation does, on the same Flask, Redis, PostgreSQL
driver and crypto libraries."""
from flask import Flask, jsonify, request

from benchmarks.floor_daily import wallet_page
from benchmarks.floor_refresh import refresh
from benchmarks.floor_verification import verify_code

app = Flask(__name__)


@app.route("/healthz")
def healthz():
    return jsonify(status="ok")


@app.post("/verifications")
def verifications():
    body, status = verify_code(request.get_json(silent=True))
    return jsonify(body), status


@app.get("/wallet/licenses")
def wallet_licenses():
    body, status = wallet_page(request.headers.get("Authorization", ""))
    return jsonify(body), status


@app.post("/auth/token")
def token():
    body, status = refresh(request.get_json(silent=True), request.remote_addr or "unknown")
    return jsonify(body), status
