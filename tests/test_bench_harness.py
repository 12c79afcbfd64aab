"""The benchmark harness: `python -m benchmarks.run` without wrk says how to get it before starting any service
(make bench installs it); the profiler, the busy-inbox background, the report and the floor app's ceiling routes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_load_targets_without_wrk_say_what_to_install_and_start_nothing(tmp_path):
    results = set((ROOT / "benchmarks" / "results").glob("*"))
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only", "healthz", "--quick"], cwd=ROOT,
                          env={"PATH": str(tmp_path), "HOME": str(tmp_path)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "wrk" in done.stderr and "make bench" in done.stderr and "Traceback" not in done.stderr
    assert set((ROOT / "benchmarks" / "results").glob("*")) == results


def test_the_profiler_finds_the_job_worker_by_its_command_line(tmp_path):
    """`--profile` samples the job worker too: a process it started as `<python> …/flask --app wsgi worker` is
    found, one with other arguments is not, nor one outside its own processes."""
    from benchmarks.cpu import job_worker_pids
    fake = tmp_path / "flask"
    fake.write_text("import time\ntime.sleep(60)\n")
    worker = subprocess.Popen([sys.executable, str(fake), "--app", "wsgi", "worker"])
    other = subprocess.Popen([sys.executable, str(fake), "--app", "wsgi", "run"])
    try:
        found = set(job_worker_pids())
        assert worker.pid in found and other.pid not in found
        assert worker.pid not in job_worker_pids(root=other.pid)
    finally:
        worker.kill()
        other.kill()
        worker.wait()
        other.wait()


def test_background_verifications_post_the_codes_in_order_and_stop_with_the_block():
    """The busy inbox row's background: each code once, in order, counted by its answer; nothing after the block."""
    import time

    from benchmarks.bench_personal import verifying
    from tests.fakes.http_base import FakeHttpServer, FakeResponse

    class Verifier(FakeHttpServer):
        def handle(self, request):
            return FakeResponse.json({"valid": request.json()["code"] != "c3"})

    codes = [f"c{n}" for n in range(10_000)]
    with Verifier() as server:
        def seen() -> list[str]:
            with server.lock:
                return [request.json()["code"] for request in server.requests]

        deadline = time.monotonic() + 30
        with verifying(server.base_url, codes, per_second=400) as counts:
            while len(seen()) < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
        made = seen()
        time.sleep(0.1)
        assert 8 <= len(made) < len(codes) and seen() == made  # stopped with the block
        assert made == codes[:len(made)]
        assert counts == {"valid": len(made) - 1, "other": 1}


def test_the_report_lists_every_measured_row_the_known_ones_in_their_order():
    from benchmarks import report
    load = {"new_row": {"label": "a row the report has no place for", "rps": 10.0, "p50_ms": 1.0, "p99_ms": 2.0,
                        "ratio": 0.5, "cpu_cores": {"app workers": 1.0}, "request": "GET /x"},
            "detail": {"label": "service detail", "rps": 20.0, "p50_ms": 1.0, "p99_ms": 2.0, "ratio": 0.9,
                       "cpu_cores": {"app workers": 1.0}, "request": "GET /y"},
            "floor": {"label": "floor", "rps": 22.0, "p50_ms": 1.0, "p99_ms": 2.0, "ratio": 1.0,
                      "cpu_cores": {"app workers": 1.0}, "request": "GET /z"}}
    assert report.load_order(load) == ["floor", "detail", "new_row"]
    table = "\n".join(report.load_table({"load": load}))
    assert "`new_row`" in table and table.index("`floor`") < table.index("`detail`") < table.index("`new_row`")
    assert "new_row" in report.summary({"load": load})


def test_the_signed_in_catalogue_row_asks_the_searches_search_lua_rotates():
    from benchmarks.app_targets import search_lua_queries
    queries = search_lua_queries()
    assert len(queries) == 20 and queries[0] == "身份证" and "想开个公司" in queries and queries[-1] == "hukou"


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"),
                    reason="the ceiling routes keep their codes and sessions in Redis; runs with TEST_REDIS_URL")
def test_the_floor_app_answers_its_ceiling_routes_before_flask_and_the_floor_route_through_it(monkeypatch):
    """The ceiling rows pay no more framework than the app's early answers: a refresh and a verification are
    answered from the environ (Flask dispatches nothing), each one-time body once; /healthz is Flask's."""
    import redis
    from cryptography.hazmat.primitives.serialization import load_der_private_key
    from werkzeug.test import Client

    from benchmarks import floor_app, floor_refresh, floor_verification

    url = os.environ["TEST_REDIS_URL"]
    monkeypatch.setenv("FLOOR_REDIS_URL", url)
    monkeypatch.setattr(floor_refresh, "_floor", None)
    monkeypatch.setattr(floor_verification, "_floor", None)
    dispatched = []
    flask_dispatch = floor_app.app.dispatch_request
    monkeypatch.setattr(floor_app.app, "dispatch_request", lambda: dispatched.append(1) or flask_dispatch())
    store = redis.Redis.from_url(url)
    try:
        token = floor_refresh.prepare(url, "", 1)[0]
        code = floor_verification.prepare(url, 1)[0]
        client = Client(floor_app.app)

        refreshed = client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": token})
        assert refreshed.status_code == 200 and refreshed.headers["Content-Type"] == "application/json"
        pair = refreshed.get_json()
        key = load_der_private_key(store.get(floor_refresh.PREFIX + "key"), password=None).public_key()
        assert floor_verification.verified_jws(pair["access_token"], key)["sub"] == "s000000"
        assert pair["refresh_token"] != token
        again = client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": token})
        assert (again.status_code, again.get_json()) == (401, {"detail": "refused"})

        verified = client.post("/verifications", json={"code": code})
        assert verified.status_code == 200 and verified.get_json()["valid"] is True
        assert verified.get_json()["disclosed"]["name"] == "张三"
        assert client.post("/verifications", json={"code": code}).get_json() == {"valid": False, "reason": "used"}
        assert client.post("/verifications", data="not json").status_code == 400
        assert dispatched == []

        assert client.get("/healthz").get_json() == {"status": "ok"} and dispatched == [1]
    finally:
        keys = list(store.scan_iter(match="floor:*", count=1000))
        if keys:
            store.delete(*keys)
        store.close()
