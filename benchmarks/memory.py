"""Worker memory after search load: Pss, Private_Dirty and Rss of each gunicorn worker (and the master), read
from /proc/<pid>/smaps_rollup before and after `seconds` of searches spread over the whole catalogue.

VmHWM counts the pages a worker shares with the master (the preloaded index) as its own; Pss splits them
between the processes that share them, and Private_Dirty is what copy-on-write has made the worker's own.
The pages a worker made its own under load are told apart from /proc/<pid>/pagemap: those the master
also has at the same address were copied from it when the worker wrote to them (reference counts of
shared objects, say); the others are the worker's own allocations.

    python -m benchmarks.memory --database-url URL --redis-url URL   # a database already generated and seeded
    python -m benchmarks.memory --items 300000                       # throwaway services, generate, measure

`make bench` runs `after_search_load` on the generated-catalogue server (benchmarks/run.py, search_300k).
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Collection
from urllib.parse import urlencode

from .loadgen import GunicornServer, HttpClient, free_port, log, run_wrk
from .setup_data import API, Deployment, Services, prepare_database, write_lines, WSGI_TARGET

FIELDS = ("Rss", "Pss", "Private_Dirty", "Private_Clean", "Shared_Clean", "Shared_Dirty", "Anonymous")
LOAD_SECONDS = 30.0
LISTED_PAGES = 20  # 20 x 100 distinct items whose names the queries are cut from


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/smaps_rollup (empty when the process is gone)."""
    found: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return found
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name in FIELDS and parts:
            found[name] = int(parts[0])
    return found


PAGE = mmap.PAGESIZE
PRESENT, EXCLUSIVE = 1 << 63, 1 << 56  # pagemap bits: page in memory; mapped by this process only


def _writable_private_ranges(pid: int) -> list[tuple[int, int]]:
    ranges = []
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return ranges
    for line in lines:
        parts = line.split()
        if parts[1].startswith("rw") and parts[1].endswith("p"):
            low, high = (int(address, 16) for address in parts[0].split("-"))
            ranges.append((low, high))
    return ranges


def page_flags(pid: int) -> dict[int, int]:
    """Page number -> pagemap entry of each present page in a process's writable private mappings."""
    found: dict[int, int] = {}
    try:
        with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for low, high in _writable_private_ranges(pid):
                pagemap.seek(low // PAGE * 8)
                for offset, (entry,) in enumerate(struct.iter_unpack("<Q", pagemap.read((high - low) // PAGE * 8))):
                    if entry & PRESENT:
                        found[low // PAGE + offset] = entry
    except OSError:
        return {}
    return found


def exclusive_pages(flags: dict[int, int]) -> set[int]:
    return {page for page, entry in flags.items() if entry & EXCLUSIVE}


def pages_made_own(before: set[int], after: set[int], master: Collection[int]) -> dict[str, int]:
    """The pages (kB) a worker came to hold alone between two readings (`exclusive_pages`): copied from the
    master (it has a page at that address) or allocated by the worker."""
    new = after - before
    copied = sum(1 for page in new if page in master)
    return {"copied_from_master_kb": copied * PAGE // 1024, "own_allocations_kb": (len(new) - copied) * PAGE // 1024}


def made_own_in_child(work: Callable[[], object], prepare: Callable[[], object] = lambda: None) -> dict[str, int]:
    """Fork; the child runs `prepare()`, then `work()`, and reports the pages `work()` made it hold alone
    (`pages_made_own`, against this process's pages), what `work()` returns still alive."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reading)
            prepare()
            exclusive_pages(page_flags(os.getpid()))  # the reading's own allocations, made before it counts
            before = exclusive_pages(page_flags(os.getpid()))
            kept = [work()]
            after = exclusive_pages(page_flags(os.getpid()))
            kept.clear()
            os.write(writing, json.dumps(pages_made_own(before, after, page_flags(os.getppid()))).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        found = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(found)


def _memory(pid: int) -> dict[str, Any]:
    rollup = smaps_rollup(pid)
    return {"pid": pid, "pss_kb": rollup.get("Pss"), "private_dirty_kb": rollup.get("Private_Dirty"),
            "rss_kb": rollup.get("Rss"), "vmrss_kb": rollup.get("Rss"), "vmhwm_kb": _vmhwm(pid), "rollup": rollup}


def _vmhwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def search_paths(api: HttpClient, *, seed: int = 7) -> list[str]:
    """Some thousands of distinct searches touching most of the catalogue: names of listed items and pieces of
    them, with and without a hall or city, on several pages."""
    names: list[str] = []
    halls: list[str] = []
    for page in range(1, LISTED_PAGES + 1):
        status, body = api.request("GET", f"{API}/services?page_size=100&page={page}")
        if status != 200 or not body.get("items"):
            break
        names += [item["name"] for item in body["items"]]
        if page == 1:
            halls = [entry["value"] for entry in body["facets"]["hall"]]
    rnd = random.Random(seed)
    queries = list(dict.fromkeys(names + [n[i:i + size] for n in names for size in (2, 4)
                                          for i in (0, max(0, len(n) - size))]))
    paths = []
    for query in queries:
        args: dict[str, Any] = {"q": query, "page_size": 20}
        shape = rnd.random()
        if shape < 0.3 and halls:
            args["hall"] = rnd.choice(halls)
        elif shape < 0.5:
            args["city"] = rnd.choice(("370100", "370200", "370300", "371300"))
        if rnd.random() < 0.3:
            args["page"] = rnd.randint(2, 5)
        paths.append(f"{API}/services?{urlencode(args)}")
    paths += [f"{API}/services?{urlencode({'hall': hall, 'page': page, 'page_size': 20})}"
              for hall in halls for page in (1, 3)]
    rnd.shuffle(paths)
    return paths


def after_search_load(server: GunicornServer, data_dir: Path, *, seconds: float = LOAD_SECONDS,
                      catalogue: int | None = None) -> dict[str, Any]:
    """Worker memory before and after `seconds` of search load over the catalogue (a `results["memory"]` entry)."""
    api = HttpClient(server.base_url)
    try:
        paths = search_paths(api)
    finally:
        api.close()
    path_file = write_lines(Path(data_dir) / "memory_search_paths.txt", paths)
    before = {pid: _memory(pid) for pid in server.worker_pids()}
    held_alone = {pid: exclusive_pages(page_flags(pid)) for pid in before}
    result = run_wrk(server.base_url, duration=seconds, connections=8, script="paths.lua", script_args=[str(path_file)])
    master_pages = page_flags(server.proc.pid) if server.proc else {}
    workers = [{**_memory(pid), "before": before.get(pid),
                "made_own": pages_made_own(held_alone.get(pid, set()), exclusive_pages(page_flags(pid)), master_pages)}
               for pid in server.worker_pids()]
    master = _memory(server.proc.pid) if server.proc else None
    entry = {"server": f"generated catalogue, after {seconds:.0f} s of search load", "catalogue": catalogue,
             "load": {"seconds": seconds, "distinct_paths": len(paths), "requests": result.requests,
                      "rps": round(result.rps, 1), "non_2xx": result.non_2xx},
             "workers": workers, "master": master}
    log(f"  memory after {seconds:.0f} s of search load ({len(paths)} distinct searches, {result.rps:.0f} req/s):")
    for worker in workers:
        was = worker["before"] or {}
        log(f"    worker {worker['pid']}: Pss {_mb(worker['pss_kb'])} (was {_mb(was.get('pss_kb'))}), "
            f"Private_Dirty {_mb(worker['private_dirty_kb'])} (was {_mb(was.get('private_dirty_kb'))}), "
            f"Rss {_mb(worker['rss_kb'])}; pages it came to hold alone: "
            f"{_mb(worker['made_own']['copied_from_master_kb'])} copied from the master, "
            f"{_mb(worker['made_own']['own_allocations_kb'])} its own allocations")
    if master:
        log(f"    master {master['pid']}: Pss {_mb(master['pss_kb'])}, Private_Dirty "
            f"{_mb(master['private_dirty_kb'])}, Rss {_mb(master['rss_kb'])}")
    return entry


def _mb(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a database already migrated, seeded and generated")
    parser.add_argument("--redis-url", help="the Redis of that deployment (with --database-url)")
    parser.add_argument("--items", type=int, default=300_000, help="services to generate (without --database-url)")
    parser.add_argument("--seconds", type=float, default=LOAD_SECONDS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the entry here")
    args = parser.parse_args(argv)
    services = None
    try:
        if args.database_url:
            dep = Deployment("memory", args.database_url, args.redis_url or "", free_port())
        else:
            services = Services().start()
            dep = Deployment("memory", services.create_database("bench_memory"), services.redis_url(2), free_port())
            prepare_database(dep, catalogue_items=args.items)
        env = {"WEB_CONCURRENCY": str(args.workers), "GUNICORN_THREADS": "1", "GUNICORN_TIMEOUT": "120"}
        data_dir = Path(tempfile.mkdtemp(prefix="ias-bench-memory."))
        prom = tempfile.mkdtemp(prefix="ias-bench-prom.")
        with GunicornServer(WSGI_TARGET, dep.server_env(env, prom), data_dir / "gunicorn.log", port=dep.port,
                            start_timeout=300) as server:
            t0 = time.monotonic()
            server.warm_workers(f"{API}/services?q=%E8%BA%AB%E4%BB%BD%E8%AF%81&page_size=20")
            status, body = HttpClient(server.base_url).request("GET", f"{API}/services?page_size=1")
            log(f"  ready after {time.monotonic() - t0:.1f}s; catalogue of {body.get('total')} services")
            entry = after_search_load(server, data_dir, seconds=args.seconds, catalogue=body.get("total"))
        if args.json:
            args.json.write_text(json.dumps(entry, indent=1))
    finally:
        if services is not None:
            services.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
