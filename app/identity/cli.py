"""Operator commands of the identity domain: registry, clients, staff, audit, sms."""
from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from ..errors import ApiError
from ..extensions import db
from ..oidc.cli import create_oidc_client, oidc_options
from ..security import audit
from ..security.pii import mask_id_number
from . import registries, sms
from .clients import create_client
from .identifiers import IdentifierError, normalize_phone
from .models import CHANNELS, CLIENT_KINDS
from .persons import create_staff

registry_cli = AppGroup("registry")
clients_cli = AppGroup("clients")
staff_cli = AppGroup("staff")
audit_cli = AppGroup("audit")
sms_cli = AppGroup("sms")


def _fail(exc: Exception) -> None:
    db.session.rollback()
    message = exc.detail if isinstance(exc, ApiError) else getattr(exc, "message", None) or str(exc)
    raise click.ClickException(message)


def _echo_json(data: dict) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


@registry_cli.command("add-person")
@click.option("--id-number", required=True, help="居民身份证号码")
@click.option("--name", required=True, help="姓名")
@click.option("--phone", default=None, help="手机号码（可选）")
@click.option("--guardian-of", "children", multiple=True, help="其监护的未成年子女的身份证号码（可多次）")
def registry_add_person(id_number, name, phone, children):
    """Add or update a resident in the development population registry."""
    try:
        phone = normalize_phone(phone) if phone else None
        row = registries.add_person(id_number=id_number, name=name, phone=phone)
        for child in children:
            registries.add_guardian(parent_id_number=id_number, child_id_number=child)
        db.session.commit()
    except (IdentifierError, ValueError) as exc:
        _fail(exc)
    _echo_json({"added": mask_id_number(id_number.strip().upper()), "name": row.name,
                "guardian_of": [mask_id_number(c.strip().upper()) for c in children]})


@registry_cli.command("add-entity")
@click.option("--credit-code", required=True, help="统一社会信用代码")
@click.option("--name", required=True, help="企业名称")
@click.option("--representative-id-number", required=True, help="法定代表人身份证号码")
def registry_add_entity(credit_code, name, representative_id_number):
    """Add or update a legal entity in the development legal-entity registry."""
    try:
        row = registries.add_entity(credit_code=credit_code, name=name,
                                    representative_id_number=representative_id_number)
        db.session.commit()
    except (IdentifierError, ValueError) as exc:
        _fail(exc)
    _echo_json({"added": row.credit_code, "name": row.name})


@registry_cli.command("set-credit")
@click.option("--id-or-code", required=True, help="身份证号码或统一社会信用代码")
@click.option("--class", "credit_class", required=True, type=click.Choice(registries.CREDIT_CLASSES),
              help="信用等级")
def registry_set_credit(id_or_code, credit_class):
    """Set a person's or company's credit class in the development credit registry."""
    try:
        registries.set_credit(id_or_code=id_or_code, credit_class=credit_class)
        db.session.commit()
    except (IdentifierError, ValueError) as exc:
        _fail(exc)
    _echo_json({"credit_class": credit_class})


@clients_cli.command("create")
@click.option("--kind", required=True, help="issuer、verifier、third_party 或 oidc")
@click.option("--name", required=True)
@click.option("--license-type", "license_types", multiple=True, help="证照类型编码（可多次）")
@click.option("--scope", "scopes", multiple=True, help="授权范围（可多次）")
@click.option("--channel", default="app", type=click.Choice(CHANNELS))
@click.option("--credit-code", default=None, help="签发机构的统一社会信用代码（签发方默认自动生成）")
@oidc_options
def clients_create(kind, name, license_types, scopes, channel, credit_code, **oidc):
    """Create a client; prints {"client_id","client_secret"} (the secret is shown only once)."""
    if kind not in CLIENT_KINDS + ("oidc",):
        raise click.ClickException("客户端类型应为 issuer、verifier、third_party 或 oidc")
    if kind == "oidc":  # a relying party of 一号通行 (app/oidc)
        try:
            return _echo_json(create_oidc_client(name=name, scopes=scopes, **oidc))
        except ApiError as exc:
            _fail(exc)
    try:
        client, secret = create_client(kind=kind, name=name, license_types=license_types,
                                       scopes=scopes, channel=channel, credit_code=credit_code)
    except ApiError as exc:
        _fail(exc)
    body = {"client_id": client.client_id, "client_secret": secret}
    if client.credit_code:
        body["credit_code"] = client.credit_code
    _echo_json(body)


@staff_cli.command("create")
@click.option("--role", required=True, help="hall_admin、hall_staff 或 platform_admin")
@click.option("--hall", "hall_code", default=None, help="大厅编码（平台管理员无需）")
@click.option("--id-number", required=True)
@click.option("--name", required=True)
@click.option("--password", default=None, help="新建人员时必填")
@click.option("--phone", default=None)
@click.option("--department", default=None, help="受审分离：负责审批的部门名称（如 济南市公安局历下区分局）；缺省为综合受理窗口")
def staff_create(role, hall_code, id_number, name, password, phone, department):
    """Give a person a staff role, creating the person (and dev registry entry) when absent."""
    try:
        person, created = create_staff(role=role, hall_code=hall_code, id_number=id_number, name=name,
                                       password=password, phone=phone, department=department)
    except ApiError as exc:
        _fail(exc)
    _echo_json({"subject_id": person.subject_id, "role": role, "hall": hall_code, "created": created,
                "department": department})


@audit_cli.command("verify")
def audit_verify():
    """Check the audit log's hash chain; exit status 1 when any row was changed or removed."""
    result = audit.verify()
    if result.ok:
        click.echo(f"审计链完整：共 {result.count} 条记录")
        return
    for problem in result.problems:
        click.echo(problem, err=True)
    click.echo(f"审计链校验失败：{len(result.problems)} 处问题（共 {result.count} 条记录）", err=True)
    sys.exit(1)


@sms_cli.command("last")
@click.option("--phone", required=True)
def sms_last(phone):
    """Print the last code the development sender kept for this phone (development and test only)."""
    if current_app.config.get("APP_ENV") not in ("development", "test"):
        raise click.ClickException("sms last 仅可在开发和测试环境使用")
    try:
        phone = normalize_phone(phone)
    except IdentifierError as exc:
        _fail(exc)
    code = sms.last_outbox_code(phone)
    if code is None:
        raise click.ClickException("该手机号没有发送过验证码")
    click.echo(code)
