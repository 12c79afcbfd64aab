"""`python -m benchmarks.run` without wrk says how to get it before starting any service (make bench installs it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    from benchmarks.loadgen import job_worker_pids
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
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from benchmarks.bench_personal import verifying

    seen: list[str] = []

    class Verifier(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server hook
            code = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["code"]
            seen.append(code)
            body = json.dumps({"valid": code != "c3"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Verifier)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        codes = [f"c{n}" for n in range(10_000)]
        with verifying(f"http://127.0.0.1:{server.server_port}", codes, per_second=400) as counts:
            while len(seen) < 8:
                time.sleep(0.01)
        made = len(seen)
        time.sleep(0.1)
        assert len(seen) == made < len(codes)  # stopped with the block
        assert seen == codes[:made]
        assert counts == {"valid": made - 1, "other": 1}
    finally:
        server.shutdown()
