"""A worker's freed per-query arrays go back to the system: `app.warmup.pin_malloc_thresholds` keeps glibc from
raising its mmap threshold after the first large free, which otherwise carves later large arrays from the heap
where a few long-lived objects keep their pages (measured in benchmarks/memory.py, not asserted here). And the
measurement itself: the pages a worker comes to hold alone are told apart, copied from the master or its own."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import ctypes, sys
from app.warmup import pin_malloc_thresholds

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "pinned":
    pin_malloc_thresholds()
first = bytearray(8 << 20)
del first  # glibc raises its mmap threshold to 8 MiB here, unless it was pinned
before = libc.mallinfo2().hblkhd
second = bytearray(1 << 20)
print(libc.mallinfo2().hblkhd - before)
"""


def _mapped_growth(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_pinned_thresholds_keep_large_arrays_in_their_own_mappings():
    assert platform.libc_ver()[0] == "glibc"  # the servers run on Debian; mallopt is glibc's
    assert _mapped_growth("default") == 0  # glibc's own rule: the 1 MiB array came from the heap
    assert _mapped_growth("pinned") >= 1 << 20  # pinned: its own mapping, unmapped whole when freed



def test_the_master_serves_a_few_catalogue_reads_before_forking_past_the_access_log_and_metrics(app, client,
                                                                                                caplog):
    from app.catalogue.index import catalogue_index
    from app.observability import REQUESTS
    from app.warmup import HOME_READS, WARM_SEARCHES, warm_requests

    def searches_counted() -> float:
        return sum(sample.value for metric in REQUESTS.collect() for sample in metric.samples
                   if sample.name.endswith("_total") and sample.labels.get("endpoint") == "/api/v1/services")

    before = searches_counted()
    with caplog.at_level("INFO", logger="app.access"):
        statuses = warm_requests(app)
    assert statuses == [200] * (len(WARM_SEARCHES) + 2 + len(HOME_READS))  # searches, a guide, a hall's list, home
    assert searches_counted() == before  # not the traffic anyone served
    assert not [record for record in caplog.records if record.name == "app.access"]
    assert client.get("/api/v1/services?q=sfz").status_code == 200
    assert searches_counted() == before + 1  # what a caller asks is counted
    rendered = {parse_qs(key[3]).get("q", [None])[0] for key in catalogue_index(app)._responses
                if key[:3] == ("url", None, "/api/v1/services")}  # kept by URL for anonymous callers
    assert {query for query in WARM_SEARCHES if query} <= rendered
    kept_paths = {key[2] for key in catalogue_index(app)._responses if key[:2] == ("url", None)}
    assert set(HOME_READS) <= kept_paths  # the home screen's bodies, inherited by every worker


def test_the_master_empties_the_per_word_caches_the_index_build_filled_before_it_forks(app, monkeypatch):
    """The build segments and spells every item name; a worker's searches would relink and evict those entries
    (writing to the pages they share with the master), so the master keeps only what its warm reads cached."""
    from app import warmup
    from app.catalogue.search import pinyin, text
    monkeypatch.setattr(warmup.gc, "freeze", lambda: None)  # the test process goes on collecting
    caches = (text.cut, text.cut_for_search, pinyin.fuzzy_key, pinyin.pinyin_keys)
    built = [f"测试事项{n}号" for n in range(200)]
    for name in built:  # what an index build leaves in them
        text.cut(name), text.cut_for_search(name), pinyin.fuzzy_key(name), pinyin.pinyin_keys(name)
    assert all(cache.cache_info().currsize >= len(built) for cache in caches)
    warmup.warm_up(app)
    assert all(cache.cache_info().currsize < 50 for cache in caches)  # at most the warm searches' own


FORKED = """
import json, mmap
from benchmarks.memory import made_own_in_child

shared = bytearray(8 << 20)  # the master's: its own mapping, every page written
for offset in range(0, len(shared), 4096):
    shared[offset] = 1
untouched = mmap.mmap(-1, 6 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # the master's, never written


def work():
    for offset in range(0, len(shared), 4096):  # copy-on-write of every shared page
        shared[offset] = 2
    own = bytearray(4 << 20)  # allocated after the fork (a private mapping of its own)
    for offset in range(0, len(untouched), 4096):  # new pages in a mapping inherited from the master
        untouched[offset] = 1
    for offset in range(0, len(own), 4096):
        own[offset] = 1
    return own


print(json.dumps(made_own_in_child(work)))
"""


def test_pages_a_worker_copied_from_the_master_are_told_from_its_own_allocations():
    done = subprocess.run([sys.executable, "-c", FORKED], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    made_own = json.loads(done.stdout.strip().splitlines()[-1])
    assert 8 * 1024 <= made_own["copied_from_master_kb"] < 9 * 1024  # the 8 MiB it wrote to, and little else
    assert 10 * 1024 <= made_own["own_allocations_kb"] < 11 * 1024  # its 4 MiB, the 6 MiB the master never wrote
