"""Application factory: config, extensions, blueprints, error handlers, CLI."""
from __future__ import annotations

import importlib
import logging
import os

from flask import Flask, request, send_from_directory
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import config_for_env, ensure_secrets, refuse_development_secrets
from .errors import NotFound, ValidationFailed, register_error_handlers
from .extensions import api, db, migrate
from .observability import configure_logging, init_request_hooks
from .ratelimit import RateLimiter
from .sessions import LazyCookieSessionInterface
from .security.signed_requests import init_signed_requests
from .store import build_store

BLUEPRINTS = (
    ("app.ops.views", None),
    ("app.identity.views", "/api/v1"),
    ("app.catalogue.views", "/api/v1"),
    ("app.wallet.views", "/api/v1"),
    ("app.applications.views", "/api/v1"),
    ("app.evaluations.views", "/api/v1"),
    ("app.notifications.views", "/api/v1"),
    ("miniprograms.views", "/api/v1"),
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
logger = logging.getLogger("app")


def create_app(config=None) -> Flask:
    """Build the app; `config` is a Config class, a dict of overrides, or None for APP_ENV."""
    app = Flask(__name__, instance_path=os.path.join(ROOT, "instance"))
    base = config if isinstance(config, type) else config_for_env(
        (config or {}).get("APP_ENV") if isinstance(config, dict) else None)
    app.config.from_object(base)
    if isinstance(config, dict):
        app.config.update(config)
    ensure_secrets(app.config, app.instance_path)
    refuse_development_secrets(app.config, app.instance_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = _database_url(app)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", _engine_options(app.config["SQLALCHEMY_DATABASE_URI"]))

    app.session_interface = LazyCookieSessionInterface()
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    configure_logging(app)
    _init_extensions(app)
    init_request_hooks(app)
    _init_input_guards(app)
    init_signed_requests(app)
    _register_blueprints(app)
    register_error_handlers(app)
    _register_swagger_assets(app)
    from .cli import register_cli
    register_cli(app)
    return app


def _database_url(app: Flask) -> str:
    url = app.config.get("DATABASE_URL")
    if url:
        return url
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, "ishandong.db")


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10, "pool_recycle": 1800,
            "connect_args": {"connect_timeout": 3}}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    if dbapi_connection.__class__.__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def _init_extensions(app: Flask) -> None:
    from .security.ciphers import init_ciphers
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(ROOT, "migrations"), render_as_batch=True)
    app.extensions["shared_store"] = build_store(app.config.get("REDIS_URL"))
    app.extensions["rate_limiter"] = RateLimiter(app.config.get("REDIS_URL"))
    init_ciphers(app)
    api.init_app(app)


NUL_MESSAGE = "不能包含空字符（U+0000）"


def _nul_fields(value) -> list[str]:
    """Where a parsed JSON document has U+0000 in a key or string, as `a.b[0].c` paths
    (iteratively, so that deep nesting cannot exhaust the stack)."""
    found, stack = [], [("", value)]
    while stack and len(found) < 20:
        where, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                found.append(where or "body")
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}" if where else str(key)
                if "\x00" in str(key):
                    found.append(name)
                else:
                    stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{index}]", child) for index, child in enumerate(item))
    return sorted(found)


def _init_input_guards(app: Flask) -> None:
    """No field of this API takes U+0000, and PostgreSQL cannot store it in text (a query with it
    fails in the driver: a 500). Refuse it up front: 404 in the path (no resource is named so),
    422 naming the fields in the query, the JSON body or a form."""

    @app.before_request
    def _reject_nul_characters():
        if "\x00" in request.path:
            raise NotFound("请求的地址或资源不存在")
        fields = sorted({key for key, value in request.args.items(multi=True) if "\x00" in key + value})
        if request.is_json:
            fields += _nul_fields(request.get_json(silent=True))
        elif request.mimetype == "application/x-www-form-urlencoded":
            fields += sorted({key for key, value in request.form.items(multi=True) if "\x00" in key + value})
        if fields:
            raise ValidationFailed("请求中包含不允许的空字符（U+0000）",
                                   errors={name.replace("\x00", "\\u0000"): [NUL_MESSAGE] for name in fields})


def _register_blueprints(app: Flask) -> None:
    for module_path, prefix in BLUEPRINTS:
        module = importlib.import_module(module_path)
        options = {"url_prefix": prefix} if prefix else {}
        api.register_blueprint(module.blp, **options)
    pages = importlib.import_module("app.web.views")
    app.register_blueprint(pages.pages)


def _register_swagger_assets(app: Flask) -> None:
    import swagger_ui_bundle

    @app.route("/static/swagger-ui/<path:filename>")
    def swagger_ui_asset(filename):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
