"""The access log line written without a LogRecord (the app's JSON handler alone) is the line that handler
formats from the record, PII masked; with any other handler or filter in the way the record goes through
logging as before."""
from __future__ import annotations

import contextlib
import io
import json
import logging

import pytest

from app.observability import JsonFormatter, RequestIdFilter, sole_json_handler

PHONE_PATH = "/api/v1/services/13812345678"


@pytest.fixture
def app_logger():
    """The `app` logger with only the app's own JSON handler (as `configure_logging` sets it up) on a buffer,
    cut off from the root logger where pytest captures records."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler._ias = True
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("app")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield logger, handler, buffer
    finally:
        logger.handlers[:], logger.propagate, _ = saved
        logger.setLevel(saved[2])


@contextlib.contextmanager
def _alone(logger, *handlers):
    """Only these handlers on the `app` logger (pytest adds its capture handlers for each test phase)."""
    saved = logger.handlers[:]
    logger.handlers[:] = list(handlers)
    try:
        yield
    finally:
        logger.handlers[:] = saved


def _lines(buffer: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    buffer.truncate(0)
    buffer.seek(0)
    return [line for line in lines if line["logger"] == "app.access"]


def test_direct_line_is_the_formatters_line(app, app_logger):
    logger, handler, buffer = app_logger
    access = logging.getLogger("app.access")
    client = app.test_client()
    with _alone(logger, handler):
        assert sole_json_handler(access) is handler
        client.get(PHONE_PATH, headers={"X-Request-ID": "req-13912345678"})
    direct = _lines(buffer)
    with _alone(logger, handler, logging.NullHandler()):  # a second handler: the record goes through logging
        assert sole_json_handler(access) is None
        client.get(PHONE_PATH, headers={"X-Request-ID": "req-13912345678"})
    formatted = _lines(buffer)

    assert len(direct) == len(formatted) == 1
    for line in (direct[0], formatted[0]):
        line.pop("ts")
        assert line.pop("duration_ms") >= 0
    assert direct == formatted
    assert direct[0]["path"] == "/api/v1/services/138****5678"
    assert direct[0]["request_id"] == "req-139****5678"
    assert direct[0]["msg"] == "GET /api/v1/services/138****5678 404"
    assert list(direct[0]) == list(formatted[0])


def test_other_handlers_and_filters_keep_the_logging_path(app_logger):
    logger, handler, _ = app_logger
    access = logging.getLogger("app.access")
    with _alone(logger, handler):
        _refusals(logger, handler, access)


def _refusals(logger, handler, access):
    assert sole_json_handler(access) is handler
    handler.addFilter(logging.Filter("app.other"))
    assert sole_json_handler(access) is None
    handler.filters.pop()
    handler.setFormatter(logging.Formatter("%(message)s"))
    assert sole_json_handler(access) is None
    handler.setFormatter(JsonFormatter())
    access.addFilter(logging.Filter("x"))
    try:
        assert sole_json_handler(access) is None
    finally:
        access.filters.clear()
    logger.propagate = True  # pytest's capture on the root logger
    assert sole_json_handler(access) is None
