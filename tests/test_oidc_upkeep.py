"""`flask oidc prune`: codes and tokens past expiry plus a day of grace go; anything that can still
answer (a live refresh token, a used one that must still detect reuse) stays."""
from __future__ import annotations

import json
import secrets
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.oidc.models import OidcAuthorizationCode, OidcToken
from app.timeutil import utcnow


def code_row(expires_at, used: bool) -> OidcAuthorizationCode:
    return OidcAuthorizationCode(
        code_hash=secrets.token_hex(32), client_id="oc_test", subject_id="p_test", family_id=secrets.token_hex(16),
        redirect_uri="https://rp.example/cb", scope="openid", code_challenge="x" * 43, code_challenge_method="S256",
        auth_time=0, acr="L1", amr=["pwd"], expires_at=expires_at, used_at=expires_at if used else None)


def token_row(access_expires_at, refresh_expires_at=None, *, used: bool = False) -> OidcToken:
    return OidcToken(
        family_id=secrets.token_hex(16), client_id="oc_test", subject_id="p_test", scope="openid",
        access_token_hash=secrets.token_hex(32), refresh_token_hash=secrets.token_hex(32) if refresh_expires_at else None,
        auth_time=0, acr="L1", amr=["pwd"], access_expires_at=access_expires_at, refresh_expires_at=refresh_expires_at,
        refresh_used_at=utcnow() if used else None)


def test_prune_deletes_only_what_nothing_can_use(app):
    now = utcnow()
    long_ago, yesterday_ish, soon = now - timedelta(days=3), now - timedelta(hours=20), now + timedelta(days=10)
    with app.app_context():
        keep_codes = [code_row(yesterday_ish, used=True), code_row(soon, used=False)]
        gone_codes = [code_row(long_ago, used=True), code_row(long_ago, used=False)]
        keep_tokens = [token_row(long_ago, soon, used=True),  # a used refresh token still detects reuse
                       token_row(long_ago, soon), token_row(yesterday_ish)]
        gone_tokens = [token_row(long_ago, long_ago), token_row(long_ago)]
        db.session.add_all(keep_codes + gone_codes + keep_tokens + gone_tokens)
        db.session.commit()
        kept_code_ids = {row.id for row in keep_codes}
        kept_token_ids = {row.id for row in keep_tokens}

    result = app.test_cli_runner().invoke(args=["oidc", "prune"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"pruned": {"codes": 2, "tokens": 2}}
    with app.app_context():
        assert set(db.session.scalars(select(OidcAuthorizationCode.id))) == kept_code_ids
        assert set(db.session.scalars(select(OidcToken.id))) == kept_token_ids
    assert json.loads(app.test_cli_runner().invoke(args=["oidc", "prune"]).output) == {"pruned": {"codes": 0, "tokens": 0}}
