"""Unbound extensions, bound to an app inside create_app: db, shared store, limiter; ProblemApi (one per app).
Migrations bind on first use (app/schema_migrations.py)."""
from __future__ import annotations

import threading

from flask.globals import _cv_app
from apispec import BasePlugin
from flask_smorest import Api, Blueprint
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from .db_routing import RoutingSession
from .query_args import QUERY_LOCATIONS, MemoQueryParser

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations are stable across databases."""

    metadata = MetaData(naming_convention=NAMING)


PROBLEM_MIME = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
BEARER_SCHEME = "bearerAuth"
BEARER = [{BEARER_SCHEME: []}]  # an operation's `security`: a bearer access token
OPTIONAL_BEARER = [{BEARER_SCHEME: []}, {}]  # a token is optional


class ProblemContentPlugin(BasePlugin):
    """Document problem bodies under `application/problem+json`, the content type they are served with
    (flask-smorest documents every response as `application/json`)."""

    @staticmethod
    def _is_problem(schema) -> bool:
        from schemas.common import ProblemSchema
        if isinstance(schema, dict):
            return schema.get("$ref") == PROBLEM_REF
        return schema is ProblemSchema or isinstance(schema, ProblemSchema)

    def _retype(self, response: dict) -> None:
        content = response.get("content") or {}
        body = content.get("application/json")
        if body is not None and self._is_problem(body.get("schema")):
            content[PROBLEM_MIME] = content.pop("application/json")

    def response_helper(self, response, **kwargs):
        self._retype(response)
        return response

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            if not isinstance(operation, dict):
                continue
            for status, response in (operation.get("responses") or {}).items():
                if isinstance(response, dict) and (str(status) == "default" or str(status) >= "400"):
                    self._retype(response)


class ProblemApi(Api):
    """flask-smorest Api whose documented error body is RFC 9457 problem details."""

    from schemas.common import ProblemSchema as ERROR_SCHEMA

    def init_app(self, app, *, spec_kwargs=None):
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs.setdefault("extra_plugins", [ProblemContentPlugin()])
        super().init_app(app, spec_kwargs=spec_kwargs)
        self.spec.components.security_scheme(
            BEARER_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})

    # The OpenAPI document is written when first read (/openapi.json, /docs, `flask openapi`), not
    # while the app is built: every `flask` command and worker start skipped most of a second.
    _spec_lock = threading.Lock()

    def register_blueprint(self, blp, *, parameters=None, **options):
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._pending_docs.append((self._app, blp, name, parameters))

    @property
    def spec(self):
        if self._app is not None:
            self._app.finish_setup()  # the views register their documentation
        with self._spec_lock:
            pending, self._pending_docs = self._pending_docs, []
            for app, blp, name, parameters in pending:
                blp.register_views_in_doc(self, app, self._spec, name=name, parameters=parameters)
                self._spec.tag({"name": name, "description": blp.description})
        return self._spec

    @spec.setter
    def spec(self, value):
        self._spec, self._pending_docs = value, []


class ApiBlueprint(Blueprint):
    """flask-smorest Blueprint whose argument schemas are built once (webargs would build a schema
    given as a class on every request, as flask-smorest already avoids for response schemas) and
    whose query arguments are validated once per distinct query string (app/query_args.py)."""

    ARGUMENTS_PARSER = MemoQueryParser()

    def arguments(self, schema, *args, **kwargs):
        if kwargs.get("location") in QUERY_LOCATIONS:
            # the schema decides (RAISE unless it says otherwise): an unknown query parameter is a
            # 422 naming it instead of being silently ignored, as webargs does for query strings
            kwargs.setdefault("unknown", None)
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)


db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})  # app/db_routing.py


def app_api(app) -> ProblemApi:
    """The app's own flask-smorest Api (one per app: an app registers its views on first use, see create_app)."""
    return app.extensions["api"]


class AppExtension:
    """The current app's extension `name`, looked up again on each attribute access, as a werkzeug
    `LocalProxy` over `current_app` would, at a third of its cost: a request's hot path reaches the shared
    store several times. Outside an app context: RuntimeError, as with `current_app`."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def _get_current_object(self):
        """The extension itself (LocalProxy's name for it), e.g. to patch one of its methods in a test."""
        try:
            app = _cv_app.get().app
        except LookupError:
            raise RuntimeError(f"Working outside of application context (extension {self._name!r}).") from None
        return app.extensions[self._name]

    def __getattr__(self, attribute: str):
        return getattr(self._get_current_object(), attribute)

    def __repr__(self) -> str:
        return f"<AppExtension {self._name}>"


store = AppExtension("shared_store")
limiter = AppExtension("rate_limiter")
