"""BENCHMARKS.md and the raw JSON (benchmarks/results/, gitignored) from one run's results.

    python -m benchmarks.report benchmarks/results/latest.json   # re-render BENCHMARKS.md from a JSON
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOAD_ORDER = ("floor", "healthz", "search_seeded", "search_300k", "detail", "home_catalogue", "catalogue_signed_in",
              "daily_floor", "wallet", "wallet_read", "applications",
              "inbox", "inbox_busy",
              "verification_floor", "verification", "device_verification", "refresh_floor", "refresh", "appointment_slots",
              "appointment_booking")
CPU_KINDS = (("app workers", "app workers"), ("job worker", "`flask worker`"), ("redis", "Redis"),
             ("postgres", "PostgreSQL"), ("other", "wrk + harness"))


def write_json(results: dict[str, Any], results_dir: Path, stamp: str) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, ensure_ascii=False, indent=2)
    path = results_dir / f"{stamp}.json"
    path.write_text(text, encoding="utf-8")
    (results_dir / "latest.json").write_text(text, encoding="utf-8")
    return path


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"


def _mb(kb: int | None) -> str:
    return "–" if kb is None else f"{kb / 1024:,.0f} MB"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def load_order(load: dict[str, Any]) -> list[str]:
    """The rows measured, in LOAD_ORDER, then any other in the order they ran (none is left out)."""
    return [name for name in LOAD_ORDER if name in load] + [name for name in load if name not in LOAD_ORDER]


def load_table(results: dict[str, Any]) -> list[str]:
    lines = ["| target | request | req/s | p50 | p99 | vs floor | notes |",
             "|---|---|---:|---:|---:|---:|---|"]
    load = results.get("load", {})
    for name in load_order(load):
        row = load[name]
        label = f"{row.get('label', name)}<br>`{name}`"
        if row.get("skipped"):
            lines.append(f"| {_cell(label)} | | | | | | skipped: {_cell(row['skipped'])} |")
            continue
        if row.get("error"):
            lines.append(f"| {_cell(label)} | | | | | | error: {_cell(row['error'][:300])} |")
            continue
        ratio = row.get("ratio")
        notes = "; ".join(row.get("notes", []))
        if not row.get("valid", True):
            notes = "**check:** " + notes
        lines.append(f"| {_cell(label)} | `{_cell(row.get('request', ''))}` | {_num(row.get('rps'))} | "
                     f"{_ms(row.get('p50_ms'))} | {_ms(row.get('p99_ms'))} | "
                     f"{'–' if ratio is None else f'{ratio:.2f}'} | {_cell(notes)} |")
    return lines


def cpu_table(results: dict[str, Any]) -> list[str]:
    """Cores each kind of process used during each measured run, and the app workers' CPU per request."""
    load = results.get("load", {})
    rows = [(name, load[name]) for name in load_order(load) if load[name].get("cpu_cores")]
    if not rows:
        return []
    lines = ["| target | " + " | ".join(label for _, label in CPU_KINDS) + " | steal | server CPU per request |",
             "|---|" + "---:|" * (len(CPU_KINDS) + 2)]
    for name, row in rows:
        cores = row["cpu_cores"]
        server = cores.get("app workers", 0.0)
        per_request = f"{server / row['rps'] * 1000:.2f} ms" if row.get("rps") else "–"
        steal = f"{row['steal']:.0%}" if row.get("steal") is not None else "–"
        lines.append(f"| `{name}` | " + " | ".join(f"{cores.get(kind, 0.0):.2f}" for kind, _ in CPU_KINDS)
                     + f" | {steal} | {per_request} |")
    return ["Where the CPU went during each measured run, in cores (of the machine's "
            f"{results.get('machine', {}).get('cores', '?')}), from `/proc` before and after; *server CPU per "
            "request* = the serving workers' cores / req/s (wrk exits before the second reading, so its time is "
            "in *wrk + harness*); *steal* = the share of the machine's CPU time its hypervisor took during the run. "
            "CPU per request holds up under steal better than req/s does: a stolen tick is counted to no process.",
            "", *lines, ""]


def shim_note(results: dict[str, Any]) -> list[str]:
    target = results.get("wsgi_target")
    if not target or target == "wsgi:app":
        return []
    return [f"- The app is served as `{target}`: `create_app()` exactly as in `wsgi.py`, plus the raised "
            "`VERIFY_RATE_LIMIT`, which `app/config.py` does not read from the environment yet (once it does, "
            "the run serves `wsgi:app` directly)."]


def busy_warning(results: dict[str, Any]) -> list[str]:
    rows = [r for r in results.get("load", {}).values() if r.get("background_cpu") is not None]
    busy = [r for r in rows if r["background_cpu"] > 0.10]
    if not busy:
        return []
    worst = max(r["background_cpu"] for r in busy)
    return [f"> **The machine was not idle:** processes this run did not start used up to {worst:.0%} of the "
            f"CPUs just before {len(busy)} of {len(rows)} runs (sampled for 0.5 s before each, our gunicorn, "
            "PostgreSQL and Redis excluded). Those figures are lower and noisier than on a quiet machine, and the "
            "ratios to the floor are only roughly comparable; re-run `make bench` when nothing else runs.", ""]


STEAL_THRESHOLD = 0.05  # share of CPU time taken by the hypervisor above which a run is flagged


def steal_warning(results: dict[str, Any]) -> list[str]:
    rows = [r for r in results.get("load", {}).values() if r.get("steal") is not None]
    stolen = [r["steal"] for r in rows if r["steal"] > STEAL_THRESHOLD]
    if not stolen:
        return []
    return [f"> **The virtual machine lost CPU time to its host:** the hypervisor took {min(stolen):.0%} to "
            f"{max(stolen):.0%} of the CPU time (steal, `/proc/stat`) during {len(stolen)} of {len(rows)} runs. "
            "Every figure of those runs is lower than the machine's own, by an amount that changed from run to "
            "run, so their ratios to the floor are not comparable either; re-run `make bench` when the host is "
            "quieter.", ""]


def memory_section(results: dict[str, Any]) -> list[str]:
    entries = results.get("memory") or []
    if not entries:
        return ["Not measured in this run (the generated-catalogue target did not run)."]
    lines = ["| server | services | worker pid | peak RSS (VmHWM) | RSS at the end | PSS before → after load "
             "| private dirty before → after load |", "|---|---:|---:|---:|---:|---:|---:|"]
    for entry in entries:
        catalogue = entry.get("catalogue")
        for worker in entry.get("workers", []):
            before = worker.get("before") or {}
            pss = (f"{_mb(before.get('pss_kb'))} → {_mb(worker['pss_kb'])}" if "pss_kb" in worker else "–")
            dirty = (f"{_mb(before.get('private_dirty_kb'))} → {_mb(worker['private_dirty_kb'])}"
                     if "private_dirty_kb" in worker else "–")
            lines.append(f"| {entry['server']} | {_num(catalogue) if catalogue else '–'} | {worker['pid']} | "
                         f"{_mb(worker.get('vmhwm_kb'))} | {_mb(worker.get('vmrss_kb'))} | {pss} | {dirty} |")
    made_own = [(worker["pid"], worker["made_own"]) for entry in entries for worker in entry.get("workers", [])
                if worker.get("made_own")]
    if made_own:
        lines += ["", "Pages a worker came to hold alone during the search load (`/proc/<pid>/pagemap`): copied from "
                  "the master when the worker wrote to a page they shared (reference counts of the master's objects, "
                  "say), or its own allocations. " + "; ".join(
                      f"worker {pid}: {_mb(own['copied_from_master_kb'])} copied, {_mb(own['own_allocations_kb'])} "
                      "its own" for pid, own in made_own) + "."]
    return lines


def server_events(results: dict[str, Any]) -> list[str]:
    servers = results.get("servers") or {}
    if not servers:
        return []
    parts = [f"{label}: {ev['worker_timeouts']} worker timeouts, {ev['worker_restarts']} worker restarts"
             for label, ev in servers.items()]
    line = (f"Gunicorn events during the runs (worker timeout {results.get('gunicorn_timeout', 30)} s): "
            + "; ".join(parts) + ".")
    if any(ev["worker_timeouts"] for ev in servers.values()):
        line += (" **A worker timeout means a request (typically the first search of a worker, which builds the "
                 "index) took longer than the timeout and gunicorn killed the worker.**")
    return [line, ""]


def micro_section(results: dict[str, Any]) -> list[str]:
    micro, out = results.get("micro", {}), []
    sdjwt = micro.get("micro_sdjwt")
    out += ["### SD-JWT VC presentation verification (`benchmarks/bench_sdjwt.py`)", ""]
    if sdjwt:
        out += ["Same presentation (issuer-signed SD-JWT VC, 3 of 5 claims disclosed, key-binding JWT), "
                f"{sdjwt['presentation_chars']} characters; median of {sdjwt['rounds']} rounds x "
                f"{sdjwt['iterations']} verifications, one core.", "",
                "| verifier | verifications/s | µs each |", "|---|---:|---:|",
                f"| ours (`app.wallet.sdjwt.verify_presentation`) | {_num(sdjwt['ours_ops'])} | "
                f"{1e6 / sdjwt['ours_ops']:.0f} |",
                f"| `sd-jwt` library (`SDJWTVerifier`) | {_num(sdjwt['library_ops'])} | "
                f"{1e6 / sdjwt['library_ops']:.0f} |", "",
                f"Ours is {sdjwt['ratio']:.2f}x the library's rate; both return the same payload (checked first).", ""]
    else:
        out += [_not_run(results, "micro_sdjwt"), ""]
    search = micro.get("micro_search")
    out += ["### Catalogue search index (`benchmarks/bench_search.py`, `app.catalogue.search.SearchIndex`)", ""]
    if search:
        out += [f"{search['queries']} queries (words, colloquial phrases, pinyin and initials, filters, browsing), "
                f"{search['rounds']} rounds; *cold* = result and score caches cleared before each query, "
                "*cached* = repeated query. Memory is the RSS growth of building the index.", "",
                "| items | source | build | index memory | cold p50 | cold p99 | cached p50 | cached p99 |",
                "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for row in search["rows"]:
            out.append(f"| {row['size']:,} | {row['source']} | {row['build_s']:.2f} s | {row['memory_mb']:.0f} MB | "
                       f"{row['cold_p50_us']:,.0f} µs | {row['cold_p99_us']:,.0f} µs | {row['warm_p50_us']:.1f} µs | "
                       f"{row['warm_p99_us']:.1f} µs |")
        out.append("")
    else:
        out += [_not_run(results, "micro_search"), ""]
    tokens = micro.get("micro_tokens")
    out += ["### Access tokens (`app.security.tokens`)", ""]
    if tokens:
        out += [f"Inside an app context on the benchmark deployment; median of {tokens['rounds']} rounds x "
                f"{tokens['iterations']}. *Check* is one caller repeating its token: expiry + the "
                "revocation lookup in Redis (one loopback round trip); a worker checks a token's signature the first "
                "time it sees the token.", "",
                "| operation | ops/s | µs each |", "|---|---:|---:|",
                f"| issue (ES256 sign) | {_num(tokens['issue_ops'])} | {1e6 / tokens['issue_ops']:.0f} |",
                f"| check (`decode_access_token`) | {_num(tokens['check_ops'])} | {1e6 / tokens['check_ops']:.0f} |", ""]
    else:
        out += [_not_run(results, "micro_tokens"), ""]
    return out + _cli_section(micro.get("micro_cli"), results)


def _cli_section(cli: dict[str, Any] | None, results: dict[str, Any]) -> list[str]:
    out = ["### Command-line start-up (`benchmarks/bench_cli.py`)", ""]
    if not cli:
        return out + [_not_run(results, "micro_cli"), ""]
    floor, app = cli["floor"], cli["app"]
    return out + [
        f"`flask --app <target> --help` in a fresh process (production settings with fresh secrets, SQLite, no Redis); median of "
        f"{cli['rounds']} runs of each, alternating, after one unmeasured run. The floor is the same command on a bare "
        "Flask app with one route (`benchmarks/floor_cli.py`).", "",
        "| target | wall | fastest – slowest | CPU (user + system) | vs floor |", "|---|---:|---:|---:|---:|",
        f"| floor: bare Flask | {floor['wall_s']:.2f} s | {floor['wall_min_s']:.2f} – {floor['wall_max_s']:.2f} s | "
        f"{floor['cpu_s']:.2f} s | 1.00 |",
        f"| `flask --app wsgi --help` | {app['wall_s']:.2f} s | {app['wall_min_s']:.2f} – {app['wall_max_s']:.2f} s | "
        f"{app['cpu_s']:.2f} s | {app['wall_s'] / floor['wall_s']:.2f} |", ""]


def _not_run(results: dict[str, Any], name: str) -> str:
    if name in results.get("skipped", {}):
        return f"Skipped: {results['skipped'][name]}"
    if name in results.get("errors", {}):
        return f"Error: {results['errors'][name].splitlines()[0]}"
    return "Not run in this run."


def machine_lines(machine: dict[str, Any]) -> list[str]:
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    services = machine.get("services", {})
    lines = ["| | |", "|---|---|",
             f"| CPU | {machine.get('cpu')} |",
             f"| cores | {machine.get('cores')} (load generator and servers share them) |",
             f"| memory | {machine.get('memory_gb')} GB |",
             f"| OS | {machine.get('kernel')} |",
             f"| Python | {machine.get('python')} |",
             f"| packages | {packages} |"]
    if services:
        lines.append(f"| PostgreSQL / Redis | {services.get('postgresql')} / {services.get('redis')} |")
    trips = machine.get("round_trips_us")
    if trips:
        lines.append(f"| loopback round trip from Python | PostgreSQL `SELECT 1` {trips['postgresql_select_1']:.0f} µs, "
                     f"Redis `PING` {trips['redis_ping']:.0f} µs |")
    lines += [f"| load generator | {machine.get('wrk')} |", f"| commit | {machine.get('commit') or '?'} |"]
    return lines


def write_markdown(results: dict[str, Any], path: Path) -> Path:
    path.write_text(render(results), encoding="utf-8")
    return path


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    mode = results.get("mode", "full")
    only = results.get("only")
    scope = "full run" if mode == "full" else "**quick run** (short runs, small pools: a smoke test, not figures to quote)"
    if only:
        scope += f", only: {', '.join(only)}"
    large = results.get("catalogues", {}).get("search_300k") or s.get("large_items")
    seeded = results.get("catalogues", {}).get("search_seeded")
    seeded_text = f": {seeded:,} services listed by `GET /api/v1/services`" if isinstance(seeded, int) else ""
    workers = "sync workers" if s["threads"] == 1 else "gthread workers"
    out = [
        "# Benchmarks", "",
        f"Written by `make bench` (`python -m benchmarks.run`) on {results['started_at']}: {scope}; "
        f"took {results.get('duration_s', 0):.0f} s. Raw figures: `benchmarks/results/` (not committed).", "",
        "## Machine", "", *machine_lines(results.get("machine", {})), "",
        "## Load: requests per second and latency", "",
        *busy_warning(results),
        *steal_warning(results),
        *load_table(results), "",
        *cpu_table(results),
        "*vs floor* = req/s divided by the floor's req/s in the same run. p50/p99 come from `wrk --latency` "
        "(closed loop: a slow response delays the next request on its connection, so p99 under-states what an "
        "open arrival stream would see).", "",
        "How it was measured:", "",
        f"- Every target, the floor included, is served by `gunicorn -c gunicorn.conf.py` (the production "
        f"settings) with `WEB_CONCURRENCY={s['workers']}` and `GUNICORN_THREADS={s['threads']}` ({workers}) "
        "on 127.0.0.1. Sync workers close the "
        "connection after each response (no keep-alive), so every request includes a TCP connect, for the "
        "floor as much as for the app.",
        f"- `wrk -t{s['wrk_threads']} -c{s['connections']} -d{s['duration']:.0f}s --latency` per target after a "
        f"{s['warmup']:.0f} s warm-up run with the same script; targets run one after another. wrk and the "
        "servers share the machine's cores, as do PostgreSQL and Redis.",
        "- The floor is `benchmarks/floor_app.py`: Flask with one route returning `jsonify(status=\"ok\")`. "
        "No API route can be cheaper on this server, so *vs floor* is the fraction of the framework's ceiling "
        "that a route keeps.",
        "- Three ceiling rows are served by the same floor app, on the same server, redis-py (on a connection "
        "held per worker, as the app's store holds one: `app/redis_connection.py`), psycopg and "
        "`cryptography` libraries, with no rate limit, metrics, access log, schema or ORM, and answered from the "
        "WSGI environ before Flask's request handling (as the app answers its common requests, "
        "`app/page_server.py`): the least work any implementation of the request does in this stack. The real "
        "rows cannot pass them; what lies between is what the API adds. `daily_floor` (`benchmarks/floor_daily.py`) is a personal list: the caller's ES256 "
        "access token (signature checked once per worker, then its expiry), one Redis MGET of its revocation keys, "
        "one prepared PostgreSQL statement outside a transaction for the page (the holder's licenses joined to "
        "their person and type, with the total), JSON. `verification_floor` (`benchmarks/floor_verification.py`) "
        "is an online verification as the app now does it: one Redis round trip for the code's sealed entry and "
        "the status list's version, AES-GCM, the status and validity times (the signatures were checked when the "
        "presentation was made), and one Lua call that consumes the code and journals the answer. "
        "`refresh_floor` (`benchmarks/floor_refresh.py`) is a refresh as the app now does it for a session held "
        "in Redis (`app/identity/held_sessions.py`): one Lua call that counts the caller's address in a "
        "rate-limit window, checks the session's generation, secret and end, swaps in the next generation's hash "
        "and appends the rotation to a journal list (nothing drains it; the app's journal writer does, into "
        "PostgreSQL), a new ES256 access token and refresh token, JSON. "
        "`daily_floor` reads the database; the app's `wallet`, `applications` and `inbox` rows open a page kept "
        "in Redis for the person (`app/personal_pages.py`: after the first opening, and until a commit changes "
        "what it shows, no SQL), answered before Flask runs (`app/page_server.py`), so they may pass it; `wallet_read` asks the same wallet page with explicit "
        "arguments, which is never kept: the cost of an opening that finds its page changed. `inbox_busy` opens "
        "the same inbox while another holder's codes are verified at 50/s on a thread of the harness: their "
        "answers wait in the journal for `flask worker`, as other people's do all day, and the opening waits "
        "only for entries that name its person (`journal.pending_mark`).",
        "- The app runs with `APP_ENV=production` (fresh random secrets), `DATABASE_URL` on PostgreSQL and "
        "`REDIS_URL` on Redis, both from `scripts/services.sh` (throwaway, loopback; PostgreSQL runs with "
        "`fsync=off`, `synchronous_commit=off`, so writes are cheaper than on durable storage), "
        "`PROMETHEUS_MULTIPROC_DIR` set, JSON access logs at INFO to a file. The rate limits stay on "
        "(each request still counts in Redis) with their thresholds raised (`AUTH_RATE_LIMIT`, "
        "`SEARCH_RATE_LIMIT`), or one loopback client would measure 429s.",
        f"- Two databases: *seeded* (`flask seed`, the normal catalogue{seeded_text}) for every target but "
        f"one, and *generated* (`flask seed` + `flask catalogue generate --items {s.get('large_items'):,}`) for "
        f"`search_300k`{f' ({large:,} services listed)' if isinstance(large, int) else ''}.",
        *shim_note(results),
        "- Search rotates 20 fixed queries (`benchmarks/lua/search.lua`: Chinese words, colloquial phrases, "
        "pinyin and initials), so after the first pass the index's result cache can answer them: the load "
        "figure is for popular queries; the cost of a query nobody asked before is in the search micro "
        "benchmark below (*cold*). Before wrk starts, every worker is warmed until two rounds of concurrent "
        "requests all answer in under 0.5 s (an index built lazily by the first search is built by then).",
        "- Data comes through the API where a user or an issuer would act (registration, login, license "
        "issuance with an issuer client, presentations by the holder, verifier client token); the population "
        "registry entry and API clients are created with the functions behind `flask registry` and "
        "`flask clients`; the refresh-token pool is minted in-process (`identity.sessions`), because minting it "
        "through the password grant would cost one Argon2 hash per token.",
        "- One-time requests never repeat: verification codes and refresh tokens are pre-created, split into a "
        "warm-up pool and a measured pool, and `benchmarks/lua/onetime.lua` sends each body once; a response "
        "counts only with status 200 and the expected body (`\"valid\": true`, an `access_token`). The "
        "verification figure therefore covers **first-use** verifications of fresh codes.", "",
        "## Memory per worker", "",
        "`VmHWM` of each gunicorn worker from `/proc/<pid>/status`, read after the server's last run (for the "
        "generated catalogue: right after the search run); PSS and private dirty pages from "
        "`/proc/<pid>/smaps_rollup` before and after 30 s of searches over thousands of distinct queries "
        "(`benchmarks/memory.py`): PSS shares the pages a worker still shares with the master, private dirty "
        "counts what the worker has copied for itself.", "",
        *memory_section(results), "",
        *server_events(results),
        "## In-process micro benchmarks", "",
        *micro_section(results),
    ]
    skipped = results.get("skipped", {})
    errors = results.get("errors", {})
    if skipped or errors:
        out += ["## Not measured in this run", ""]
        out += [f"- `{name}` skipped: {reason}" for name, reason in skipped.items()]
        out += [f"- `{name}` failed: {reason.splitlines()[0]}" for name, reason in errors.items()]
        out.append("")
    out += ["## Running it", "",
            "```sh",
            "make bench                                   # everything, about 10 minutes on 2 cores",
            ".venv/bin/python -m benchmarks.run --quick   # smoke test: short runs, small pools",
            ".venv/bin/python -m benchmarks.run --only search_300k --only micro_search",
            ".venv/bin/python -m benchmarks.run --list    # target names",
            "```", "",
            "Needs `wrk` and the PostgreSQL and Redis server packages: `make bench` installs them when missing "
            "(`scripts/services.sh packages bench`; run it once before calling `benchmarks.run` yourself). Every gunicorn, PostgreSQL and Redis process the run starts is stopped at the end, also "
            "on failure or Ctrl-C. A target whose endpoint answers 404 is skipped with the reason printed. Only a full "
            "run rewrites this file (`--markdown` makes a partial, quick or profiled one write it too); every run "
            "leaves its JSON in `benchmarks/results/`.", ""]
    return "\n".join(out)


def summary(results: dict[str, Any]) -> str:
    lines = ["", "target          req/s      p50       p99    vs floor"]
    load = results.get("load", {})
    for name in load_order(load):
        row = load[name]
        if not row:
            continue
        if row.get("skipped") or row.get("error"):
            lines.append(f"{name:13} {'skipped' if row.get('skipped') else 'ERROR'}: "
                         f"{(row.get('skipped') or row.get('error'))[:110]}")
            continue
        ratio = row.get("ratio")
        lines.append(f"{name:13} {row['rps']:8.0f} {_ms(row['p50_ms']):>9} {_ms(row['p99_ms']):>9} "
                     f"{'' if ratio is None else f'{ratio:8.2f}'}{'' if row.get('valid', True) else '  (check notes)'}")
    for entry in results.get("memory", []):
        peaks = ", ".join(_mb(w.get("vmhwm_kb")) for w in entry.get("workers", []))
        lines.append(f"peak RSS per worker, {entry['server']}: {peaks}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    source = Path(args[0]) if args else ROOT / "benchmarks" / "results" / "latest.json"
    results = json.loads(source.read_text(encoding="utf-8"))
    print(write_markdown(results, ROOT / "BENCHMARKS.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
