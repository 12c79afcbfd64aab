"""Alembic migrations through Flask-Migrate, bound to an app on first use: importing Alembic costs
about 0.3 s, which only `flask db ...`, `flask seed` and a fresh schema should pay. Binding imports
every model module, so that autogenerate (`flask db migrate`, `flask db check`) compares the whole schema."""
from __future__ import annotations

import importlib
from pathlib import Path

import click
from flask import Flask, current_app, has_app_context
from flask.cli import ScriptInfo

from .extensions import db

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def import_models() -> None:
    """Import every `app` module whose name ends in `models` (views and commands import theirs on first use)."""
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*models.py")):
        importlib.import_module(".".join(("app", *path.relative_to(package).with_suffix("").parts)))


def bind_migrations(app: Flask | None = None):
    """The app's Flask-Migrate configuration (`app.extensions["migrate"]`), made on the first call."""
    app = app or current_app._get_current_object()
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate
        import_models()
        Migrate(app, db, directory=MIGRATIONS, render_as_batch=True)
    return app.extensions["migrate"]


def alembic_config(app: Flask | None = None):
    """Alembic's Config for the app's migrations directory."""
    bound = bind_migrations(app)
    return bound.migrate.get_config(bound.directory)


def upgrade_schema(revision: str = "head") -> None:
    """Migrate the current app's database up to `revision`."""
    from flask_migrate import upgrade
    bind_migrations()
    upgrade(revision=revision)


def downgrade_schema(revision: str) -> None:
    """Migrate the current app's database down to `revision`."""
    from flask_migrate import downgrade
    bind_migrations()
    downgrade(revision=revision)


def db_cli() -> click.Group:
    """Flask-Migrate's `db` group, bound to the app the command line loads."""
    from flask_migrate.cli import db as group
    app = (current_app._get_current_object() if has_app_context()
           else click.get_current_context().ensure_object(ScriptInfo).load_app())
    bind_migrations(app)
    return group
