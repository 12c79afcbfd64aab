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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

from . import memory, report
from .app_targets import AppTargets, search_target
from .ceilings import daily_floor, refresh_floor, verification_floor
from .harness import ALIASES, APP_ORDER, LOAD_TARGETS, MICRO_TARGETS, QUICK, LoadRunner, Settings, server_settings
from .loadgen import ROOT, GunicornServer, HttpClient, JobWorker, LoadgenError, free_port, log, wrk_version
from .micro import micro_cli, micro_sdjwt, micro_search, micro_tokens
from .setup_data import Deployment, Services, SetupSkipped, prepare_database, WSGI_TARGET

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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
