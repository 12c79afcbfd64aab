"""Command-line start-up: `flask --app wsgi --help` beside the same command on a bare Flask app (the floor),
wall time and CPU (user + system) of each run, alternating, after one unmeasured run of each.

    python -m benchmarks.bench_cli [--rounds 7]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from .loadgen import ROOT
from .setup_data import Deployment

TARGETS = {"floor": "benchmarks.floor_cli", "app": "wsgi"}


def _once(target: str, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flask", "--app", target, "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or "Commands:" not in done.stdout:
        raise RuntimeError(f"flask --app {target} --help failed: {done.stderr.strip()[-300:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(rounds: int = 7) -> dict[str, Any]:
    """Median wall and CPU seconds of `flask --app <target> --help` for the floor and the app."""
    with tempfile.TemporaryDirectory(prefix="ias-bench-cli.") as workdir:
        env = Deployment("cli", f"sqlite:///{workdir}/cli.db", "", 0).cli_env()  # production settings, no Redis
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in TARGETS}
        for target in TARGETS.values():
            _once(target, env)  # byte code compiled
        for _ in range(rounds):
            for name, target in TARGETS.items():
                samples[name].append(_once(target, env))
    out: dict[str, Any] = {"rounds": rounds}
    for name, runs in samples.items():
        out[name] = {"wall_s": statistics.median(w for w, _ in runs), "cpu_s": statistics.median(c for _, c in runs),
                     "wall_min_s": min(w for w, _ in runs), "wall_max_s": max(w for w, _ in runs)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    result = run(parser.parse_args(argv).rounds)
    for name in TARGETS:
        row = result[name]
        print(f"{name:6s} wall {row['wall_s']:.2f} s (min {row['wall_min_s']:.2f}, max {row['wall_max_s']:.2f}), "
              f"cpu {row['cpu_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
