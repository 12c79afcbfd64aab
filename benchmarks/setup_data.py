"""Data for the load runs: services (PostgreSQL + Redis), one database per catalogue, and what the
measured requests need (a holder with licenses, clients, pools of one-time codes and refresh tokens).

Operator actions (population registry entries, API clients) use the same service functions as the
`flask registry ...` / `flask clients create` commands; everything a user or an issuer does goes
through the HTTP API of the running server. Only the refresh-token pool is minted in-process
(`app.identity.sessions`), because minting tens of thousands through the password grant would mean as many
Argon2 hashes.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .loadgen import ROOT, HttpClient, LoadgenError, log

API = "/api/v1"
SECRET_NAMES = ("SECRET_KEY", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "KEY_ENCRYPTION_KEY", "IDEMPOTENCY_HMAC_KEY")
PASSWORD = "Bench2025pass"
# The limits stay active (every request still counts against Redis); only the thresholds are raised,
# or a load run from one loopback address would measure 429s.
RAISED_LIMITS = {"AUTH_RATE_LIMIT": "100000000/minute", "SEARCH_RATE_LIMIT": "100000000/minute",
                 "VERIFY_RATE_LIMIT": "100000000/minute"}

WSGI_TARGET = "wsgi:app"
PREFERRED_LICENSE_TYPES = ("居民身份证", "机动车驾驶证", "居住证")
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


class SetupSkipped(Exception):
    """A target cannot run yet (its endpoint or CLI command is not there); the message says why."""


# --- PostgreSQL + Redis ------------------------------------------------------------------------

class Services:
    """`scripts/services.sh start DIR` / `stop DIR`: throwaway PostgreSQL and Redis on loopback."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ias-bench-services."))
        self.env: dict[str, str] = {}
        self.started = False

    def start(self) -> "Services":
        proc = subprocess.run([str(ROOT / "scripts" / "services.sh"), "start", str(self.dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        self.started = True
        if proc.returncode != 0:
            raise LoadgenError(f"services.sh start failed: {proc.stderr[-1500:] or proc.stdout[-1500:]}")
        log(proc.stdout.strip())
        for line in (self.dir / "env").read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                self.env[name] = value
        return self

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(ROOT / "scripts" / "services.sh"), "stop", str(self.dir)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def versions(self) -> dict[str, str]:
        out = {}
        for name, cmd in (("postgresql", [f"{self.env.get('TEST_PG_BIN', '')}/postgres", "--version"]),
                          ("redis", ["redis-server", "--version"])):
            try:
                text = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
            except OSError:
                text = "unavailable"
            out[name] = text.replace("postgres (PostgreSQL) ", "").replace("Redis server ", "")
        return out

    def pids(self) -> list[int]:
        """The PostgreSQL postmaster and the Redis server (both daemonized, so not our children)."""
        found = []
        for path in (self.dir / "pg" / "data" / "postmaster.pid", self.dir / "redis.pid"):
            try:
                found.append(int(path.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return found

    def round_trips_us(self, n: int = 2000) -> dict[str, float]:
        """Mean of n loopback round trips: Redis PING and PostgreSQL SELECT 1 (µs)."""
        import psycopg
        import redis
        client = redis.Redis.from_url(self.redis_url(0))
        client.ping()
        t0 = time.perf_counter()
        for _ in range(n):
            client.ping()
        redis_us = (time.perf_counter() - t0) / n * 1e6
        client.close()
        with psycopg.connect(f"postgresql://ias@127.0.0.1:{self.env['TEST_PG_PORT']}/postgres") as conn:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            t0 = time.perf_counter()
            for _ in range(n):
                cur.execute("SELECT 1")
                cur.fetchone()
            pg_us = (time.perf_counter() - t0) / n * 1e6
        return {"redis_ping": round(redis_us, 1), "postgresql_select_1": round(pg_us, 1)}

    def create_database(self, name: str) -> str:
        psql = [f"{self.env['TEST_PG_BIN']}/psql", "-h", "127.0.0.1", "-p", self.env["TEST_PG_PORT"],
                "-U", "ias", "-d", "postgres", "-qc", f"CREATE DATABASE {name}"]
        proc = subprocess.run(psql, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise LoadgenError(f"CREATE DATABASE {name}: {proc.stderr.strip()}")
        return f"postgresql+psycopg://ias@127.0.0.1:{self.env['TEST_PG_PORT']}/{name}"

    def redis_url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.env['TEST_REDIS_PORT']}/{db}"

    def __enter__(self) -> "Services":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- one application deployment (database + Redis db + secrets) -------------------------------

@dataclass
class Deployment:
    """The settings shared by the gunicorn servers and the in-process setup app of one database."""

    name: str
    database_url: str
    redis_url: str
    port: int
    secrets: dict[str, str] = field(default_factory=lambda: {
        name: base64.b64encode(secrets.token_bytes(32)).decode() for name in SECRET_NAMES})

    def settings(self) -> dict[str, str]:
        return {"APP_ENV": "production", "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}", **self.secrets, **RAISED_LIMITS}

    def server_env(self, base: dict[str, str], prometheus_dir: str) -> dict[str, str]:
        env = {k: v for k, v in base.items() if not k.startswith(("TEST_", "DATABASE_", "REDIS_"))}
        return {**env, **self.settings(), "PROMETHEUS_MULTIPROC_DIR": prometheus_dir, "LOG_LEVEL": "INFO"}

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DATABASE_", "REDIS_"))}
        return {**env, **self.settings(), "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}

    def flask(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*FLASK, *args], cwd=ROOT, env=self.cli_env(), capture_output=True, text=True,
                              timeout=timeout)

    _app: Any = field(default=None, repr=False, compare=False)

    def app(self):
        """The app in-process against the same database, Redis and secrets (for operator actions)."""
        if self._app is None:
            from app import create_app
            self._app = create_app({**self.settings(), "LOG_LEVEL": "WARNING"})
        return self._app

    def dispose(self) -> None:
        if self._app is not None:
            from app.extensions import db
            with self._app.app_context():
                db.session.remove()
                db.engine.dispose()
            self._app = None


def _checked(proc: subprocess.CompletedProcess, what: str) -> str:
    if proc.returncode != 0:
        raise LoadgenError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return proc.stdout


def prepare_database(dep: Deployment, *, catalogue_items: int | None = None) -> list[str]:
    """Schema (migrations when there are any, else create_all), `flask seed`, and for a large catalogue
    `flask catalogue generate --items N`. Returns notes; raises SetupSkipped when the generator is missing."""
    notes = []
    started = time.monotonic()
    versions = ROOT / "migrations" / "versions"
    if any(p.suffix == ".py" for p in versions.glob("*.py")):
        _checked(dep.flask("db", "upgrade"), "flask db upgrade")
        notes.append("schema: flask db upgrade")
    else:
        code = ("from app import create_app; from app.extensions import db; "
                "a = create_app(); a.app_context().push(); db.create_all()")
        _checked(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dep.cli_env(), capture_output=True,
                                text=True, timeout=300), "db.create_all()")
        notes.append("schema: db.create_all() (no migrations yet)")
    out = _checked(dep.flask("seed"), "flask seed")
    log(f"  [{dep.name}] seed: {' | '.join(line for line in out.splitlines() if line.strip())}")
    if catalogue_items:
        help_proc = dep.flask("catalogue", "generate", "--help", timeout=120)
        if help_proc.returncode != 0:
            raise SetupSkipped("`flask catalogue generate` is not available yet: "
                               + (help_proc.stderr or help_proc.stdout).strip().splitlines()[-1][:200])
        t0 = time.monotonic()
        out = _checked(dep.flask("catalogue", "generate", "--items", str(catalogue_items), timeout=900),
                       f"flask catalogue generate --items {catalogue_items}")
        log(f"  [{dep.name}] catalogue generate: {out.strip().splitlines()[-1] if out.strip() else 'done'} "
            f"({time.monotonic() - t0:.0f}s)")
        notes.append(f"flask catalogue generate --items {catalogue_items}: {time.monotonic() - t0:.0f}s")
    log(f"  [{dep.name}] database ready in {time.monotonic() - started:.0f}s")
    return notes


# --- identities ----------------------------------------------------------------------------------

def _id_number(rnd_seed: int) -> str:
    from app.identity.identifiers import id_check_char
    body = f"370102{date(1985, 1, 1) + timedelta(days=rnd_seed % 9000):%Y%m%d}{rnd_seed % 1000:03d}"
    return body + id_check_char(body)


def _phone(seed: int) -> str:
    return f"139{seed % 100_000_000:08d}"


@dataclass
class Holder:
    id_number: str
    name: str
    phone: str
    subject_id: str


def create_holder(dep: Deployment, api: HttpClient, seed: int, name: str = "李明") -> Holder:
    """A resident in the population registry (operator action), registered through the API."""
    from app.extensions import db
    from app.identity import registries
    id_number, phone = _id_number(seed), _phone(seed)
    with dep.app().app_context():
        registries.add_person(id_number=id_number, name=name, phone=phone)
        db.session.commit()
    status, body = api.request("POST", f"{API}/auth/sms-codes", {"phone": phone, "purpose": "register"})
    if status != 202:
        raise LoadgenError(f"register code: {status} {body}")
    from app.identity import sms
    with dep.app().app_context():
        code = sms.last_outbox_code(phone)
    status, body = api.request("POST", f"{API}/auth/register", {"id_number": id_number, "name": name, "phone": phone,
                                                                "sms_code": code, "password": PASSWORD})
    if status != 201:
        raise LoadgenError(f"register holder: {status} {body}")
    return Holder(id_number, name, phone, body["subject_id"])


def login(api: HttpClient, username: str) -> dict:
    status, body = api.request("POST", f"{API}/auth/token",
                               {"grant_type": "password", "username": username, "password": PASSWORD})
    if status != 200:
        raise LoadgenError(f"password grant: {status} {body}")
    return body


def client_token(dep: Deployment, api: HttpClient, kind: str, license_types=()) -> str:
    """An API client (as `flask clients create` makes it) and its client_credentials token."""
    from app.identity import clients
    with dep.app().app_context():
        client, secret = clients.create_client(kind=kind, name=f"压测{kind}", license_types=list(license_types))
        client_id = client.client_id
    status, body = api.request("POST", f"{API}/auth/token", {"grant_type": "client_credentials",
                                                              "client_id": client_id, "client_secret": secret})
    if status != 200:
        raise LoadgenError(f"client_credentials ({kind}): {status} {body}")
    return body["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- refresh tokens --------------------------------------------------------------------------------

def mint_refresh_tokens(dep: Deployment, holder: Holder, count: int, batch: int = 500) -> list[str]:
    """`count` independent refresh tokens (each its own family) for the holder."""
    from app.extensions import db
    from app.identity import persons, sessions
    tokens: list[str] = []
    with dep.app().app_context():
        person = persons.find_person_by_id_number(holder.id_number)
        for start in range(0, count, batch):
            for _ in range(min(batch, count - start)):
                body = sessions.issue_person_pair(person, "app")
                tokens.append(body["refresh_token"])
            db.session.commit()
    return tokens


# --- catalogue -------------------------------------------------------------------------------------

def service_codes(api: HttpClient, limit: int = 200) -> list[str]:
    """Service codes listed by GET /services (raises SetupSkipped when the endpoint is not there)."""
    codes: list[str] = []
    page = 1
    while len(codes) < limit:
        status, body = api.request("GET", f"{API}/services?page={page}&page_size=100")
        if status == 404:
            raise SetupSkipped("GET /api/v1/services answers 404 (catalogue endpoints not built yet)")
        if status != 200 or not isinstance(body, dict):
            raise SetupSkipped(f"GET /api/v1/services answers {status}: {str(body)[:200]}")
        items = body.get("items") or []
        codes += [item["code"] for item in items if "code" in item]
        if len(items) < 100:
            break
        page += 1
    if not codes:
        raise SetupSkipped("GET /api/v1/services lists no services (catalogue not seeded?)")
    return codes[:limit]


# --- licenses --------------------------------------------------------------------------------------

def _field_value(spec: dict, holder: Holder, today: date) -> Any:
    name, kind = spec.get("name", ""), spec.get("type", "text")
    if kind == "id_number" or name == "id_number":
        return holder.id_number
    if name in ("name", "holder_name"):
        return holder.name
    if kind == "date":
        if "birth" in name:
            return f"{holder.id_number[6:10]}-{holder.id_number[10:12]}-{holder.id_number[12:14]}"
        if "until" in name or "expir" in name or "end" in name:
            return (today + timedelta(days=3650)).isoformat()
        if "from" in name or "start" in name:  # the license's own validity, as the request states it
            return (today - timedelta(days=30)).isoformat()
        return (today - timedelta(days=365)).isoformat()
    if kind == "number":
        return 1
    gender = "男" if int(holder.id_number[16]) % 2 else "女"  # what the ID number states (issuance checks it)
    return {"gender": gender, "sex": gender, "ethnicity": "汉族", "nationality": "中国",
            "address": "山东省济南市历下区经十路1号", "issuing_authority": "济南市公安局历下分局",
            "phone": holder.phone}.get(name, "测试")


def _as_list(body: Any) -> list:
    return body.get("items", []) if isinstance(body, dict) else (body or [])


def issue_licenses(api: HttpClient, dep: Deployment, holder: Holder, *, want: int = 3) -> tuple[list[dict], str]:
    """Issue up to `want` licenses of different person types to the holder through POST /licenses
    (issuer client). Returns (license types issued, issuer token); SetupSkipped when the wallet is missing."""
    status, body = api.request("GET", f"{API}/license-types")
    if status == 404:
        raise SetupSkipped("GET /api/v1/license-types answers 404 (wallet endpoints not built yet)")
    types = [t for t in _as_list(body) if t.get("holder_type") == "person"]
    if not types:
        raise SetupSkipped(f"GET /api/v1/license-types: no person license types ({status})")
    types.sort(key=lambda t: (PREFERRED_LICENSE_TYPES.index(t["name"]) if t["name"] in PREFERRED_LICENSE_TYPES
                              else len(PREFERRED_LICENSE_TYPES)))
    candidates = types[:8]
    token = client_token(dep, api, "issuer", [t["code"] for t in candidates])
    today, issued, errors = date.today(), [], []
    for spec in candidates:
        fields = {f["name"]: _field_value(f, holder, today) for f in spec.get("fields", []) if isinstance(f, dict)}
        payload = {"license_type": spec["code"], "holder_id_number": holder.id_number, "fields": fields,
                   "valid_from": (today - timedelta(days=30)).isoformat(),
                   "valid_until": (today + timedelta(days=3650)).isoformat()}
        status, body = api.request("POST", f"{API}/licenses", payload, bearer(token))
        if status == 404 and not issued and "license_id" not in str(body):
            raise SetupSkipped("POST /api/v1/licenses answers 404 (license issuance not built yet)")
        if status == 201:
            issued.append({**spec, "license_id": body["license_id"]})
            if len(issued) >= want:
                break
        else:
            errors.append(f"{spec['name']}: {status} {str(body)[:300]}")
    if not issued:
        raise SetupSkipped("no license could be issued through POST /api/v1/licenses: " + "; ".join(errors[:3]))
    return issued, token


def create_presentations(base_url: str, holder_token: str, licenses: list[dict], count: int, *,
                         workers: int = 4, deadline_s: float = 150.0) -> list[str]:
    """`count` online presentations (one-time codes, ttl 300 s) through
    POST /wallet/licenses/{id}/presentations, round-robin over `licenses`, with a few client threads.
    Stops at `deadline_s`; raises SetupSkipped when none can be created."""
    requests = []
    for license in licenses:
        disclose = list(license.get("default_disclose") or [])
        if not disclose:
            disclose = [f["name"] for f in license.get("fields", []) if not f.get("sensitive")][:2]
        requests.append((f"{API}/wallet/licenses/{license['license_id']}/presentations",
                         {"disclose": disclose, "purpose": "入住登记核验", "mode": "online", "ttl_seconds": 300}))
    started = time.monotonic()
    first_error: list[str] = []
    stop = []

    def work(worker: int) -> list[str]:
        api, codes = HttpClient(base_url), []
        try:
            for i in range(worker, count, workers):
                if stop or time.monotonic() - started > deadline_s:
                    break
                path, payload = requests[i % len(requests)]
                status, body = api.request("POST", path, payload, bearer(holder_token))
                if status == 201 and isinstance(body, dict) and body.get("code"):
                    codes.append(body["code"])
                    continue
                if not first_error:
                    first_error.append(f"{status} {str(body)[:300]}")
                if status in (400, 401, 403, 404, 405, 422):
                    stop.append(True)
        finally:
            api.close()
        return codes

    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(work, range(workers)))
    codes = [code for group in zip(*parts) for code in group]  # creation order, roughly
    codes += [code for part in parts for code in part[min(map(len, parts)):]]
    if not codes:
        reason = first_error[0] if first_error else "no codes"
        if reason.startswith("404"):
            raise SetupSkipped("POST /api/v1/wallet/licenses/{id}/presentations answers 404 (not built yet)")
        raise SetupSkipped(f"no presentation could be created: {reason}")
    if first_error:
        log(f"  presentations: first failure {first_error[0]}")
    return codes


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def json_line(body: dict) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def shell(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
