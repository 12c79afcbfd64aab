"""Real processes for the reliability tests: our own Redis, PostgreSQL cluster and gunicorn, on loopback.

    with RedisServer(tmp) as redis_server, PostgresCluster(tmp) as pg:
        url = pg.create_database("ias_faults")
        prepare_database(url)                                   # tables + reference data
        with Gunicorn(tmp, database_url=url, redis_url=redis_server.url, workers=2) as server:
            requests.get(server.url + "/readyz")

Every process is started by us, on 127.0.0.1 and a free port, and stopped in `close()` (also on
errors: use them as context managers or from fixtures with `finally`). PostgreSQL runs as the
unprivileged `iastest` user when the tests run as root, as scripts/services.sh does. Stopping or
restarting these servers never touches the services of the rest of the suite.

`make_wsgi_app()` is the gunicorn entry point of these tests: the real `create_app()` plus config
overrides from IAS_TEST_APP_OVERRIDES (JSON), an `X-Test-Worker` header naming the worker pid, an `X-Test-Delay` request header that holds the
worker before the view (so that concurrent requests spread over workers), and an
`X-Test-Slow-Submit` request header that pauses an application submission half written, so
that a test can kill workers while submissions are in flight.
"""
from __future__ import annotations

import base64
import glob
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PG_USER = "iastest"
SECRET_NAMES = ("SECRET_KEY", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "KEY_ENCRYPTION_KEY", "IDEMPOTENCY_HMAC_KEY")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is truthy or `timeout` seconds pass; returns the last outcome."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - a server that is still starting raises anything
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def random_secrets() -> dict:
    return {name: base64.b64encode(os.urandom(32)).decode() for name in SECRET_NAMES}


def services_env() -> dict:
    """TEST_* variables of the suite's services: the environment, then the SERVICES_ENV_FILE."""
    values = {}
    path = os.environ.get("SERVICES_ENV_FILE")
    if path and os.path.exists(path):
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):]
            name, sep, value = line.partition("=")
            if sep and name.startswith("TEST_"):
                values[name] = value.strip().strip("'\"")
    values.update({k: v for k, v in os.environ.items() if k.startswith("TEST_")})
    return values


def pg_bin() -> str | None:
    """Directory of initdb / pg_ctl: TEST_PG_BIN, else the newest /usr/lib/postgresql/*/bin."""
    configured = services_env().get("TEST_PG_BIN")
    if configured and os.path.exists(os.path.join(configured, "pg_ctl")):
        return configured
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")])
    return os.path.dirname(found[-1]) if found else None


def redis_server_bin() -> str | None:
    return shutil.which("redis-server")


def process_tools_missing() -> str | None:
    """Why the process-based tests cannot run here, or None."""
    if not redis_server_bin():
        return "redis-server is not installed"
    if not pg_bin():
        return "PostgreSQL binaries (TEST_PG_BIN) are not available"
    if os.geteuid() == 0 and not _user_exists(PG_USER) and not shutil.which("useradd"):
        return f"running as root without the unprivileged user {PG_USER}"
    return None


def _user_exists(name: str) -> bool:
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def private_dir(prefix: str) -> str:
    """A temporary directory the unprivileged PostgreSQL user can traverse."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


class RedisServer:
    """redis-server in the foreground (our child), no persistence; stop / start keep the port."""

    def __init__(self, directory: str, port: int | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> "RedisServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(os.path.join(self.directory, f"redis-{self.port}.log"), "ab")
        self.proc = subprocess.Popen(
            [redis_server_bin(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        if not wait_for(self.ping, 15):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        _stop_process(self.proc)
        wait_for(lambda: not self.ping(), 5)

    def restart(self) -> None:
        self.stop()
        self.start()

    close = stop

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb in `directory`), run as an unprivileged user when root."""

    def __init__(self, directory: str, port: int | None = None):
        self.bin = pg_bin()
        self.port = port or free_port()
        self.home = os.path.join(directory, "pg")
        self.data = os.path.join(self.home, "data")
        self.log = os.path.join(self.home, "server.log")
        self.as_root = os.geteuid() == 0

    def _run(self, command: str, timeout: float = 60) -> None:
        if self.as_root:
            argv = ["su", "-s", "/bin/sh", PG_USER, "-c", command]
        else:
            argv = ["sh", "-c", command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"{command!r} failed: {result.stdout}{result.stderr}")

    def _ctl(self, action: str, *extra: str, timeout: float = 60) -> None:
        options = (f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        parts = [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "30", action,
                 *extra]
        if action in ("start", "restart"):
            parts += ["-o", options]
        self._run(" ".join(shlex.quote(p) for p in parts) + " >/dev/null", timeout=timeout)

    def start(self) -> "PostgresCluster":
        if not os.path.exists(self.data):
            os.makedirs(self.home, exist_ok=True)
            if self.as_root:
                if not _user_exists(PG_USER):
                    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                    PG_USER], check=True)
                shutil.chown(self.home, PG_USER)
            self._run(" ".join(shlex.quote(p) for p in (
                os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "ias", "-A", "trust", "-E", "UTF8",
                "--locale=C.UTF-8")) + " >/dev/null 2>&1")
        self._ctl("start")
        return self

    def stop(self, mode: str = "fast") -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._ctl("stop", "-m", mode)
            except RuntimeError:
                if mode != "immediate":
                    self._ctl("stop", "-m", "immediate")

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://ias@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", **kwargs):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.port, user="ias", dbname=database, connect_timeout=5,
                               **kwargs)

    def create_database(self, name: str) -> str:
        with self.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()


def app_config(database_url: str, redis_url: str | None, secrets: dict, **overrides) -> dict:
    """Config of an in-process app on these services (the same values the gunicorn workers get)."""
    return {"APP_ENV": "test", "TESTING": True, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "PUBLIC_BASE_URL": "http://localhost", **secrets, **overrides}


def prepare_database(config: dict):
    """Tables (Alembic when migrations exist, else from the models) and reference data; returns the app."""
    from app.schema_migrations import upgrade_schema

    from app import create_app
    from app.cli import run_seeders
    from app.extensions import db
    application = create_app(config)
    with application.app_context():
        versions = ROOT / "migrations" / "versions"
        if versions.is_dir() and any(name.endswith(".py") for name in os.listdir(versions)):
            upgrade_schema()
        else:
            db.create_all()
        run_seeders()
    return application


def dispose(application) -> None:
    from app.extensions import db
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py` serving `tests.support.procs:make_wsgi_app()` on a free loopback port."""

    def __init__(self, directory: str, *, database_url: str, redis_url: str | None, secrets: dict,
                 workers: int = 2, threads: int = 1, timeout: int = 30, overrides: dict | None = None):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.marker_dir = os.path.join(directory, f"gunicorn-{self.port}-inflight")
        os.makedirs(self.marker_dir, exist_ok=True)
        self.log_path = os.path.join(directory, f"gunicorn-{self.port}.log")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT), "APP_ENV": "test", "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": "http://localhost", "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads), "GUNICORN_TIMEOUT": str(timeout),
            "IAS_TEST_APP_OVERRIDES": json.dumps(overrides or {}), "IAS_TEST_MARKERS": self.marker_dir,
            **secrets,
        }
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.proc: subprocess.Popen | None = None
        self.seen_workers: set[int] = set()

    def start(self) -> "Gunicorn":
        import requests
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--no-control-socket",
             "tests.support.procs:make_wsgi_app()"],
            cwd=str(ROOT), env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        ok = wait_for(lambda: requests.get(self.url + "/healthz", timeout=2).status_code == 200, 60, 0.2)
        if not ok:
            self.close()
            raise RuntimeError("gunicorn did not start:\n" + self.log_tail())
        return self

    def worker_pids(self) -> list[int]:
        """Current worker processes (children of the master)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return []
        pids = [int(pid) for pid in children]
        self.seen_workers.update(pids)
        return pids

    def wait_for_workers(self, count: int, timeout: float = 90) -> bool:
        """Until `count` distinct workers have answered (a worker that is still importing the app
        answers nothing, so "processes exist" is not "workers serve")."""
        import requests
        from concurrent.futures import ThreadPoolExecutor
        seen: set[str] = set()

        def probe(_index):
            try:
                response = requests.get(self.url + "/healthz", headers={"X-Test-Delay": "0.3"}, timeout=5)
                return response.headers.get("X-Test-Worker") if response.status_code == 200 else None
            except requests.RequestException:
                return None

        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=count * 2) as pool:
            while time.monotonic() < deadline:
                alive = set(map(str, self.worker_pids()))
                seen = {pid for pid in seen if pid in alive}
                seen.update(pid for pid in pool.map(probe, range(count * 2)) if pid)
                if len(seen & alive) >= count:
                    return True
                time.sleep(0.2)
        return False

    def kill_workers(self) -> list[int]:
        """SIGKILL every current worker (the master stays and forks new ones); returns the pids."""
        pids = self.worker_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def inflight_markers(self) -> list[str]:
        return os.listdir(self.marker_dir)

    def log_tail(self, size: int = 4000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is None:
            return
        self.worker_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # gunicorn: quick shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        _stop_process(self.proc, timeout=10)
        for pid in self.seen_workers:  # orphans, should the master have died first
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            if _is_child_of_gunicorn(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def _is_child_of_gunicorn(pid: int) -> bool:
    try:
        return "gunicorn" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return False


class _NamedWorker:
    """WSGI middleware of the test workers: `X-Test-Delay: seconds` holds the worker a moment, so that
    concurrent requests spread over the workers instead of one fast worker answering them all in turn, and
    every answer (the page server's too) names the worker that gave it in `X-Test-Worker`."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        delay = environ.get("HTTP_X_TEST_DELAY")
        if delay:
            time.sleep(min(float(delay), 2.0))

        def named(status, headers, exc_info=None):
            headers.append(("X-Test-Worker", str(os.getpid())))  # at answer time: the app may be loaded pre-fork
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, named)


def make_wsgi_app():
    """gunicorn entry point (see the module docstring). Test code only: never imported by the app."""
    from flask import request

    from app import create_app
    from app.applications import materials

    application = create_app(json.loads(os.environ.get("IAS_TEST_APP_OVERRIDES") or "{}"))

    application.wsgi_app = _NamedWorker(application.wsgi_app)  # outermost: early answers are named too

    markers = os.environ.get("IAS_TEST_MARKERS")
    original = materials.add_rows

    def slow_add_rows(app_row, plan, **kwargs):
        """`X-Test-Slow-Submit: seconds`: pause between the idempotency-key insert and the commit, with
        the application and its materials flushed into the open transaction (a half-written
        application), after leaving a marker file so that the test knows when to kill."""
        original(app_row, plan, **kwargs)
        pause = float(request.headers.get("X-Test-Slow-Submit") or 0)
        if pause and markers:
            from app.extensions import db
            db.session.flush()
            Path(markers, f"{os.getpid()}-{uuid.uuid4().hex}").touch()
            time.sleep(min(pause, 5.0))

    materials.add_rows = slow_add_rows
    return application


@contextmanager
def served_stack(prefix: str, database: str, *, workers: int, threads: int = 1,
                 overrides: dict | None = None):
    """Own Redis + PostgreSQL with the schema and reference data, an in-process set-up app, and
    gunicorn serving the same database, Redis and secrets; everything stopped on exit."""
    directory = private_dir(prefix)
    redis_server = RedisServer(directory)
    cluster = PostgresCluster(directory)
    setup_app = server = None
    try:
        redis_server.start()
        cluster.start()
        database_url = cluster.create_database(database)
        secrets = random_secrets()
        setup_app = prepare_database(app_config(database_url, redis_server.url, secrets))
        server = Gunicorn(directory, database_url=database_url, redis_url=redis_server.url, secrets=secrets,
                          workers=workers, threads=threads, overrides=overrides or {}).start()
        assert server.wait_for_workers(workers)
        yield {"app": setup_app, "server": server, "redis": redis_server, "cluster": cluster,
               "database": database, "directory": directory}
    finally:
        if server is not None:
            server.close()
        if setup_app is not None:
            dispose(setup_app)
        cluster.close()
        redis_server.stop()
        shutil.rmtree(directory, ignore_errors=True)
