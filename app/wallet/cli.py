"""`flask wallet collect`: pull every registered person's licenses from the license library (归集; for cron)."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from ..errors import ApiError
from ..identity.identifiers import IdentifierError
from . import collection

wallet_cli = AppGroup("wallet")


@wallet_cli.command("collect")
@click.option("--id-number", default=None, help="只为这个人归集（默认：所有已注册的人）")
def collect(id_number):
    """Pull the licenses the library holds into the wallets (idempotent: a license already there stays one)."""
    try:
        result = collection.collect_for(id_number) if id_number else collection.collect_everyone()
    except IdentifierError as exc:
        raise click.ClickException(f"身份证号码不正确：{exc.message}") from exc
    except ApiError as exc:
        raise click.ClickException(f"归集失败：{exc.detail}") from exc
    click.echo(json.dumps(result, ensure_ascii=False))
