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
