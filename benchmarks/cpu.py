"""Where a run's CPU goes, from /proc: the cores each kind of process used (app workers, the job worker,
Redis, PostgreSQL, wrk), the machine's load from processes that are not ours, the hypervisor's steal; and
py-spy samples of a worker and the job worker (`--profile`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

VENV_BIN = Path(sys.executable).parent


def _descendants(roots: Iterable[int]) -> set[int]:
    seen: set[int] = set()
    todo = [pid for pid in roots if pid]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*") if Path(f"/proc/{pid}/task").exists() else ():
            try:
                todo += [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                pass
    return seen


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of /proc/<pid>/stat; None once the process is gone."""
    try:
        head, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
        return head.split("(", 1)[1], rest.split()
    except (OSError, IndexError):
        return None


def _tick_sum(fields: list[str], *, reaped: bool = False) -> int:
    """utime + stime from /proc/<pid>/stat's fields (plus the children it reaped with `reaped`)."""
    try:
        return sum(int(v) for v in fields[11:15 if reaped else 13])
    except ValueError:
        return 0


def _ticks(pid: int) -> int:
    stat = _stat(pid)
    return _tick_sum(stat[1]) if stat else 0


def background_cpu(own_roots: Iterable[int] = (), seconds: float = 0.5) -> float:
    """Fraction of all CPUs used over `seconds` by processes that are not ours (this harness and its
    children, and the PostgreSQL/Redis it started), sampled between runs: the load the figures share
    the cores with."""
    roots = list(own_roots)

    def snapshot() -> tuple[int, int, dict[int, int]]:
        values = _cpu_times()
        own = {pid: _ticks(pid) for pid in _descendants(roots)}
        return sum(values), values[3] + values[4], own  # total, idle + iowait, own process ticks

    total1, idle1, own1 = snapshot()
    time.sleep(seconds)
    total2, idle2, own2 = snapshot()
    if total2 == total1:
        return 0.0
    own = sum(ticks - own1.get(pid, 0) for pid, ticks in own2.items())
    busy = (total2 - total1) - (idle2 - idle1)
    return max(0.0, (busy - own) / (total2 - total1))


def _cpu_times() -> list[int]:
    """The machine's CPU time in ticks: user, nice, system, idle, iowait, irq, softirq, steal."""
    return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


def _all_process_ticks() -> dict[int, tuple[str, int]]:
    """{pid: (command name, CPU ticks including reaped children)} for every process on the machine."""
    out: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        stat = _stat(entry.name) if entry.name.isdigit() else None
        if stat is not None:
            out[int(entry.name)] = (stat[0], _tick_sum(stat[1], reaped=True))
    return out


class CpuMeter:
    """Cores used per kind of process between start() and stop(): where a run's CPU went (app workers,
    the job worker, Redis, PostgreSQL, wrk, the rest)."""

    def __init__(self, worker_pids: Iterable[int] = ()):
        self.workers = set(worker_pids)

    def start(self) -> "CpuMeter":
        self.t0, self.before, self.stat_before = time.monotonic(), _all_process_ticks(), _cpu_times()
        self.steal = 0.0
        return self

    def stop(self) -> dict[str, float]:
        """Cores per kind of process; `steal` is then the share of the machine's CPU time the hypervisor
        took during the run (a virtual machine's steal time: the cores no process here could use)."""
        stat_after = _cpu_times()
        total = sum(stat_after) - sum(self.stat_before)
        self.steal = (stat_after[7] - self.stat_before[7]) / total if total > 0 else 0.0
        after, seconds = _all_process_ticks(), max(1e-6, time.monotonic() - self.t0)
        hz = os.sysconf("SC_CLK_TCK")
        shares: dict[str, float] = {}
        for pid, (name, ticks) in after.items():
            used = ticks - self.before.get(pid, (name, 0))[1]
            if used > 0:
                kind = "app workers" if pid in self.workers else _process_kind(name)
                shares[kind] = shares.get(kind, 0.0) + used / hz / seconds
        return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def _process_kind(name: str) -> str:
    for prefix, kind in (("redis", "redis"), ("postgres", "postgres"), ("wrk", "wrk"), ("flask", "job worker"),
                         ("rq:", "job worker"), ("gunicorn", "gunicorn master")):
        if name.startswith(prefix):
            return kind
    return "other"

def profile_worker(pid: int, seconds: float, out: Path, *, subprocesses: bool = False) -> subprocess.Popen | None:
    """Sample one process with py-spy (collapsed stacks in `out`; with `subprocesses`, the children it forks
    too, as the job worker forks one per job); None without py-spy."""
    spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not os.path.exists(spy):
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
                             "--format", "raw", "--nonblocking", "--output", str(out),
                             *(["--subprocesses"] if subprocesses else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def job_worker_pids(root: int | None = None) -> list[int]:
    """The `flask worker` processes started by this process (or under `root`): the job worker next to the server."""
    found = []
    for pid in sorted(_descendants([root or os.getpid()])):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        start = next((n for n, arg in enumerate(argv) if arg.endswith(b"/flask")), None)
        if start is not None and argv[start + 1:start + 4] == [b"--app", b"wsgi", b"worker"]:
            found.append(pid)
    return found


def profile_summary(folded: Path, top: int = 25) -> list[str]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return ["no samples"]
    rows = [f"{total} samples; self% incl% function"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        rows.append(f"{100 * n / total:5.1f} {100 * inclusive[frame] / total:5.1f}  {frame}")
    return rows
