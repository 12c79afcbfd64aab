"""Run every benchmark and write BENCHMARKS.md (`make bench` = `python -m benchmarks.run`).

    python -m benchmarks.run                      # full run (about 5 minutes on 2 cores)
    python -m benchmarks.run --quick              # shorter runs and smaller pools (smoke test)
    python -m benchmarks.run --only search_300k   # one target (the floor always runs with load targets)
    python -m benchmarks.run --list               # the target names

Load targets are served by gunicorn with gunicorn.conf.py (WEB_CONCURRENCY sync workers, the same for
every target, the floor included) and driven by wrk over loopback. The application targets run against
PostgreSQL + Redis started by scripts/services.sh; every process and service is stopped on the way out.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

from . import bench_device, bench_hall_services, bench_personal, memory, report
from .loadgen import (LUA_DIR, ROOT, CpuMeter, GunicornServer, HttpClient, JobWorker, LoadgenError, background_cpu,
                      free_port, job_worker_pids, log, profile_summary, profile_worker, run_wrk, wrk_version)
from .setup_data import (API, Deployment, Services, SetupSkipped, bearer, client_token, create_holder,
                         create_presentations, issue_licenses, json_line, login, mint_refresh_tokens,
                         prepare_database, service_codes, write_lines, WSGI_TARGET)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BUSY_THRESHOLD = 0.10  # background CPU share above which a row is flagged
BUSY_VERIFICATIONS = 50.0  # per second, of another holder's codes, during the busy inbox row


@dataclass(frozen=True)
class Settings:
    duration: float = 10.0
    warmup: float = 2.0
    connections: int = 16
    wrk_threads: int = 1
    workers: int = 2
    threads: int = 1
    large_items: int = 300_000
    refresh_pool: int = 40_000
    verification_pool: int = 20_000
    warm_pool_fraction: float = 0.25
    search_sizes: tuple[int, ...] = (2_000, 20_000, 100_000, 300_000)
    search_rounds: int = 10
    sdjwt_iterations: int = 2_000
    sdjwt_rounds: int = 5
    token_iterations: int = 2_000
    token_rounds: int = 5
    cli_rounds: int = 7


QUICK = dict(duration=4.0, warmup=1.0, refresh_pool=12_000, verification_pool=5_000, search_rounds=2,
             sdjwt_iterations=300, sdjwt_rounds=3, token_iterations=300, token_rounds=3, cli_rounds=2)

# name -> (label, server). Servers: floor, app (normal seed, ~2k services), large (generated catalogue).
LOAD_TARGETS: dict[str, tuple[str, str]] = {
    "floor": ("floor: bare Flask JSON route", "floor"),
    "healthz": ("GET /healthz", "app"),
    "search_seeded": ("search, seeded catalogue", "app"),
    "search_300k": ("search, generated catalogue", "large"),
    "detail": ("service detail", "app"),
    "home_catalogue": ("home catalogue: hall tree, a hall, topics, bundles, a bundle", "app"),
    "catalogue_signed_in": ("searches and service details, signed in", "app"),
    "wallet": ("wallet list, opening (the page kept for the holder)", "app"),
    "wallet_read": ("wallet list, a page read from the database", "app"),
    "applications": ("application list, opening (the page kept for the person)", "app"),
    "inbox": ("inbox, opening (the page kept for the person)", "app"),
    "inbox_busy": ("inbox, opening while another holder's codes are verified", "app"),
    "verification_floor": ("ceiling: least work of an online verification (bare Flask)", "floor"),
    "daily_floor": ("ceiling: least work of a personal list (bare Flask)", "floor"),
    "refresh_floor": ("ceiling: least work of a token refresh (bare Flask)", "floor"),
    "verification": ("online verification (first use)", "app"),
    "device_verification": ("offline verification of a device presentation (phone key)", "app"),
    "refresh": ("token refresh", "app"),
    "appointment_slots": ("appointment slot listing", "app"),
    "appointment_booking": ("appointment booking", "app"),
}
APP_ORDER = ("healthz", "search_seeded", "detail", "home_catalogue", "catalogue_signed_in", "wallet", "wallet_read", "applications", "inbox", "inbox_busy", "refresh", "verification", "device_verification",
             "appointment_slots", "appointment_booking")
MICRO_TARGETS = ("micro_sdjwt", "micro_search", "micro_tokens", "micro_cli")
ALIASES = {"search_2k": "search_seeded", "search_large": "search_300k"}


# --- machine ------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    packages = {}
    for name in ("Flask", "flask-smorest", "gunicorn", "SQLAlchemy", "psycopg", "redis", "numpy", "PyJWT",
                 "cryptography", "jieba", "pypinyin", "sd-jwt"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
            "kernel": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "packages": packages, "wrk": wrk_version(), "commit": commit + (" (+ uncommitted changes)" if dirty else "")}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


# --- micro benchmarks -----------------------------------------------------------------------------

def micro_sdjwt(settings: Settings) -> dict[str, Any]:
    """Our SD-JWT VC presentation verifier vs the `sd-jwt` library on the same presentation."""
    from jwcrypto.jwk import JWK
    from sd_jwt.verifier import SDJWTVerifier

    from app.wallet.sdjwt import verify_presentation
    from .bench_sdjwt import AUD, KID, NONCE, build_presentation, ops_per_second

    now = int(time.time())
    presentation, issuer_public = build_presentation(now)
    issuer_keys, issuer_jwk = {KID: issuer_public}, JWK.from_pyca(issuer_public)

    def ours():
        return verify_presentation(presentation, issuer_keys=issuer_keys, expected_aud=AUD,
                                   expected_nonce=NONCE, now=now).payload

    def library():
        return SDJWTVerifier(presentation, lambda iss, header: issuer_jwk, AUD, NONCE).get_verified_payload()

    if ours() != library():
        raise LoadgenError("our verifier and the sd-jwt library disagree on the payload")
    ours_rates, library_rates = [], []
    for _ in range(settings.sdjwt_rounds):
        ours_rates.append(ops_per_second(ours, settings.sdjwt_iterations))
        library_rates.append(ops_per_second(library, settings.sdjwt_iterations))
    ours_ops, library_ops = statistics.median(ours_rates), statistics.median(library_rates)
    result = {"presentation_chars": len(presentation), "rounds": settings.sdjwt_rounds,
              "iterations": settings.sdjwt_iterations, "ours_ops": ours_ops, "library_ops": library_ops,
              "ratio": ours_ops / library_ops}
    log(f"  sd-jwt verification: ours {ours_ops:.0f}/s, sd-jwt library {library_ops:.0f}/s "
        f"({result['ratio']:.2f}x)")
    return result


def micro_search(settings: Settings) -> dict[str, Any]:
    """SearchIndex build time, memory and query latency at growing catalogue sizes (bench_search.run)."""
    from . import bench_search
    rows = bench_search.run(settings.search_sizes, settings.search_rounds, False)
    return {"rounds": settings.search_rounds, "queries": len(bench_search.QUERIES), "rows": rows}


def micro_cli(settings: Settings) -> dict[str, Any]:
    """`flask --app wsgi --help` beside the same command on a bare Flask app (bench_cli.run)."""
    from . import bench_cli
    result = bench_cli.run(settings.cli_rounds)
    log(f"  flask --help: app {result['app']['wall_s']:.2f} s, bare Flask {result['floor']['wall_s']:.2f} s")
    return result


def micro_tokens(settings: Settings, dep: Deployment) -> dict[str, Any]:
    """app.security.tokens: issue (ES256 sign) and check (verify + Redis revocation lookup)."""
    from app.security import tokens
    app = dep.app()
    with app.test_request_context():
        token, _ = tokens.issue_access_token("p_bench0000000000000000", roles=["person"])
        tokens.decode_access_token(token)

        def rate(func: Callable[[], object]) -> float:
            rates = []
            for _ in range(settings.token_rounds):
                t0 = time.perf_counter()
                for _ in range(settings.token_iterations):
                    func()
                rates.append(settings.token_iterations / (time.perf_counter() - t0))
            return statistics.median(rates)

        issue = rate(lambda: tokens.issue_access_token("p_bench0000000000000000", roles=["person"]))
        check = rate(lambda: tokens.decode_access_token(token))
    log(f"  tokens: issue {issue:.0f}/s, check {check:.0f}/s")
    return {"issue_ops": issue, "check_ops": check, "iterations": settings.token_iterations,
            "rounds": settings.token_rounds, "token_chars": len(token)}


# --- load targets ---------------------------------------------------------------------------------

class LoadRunner:
    """Runs wrk against a server with warm-up and turns the output into a result row."""

    def __init__(self, settings: Settings, results: dict[str, Any]):
        self.settings, self.results = settings, results
        self.services: Services | None = None
        self.profile_dir: Path | None = None  # --profile: py-spy samples a worker and the job worker

    def own_roots(self) -> list[int]:
        return [os.getpid(), *(self.services.pids() if self.services else [])]

    def floor_rps(self) -> float | None:
        floor = self.results["load"].get("floor")
        return floor.get("rps") if floor and not floor.get("skipped") else None

    def measure(self, name: str, request: str, url: str, *, script: str | None = None,
                script_args: list[str] | None = None, warm_args: list[str] | None = None,
                headers: list[str] | None = None, notes: list[str] | None = None,
                server: GunicornServer | None = None) -> dict[str, Any]:
        s = self.settings
        common = dict(connections=s.connections, threads=s.wrk_threads, script=script, headers=headers or [])
        busy = background_cpu(self.own_roots())
        run_wrk(url, duration=s.warmup, script_args=warm_args if warm_args is not None else (script_args or []),
                **common)
        spy = job_spy = None
        if self.profile_dir is not None and server is not None and server.worker_pids():
            folded, job_folded = self.profile_dir / f"{name}.folded", self.profile_dir / f"{name}.jobs.folded"
            spy = profile_worker(server.worker_pids()[0], s.duration, folded)
            job_spy = next((profile_worker(pid, s.duration, job_folded, subprocesses=True)
                            for pid in job_worker_pids()), None)
        meter = CpuMeter(server.worker_pids() if server is not None else ()).start()
        result = run_wrk(url, duration=s.duration, script_args=script_args or [], **common)
        cpu = meter.stop()
        if spy is not None:
            spy.wait(timeout=s.duration + 30)
            if folded.exists():
                log("\n".join("    " + line for line in profile_summary(folded)))
            if job_spy is not None:
                job_spy.wait(timeout=s.duration + 30)
                if job_folded.exists():
                    log("\n".join(["    job worker:", *("    " + line for line in profile_summary(job_folded))]))
        row = {"name": name, "label": LOAD_TARGETS[name][0], "request": request, **result.as_dict(),
               "notes": list(notes or []), "background_cpu": round(busy, 3), "steal": round(meter.steal, 3),
               "cpu_cores": {kind: round(cores, 2) for kind, cores in cpu.items()}}
        if busy > BUSY_THRESHOLD:
            row["notes"].append(f"machine busy before the run: other processes used {busy:.0%} of the CPUs")
        if meter.steal > report.STEAL_THRESHOLD:
            row["notes"].append(f"the hypervisor took {meter.steal:.0%} of the CPU time during the run (steal)")
        floor = self.floor_rps()
        row["ratio"] = result.rps / floor if floor and name != "floor" else (1.0 if name == "floor" else None)
        lua = result.lua or {}
        total = lua.get("ok", 0) + lua.get("miss", 0)
        if lua.get("miss"):
            row["notes"].append(f"{lua['miss']} of {total} responses not as expected (statuses {lua.get('statuses')})")
        elif result.non_2xx:
            row["notes"].append(f"{result.non_2xx} non-2xx responses")
        if lua.get("exhausted"):
            row["notes"].append(f"pool of one-time bodies exhausted {lua['exhausted']} times: later requests reused "
                                "them, so the figure is not first-use only")
        if any(result.socket_errors.values()):
            row["notes"].append(f"socket errors {result.socket_errors}")
        row["valid"] = not lua.get("miss") and not result.non_2xx and not lua.get("exhausted")
        if server is not None and server.proc is not None and server.proc.poll() is not None:
            row["notes"].append("server exited during the run")
            row["valid"] = False
        log(f"  {name:13} {result.rps:9.0f} req/s  p50 {_ms(result.p50_ms)}  p99 {_ms(result.p99_ms)}"
            + (f"  x{row['ratio']:.2f} of floor" if row.get("ratio") and name != "floor" else "")
            + ("" if row["valid"] else "  [" + "; ".join(row["notes"]) + "]"))
        log("    cores used: " + ", ".join(f"{kind} {cores:.2f}" for kind, cores in cpu.items() if cores >= 0.01))
        self.results["load"][name] = row
        return row

    def skip(self, name: str, reason: str) -> None:
        log(f"  SKIP {name}: {reason}")
        self.results["load"][name] = {"name": name, "label": LOAD_TARGETS[name][0], "skipped": reason}


def _ms(value: float | None) -> str:
    return f"{value:7.2f}ms" if value is not None else "    n/a"


def server_settings(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"WEB_CONCURRENCY": str(settings.workers), "GUNICORN_THREADS": str(settings.threads),
                "APPOINTMENT_RATE_LIMIT": "1000000/hour"})  # the booking row books thousands as one person
    for name in ("GUNICORN_PRELOAD", "GUNICORN_MAX_REQUESTS", "BIND"):
        env.pop(name, None)
    return env


class AppTargets:
    """The application targets on one server (seeded ~2k catalogue) and their lazily built fixtures."""

    def __init__(self, runner: LoadRunner, dep: Deployment, server: GunicornServer, data_dir: Path):
        self.runner, self.dep, self.server, self.data_dir = runner, dep, server, data_dir
        self.api = HttpClient(server.base_url)
        self._holder = None
        self._licenses: tuple[list[dict], str] | None = None

    @property
    def settings(self) -> Settings:
        return self.runner.settings

    def holder(self):
        if self._holder is None:
            self._holder = create_holder(self.dep, self.api, seed=int(time.time()) % 100_000)
        return self._holder

    def holder_token(self) -> str:
        return login(self.api, self.holder().id_number)["access_token"]

    def licenses(self) -> list[dict]:
        if self._licenses is None:
            self._licenses = issue_licenses(self.api, self.dep, self.holder())
            log(f"  issued {len(self._licenses[0])} licenses to the holder: "
                + ", ".join(t["name"] for t in self._licenses[0]))
        return self._licenses[0]

    def run(self, name: str) -> None:
        getattr(self, "t_" + name)()

    def t_healthz(self) -> None:
        self.runner.measure("healthz", "GET /healthz", self.server.url("/healthz"), server=self.server)

    def t_search_seeded(self) -> None:
        search_target(self.runner, "search_seeded", self.server, self.api, self.dep)

    def t_detail(self) -> None:
        codes = service_codes(self.api, limit=200)
        status, body = self.api.request("GET", f"{API}/services/{quote(codes[0])}")
        if status != 200:
            raise SetupSkipped(f"GET /api/v1/services/{{code}} answers {status} for a listed code "
                               f"({'not built yet' if status == 404 else str(body)[:150]})")
        paths = write_lines(self.data_dir / "detail_paths.txt", [f"{API}/services/{quote(c)}" for c in codes])
        self.runner.measure("detail", "GET /api/v1/services/{code}", self.server.base_url, script="paths.lua",
                            script_args=[str(paths)], server=self.server,
                            notes=[f"rotating {len(codes)} service codes"])

    def t_home_catalogue(self) -> None:
        """What the app's home screen and city picker ask without a token: the hall tree, a city's hall, the
        topics, the bundles and one bundle resolved for a hall, each rendered once per catalogue version."""
        status, body = self.api.request("GET", f"{API}/bundles")
        if status != 200 or not body.get("items"):
            raise SetupSkipped(f"GET /api/v1/bundles answers {status}: {str(body)[:150]}")
        bundle = quote(body["items"][0]["code"])
        paths = [f"{API}/halls", f"{API}/halls/370100", f"{API}/topics", f"{API}/bundles",
                 f"{API}/bundles/{bundle}?hall=370102"]
        path_file = write_lines(self.data_dir / "home_catalogue_paths.txt", paths)
        self.runner.measure("home_catalogue", "GET /api/v1/halls, /halls/{code}, /topics, /bundles, /bundles/{code}",
                            self.server.base_url, script="paths.lua", script_args=[str(path_file)], server=self.server,
                            notes=["the five reads in turn, anonymous"])

    def t_catalogue_signed_in(self) -> None:
        """The app's searches and service details as a signed-in person asks them: with their access token,
        which decides the channel they see (search.lua's 20 queries and 20 listed codes, in turn)."""
        token = self.holder_token()
        codes = service_codes(self.api, limit=20)
        searches = [f"{API}/services?q={quote(q)}&page_size=20" for q in search_lua_queries()]
        paths = [path for pair in zip(searches, (f"{API}/services/{quote(c)}" for c in codes)) for path in pair]
        for path in paths:
            status, body = self.api.request("GET", path, headers=bearer(token))
            if status != 200:
                raise SetupSkipped(f"GET {path} with a token answers {status}: {str(body)[:150]}")
        path_file = write_lines(self.data_dir / "catalogue_signed_in_paths.txt", paths)
        self.runner.measure("catalogue_signed_in", "GET /api/v1/services?q=..., /services/{code} (person token)",
                            self.server.base_url, script="paths.lua", script_args=[str(path_file)],
                            headers=[f"Authorization: Bearer {token}"], server=self.server,
                            notes=[f"{len(searches)} searches and {len(codes)} service details in turn, each asked "
                                   "before the run (rendered at the catalogue version served)"])

    def t_wallet(self) -> None:
        """The holder opens their wallet (no query arguments): after the first opening, the page kept
        for the current version of their wallet (app/wallet/page_cache.py)."""
        self._wallet_row("wallet", "", "the page kept in Redis: no database statement")

    def t_wallet_read(self) -> None:
        """The same first page asked with explicit arguments: never kept, one database read each time."""
        self._wallet_row("wallet_read", "?page=1&page_size=20", "explicit arguments: one PostgreSQL read each time")

    def _wallet_row(self, name: str, query: str, how: str) -> None:
        token = self.holder_token()
        status, body = self.api.request("GET", f"{API}/wallet/licenses", headers=bearer(token))
        if status == 404:
            raise SetupSkipped("GET /api/v1/wallet/licenses answers 404 (wallet endpoints not built yet)")
        licenses = self.licenses()
        status, body = self.api.request("GET", f"{API}/wallet/licenses{query}", headers=bearer(token))
        listed = len(body.get("items", [])) if isinstance(body, dict) else None
        if status != 200:
            raise SetupSkipped(f"GET /api/v1/wallet/licenses answers {status}: {str(body)[:200]}")
        paths = write_lines(self.data_dir / f"{name}_paths.txt", [f"{API}/wallet/licenses{query}"])
        self.runner.measure(name, f"GET /api/v1/wallet/licenses{query} (holder token)", self.server.base_url,
                            script="paths.lua", script_args=[str(paths)],
                            headers=[f"Authorization: Bearer {token}"], server=self.server,
                            notes=[f"holder with {listed if listed is not None else len(licenses)} licenses; {how}"])

    def t_applications(self) -> None:
        """A person with a few applications (instant approvals: each also leaves inbox messages)."""
        token = self.holder_token()
        listed = bench_personal.ensure_applications(self, token)
        self._personal_row("applications", "/applications", token,
                           f"person with {listed} applications; the page kept in Redis after the first opening")

    def t_inbox(self) -> None:
        token = self.holder_token()
        listed = bench_personal.ensure_inbox(self, token)
        self._personal_row("inbox", "/inbox", token, f"person with {listed} messages in the inbox; the page kept in "
                           "Redis after the first opening (the journal caught up with first)")

    def t_inbox_busy(self) -> None:
        """The inbox while another holder's codes are verified: their answers wait in the journal for the
        drainer, as they do all day in production."""
        s, token = self.settings, self.holder_token()
        listed = bench_personal.ensure_inbox(self, token)
        other = create_holder(self.dep, self.api, seed=(int(time.time()) + 7) % 100_000, name="王芳")
        other_licenses, _ = issue_licenses(self.api, self.dep, other)
        wanted = int(BUSY_VERIFICATIONS * (s.warmup + s.duration + 10))
        codes = create_presentations(self.server.base_url, login(self.api, other.id_number)["access_token"],
                                     other_licenses, wanted)
        with bench_personal.verifying(self.server.base_url, codes, BUSY_VERIFICATIONS) as counts:
            row = self._personal_row("inbox_busy", "/inbox", token, f"person with {listed} messages in the inbox; "
                                     f"another holder's codes verified at {BUSY_VERIFICATIONS:.0f}/s meanwhile")
        row["notes"].append(f"{counts['valid']} background verifications valid, {counts['other']} otherwise")
        log(f"  inbox_busy: {counts['valid']} background verifications valid, {counts['other']} otherwise")

    def _personal_row(self, name: str, path: str, token: str, note: str) -> dict:
        paths = write_lines(self.data_dir / f"{name}_paths.txt", [f"{API}{path}"])
        return self.runner.measure(name, f"GET /api/v1{path} (holder token)", self.server.base_url,
                                   script="paths.lua", script_args=[str(paths)],
                                   headers=[f"Authorization: Bearer {token}"], server=self.server, notes=[note])

    def t_refresh(self) -> None:
        """Single-use refresh tokens, minted in-process: a calibration pool first, then what warm-up and
        the measured run need at three times the calibrated rate (at most `refresh_pool`): a one-second
        calibration of a cold server has read less than half the warm rate."""
        s = self.settings
        url, threads, expect = self.server.url(f"{API}/auth/token"), str(s.wrk_threads), '"access_token"'
        t0 = time.monotonic()
        tokens = mint_refresh_tokens(self.dep, self.holder(), 600)
        status, body = self.api.request("POST", f"{API}/auth/token",
                                        {"grant_type": "refresh_token", "refresh_token": tokens.pop()})
        if status != 200:
            raise SetupSkipped(f"refresh grant answers {status}: {str(body)[:200]}")

        def bodies(batch: list[str]) -> list[str]:
            return [json_line({"grant_type": "refresh_token", "refresh_token": t}) for t in batch]

        calib = write_lines(self.data_dir / "refresh_calibration.txt", bodies(tokens))
        probe = run_wrk(url, duration=1, connections=s.connections, threads=s.wrk_threads, script="onetime.lua",
                        script_args=[str(calib), threads, expect])
        rate = max(probe.rps, 20.0)
        warm_n = int(rate * s.warmup * 3) + 20
        main_n = min(s.refresh_pool, int(rate * s.duration * 3) + 100)
        fresh = bodies(mint_refresh_tokens(self.dep, self.holder(), warm_n + main_n))
        log(f"  refresh: calibration {probe.rps:.0f}/s -> {len(fresh)} fresh tokens ({warm_n} warm-up) "
            f"minted in {time.monotonic() - t0:.0f}s")
        warm = write_lines(self.data_dir / "refresh_warm.txt", fresh[:warm_n])
        main = write_lines(self.data_dir / "refresh_main.txt", fresh[warm_n:])
        self.runner.measure("refresh", "POST /api/v1/auth/token grant_type=refresh_token", url,
                            script="onetime.lua", script_args=[str(main), threads, expect],
                            warm_args=[str(warm), threads, expect], server=self.server,
                            notes=[f"each request rotates a different single-use refresh token "
                                   f"({main_n} in the measured pool, sized from a {probe.rps:.0f}/s calibration run)"])

    def t_verification(self) -> None:
        """One-time codes live 300 s, so the pool is sized from a calibration run instead of made huge:
        create a few hundred, measure the verification rate for 1 s, then create what warm-up and the
        measured run need at three times that rate (a one-second calibration of a cold server has read less
        than half the warm rate), all within 150 s of the first code."""
        s = self.settings
        missing = self.api.request("POST", f"{API}/verifications", {"code": "00000000"})
        if missing[0] == 404:
            raise SetupSkipped("POST /api/v1/verifications answers 404 (verification not built yet)")
        licenses = self.licenses()
        verifier = client_token(self.dep, self.api, "verifier")
        holder_token = self.holder_token()
        url, threads, expect = self.server.url(f"{API}/verifications"), str(s.wrk_threads), '"valid"%s*:%s*true'
        wrk_common = dict(connections=s.connections, threads=s.wrk_threads, script="onetime.lua",
                          headers=[f"Authorization: Bearer {verifier}"])
        budget_s, t0 = 150.0, time.monotonic()

        def create(count: int) -> list[str]:
            left = budget_s - (time.monotonic() - t0)
            if left < 5:
                return []
            return create_presentations(self.server.base_url, holder_token, licenses, count, deadline_s=left)

        calibration = create(300)
        status, body = self.api.request("POST", f"{API}/verifications", {"code": calibration.pop()},
                                        bearer(verifier))
        if status != 200 or not (isinstance(body, dict) and body.get("valid") is True):
            raise SetupSkipped(f"verification of a fresh code answers {status}: {str(body)[:200]}")
        create_rate = len(calibration) / max(0.001, time.monotonic() - t0)
        calib_file = write_lines(self.data_dir / "verify_calibration.txt", [json_line({"code": c}) for c in calibration])
        probe = run_wrk(url, duration=1, script_args=[str(calib_file), threads, expect], **wrk_common)
        rate = max(probe.rps, 20.0)
        warm_n = int(rate * s.warmup * 3) + 20
        main_n = min(s.verification_pool, int(rate * s.duration * 3) + 100)
        codes = create(warm_n + main_n)
        created_s = time.monotonic() - t0
        log(f"  presentations: {create_rate:.0f}/s created through the API; calibration {probe.rps:.0f} "
            f"verifications/s -> {len(codes)} fresh codes ({warm_n} warm-up) after {created_s:.0f}s")
        if len(codes) < warm_n + 50:
            raise SetupSkipped(f"only {len(codes)} presentations could be created within {budget_s:.0f}s "
                               f"({create_rate:.0f}/s); the codes would expire before the run ends")
        bodies = [json_line({"code": c}) for c in codes]
        warm = write_lines(self.data_dir / "verify_warm.txt", bodies[:warm_n])
        main = write_lines(self.data_dir / "verify_main.txt", bodies[warm_n:])
        self.runner.measure("verification", "POST /api/v1/verifications {code} (verifier token)", url,
                            script="onetime.lua", script_args=[str(main), threads, expect],
                            warm_args=[str(warm), threads, expect], headers=wrk_common["headers"],
                            server=self.server,
                            notes=[f"first use of each one-time code ({len(bodies) - warm_n} fresh codes over "
                                   f"{len(licenses)} licenses, sized from a {probe.rps:.0f}/s calibration run)"])
        row = self.runner.results["load"].get("verification")
        if row is not None:
            row["notes"].append(journal_backlog(self.dep))

    def t_device_verification(self) -> None:
        bench_device.device_verification(self)

    def t_appointment_slots(self) -> None:
        bench_hall_services.slot_listing(self)

    def t_appointment_booking(self) -> None:
        bench_hall_services.booking(self)

    def close(self) -> None:
        self.api.close()


def _one_time_ceiling(runner: LoadRunner, floor: GunicornServer, data_dir: Path, name: str, request: str, path: str,
                      bodies: list[str], rate: int, expect: str, notes: list[str]) -> None:
    """A ceiling row of one-time requests: `bodies` split into a warm-up pool (sized at `rate` per second)
    and the measured one, each body sent once."""
    warm_n = int(rate * runner.settings.warmup)
    warm = write_lines(data_dir / f"{name}_warm.txt", bodies[:warm_n])
    main = write_lines(data_dir / f"{name}_main.txt", bodies[warm_n:])
    threads = str(runner.settings.wrk_threads)
    runner.measure(name, request, floor.url(path), script="onetime.lua", script_args=[str(main), threads, expect],
                   warm_args=[str(warm), threads, expect], server=floor, notes=notes)


def verification_floor(runner: LoadRunner, floor: GunicornServer, redis_url: str, data_dir: Path) -> None:
    """The ceiling row: one-time codes sealed by `floor_verification.prepare`, verified by the floor
    app with the least work any online verification does (sized for 4,000 verifications/s)."""
    from .floor_verification import prepare
    s = runner.settings
    codes = prepare(redis_url, int(4000 * (s.warmup + s.duration)) + 1000)
    _one_time_ceiling(runner, floor, data_dir, "verification_floor", "POST /verifications {code} (bare Flask: Redis "
                      "read, AES-GCM, status and times, Lua consume + journal)", "/verifications",
                      [json_line({"code": code}) for code in codes], 4000, '"valid"%s*:%s*true',
                      ["no token, rate limit, metrics, access log, schemas or database writer: the least any "
                       "implementation of the online verification does per request in this stack"])


def daily_floor(runner: LoadRunner, floor: GunicornServer, env: dict[str, str], data_dir: Path) -> None:
    """The ceiling row of the personal lists: `floor_daily.prepare`'s holder reads their wallet page."""
    from .floor_daily import prepare
    token = prepare(env["FLOOR_REDIS_URL"], env["FLOOR_DATABASE_URL"])
    paths = write_lines(data_dir / "floor_wallet_paths.txt", ["/wallet/licenses"])
    runner.measure("daily_floor", "GET /wallet/licenses (bare Flask: ES256 token, Redis revocation read, "
                   "one PostgreSQL statement, JSON)", floor.base_url, script="paths.lua", script_args=[str(paths)],
                   headers=[f"Authorization: Bearer {token}"], server=floor,
                   notes=["holder with 3 licenses among 60,000; no rate limit, metrics, access log, schemas or ORM: "
                          "the least any implementation of a personal list does per request in this stack"])


def refresh_floor(runner: LoadRunner, floor: GunicornServer, env: dict[str, str], data_dir: Path) -> None:
    """The ceiling row of the refresh: `floor_refresh.prepare`'s single-use tokens (sized for 3,000 refreshes/s)."""
    from .floor_refresh import prepare
    s = runner.settings
    tokens = prepare(env["FLOOR_REDIS_URL"], env["FLOOR_DATABASE_URL"], int(3000 * (s.warmup + s.duration)) + 1000)
    measured = len(tokens) - int(3000 * s.warmup)
    _one_time_ceiling(runner, floor, data_dir, "refresh_floor", "POST /auth/token grant_type=refresh_token (bare "
                      "Flask: one Redis Lua call that counts the address, rotates the held session and journals it; "
                      "ES256 signature, JSON)",
                      "/auth/token", [json_line({"grant_type": "refresh_token", "refresh_token": t}) for t in tokens],
                      3000, '"access_token"',
                      [f"each request rotates a different single-use refresh token ({measured} in the measured pool); "
                       "no metrics, access log, schemas, audit, ORM or write-behind: the least a refresh of a "
                       "session held in Redis does per request in this stack"])


def journal_backlog(dep: Deployment, timeout_s: float = 300.0) -> str:
    """How far the journal writer (the access log, inbox and audit entries of each verification,
    written behind the answers by `flask worker`) was behind when the load stopped."""
    from app.journal import JOURNAL
    from app.redis_store import RedisStore
    store = RedisStore(dep.redis_url)  # the app's store: same key prefix and lists
    journals = store.journal_lists(JOURNAL)
    t0 = time.monotonic()
    pending = sum(store.journal_lengths(journals))
    while sum(store.journal_lengths(journals)) and time.monotonic() - t0 < timeout_s:
        time.sleep(0.1)
    left = sum(store.journal_lengths(journals))
    store.client.close()
    if left:
        return f"journal writer behind: {pending} entries pending when the load stopped, {left} still after {timeout_s:.0f}s"
    return (f"journal writer kept up: {pending} entries pending when the load stopped, all written to PostgreSQL "
            f"{time.monotonic() - t0:.1f}s later")


def search_lua_queries() -> list[str]:
    """The queries `benchmarks/lua/search.lua` rotates (its `queries` table), so the rows that search ask the same."""
    script = (LUA_DIR / "search.lua").read_text(encoding="utf-8")
    return re.findall(r'"([^"]+)"', re.search(r"local queries = \{(.*?)\}", script, re.S).group(1))


def search_target(runner: LoadRunner, name: str, server: GunicornServer, api: HttpClient, dep: Deployment) -> None:
    # warm first: the first search in each worker may build the whole index
    warm_s = server.warm_workers(f"{API}/services?q={quote('身份证')}&page_size=20")
    status, body = api.request("GET", f"{API}/services?q={quote('医保报销')}&page_size=20")
    if status == 404:
        raise SetupSkipped("GET /api/v1/services answers 404 (catalogue search not built yet)")
    if status != 200:
        raise SetupSkipped(f"GET /api/v1/services?q= answers {status}: {str(body)[:200]}")
    catalogue = _catalogue_size(dep)
    runner.results.setdefault("catalogues", {})[name] = catalogue
    runner.measure(name, "GET /api/v1/services?q=... (20 queries rotating)", server.url(f"{API}/services"),
                   script="search.lua", server=server,
                   notes=[f"catalogue of {catalogue:,} services" if catalogue else "catalogue size unknown",
                          f"first searches answered by every worker after {warm_s:.1f}s"])


def _catalogue_size(dep: Deployment) -> int:
    """Services in the deployment's catalogue (a search without a hall lists each item once, so the
    API's total counts items, not services)."""
    from sqlalchemy import func, select

    from app.catalogue.models import Service
    from app.extensions import db
    with dep.app().app_context():
        return db.session.scalar(select(func.count()).select_from(Service))


# --- orchestration --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, small pools (a smoke test)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these targets (repeat or comma-separate; see --list)")
    parser.add_argument("--list", action="store_true", help="print the target names and exit")
    parser.add_argument("--duration", type=float, help="seconds per measured wrk run")
    parser.add_argument("--large-items", type=int, help="size of the generated catalogue (default 300000)")
    parser.add_argument("--no-markdown", action="store_true", help="write only the JSON results")
    parser.add_argument("--markdown", action="store_true",
                        help="write BENCHMARKS.md from a partial, quick or profiled run too (a full run always does)")
    parser.add_argument("--profile", action="store_true",
                        help="sample a worker (and the job worker, with the jobs it forks) with py-spy during each "
                             "measured run and print where the time goes; samples count waiting on a socket too "
                             "(the sampler takes CPU too: do not publish those figures)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(LOAD_TARGETS) + list(MICRO_TARGETS)
    if args.list:
        print("\n".join(names))
        return 0
    selected = {ALIASES.get(n.strip(), n.strip()) for item in args.only for n in item.split(",") if n.strip()}
    selected = selected or set(names)
    unknown = selected - set(names)
    if unknown:
        print(f"unknown target(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    overrides = dict(QUICK) if args.quick else {}
    if args.duration:
        overrides["duration"] = args.duration
    if args.large_items:
        overrides["large_items"] = args.large_items
    settings = Settings(**overrides)
    load_selected = [n for n in LOAD_TARGETS if n in selected]
    if load_selected:
        selected.add("floor")  # the ratio column needs the floor of the same run
    if "verification" in selected:
        selected.add("verification_floor")  # its ceiling in the same run
    if selected & {"wallet", "wallet_read", "applications", "inbox", "inbox_busy", "refresh"}:
        selected.add("daily_floor")
    if "refresh" in selected:
        selected.add("refresh_floor")
    if load_selected and shutil.which("wrk") is None:
        print("wrk, the load generator, is not installed: `make bench` installs it "
              "(scripts/services.sh packages bench), or list only micro targets with --only", file=sys.stderr)
        return 2

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = RESULTS_DIR / stamp
    data_dir = Path(tempfile.mkdtemp(prefix="ias-bench-data."))
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "only": sorted(selected) if args.only else None,
        "settings": settings.__dict__ | {"search_sizes": list(settings.search_sizes)},
        "machine": machine_info(), "load": {}, "memory": [], "servers": {}, "micro": {}, "skipped": {},
        "errors": {}, "gunicorn_timeout": int(os.environ.get("GUNICORN_TIMEOUT", "30")),
    }
    log(f"benchmarks ({results['mode']}): {', '.join(n for n in names if n in selected)}")

    def on_term(signum, frame):  # `kill` cleans up like Ctrl-C does
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    runner = LoadRunner(settings, results)
    if args.profile:
        runner.profile_dir = run_dir
        results["mode"] += " (profiled: figures not comparable)"
    services: Services | None = None
    deployments: list[Deployment] = []
    interrupted = False
    try:
        for name, func in (("micro_sdjwt", micro_sdjwt), ("micro_search", micro_search), ("micro_cli", micro_cli)):
            if name in selected:
                log(f"== {name}")
                _guard(results, name, lambda f=func: results["micro"].__setitem__(name, f(settings)))

        app_names = [n for n in APP_ORDER if n in selected]
        need_services = (app_names or "search_300k" in selected or "micro_tokens" in selected
                         or selected & {"verification_floor", "daily_floor", "refresh_floor"})
        if need_services:
            services = Services().start()
            runner.services = services
            results["machine"]["services"] = services.versions()
            results["machine"]["round_trips_us"] = services.round_trips_us()

        if "floor" in selected:
            log("== floor (benchmarks/floor_app.py)")
            floor_env = server_settings(settings)
            if services is not None:
                floor_env["FLOOR_REDIS_URL"] = services.redis_url(3)
            if selected & {"daily_floor", "refresh_floor"}:
                floor_env["FLOOR_DATABASE_URL"] = services.create_database("bench_floor")
            with GunicornServer("benchmarks.floor_app:app", floor_env, run_dir / "gunicorn-floor.log") as floor:
                _guard(results, "floor", lambda: runner.measure("floor", "GET /healthz (bare Flask, jsonify)",
                                                                 floor.url("/healthz"), server=floor), runner)
                if "verification_floor" in selected:
                    log("-- verification_floor")
                    _guard(results, "verification_floor",
                           lambda: verification_floor(runner, floor, floor_env["FLOOR_REDIS_URL"], data_dir), runner)
                if "daily_floor" in selected:
                    log("-- daily_floor")
                    _guard(results, "daily_floor", lambda: daily_floor(runner, floor, floor_env, data_dir), runner)
                if "refresh_floor" in selected:
                    log("-- refresh_floor")
                    _guard(results, "refresh_floor", lambda: refresh_floor(runner, floor, floor_env, data_dir), runner)

        if app_names or "micro_tokens" in selected:
            dep = Deployment("seeded", services.create_database("bench_seeded"), services.redis_url(1), free_port())
            deployments.append(dep)
            log("== application, seeded catalogue (flask seed) on PostgreSQL + Redis")
            try:
                results["setup_notes"] = prepare_database(dep)
            except (LoadgenError, subprocess.SubprocessError) as exc:
                for name in app_names + ["micro_tokens"]:
                    if name in selected:
                        _record_error(results, name, f"preparing the seeded database: {exc}")
                app_names = []
            else:
                if "micro_tokens" in selected:
                    log("== micro_tokens")
                    _guard(results, "micro_tokens",
                           lambda: results["micro"].__setitem__("micro_tokens", micro_tokens(settings, dep)))
            if app_names:
                def seeded() -> None:
                    with served(dep, settings, run_dir / "gunicorn-app.log", "seeded catalogue", results) as server:
                        targets = AppTargets(runner, dep, server, data_dir)
                        try:
                            for name in app_names:
                                log(f"-- {name}")
                                _guard(results, name, lambda n=name: targets.run(n), runner)
                        finally:
                            targets.close()
                            results["memory"].append({"server": "seeded catalogue",
                                                      "catalogue": results.get("catalogues", {}).get("search_seeded"),
                                                      "workers": server.worker_memory()})
                _guard(results, "seeded server", seeded)

        if "search_300k" in selected:
            log(f"== application, generated catalogue ({settings.large_items:,} services)")
            dep = Deployment("generated", services.create_database("bench_generated"), services.redis_url(2),
                             free_port())
            deployments.append(dep)

            def large() -> None:
                prepare_database(dep, catalogue_items=settings.large_items)
                with served(dep, settings, run_dir / "gunicorn-large.log", "generated catalogue", results,
                            start_timeout=180) as server:
                    api = HttpClient(server.base_url)
                    try:
                        search_target(runner, "search_300k", server, api, dep)
                        results["memory"].append(memory.after_search_load(server, data_dir, catalogue=results.get("catalogues", {}).get("search_300k")))
                        results["memory"].append({"server": "generated catalogue",
                                                  "catalogue": results.get("catalogues", {}).get("search_300k"),
                                                  "workers": server.worker_memory()})
                    finally:
                        api.close()

            _guard(results, "search_300k", large, runner)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    finally:
        for dep in deployments:
            try:
                dep.dispose()
            except Exception as exc:  # cleanup must go on
                log(f"  dispose {dep.name}: {exc}")
        if services is not None:
            services.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    results["duration_s"] = round(time.monotonic() - started, 1)
    json_path = report.write_json(results, RESULTS_DIR, stamp)
    log(f"results: {json_path.relative_to(ROOT)} (server logs in {run_dir.relative_to(ROOT)}/)")
    full_run = not (args.only or args.quick or args.profile)
    if not args.no_markdown and (full_run or args.markdown):
        md = report.write_markdown(results, ROOT / "BENCHMARKS.md")
        log(f"report: {md.relative_to(ROOT)}")
    elif not args.no_markdown:
        log("BENCHMARKS.md left as it was: a partial, quick or profiled run (--markdown writes it anyway)")
    log(report.summary(results))
    log(f"total {results['duration_s']:.0f}s")
    return 130 if interrupted else 0


@contextmanager
def served(dep: Deployment, settings: Settings, log_path: Path, label: str, results: dict[str, Any],
           start_timeout: float = 90.0) -> Iterator[GunicornServer]:
    """The app under gunicorn for one deployment; records worker timeouts/restarts when it stops."""
    prom = tempfile.mkdtemp(prefix="ias-bench-prom.")
    server = GunicornServer(WSGI_TARGET, dep.server_env(server_settings(settings), prom), log_path,
                            port=dep.port, start_timeout=start_timeout)
    results.setdefault("wsgi_target", server.target)
    try:
        with server, JobWorker(dep.server_env(server_settings(settings), prom), log_path.with_suffix(".worker.log")):
            try:
                yield server
            finally:
                results["servers"][label] = server.events()
    finally:
        shutil.rmtree(prom, ignore_errors=True)


def _record_error(results: dict[str, Any], name: str, detail: str) -> None:
    results["errors"][name] = detail[:3000]
    if name in LOAD_TARGETS:
        results["load"][name] = {"name": name, "label": LOAD_TARGETS[name][0], "error": detail[:500]}
    log(f"  ERROR {name}: {detail[:1500]}")


def _guard(results: dict[str, Any], name: str, func: Callable[[], object], runner: LoadRunner | None = None) -> None:
    """Run one target; a missing endpoint is a skip with its reason, anything else an error, and the
    run goes on with the next target."""
    try:
        func()
    except SetupSkipped as exc:
        results["skipped"][name] = str(exc)
        if runner and name in LOAD_TARGETS:
            runner.skip(name, str(exc))
        else:
            log(f"  SKIP {name}: {exc}")
    except Exception as exc:  # one broken target must not stop the others (nor the cleanup)
        detail = f"{exc.__class__.__name__}: {exc}"
        if not isinstance(exc, (LoadgenError, subprocess.SubprocessError)):
            detail += "\n" + "".join(traceback.format_exc().splitlines(keepends=True)[-6:])
        _record_error(results, name, detail)


if __name__ == "__main__":
    sys.exit(main())
