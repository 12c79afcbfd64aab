"""Work done once in the gunicorn master before forking: build the catalogue index, share it copy-on-write."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import logging
import time

from flask import Flask

from .extensions import db

logger = logging.getLogger("app.warmup")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
LARGE_ALLOCATION = 128 * 1024


def warm_up(app: Flask, catalogue: bool = True) -> None:
    """Register the views, build this process's catalogue index and close DB connections that children must
    not share."""
    if not _is_ours(app):
        return
    pin_malloc_thresholds()
    app.finish_setup()
    if not catalogue:
        return
    from .catalogue.index import fresh_index  # not at the top: the benchmark floor must not load numpy and jieba
    started = time.perf_counter()
    with app.app_context():
        fresh_index()
    _forget_build_caches()
    warm_requests(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    gc.collect()
    gc.freeze()
    _return_free_memory()
    logger.info("catalogue index warmed in %.1f s", time.perf_counter() - started)


# Searches of each kind (words, a colloquial question, pinyin, initials, a hall, none), a guide and the home
# screen's reads: what a worker's first requests would otherwise set up for itself (segmenter and pinyin
# state, schema and routing caches, the bodies kept for anonymous callers), set up once here and shared.
WARM_SEARCHES = ("身份证", "户口本丢了怎么办", "hukou", "sfz", "")
HOME_READS = ("/api/v1/halls", "/api/v1/topics", "/api/v1/bundles")


def warm_requests(app: Flask) -> list[int]:
    """Serve a few catalogue reads in the master, past the access log and metrics (`ResponseFinisher`), so
    workers share what they set up; returns their status codes."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app
    flask_app = app.wsgi_app.wsgi_app  # inside observability.ResponseFinisher: the page server, passing these on
    statuses = []

    def get(path: str, query: dict | None = None) -> bytes:
        environ = EnvironBuilder(path=path, query_string=query).get_environ()
        body, status, _ = run_wsgi_app(flask_app, environ, buffered=True)
        statuses.append(int(status.split()[0]))
        return b"".join(body)

    for query in WARM_SEARCHES:
        found = get("/api/v1/services", {"q": query} if query else None)
    items = json.loads(found).get("items") or []
    if items:
        get(f"/api/v1/services/{items[0]['code']}")
        get("/api/v1/services", {"hall": items[0]["hall_code"]})
    for path in HOME_READS:
        get(path)
    return statuses


def _forget_build_caches() -> None:
    """Empty the per-word caches the index build filled (segmentations, pinyin keys): entries the master made
    would be relinked and evicted by a worker's searches, copying the pages they sit on."""
    from .catalogue.search import pinyin, text
    for cached in (text.cut, text.cut_for_search, pinyin.fuzzy_key, pinyin.pinyin_keys):
        cached.cache_clear()


def freeze_before_fork() -> None:
    """Move every object the master holds out of the collector's reach, so that a worker's collections never
    write to them (gc_refs) and their pages stay shared."""
    gc.freeze()


def _libc_function(name: str):
    library = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(library), name, None) if library else None


def _return_free_memory() -> None:
    """Give the heap pages the build freed back to the system (glibc), so workers cannot fill holes in pages
    they share with the master; a no-op on other C libraries."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def pin_malloc_thresholds() -> None:
    """Give every allocation of 128 KiB or more its own mapping, unmapped whole when freed (glibc; a no-op on other
    C libraries). By default glibc raises that threshold after the first such free, so a search's per-query arrays
    over 300,000 services come from the heap, and the few long-lived objects allocated between them keep the freed
    pages: 40 MB of a worker's private memory after 30 s of searching (benchmarks/memory.py). Set in the master
    before it forks; workers inherit it."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION)
        mallopt(M_TRIM_THRESHOLD, LARGE_ALLOCATION)


def after_fork(app: Flask) -> None:
    """In a forked worker: drop the pool inherited from the master without closing its sockets."""
    if not _is_ours(app):
        return
    with app.app_context():
        db.engine.dispose(close=False)


def _is_ours(app) -> bool:
    """gunicorn.conf.py also serves other apps (the benchmark floor); only ours has a catalogue."""
    return "shared_store" in getattr(app, "extensions", {})
