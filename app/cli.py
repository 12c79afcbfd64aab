"""Operator commands (`flask --app wsgi ...`): seed, keys, worker and the domains' own groups."""
from __future__ import annotations

import gc
import importlib
import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from .extensions import db
from .jobs import QUEUE_NAME, use_app
from .security import keys
from .oidc.settings import ID_TOKEN_TTL, OIDC_KEY_PURPOSE
from .security.models import SigningKey

# Every domain's command group: name, help, and where it lives. `flask --help` lists them from here without
# importing the domains; a group's module is imported when the group runs or lists its commands.
COMMAND_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("outbox", "渠道通知发件箱", "app.notifications.cli:outbox_cli"),
    ("registry", "开发用户籍库、法人库、信用库", "app.devtools.cli:registry_cli"),  # devtools adds `list` to it
    ("clients", "签发方、核验方与第三方客户端", "app.identity.cli:clients_cli"),
    ("staff", "大厅工作人员与平台管理员", "app.identity.cli:staff_cli"),
    ("audit", "安全审计日志", "app.identity.cli:audit_cli"),
    ("sms", "开发用短信发件箱", "app.identity.cli:sms_cli"),
    ("catalogue", "政务服务事项目录", "app.catalogue.cli:catalogue_cli"),
    ("applications", "办件", "app.applications.cli:applications_cli"),
    ("demo", "开发环境的演示账号", "app.devtools.cli:demo_cli"),
    ("config", "配置检查", "app.devtools.cli:config_cli"),
    ("fakes", "本地微信、支付宝小程序模拟服务（开发用）", "app.devtools.cli:fakes_cli"),
    ("appointments", "预约：开放时段、到期提醒、爽约统计", "app.appointments.cli:appointments_cli"),
    ("complaints", "诉求：与 12345 热线平台同步工单", "app.complaints.cli:complaints_cli"),
    ("files", "上传文件", "app.files.cli:files_cli"),
    ("archive", "电子档案", "app.results.cli:archive_cli"),
    ("wallet", "电子证照：从证照库归集证照", "app.wallet.cli:wallet_cli"),
    ("partitions", "按月分区（PostgreSQL）：提前建分区、按保留期删除旧分区", "app.partitions:partitions_cli"),
    ("oidc", "OpenID Connect 提供方的日常维护", "app.oidc.maintenance:oidc_cli"),
    ("db", "数据库迁移（Alembic）：upgrade、downgrade、current、history…", "app.schema_migrations:db_cli"),
)
SEEDERS: tuple[tuple[str, str], ...] = (
    ("identity registries", "app.identity.registries:seed_demo"),
    ("access-token key", "app.security.keys:ensure_access_key"),
    ("license types", "app.wallet.seed:seed_license_types"),
    ("catalogue", "app.catalogue.seed:seed_catalogue"),
    ("service points", "app.catalogue.points.seed:seed_service_points"),
    ("demo accounts", "app.devtools.accounts:seed_demo_accounts"),
    ("demo clients", "app.devtools.demo_clients:seed_demo_clients"),
    ("demo licenses", "app.wallet.demo_licenses:seed_demo_licenses"),
    ("demo activity", "app.devtools.demo_activity:seed_demo_activity"),
)
# Tables `seed` fills with reference data; the test suite seeds them once per session and keeps them.
REFERENCE_TABLES: tuple[str, ...] = ("license_types", "halls", "services", "topics", "bundles", "catalogue_state",
                                  "service_points", "service_situations")

keys_cli = AppGroup("keys", help="签名密钥管理")


@keys_cli.command("rotate")
def rotate_keys():
    """New signing keys; old public keys stay in JWKS until what they signed expires."""
    ttl = current_app.config["ACCESS_TOKEN_TTL"] + 60
    id_token_ttl = current_app.config.get("OIDC_ID_TOKEN_TTL") or ID_TOKEN_TTL
    new = keys.rotate(["access"] + _other_purposes(), keep_for={"access": ttl, OIDC_KEY_PURPOSE: id_token_ttl + 60})
    click.echo(json.dumps({"rotated": new}, ensure_ascii=False))


def _other_purposes() -> list[str]:
    purposes = db.session.scalars(select(SigningKey.purpose).distinct()).all()
    return [p for p in purposes if p != "access"]


@click.command("seed")
def seed():
    """Halls, catalogue, license types, topics, bundles and demo registries; in development the demo
    accounts, licenses and activity too (idempotent)."""
    ensure_migrated()
    run_seeders(click.echo)
    click.echo("seed: done")


def ensure_migrated() -> None:
    """Bring a database that is behind the migrations up to date first (outside production: there,
    say in one line what to run)."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from .schema_migrations import alembic_config, upgrade_schema
    config = alembic_config()
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == set(ScriptDirectory.from_config(config).get_heads()):
        return
    line = "数据库尚未迁移到最新版本，请先运行：flask --app wsgi db upgrade"
    if current_app.config.get("APP_ENV") == "production":
        raise click.ClickException(line)
    click.echo("数据库尚未迁移到最新版本：先执行迁移（flask --app wsgi db upgrade）")
    try:
        upgrade_schema()
    except Exception as exc:  # noqa: BLE001 - tables made without Alembic, a broken URL...
        raise click.ClickException(f"{line}（自动迁移失败：{exc.__class__.__name__}）") from exc


def run_seeders(report=lambda line: None) -> None:
    """Run every domain's idempotent seeder in order."""
    for label, path in SEEDERS:
        module, _, name = path.partition(":")
        result = getattr(importlib.import_module(module), name)()
        report(f"{label}: {result}")


@click.command("worker")
def worker():
    """Run the RQ worker for the job queue (needs REDIS_URL)."""
    from rq import Worker  # only this command needs rq; every other command and app start skip its import
    url = current_app.config.get("REDIS_URL")
    if not url:
        raise click.ClickException("没有配置 REDIS_URL：任务将在请求进程内直接执行，无需 worker")
    from sqlalchemy.orm import configure_mappers

    from .journal import load_handlers
    from .redis_topology import queue_connection
    from .warmup import freeze_before_fork
    load_handlers()
    configure_mappers()  # once here, not in every work horse
    use_app(current_app._get_current_object())
    gc.collect()
    freeze_before_fork()  # as gunicorn's master does: each job's work horse collects only what its job made
    Worker([QUEUE_NAME], connection=queue_connection()).work(with_scheduler=True)


class LazyGroup(click.Group):
    """A command group named and described in COMMAND_GROUPS whose module is imported on first use
    (the target is the group, or a function that returns it)."""

    def __init__(self, name: str, help: str, target: str):
        super().__init__(name, help=help)
        self._target = target
        self._group: click.Group | None = None

    def loaded(self) -> click.Group:
        if self._group is None:
            module, _, attribute = self._target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
            self._group = target if isinstance(target, click.Group) else target()
        return self._group

    def make_context(self, info_name, args, parent=None, **extra):
        return self.loaded().make_context(info_name, args, parent=parent, **extra)  # its options too

    def invoke(self, ctx):
        return self.loaded().invoke(ctx)

    def list_commands(self, ctx):
        return self.loaded().list_commands(ctx)

    def get_command(self, ctx, name):
        return self.loaded().get_command(ctx, name)


def register_cli(app: Flask) -> None:
    """Attach the core commands and every domain's command group (imported when used)."""
    app.cli.add_command(seed)
    app.cli.add_command(keys_cli)
    app.cli.add_command(worker)
    for name, help_text, target in COMMAND_GROUPS:
        app.cli.add_command(LazyGroup(name, help_text, target))
