"""Application factory: config, extensions, blueprints, error handlers, CLI."""
from __future__ import annotations

import importlib
import logging
import os
import threading

from flask import Flask, send_from_directory
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import config_for_env, ensure_secrets, refuse_development_secrets
from .db_routing import engine_options, init_app as init_db_routing
from .errors import register_error_handlers
from .extensions import ProblemApi, app_api, db
from .guards import init_input_guards
from .json_output import OrjsonProvider
from .observability import configure_logging, init_request_hooks
from .openapi import init_openapi
from .page_server import PageServer
from .ratelimit import RateLimiter
from .sessions import init_sessions
from .security.signed_requests import init_signed_requests
from .store import build_store

BLUEPRINTS = (
    ("app.ops.views", None),
    ("app.identity.views", "/api/v1"),
    ("app.identity.account_views", "/api/v1"),
    ("app.catalogue.views", "/api/v1"),
    ("app.wallet.views", "/api/v1"),
    ("app.applications.views", "/api/v1"),
    ("app.applications.desk_views", "/api/v1"),
    ("app.evaluations.views", "/api/v1"),
    ("app.notifications.views", "/api/v1"),
    ("app.files.views", "/api/v1"),
    ("app.results.views", "/api/v1"),
    ("app.appointments.views", "/api/v1"),
    ("app.complaints.views", "/api/v1"),
    ("app.catalogue.points.views", "/api/v1"),
    ("miniprograms.views", "/api/v1"),
    ("app.oidc.views", "/api/v1"),
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
logger = logging.getLogger("app")


def _signing_credentials(client_id: str):
    """`app.identity.clients.signing_credentials`, imported with the models on the first signed request."""
    from .identity.clients import signing_credentials
    return signing_credentials(client_id)


class ApiFlask(Flask):
    """Flask that decides once per function, not on every call, whether a view or hook is async, and
    registers its views when first needed (a request, the route map, the OpenAPI document), so that a
    command that needs none of them (`flask --help`, `flask seed`) does not import them."""

    json_provider_class = OrjsonProvider
    _pending_setup: list | None = None
    _setup_done = True
    _setup_lock = threading.RLock()

    def defer_setup(self, step) -> None:
        self._pending_setup = [*(self._pending_setup or ()), step]
        self._setup_done = False

    def finish_setup(self) -> None:
        """Run the deferred set-up steps now, once (gunicorn's master calls this before forking); another
        thread waits until they are done, and a step that reads the route map does not start them again."""
        if self._setup_done:
            return
        with self._setup_lock:
            steps, self._pending_setup = self._pending_setup or (), None
            for step in steps:
                step(self)
            if steps:
                self._setup_done = True

    def request_context(self, environ):
        self.finish_setup()
        return super().request_context(environ)

    @property
    def url_map(self):
        self.finish_setup()
        return self.__dict__["_url_map"]

    @url_map.setter
    def url_map(self, value):
        self.__dict__["_url_map"] = value

    def ensure_sync(self, func):
        target = getattr(func, "__func__", func)
        cache = self.__dict__.setdefault("_sync_functions", {})
        is_sync = cache.get(target)
        if is_sync is None:
            is_sync = cache[target] = super().ensure_sync(func) is func
        return func if is_sync else super().ensure_sync(func)


def create_app(config=None) -> Flask:
    """Build the app; `config` is a Config class, a dict of overrides, or None for APP_ENV."""
    app = ApiFlask(__name__, instance_path=os.path.join(ROOT, "instance"))
    base = config if isinstance(config, type) else config_for_env(
        (config or {}).get("APP_ENV") if isinstance(config, dict) else None)
    app.config.from_object(base)
    if isinstance(config, dict):
        app.config.update(config)
    ensure_secrets(app.config, app.instance_path)
    refuse_development_secrets(app.config, app.instance_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = _database_url(app)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"]))

    init_sessions(app)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    configure_logging(app)
    _init_extensions(app)
    init_openapi(app)
    app.wsgi_app = PageServer(app, app.wsgi_app)
    init_request_hooks(app)
    init_input_guards(app)
    init_signed_requests(app, find_client=_signing_credentials)
    register_error_handlers(app)
    _register_swagger_assets(app)
    app.defer_setup(_register_blueprints)
    from .cli import register_cli
    register_cli(app)
    return app


def _database_url(app: Flask) -> str:
    url = app.config.get("DATABASE_URL")
    if url:
        return url
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, "ishandong.db")


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
    init_db_routing(app)
    _release_sessions_safely(app)
    app.extensions["shared_store"] = build_store(app.config.get("REDIS_URL"), app.config)
    app.extensions["rate_limiter"] = RateLimiter(app.extensions["shared_store"])
    init_ciphers(app)
    api = app.extensions["api"] = ProblemApi()
    api.init_app(app)


def _release_sessions_safely(app: Flask) -> None:
    """End the request's session in place of Flask-SQLAlchemy's own teardown, so that a connection the
    database dropped mid-request (a restart, a failover) cannot make the rollback at teardown raise out of
    the WSGI app: the server would replace the problem+json the error handler produced with its own HTML
    500. (Its teardown, left in, would only remove the removed session again, on every request.)"""
    app.teardown_appcontext_funcs[:] = [f for f in app.teardown_appcontext_funcs if f != db._teardown_session]

    @app.teardown_appcontext
    def _remove_session(_exc):
        try:
            db.session.remove()
        except Exception:  # noqa: BLE001 - the connection is gone, nothing is left to roll back
            logger.warning("database session could not be closed cleanly; its connection is discarded")
            try:
                db.session.invalidate()
            except Exception:  # noqa: BLE001
                pass
            db.session.registry.clear()


def _register_blueprints(app: Flask) -> None:
    for module_path, prefix in BLUEPRINTS:
        module = importlib.import_module(module_path)
        options = {"url_prefix": prefix} if prefix else {}
        app_api(app).register_blueprint(module.blp, **options)
    pages = importlib.import_module("app.web.views")
    app.register_blueprint(pages.pages)
    importlib.import_module("app.oidc.endpoints").register_oidc(app)
    app.register_blueprint(importlib.import_module("app.web.landing").landing)


def _register_swagger_assets(app: Flask) -> None:
    import swagger_ui_bundle

    @app.route("/static/swagger-ui/<path:filename>")
    def swagger_ui_asset(filename):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
