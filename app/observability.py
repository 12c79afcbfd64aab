"""Request ids, structured JSON logs with PII masking, Prometheus metrics and security headers."""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST, multiprocess

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[0-9Xx])(?![0-9A-Za-z])")
PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'")


def mask_pii(text: str) -> str:
    """Mask anything that looks like an ID number or a mobile number."""
    text = ID_NUMBER_RE.sub(lambda m: m.group(1) + "*" * 8 + m.group(3)[-4:], text)
    return PHONE_RE.sub(lambda m: m.group(1) + "****" + m.group(3), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, PII masked, request id attached."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_pii(record.getMessage()),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms", "subject", "event"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = mask_pii(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = mask_pii(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    """Attach the current request id to every record logged inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            try:
                record.request_id = g.get("request_id")
            except RuntimeError:
                record.request_id = None
        return True


def configure_logging(app: Flask) -> None:
    """Send app logs to stderr as JSON lines (or plain text when JSON_LOGS is off)."""
    # No formatter here uses the caller's file and line; skipping that lookup is the logging HOWTO's
    # optimisation (process and thread fields stay: gunicorn's own log format uses them).
    logging._srcfile = None
    root = logging.getLogger("app")
    root.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    if not any(getattr(h, "_ias", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._ias = True
        root.addHandler(handler)
    for handler in root.handlers:
        if getattr(handler, "_ias", False):
            handler.setFormatter(JsonFormatter() if app.config.get("JSON_LOGS") else
                                 logging.Formatter("%(levelname)s %(name)s %(message)s"))
            if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                handler.addFilter(RequestIdFilter())
    root.propagate = True


def _endpoint_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def metrics_payload() -> tuple[bytes, str]:
    """Prometheus exposition text, aggregated over workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def init_request_hooks(app: Flask) -> None:
    """Request id in and out, access log, metrics and security headers on every response."""
    access_log = logging.getLogger("app.access")
    fixed_headers = _fixed_security_headers(app)

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        method, endpoint, status = request.method, _endpoint_label(), response.status_code
        REQUESTS.labels(method, endpoint, str(status)).inc()
        LATENCY.labels(method, endpoint).observe(elapsed)
        headers = response.headers
        headers["X-Request-ID"] = g.get("request_id", "")
        _security_headers(headers, fixed_headers)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("%s %s %s", method, request.path, status,
                            extra={"method": method, "path": request.path, "status": status,
                                   "duration_ms": round(elapsed * 1000, 2)})
        return response


def _fixed_security_headers(app: Flask) -> tuple[tuple[str, str], ...]:
    fixed = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
             ("Referrer-Policy", "no-referrer"), ("Cross-Origin-Resource-Policy", "same-origin")]
    if app.config.get("APP_ENV") == "production":
        fixed.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return tuple(fixed)


def _security_headers(headers, fixed: tuple[tuple[str, str], ...]) -> None:
    present = {key.lower() for key in headers.keys()}
    for key, value in fixed:
        if key.lower() not in present:
            headers[key] = value
    if "content-security-policy" not in present:
        docs = request.path.startswith(("/docs", "/static/swagger-ui"))
        headers["Content-Security-Policy"] = DOCS_CSP if docs else API_CSP
    if "cache-control" not in present and "Authorization" in request.headers:
        headers["Cache-Control"] = "no-store"
