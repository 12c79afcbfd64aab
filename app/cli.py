"""Operator commands (`flask --app wsgi ...`): seed, keys, worker and the domains' own groups."""
from __future__ import annotations

import importlib
import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .extensions import db

COMMAND_MODULES: tuple[str, ...] = ("app.notifications.cli", "app.identity.cli", "app.catalogue.cli", "app.applications.cli")
SEEDERS: tuple[tuple[str, str], ...] = (
    ("identity registries", "app.identity.registries:seed_demo"),
    ("license types", "app.wallet.seed:seed_license_types"),
    ("catalogue", "app.catalogue.seed:seed_catalogue"),
)
# Tables `seed` fills with reference data; the test suite seeds them once per session and keeps them.
REFERENCE_TABLES: tuple[str, ...] = ("license_types", "halls", "services", "topics", "bundles", "catalogue_state")

keys_cli = AppGroup("keys", help="签名密钥管理")


@keys_cli.command("rotate")
def rotate_keys():
    """New signing keys; old public keys stay in JWKS until what they signed expires."""
    from .security import keys
    ttl = current_app.config["ACCESS_TOKEN_TTL"] + 60
    new = keys.rotate(["access"] + _other_purposes(), keep_for={"access": ttl})
    click.echo(json.dumps({"rotated": new}, ensure_ascii=False))


def _other_purposes() -> list[str]:
    from sqlalchemy import select
    from .security.models import SigningKey
    purposes = db.session.scalars(select(SigningKey.purpose).distinct()).all()
    return [p for p in purposes if p != "access"]


@click.command("seed")
def seed():
    """Halls, catalogue, license types, topics, bundles and demo registries (idempotent)."""
    run_seeders(click.echo)
    click.echo("seed: done")


def run_seeders(report=lambda line: None) -> None:
    """Run every domain's idempotent seeder in order."""
    for label, path in SEEDERS:
        module, _, name = path.partition(":")
        result = getattr(importlib.import_module(module), name)()
        report(f"{label}: {result}")


@click.command("worker")
def worker():
    """Run the RQ worker for the job queue (needs REDIS_URL)."""
    from redis import Redis
    from rq import Worker
    from .jobs import QUEUE_NAME, use_app
    url = current_app.config.get("REDIS_URL")
    if not url:
        raise click.ClickException("没有配置 REDIS_URL：任务将在请求进程内直接执行，无需 worker")
    use_app(current_app._get_current_object())
    Worker([QUEUE_NAME], connection=Redis.from_url(url)).work(with_scheduler=True)


def register_cli(app: Flask) -> None:
    """Attach the core commands and every domain's command groups."""
    app.cli.add_command(seed)
    app.cli.add_command(keys_cli)
    app.cli.add_command(worker)
    for module_path in COMMAND_MODULES:
        for command in importlib.import_module(module_path).commands:
            app.cli.add_command(command)
