"""Request ids, structured JSON logs with PII masking, Prometheus metrics and security headers."""
from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import sys
import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST, multiprocess

from .json_output import json_text

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._\-]{1,64}")
REQUEST_ID_KEY = "ias.request_id"
ENDPOINT_KEY = "ias.endpoint"
ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[0-9Xx])(?![0-9A-Za-z])")
PHONE_RE = re.compile(r"(?<![0-9A-Za-z])(1[3-9]\d)(\d{4})(\d{4})(?![0-9A-Za-z])")  # a token, as ID_NUMBER_RE
ELEVEN_DIGITS_RE = re.compile(r"\d{11}")

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'")


def mask_pii(text: str) -> str:
    """Mask anything that looks like an ID number or a mobile number."""
    if not ELEVEN_DIGITS_RE.search(text):  # most text has no eleven digits
        return text
    text = ID_NUMBER_RE.sub(lambda m: m.group(1) + "*" * 8 + m.group(3)[-4:], text)
    return PHONE_RE.sub(lambda m: m.group(1) + "****" + m.group(3), text)


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, PII masked, request id attached."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {key: getattr(record, key, None) for key in LOGGED_FIELDS}
        exc = self.formatException(record.exc_info) if record.exc_info else None
        return json_line(record.created, record.levelname, record.name, record.getMessage(), fields, exc)


LOGGED_FIELDS = ("request_id", "method", "path", "status", "duration_ms", "subject", "event")


def json_line(created: float, level: str, logger: str, message: str, fields: dict, exc: str | None = None) -> str:
    """The JSON log line (`JsonFormatter`'s, also the access log's direct line): PII masked in every text."""
    entry = {"ts": _utc_second(int(created)), "level": level, "logger": logger, "msg": mask_pii(message)}
    for key in LOGGED_FIELDS:
        value = fields.get(key)
        if value is not None:
            entry[key] = mask_pii(value) if isinstance(value, str) else value
    if exc:
        entry["exc"] = mask_pii(exc)
    return json_text(entry, default=None)


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


def metrics_payload() -> tuple[bytes, str]:
    """Prometheus exposition text, aggregated over workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def init_request_hooks(app: Flask) -> None:
    """Request id in and out, access log, metrics and security headers on every response."""
    app.wsgi_app = ResponseFinisher(app.wsgi_app, _fixed_security_headers(app))

    @app.before_request
    def _start():
        environ = request.environ
        g.request_id = environ.get(REQUEST_ID_KEY) or secrets.token_hex(16)
        rule = request.url_rule
        environ[ENDPOINT_KEY] = rule.rule if rule is not None else "unmatched"


class ResponseFinisher:
    """WSGI middleware around the Flask app: assigns the request id, then adds it, the security
    headers and `Cache-Control: no-store` for authorised requests to the header list handed to the
    server, counts and times the request and writes the access log line. Working on the plain
    header list costs a fraction of Werkzeug's `Headers` in an after_request hook."""

    def __init__(self, wsgi_app, fixed_headers: tuple[tuple[str, str], ...]):
        self.wsgi_app = wsgi_app
        self.fixed_headers = fixed_headers
        self.access_log = logging.getLogger("app.access")
        self.counters: dict[tuple[str, str, str], object] = {}
        self.timers: dict[tuple[str, str], object] = {}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else secrets.token_hex(16)
        environ[REQUEST_ID_KEY] = request_id

        def finish(status, headers, exc_info=None):
            self._headers(environ, headers, request_id)
            self._account(environ, status, time.perf_counter() - started, request_id)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, finish)

    def _headers(self, environ, headers: list, request_id: str) -> None:
        present = {name.lower() for name, _ in headers}
        headers.append(("X-Request-ID", request_id))
        for name, value in self.fixed_headers:
            if name.lower() not in present:
                headers.append((name, value))
        if "content-security-policy" not in present:
            docs = environ.get("PATH_INFO", "").startswith(("/docs", "/static/swagger-ui"))
            headers.append(("Content-Security-Policy", DOCS_CSP if docs else API_CSP))
        if "cache-control" not in present and "HTTP_AUTHORIZATION" in environ:
            headers.append(("Cache-Control", "no-store"))

    def _account(self, environ, status_line: str, elapsed: float, request_id: str) -> None:
        method, endpoint, status = environ.get("REQUEST_METHOD", ""), environ.get(ENDPOINT_KEY, "unmatched"), status_line[:3]
        counter = self.counters.get((method, endpoint, status))
        if counter is None:
            counter = self.counters[(method, endpoint, status)] = REQUESTS.labels(method, endpoint, status)
        timer = self.timers.get((method, endpoint))
        if timer is None:
            timer = self.timers[(method, endpoint)] = LATENCY.labels(method, endpoint)
        counter.inc()
        timer.observe(elapsed)
        log = self.access_log
        if not log.isEnabledFor(logging.INFO):
            return
        fields = {"method": method, "path": environ.get("PATH_INFO", ""), "status": int(status),
                  "duration_ms": round(elapsed * 1000, 2), "request_id": request_id}
        message = f"{method} {fields['path']} {status}"
        handler = sole_json_handler(log)
        if handler is None:
            log.info("%s", message, extra=fields)
            return
        line = json_line(time.time(), "INFO", log.name, message, fields)
        handler.acquire()
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        finally:
            handler.release()


def sole_json_handler(logger: logging.Logger) -> logging.StreamHandler | None:
    """The app's own JSON stream handler when it is the only handler an INFO record of `logger` reaches and
    nothing but the request-id filter stands in the way: then the access log writes the line that handler
    would format, without a LogRecord (a third of a healthz request's own cost). None otherwise (another
    handler or filter was configured, e.g. a test's log capture): the record goes through logging."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers += current.handlers
        if not current.propagate:
            break
        current = current.parent
    if len(handlers) != 1 or logger.filters:
        return None
    handler = handlers[0]
    if (not getattr(handler, "_ias", False) or type(handler.formatter) is not JsonFormatter
            or handler.level > logging.INFO or any(type(f) is not RequestIdFilter for f in handler.filters)):
        return None
    return handler  # type: ignore[return-value]


def _fixed_security_headers(app: Flask) -> tuple[tuple[str, str], ...]:
    fixed = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
             ("Referrer-Policy", "no-referrer"), ("Cross-Origin-Resource-Policy", "same-origin")]
    if app.config.get("APP_ENV") == "production":
        fixed.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return tuple(fixed)
