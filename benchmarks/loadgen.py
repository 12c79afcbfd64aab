"""Load generation: start gunicorn with the production config, wait until it answers, run wrk, parse
its output (us/ms/s/m/h units), read the workers' peak RSS, stop everything.

    with GunicornServer("wsgi:app", env, log_path) as server:
        result = run_wrk(server.url("/healthz"), duration=10, connections=16)
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LUA_DIR = Path(__file__).resolve().parent / "lua"
VENV_BIN = Path(sys.executable).parent
WRK = os.environ.get("WRK", "wrk")

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|ms|s|m|h)\s*$")
_COUNT_SUFFIX = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


class LoadgenError(RuntimeError):
    """The server or wrk did not behave; the message says what happened."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def duration_ms(text: str) -> float:
    """wrk's latency text ("812.00us", "1.23ms", "2.01s", "1.00m") in milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _count(text: str) -> float:
    match = re.match(r"^([0-9]*\.?[0-9]+)([kMG]?)$", text.strip())
    if not match:
        raise ValueError(f"not a wrk count: {text!r}")
    return float(match.group(1)) * _COUNT_SUFFIX[match.group(2)]


@dataclass
class WrkResult:
    rps: float
    requests: int
    seconds: float
    p50_ms: float | None
    p75_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    lua: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_wrk(output: str) -> WrkResult:
    """Parse `wrk --latency` output (plus the BENCH_LUA line our scripts print in done())."""
    rps_match = re.search(r"^Requests/sec:\s*([0-9.]+)", output, re.M)
    total_match = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", output, re.M)
    if not rps_match or not total_match:
        raise LoadgenError("wrk output not understood:\n" + output[-2000:])
    percentiles: dict[str, float] = {}
    block = re.search(r"Latency Distribution\n((?:\s+\d+(?:\.\d+)?%\s+\S+\n?)+)", output)
    if block:
        for pct, value in re.findall(r"(\d+(?:\.\d+)?)%\s+(\S+)", block.group(1)):
            percentiles[str(int(float(pct)))] = duration_ms(value)
    latency = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", output, re.M)
    mean_ms = max_ms = None
    if latency:
        mean_ms, max_ms = duration_ms(latency.group(1)), duration_ms(latency.group(3))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    socket_errors = {}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors:
        socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups())))
    lua = None
    lua_match = re.search(r"^BENCH_LUA (\{.*\})\s*$", output, re.M)
    if lua_match:
        lua = json.loads(lua_match.group(1))
    return WrkResult(
        rps=float(rps_match.group(1)), requests=int(total_match.group(1)),
        seconds=duration_ms(total_match.group(2)) / 1000.0,
        p50_ms=percentiles.get("50"), p75_ms=percentiles.get("75"), p90_ms=percentiles.get("90"),
        p99_ms=percentiles.get("99"), mean_ms=mean_ms, max_ms=max_ms,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0, socket_errors=socket_errors, lua=lua,
    )


def wrk_version() -> str:
    try:
        out = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (out.stdout + out.stderr).splitlines()[0].split("Copyright")[0].strip() if (out.stdout + out.stderr) else "?"


def run_wrk(url: str, *, duration: float, connections: int = 16, threads: int = 1,
            script: str | None = None, script_args: Iterable[str] = (), headers: Iterable[str] = (),
            timeout_s: float = 10.0) -> WrkResult:
    """One bounded wrk run; raises LoadgenError when wrk fails or hangs."""
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
           f"--timeout={int(timeout_s)}s"]
    for header in headers:
        cmd += ["-H", header]
    if script:
        cmd += ["-s", str(LUA_DIR / script)]
    cmd.append(url)
    args = list(script_args)
    if args:
        cmd += ["--", *args]
    env = {**os.environ, "LUA_PATH": f"{LUA_DIR}/?.lua;;"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=duration + timeout_s + 20)
    except subprocess.TimeoutExpired as exc:
        raise LoadgenError(f"wrk did not finish within {duration + timeout_s + 20:.0f}s") from exc
    if proc.returncode != 0:
        raise LoadgenError(f"wrk exited {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
    return parse_wrk(proc.stdout + proc.stderr)


# --- plain HTTP for probes and data preparation ---------------------------------------------

class HttpClient:
    """A keep-alive JSON client for one host (one connection; use one per thread)."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=payload, headers=all_headers)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return response.status, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- gunicorn ----------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def proc_status_kb(pid: int, key: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current RSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class JobWorker:
    """`flask worker` (the RQ worker that drains the job queue) next to the app server, as deployed;
    its CPU counts against the same machine the load runs on."""

    def __init__(self, env: dict[str, str], log_path: Path, start_timeout: float = 60.0):
        self.env, self.log_path, self.start_timeout = env, log_path, start_timeout
        self.proc: subprocess.Popen | None = None
        self._log = None

    def __enter__(self) -> "JobWorker":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(VENV_BIN / "flask"), "--app", "wsgi", "worker"], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + self.start_timeout  # its start-up CPU must not land in a measured run
        while time.monotonic() < deadline and self.proc.poll() is None:
            if b"started with PID" in self.log_path.read_bytes():
                break
            time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log:
            self._log.close()


class GunicornServer:
    """`gunicorn -c gunicorn.conf.py <target>` on a free loopback port, in its own process group."""

    def __init__(self, target: str, env: dict[str, str], log_path: Path, *, port: int | None = None,
                 ready_path: str = "/healthz", start_timeout: float = 90.0):
        self.target, self.log_path, self.ready_path = target, log_path, ready_path
        self.start_timeout = start_timeout
        self.port = port or free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.env.pop("BIND", None)
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._ctl_dir: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> "GunicornServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        # gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl); a private one
        # keeps this server from colliding with any other gunicorn on the machine. Nothing else is overridden.
        self._ctl_dir = tempfile.mkdtemp(prefix="ias-bench-ctl.")
        cmd = [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
               "--control-socket", os.path.join(self._ctl_dir, "gunicorn.ctl"), self.target]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        client = HttpClient(self.base_url, timeout=5)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise LoadgenError(f"gunicorn {self.target} exited with {self.proc.returncode}; "
                                       f"see {self.log_path}:\n{self.log_tail()}")
                try:
                    status, _ = client.request("GET", self.ready_path)
                    if status == 200 and len(self.worker_pids()) >= int(self.env.get("WEB_CONCURRENCY", "1")):
                        return self
                except OSError:
                    pass
                client.close()
                time.sleep(0.2)
        finally:
            client.close()
        self.stop()
        raise LoadgenError(f"gunicorn {self.target} not ready within {self.start_timeout:.0f}s; "
                           f"see {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def worker_memory(self) -> list[dict[str, int | None]]:
        return [{"pid": pid, "vmhwm_kb": proc_status_kb(pid, "VmHWM"), "vmrss_kb": proc_status_kb(pid, "VmRSS")}
                for pid in self.worker_pids()]

    def warm_workers(self, path: str, *, headers: dict[str, str] | None = None, timeout: float = 240.0,
                     fast_s: float = 0.5) -> float:
        """Send rounds of 2 x workers concurrent requests until two rounds in a row all answer fast, so that
        every worker has built what it builds lazily (a search index) before wrk starts. Failed requests
        (a worker killed by gunicorn's timeout while building) just make the round slow. Returns seconds."""
        workers = max(1, int(self.env.get("WEB_CONCURRENCY", "1")))
        started, fast_rounds = time.monotonic(), 0
        clients = [HttpClient(self.base_url, timeout=120) for _ in range(2 * workers)]

        def one(client: HttpClient) -> tuple[int | None, float]:
            t0 = time.monotonic()
            try:
                status, _ = client.request("GET", path, headers=headers)
            except (OSError, http.client.HTTPException):
                client.close()
                return None, time.monotonic() - t0
            return status, time.monotonic() - t0

        try:
            with ThreadPoolExecutor(len(clients)) as pool:
                while time.monotonic() - started < timeout:
                    results = list(pool.map(one, clients))
                    timeouts = self.events()["worker_timeouts"]
                    if timeouts >= 2 * workers:  # every worker killed twice: it will not get warm this way
                        break
                    if not timeouts and any(status is not None and status >= 500 and status not in (502, 503, 504)
                                            for status, _ in results):
                        raise LoadgenError(f"warm-up of {path}: server error {results}; see {self.log_path}")
                    fast = all(status is not None and status < 500 and t < fast_s for status, t in results)
                    fast_rounds = fast_rounds + 1 if fast else 0
                    if fast_rounds >= 2:
                        return time.monotonic() - started
                    for client in clients:  # new connections spread over the workers
                        client.close()
        finally:
            for client in clients:
                client.close()
        events = self.events()
        if events["worker_timeouts"]:
            raise LoadgenError(
                f"workers never answered {path}: gunicorn killed them {events['worker_timeouts']} times for exceeding "
                f"the worker timeout (GUNICORN_TIMEOUT={self.env.get('GUNICORN_TIMEOUT', '30')} s) while the first "
                f"request built what it needs (the search index?). A busy machine makes this worse; "
                f"`GUNICORN_TIMEOUT=120 make bench` measures the steady state anyway. Log: {self.log_path}")
        raise LoadgenError(f"workers not warm for {path} after {timeout:.0f}s; see {self.log_path}")

    def events(self) -> dict[str, int]:
        """Worker timeouts and boots logged by gunicorn so far (a boot beyond WEB_CONCURRENCY is a restart)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        boots = text.count("Booting worker with pid")
        return {"worker_timeouts": text.count("WORKER TIMEOUT"),
                "worker_restarts": max(0, boots - int(self.env.get("WEB_CONCURRENCY", "1")))}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        if self._ctl_dir:
            shutil.rmtree(self._ctl_dir, ignore_errors=True)
            self._ctl_dir = None

    def __enter__(self) -> "GunicornServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def route_missing(client: HttpClient, method: str, path: str, body: Any = None,
                  headers: dict[str, str] | None = None) -> tuple[bool, int, Any]:
    """(missing, status, body) for a probe that must not be 404 when the route exists (so a 404
    means the endpoint has not been built yet)."""
    status, data = client.request(method, path, body, headers)
    return status == 404, status, data


_lock = threading.Lock()


def log(message: str) -> None:
    with _lock:
        print(message, flush=True)
