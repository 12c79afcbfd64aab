"""Production serving settings for gunicorn (`gunicorn -c gunicorn.conf.py wsgi:app`)."""
import multiprocessing
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '5000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "sync" if threads == 1 else "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = 100
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"
accesslog = None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker):
    """Drop the metrics files of a worker that exited (Prometheus multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    """With a preloaded app, register the views and build the catalogue index once in the master; workers
    share them."""
    if preload_app:
        from app.warmup import warm_up
        warm_up(server.app.wsgi(), catalogue=os.environ.get("CATALOGUE_WARM_UP", "1") == "1")


def pre_fork(server, worker):
    """Freeze the master's objects (gc.freeze) before every fork, respawns included: see app.warmup."""
    if preload_app:
        from app.warmup import freeze_before_fork
        freeze_before_fork()


def post_fork(server, worker):
    """Each worker opens its own database connections."""
    if preload_app:
        from app.warmup import after_fork
        after_fork(server.app.wsgi())
