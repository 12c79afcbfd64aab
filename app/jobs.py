"""Job queue: RQ on Redis when configured, inline execution otherwise."""
from __future__ import annotations

import importlib
import logging
import os
from datetime import timedelta

from flask import current_app

logger = logging.getLogger("app.jobs")
QUEUE_NAME = "ishandong"
_worker_app = None
_app_pid: int | None = None


def resolve(path: str):
    """The function a `module:function` path names (its module imported)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def use_app(app) -> None:
    """Give the worker its app before RQ forks a work horse per job: each job then starts with
    the app built (and the catalogue loaded) instead of building it again."""
    global _worker_app, _app_pid
    _worker_app, _app_pid = app, os.getpid()


def run_job(path: str, *args, **kwargs):
    """Entry point RQ calls: run the job inside an app context."""
    global _app_pid
    from . import create_app
    if _worker_app is None:
        use_app(create_app())
    with _worker_app.app_context():
        if _app_pid != os.getpid():  # a forked work horse: never reuse the parent's connections
            from .extensions import db
            db.engine.dispose(close=False)
            _app_pid = os.getpid()
        return resolve(path)(*args, **kwargs)


def runs_inline() -> bool:
    """Whether jobs run in the calling process (no Redis, or JOBS_INLINE)."""
    return not current_app.config.get("REDIS_URL") or bool(current_app.config.get("JOBS_INLINE"))


def enqueue(path: str, *args, retries: int = 3, delay: int | None = None, **kwargs) -> str | None:
    """Queue `module:function` with retries (after `delay` seconds); inline when there is no Redis."""
    if runs_inline():
        if delay is None:
            resolve(path)(*args, **kwargs)
        return None
    from rq import Queue, Retry

    from .redis_topology import queue_connection
    queue = Queue(QUEUE_NAME, connection=queue_connection())
    retry = Retry(max=retries, interval=[5, 30, 120])
    if delay:
        job = queue.enqueue_in(timedelta(seconds=delay), run_job, path, *args, retry=retry, **kwargs)
    else:
        job = queue.enqueue(run_job, path, *args, retry=retry, **kwargs)
    return job.id
