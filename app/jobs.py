"""Job queue: RQ on Redis when configured, inline execution otherwise."""
from __future__ import annotations

import importlib
import logging
from datetime import timedelta

from flask import current_app

logger = logging.getLogger("app.jobs")
QUEUE_NAME = "ishandong"
_worker_app = None


def _resolve(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def run_job(path: str, *args, **kwargs):
    """Entry point RQ calls: run the job inside an app context."""
    global _worker_app
    from . import create_app
    if _worker_app is None:
        _worker_app = create_app()
    with _worker_app.app_context():
        return _resolve(path)(*args, **kwargs)


def enqueue(path: str, *args, retries: int = 3, delay: int | None = None, **kwargs) -> str | None:
    """Queue `module:function` with retries (after `delay` seconds); inline when there is no Redis."""
    url = current_app.config.get("REDIS_URL")
    if not url or current_app.config.get("JOBS_INLINE"):
        if delay is None:
            _resolve(path)(*args, **kwargs)
        return None
    from redis import Redis
    from rq import Queue, Retry
    queue = Queue(QUEUE_NAME, connection=Redis.from_url(url))
    retry = Retry(max=retries, interval=[5, 30, 120])
    if delay:
        job = queue.enqueue_in(timedelta(seconds=delay), run_job, path, *args, retry=retry, **kwargs)
    else:
        job = queue.enqueue(run_job, path, *args, retry=retry, **kwargs)
    return job.id
