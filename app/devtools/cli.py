"""Commands for trying and checking a deployment: `demo`, `registry list`, `config check`, `fakes`."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from ..identity.cli import registry_cli
from . import accounts
from .demo_clients import demo_client_lines

demo_cli = AppGroup("demo")
config_cli = AppGroup("config")
fakes_cli = AppGroup("fakes")
FAKES_DIR = Path(__file__).resolve().parents[2] / "tests" / "fakes"  # in a source checkout only


def _development_only(what: str) -> None:
    if current_app.config.get("APP_ENV") != accounts.DEVELOPMENT:
        raise click.ClickException(f"{what}仅在开发环境（APP_ENV=development）可用")


# ---- demo accounts


@demo_cli.command("accounts")
def demo_accounts():
    """The demo accounts, their password and where to use them (development only)."""
    _development_only("演示账号")
    password = accounts.demo_password(current_app.config["SECRET_KEY"])
    click.echo(f"演示账号（登录名为身份证号码，密码均为 {password}；首次 flask seed 时设置）")
    for account in accounts.DEMO_ACCOUNTS:
        hall = f"{account.hall_code} {account.hall_name}" if account.hall_code else ""
        click.echo(f"  {account.id_number}  {account.name}  {accounts.ROLE_NAMES[account.role]} {hall}  {account.note}")
    id_number, name = accounts.UNREGISTERED_DEMO_PERSON
    click.echo(f"未注册的户籍库居民（可用来试注册或小程序绑定）：{name} {id_number}")
    click.echo("演示客户端（client_credentials 换取令牌）：")
    for line in demo_client_lines(current_app.config["SECRET_KEY"]):
        click.echo(f"  {line}")


@demo_cli.command("password")
def demo_password():
    """Print only the demo accounts' password (development only)."""
    _development_only("演示账号")
    click.echo(accounts.demo_password(current_app.config["SECRET_KEY"]))


# ---- the development registries, masked


@registry_cli.command("list")
def registry_list():
    """The development registries with ID numbers and phones masked."""
    from sqlalchemy import select

    from ..extensions import db
    from ..identity.models import Person, RegistryCredit, RegistryEntity, RegistryGuardian, RegistryPerson
    from ..identity.registries import CREDIT_CODE_DOMAIN
    from ..security.ciphers import pii_cipher
    from ..security.pii import mask_id_number, mask_phone
    cipher = pii_cipher()
    rows = db.session.scalars(select(RegistryPerson).order_by(RegistryPerson.id))
    people = {row.id_number_index: row for row in rows}
    registered = set(db.session.scalars(select(Person.id_number_index).where(Person.id_number_index.in_(people))))

    def who(index: str) -> str:
        row = people.get(index)
        if row is None:
            return "（户籍库中无此人）"
        return f"{mask_id_number(cipher.decrypt(row.id_number_enc, context='registry-person:id_number'))} {row.name}"

    click.echo(f"居民（户籍库，{len(people)} 人）")
    for index, row in people.items():
        phone = cipher.decrypt(row.phone_enc, context="registry-person:phone") if row.phone_enc else None
        account = "已注册" if index in registered else "未注册"
        click.echo(f"  {who(index)}\t{mask_phone(phone) or '（无手机号）'}\t{account}")
    click.echo("监护关系")
    for row in db.session.scalars(select(RegistryGuardian).order_by(RegistryGuardian.id)):
        click.echo(f"  {who(row.parent_index)} → {who(row.child_index)}")
    entities = list(db.session.scalars(select(RegistryEntity).order_by(RegistryEntity.id)))
    click.echo(f"法人（法人库，{len(entities)} 家）")
    for row in entities:
        click.echo(f"  {row.credit_code}\t{row.name}\t法定代表人 {who(row.representative_index)}")
    names = {index: who(index) for index in people}
    names.update({cipher.blind_index(row.credit_code, domain=CREDIT_CODE_DOMAIN): f"{row.credit_code} {row.name}"
                  for row in entities})
    click.echo("信用等级（未列出的为诚信守法）")
    for row in db.session.scalars(select(RegistryCredit).order_by(RegistryCredit.id)):
        click.echo(f"  {names.get(row.subject_index, '（未知主体）')}\t{row.credit_class}")


# ---- configuration


@config_cli.command("check")
def config_check():
    """What is set, missing or weak for production; never prints a secret's value."""
    from ..config import CHECK_STATES, check_for_production
    findings = check_for_production(current_app.config, current_app.instance_path)
    for name, state, note in findings:
        click.echo(f"[{CHECK_STATES[state]}] {name}: {note}")
    problems = [name for name, state, _ in findings if state in ("weak", "missing")]
    production = current_app.config.get("APP_ENV") == "production"
    if problems:
        click.echo(f"按生产环境要求还需处理 {len(problems)} 项：{'、'.join(problems)}")
    else:
        click.echo("配置满足生产环境要求")
    if problems and production:
        sys.exit(1)


# ---- local WeChat and Alipay fakes


def _serve_fakes(channels: tuple[str, ...], port: int, env_file: str | None) -> None:
    if current_app.config.get("APP_ENV") == "production":
        raise click.ClickException("生产环境不能启动本地模拟服务")
    if not (FAKES_DIR / "local.py").is_file():
        raise click.ClickException("找不到 tests/fakes：本地模拟服务只在源码检出中可用")
    from tests.fakes import local  # only here: the product never imports the test fakes
    path = Path(env_file) if env_file else Path(current_app.instance_path) / "fakes.env"
    state = local.load_state(path.with_suffix(".json"))
    servers, exports = [], {}
    for offset, channel in enumerate(channels):
        server, variables = local.STARTERS[channel](state, port + offset if port else 0)
        servers.append(server)
        exports.update(variables)
    lines = [f"export {name}='{value}'" for name, value in exports.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    names = {"wechat": "微信", "alipay": "支付宝"}
    for channel, server in zip(channels, servers):
        click.echo(f"{names[channel]}小程序模拟服务：{server.base_url}")
    click.echo("\n在运行 make run 的终端里先设置这些环境变量（也已写入 " + str(path) + "，可用 . 命令载入）：")
    click.echo("\n".join(lines))
    click.echo("\n任何登录码都有效：“.”之前的部分代表同一个用户（如 lisi.1、lisi.2），每个码只能用一次；"
               "11位手机号可作微信手机号授权码。按 Ctrl-C 停止。")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()


_port = click.option("--port", default=None, type=int, help="监听端口（0 为随机空闲端口）")
_env_file = click.option("--env-file", default=None, help="写入 export 行的文件（默认 instance/fakes.env）")


@fakes_cli.command("wechat")
@_port
@_env_file
def fakes_wechat(port, env_file):
    """Serve the WeChat fake (jscode2session, stable_token, phone, subscribe messages)."""
    _serve_fakes(("wechat",), 5181 if port is None else port, env_file)


@fakes_cli.command("alipay")
@_port
@_env_file
def fakes_alipay(port, env_file):
    """Serve the Alipay gateway fake (oauth token, template messages, phone payloads)."""
    _serve_fakes(("alipay",), 5182 if port is None else port, env_file)


@fakes_cli.command("all")
@_port
@_env_file
def fakes_all(port, env_file):
    """Serve both fakes (WeChat on PORT, Alipay on PORT+1)."""
    _serve_fakes(("wechat", "alipay"), 5181 if port is None else port, env_file)
