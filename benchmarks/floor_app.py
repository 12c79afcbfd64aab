"""The floor: a bare Flask app with one JSON route, served by gunicorn with the same config as the
real app (`gunicorn -c gunicorn.conf.py benchmarks.floor_app:app`). Nothing an API route does can be
cheaper than this on the same server, so the app's figures are reported as a fraction of it."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/healthz")
def healthz():
    return jsonify(status="ok")
