"""OpenID Connect upkeep: `flask oidc prune` deletes codes and tokens nothing can use any more."""
from __future__ import annotations

import json
from datetime import timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import and_, delete, or_

from ..extensions import db
from ..timeutil import utcnow
from .models import OidcAuthorizationCode, OidcToken

# Past its expiry a row still answers "this was used" (reuse detection) for a grace period.
GRACE = timedelta(days=1)

oidc_cli = AppGroup("oidc")


def prune(*, now=None) -> dict[str, int]:
    """Delete authorization codes and tokens expired for longer than the grace period."""
    cutoff = (now or utcnow()) - GRACE
    codes = db.session.execute(delete(OidcAuthorizationCode).where(OidcAuthorizationCode.expires_at < cutoff))
    tokens = db.session.execute(delete(OidcToken).where(or_(
        OidcToken.refresh_expires_at < cutoff,
        and_(OidcToken.refresh_expires_at.is_(None), OidcToken.access_expires_at < cutoff))))
    db.session.commit()
    return {"codes": codes.rowcount, "tokens": tokens.rowcount}


@oidc_cli.command("prune")
def prune_command():
    """Delete codes and tokens that expired more than a day ago (run daily)."""
    click.echo(json.dumps({"pruned": prune()}, ensure_ascii=False))
