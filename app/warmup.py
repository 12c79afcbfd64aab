"""Work done once in the gunicorn master before forking: build the catalogue index, share it copy-on-write."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time

from flask import Flask

from .extensions import db

logger = logging.getLogger("app.warmup")


def warm_up(app: Flask) -> None:
    """Build this process's catalogue index and close DB connections that children must not share."""
    if not _is_ours(app):
        return
    from .catalogue.index import fresh_index  # not at the top: the benchmark floor must not load numpy and jieba
    started = time.perf_counter()
    with app.app_context():
        fresh_index()
        db.session.remove()
        db.engine.dispose()
    gc.collect()
    gc.freeze()
    _return_free_memory()
    logger.info("catalogue index warmed in %.1f s", time.perf_counter() - started)


def freeze_before_fork() -> None:
    """Move every object the master holds out of the collector's reach, so that a worker's collections never
    write to them (gc_refs) and their pages stay shared."""
    gc.freeze()


def _return_free_memory() -> None:
    """Give the heap pages the build freed back to the system (glibc), so workers cannot fill holes in pages
    they share with the master; a no-op on other C libraries."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim(0)


def after_fork(app: Flask) -> None:
    """In a forked worker: drop the pool inherited from the master without closing its sockets."""
    if not _is_ours(app):
        return
    with app.app_context():
        db.engine.dispose(close=False)


def _is_ours(app) -> bool:
    """gunicorn.conf.py also serves other apps (the benchmark floor); only ours has a catalogue."""
    return "shared_store" in getattr(app, "extensions", {})
