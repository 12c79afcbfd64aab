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
