"""The command-line floor: a bare Flask app, for `flask --app benchmarks.floor_cli --help` (benchmarks/bench_cli.py)."""
from flask import Flask

app = Flask(__name__)


@app.route("/healthz")
def healthz():
    return {"status": "ok"}
