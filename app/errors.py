"""Domain exceptions and the single RFC 9457 problem+json error path for the whole API."""
from __future__ import annotations

import logging

from flask import Flask, current_app, g, has_app_context, jsonify, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError as SAOperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

logger = logging.getLogger("app.errors")

PROBLEM_MIME = "application/problem+json"
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})
TYPE_BASE = "https://api.ishandong.example/problems/"

HTTP_TITLES = {
    400: "请求格式错误",
    401: "未登录或凭证无效",
    403: "无权执行此操作",
    404: "资源不存在",
    405: "不支持该请求方法",
    409: "请求与当前状态冲突",
    413: "请求体过大",
    415: "不支持的内容类型",
    422: "请求参数校验失败",
    423: "账户已锁定",
    429: "请求过于频繁",
    500: "服务器内部错误",
    502: "上游服务异常",
    503: "服务暂不可用",
}

HTTP_SLUGS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
    415: "unsupported-media-type", 422: "validation-failed", 423: "locked",
    429: "too-many-requests", 500: "internal-error", 502: "bad-gateway",
    503: "service-unavailable",
}


class ApiError(Exception):
    """Base domain error; subclasses fix the status, callers give a Chinese detail."""

    status = 400
    slug: str | None = None

    def __init__(self, detail: str | None = None, *, errors: dict | None = None,
                 headers: dict | None = None, title: str | None = None,
                 slug: str | None = None, extra: dict | None = None):
        super().__init__(detail or "")
        self.detail = detail or HTTP_TITLES.get(self.status, "")
        self.errors = errors
        self.headers = dict(headers or {})
        self.title = title or HTTP_TITLES.get(self.status, "错误")
        self.slug = slug or self.slug or HTTP_SLUGS.get(self.status, "error")
        self.extra = extra or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, detail: str | None = None, **kw):
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="api"'})
        super().__init__(detail or "需要有效的访问令牌", **kw)


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class ValidationFailed(ApiError):
    status = 422

    def __init__(self, detail: str | None = None, *, errors: dict | None = None, **kw):
        super().__init__(detail or "请求参数校验失败", errors=errors or {}, **kw)

    @classmethod
    def field(cls, name: str, message: str) -> "ValidationFailed":
        return cls(f"{name}: {message}", errors={name: [message]})


class Locked(ApiError):
    status = 423

    def __init__(self, detail: str | None = None, *, retry_after: int, **kw):
        kw.setdefault("headers", {})["Retry-After"] = str(max(1, int(retry_after)))
        super().__init__(detail or "账户已临时锁定，请稍后再试", **kw)


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, detail: str | None = None, *, retry_after: int, **kw):
        kw.setdefault("headers", {})["Retry-After"] = str(max(1, int(retry_after)))
        super().__init__(detail or "请求过于频繁，请稍后再试", **kw)


class UpstreamError(ApiError):
    status = 502


class ServiceUnavailable(ApiError):
    status = 503

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None, **kw):
        if retry_after:
            kw.setdefault("headers", {})["Retry-After"] = str(int(retry_after))
        super().__init__(detail or "依赖的服务暂不可用，请稍后重试", **kw)


def problem_response(status: int, *, title: str | None = None, detail: str | None = None,
                     errors: dict | None = None, headers: dict | None = None,
                     slug: str | None = None, extra: dict | None = None):
    """Build one application/problem+json response."""
    body = {
        "type": _type_base() + (slug or HTTP_SLUGS.get(status, "error")),
        "title": title or HTTP_TITLES.get(status, "错误"),
        "status": status,
        "detail": detail or title or HTTP_TITLES.get(status, "错误"),
    }
    if errors is not None:
        body["errors"] = errors
    request_id = g.get("request_id") if _has_request() else None
    if request_id:
        body["instance"] = f"urn:request:{request_id}"
    if extra:  # RFC 9457 extension members never replace the standard ones
        body.update({key: value for key, value in extra.items() if key not in PROBLEM_MEMBERS})
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_MIME
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _type_base() -> str:
    """Problem types resolve to the page that explains them (/problems/<slug>) on this deployment."""
    if has_app_context():
        return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/problems/"
    return TYPE_BASE


def _has_request() -> bool:
    try:
        return bool(request)
    except RuntimeError:
        return False


def _flatten_messages(messages) -> dict:
    """Turn webargs/marshmallow nested messages into {"field.path": ["..."]}."""
    flat: dict[str, list[str]] = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for key, value in node.items():
                name = key if not prefix else f"{prefix}.{key}"
                if key == "_schema" and prefix:
                    name = prefix
                elif key == "_schema":
                    name = "body"
                walk(name, value)
        elif isinstance(node, list) and all(isinstance(v, str) for v in node):
            flat.setdefault(prefix or "body", []).extend(node)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(f"{prefix}[{index}]", value)
        else:
            flat.setdefault(prefix or "body", []).append(str(node))

    for location, fields in (messages or {}).items():
        if location in ("json", "query", "querystring", "form", "headers", "view_args", "files"):
            walk("", fields)
        else:
            walk(location, fields)
    return flat


def _handle_http_exception(exc: HTTPException):
    status = exc.code or 500
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    if status == 422:
        messages = getattr(exc, "data", {}).get("messages", {})
        errors = _flatten_messages(messages)
        detail = "；".join(f"{k}: {'，'.join(v)}" for k, v in errors.items()) or None
        return problem_response(422, detail=detail or "请求参数校验失败", errors=errors)
    if status == 400:
        detail = "请求体不是合法的 JSON" if "JSON" in (exc.description or "") else None
        return problem_response(400, detail=detail or "请求格式错误", headers=headers)
    if status == 405:
        detail = f"该地址不支持 {request.method} 方法"
    elif status == 404:
        detail = "请求的地址或资源不存在"
    elif status == 413:
        detail = "请求体超过允许的大小"
    else:
        detail = None
    return problem_response(status, detail=detail, headers=headers)


def _handle_api_error(exc: ApiError):
    return problem_response(exc.status, title=exc.title, detail=exc.detail, errors=exc.errors,
                            headers=exc.headers, slug=exc.slug, extra=exc.extra)


def _handle_database_unavailable(exc: Exception):
    logger.warning("database unavailable: %s", exc.__class__.__name__)
    return problem_response(503, detail="数据库暂不可用，请稍后重试", headers={"Retry-After": "5"})


def _handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return _handle_http_exception(exc)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return _handle_database_unavailable(exc)
    logger.exception("unhandled error", extra={"request_id": g.get("request_id")})
    return problem_response(500, detail="服务器处理请求时发生错误，请稍后重试")


def register_error_handlers(app: Flask) -> None:
    """Route every error, Flask's own included, through the problem+json path."""
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(SAOperationalError, _handle_database_unavailable)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
