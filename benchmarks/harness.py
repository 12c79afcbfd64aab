"""What every load row shares: the run's settings, the target names, the wrk runner that turns a run
into a result row (ratio to the floor, CPU per process kind, notes), and the servers' environment."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import report
from .cpu import CpuMeter, background_cpu, job_worker_pids, profile_summary, profile_worker
from .loadgen import GunicornServer, log, run_wrk
from .setup_data import Services

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
    refresh_pool: int = 50_000
    verification_pool: int = 40_000
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
    "verification_floor": ("ceiling: least work of an online verification (before Flask)", "floor"),
    "daily_floor": ("ceiling: least work of a personal list (before Flask)", "floor"),
    "refresh_floor": ("ceiling: least work of a token refresh (before Flask)", "floor"),
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

