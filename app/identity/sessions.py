"""Sessions: token pairs, sign-in sessions, listing and ending them, and ending every session of a
person whose credentials changed.

Every token pair belongs to a session (`sid` claim = the session id) and carries the acting
person's credentials version (`ver`). A session row holds the SHA-256 of its one live refresh
token, `rt_<session id>.<generation>.<random>`: a refresh swaps it for the next generation's, in the
shared store when it holds the session (`held_sessions`, written behind to the row) or else in one
UPDATE, which is also the check (token, session live, credentials current). A token of an older
generation is a reused one and ends the session. Ending a session marks its row and, in the shared
store, its `sid`, so its access tokens stop at once on every worker. A credentials change raises
the person's version: sessions and tokens of an older version are dead (the shared store says so
to the token check; the session row to the refresh grant), which also catches a sign-in that raced
the change. Refresh tokens issued before sessions held their own (`RefreshToken` rows) are honoured
once each until they expire.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import Update, and_, bindparam, func, or_, select, update

from .. import journal
from ..db_routing import COMMITS_ALONE
from ..errors import Forbidden, NotFound, Unauthorized
from ..extensions import db
from ..prepared import Prepared
from ..security import audit
from ..security.tokens import (issue_access_token, revoke_access_token, revoke_older_credentials,
                               revoke_session_tokens)
from ..timeutil import as_aware, utcnow
from . import held_sessions
from .common import sha256_hex
from .models import CHANNELS, AuthSession, Person, RefreshToken
from .persons import staff_roles, staff_roles_column, staff_roles_from

REFRESH_PREFIX = "rt_"


def _credentials_version(person_id: str | None) -> int | None:
    if not person_id or not person_id.startswith("p_"):
        return None
    return db.session.scalar(select(Person.credentials_version).where(Person.subject_id == person_id))


def _locked_credentials_version(person_id: str) -> int | None:
    """The person's credentials version, read with a share lock to the commit: a change of credentials
    either commits before (and is read here) or waits and then finds the new session to end."""
    return db.session.scalar(select(Person.credentials_version).where(Person.subject_id == person_id)
                             .with_for_update(read=True))


def issue_tokens(subject_id: str, roles: list[str], extra: dict, *, channel: str, actor_id: str | None = None,
                 family_id: str | None = None, refresh_token: str | None = None, refresh: bool = True,
                 credentials_version: int | None = None) -> dict:
    """An access token and, unless `refresh` is false, a refresh token: a new session's (its row is
    added to the db session, not committed), or for the session `family_id` the `refresh_token` its
    rotation already stored. `credentials_version`: the acting person's, when the caller has just read it."""
    extra = dict(extra)
    new_session = refresh and family_id is None
    if refresh:
        family_id = family_id or secrets.token_hex(16)
        extra["sid"] = family_id
        version = (credentials_version if credentials_version is not None
                   else _credentials_version(actor_id or subject_id))
        if version is not None:
            extra["ver"] = version
    token, claims = issue_access_token(subject_id, roles=roles, extra=extra)
    body = {"access_token": token, "token_type": "Bearer",
            "expires_in": int(claims["exp"]) - int(claims["iat"])}
    if new_session:
        refresh_token = next_refresh_token(family_id, 0)
        now = utcnow()
        ends = now + _refresh_ttl()
        db.session.add(AuthSession(session_id=family_id, subject_id=subject_id, actor_id=actor_id,
                                   channel=channel, credentials_version=claims.get("ver", 0),
                                   created_at=now, last_used_at=now, expires_at=ends,
                                   refresh_hash=sha256_hex(refresh_token), refresh_generation=0))
        if (held_sessions.holds(subject_id, actor_id) and roles == ["citizen"]  # staff: held at their first refresh
                and _locked_credentials_version(subject_id) == claims.get("ver", 0)):
            held_sessions.hold_after_commit(session_id=family_id, subject_id=subject_id, channel=channel,
                                            generation=0, refresh_hash=sha256_hex(refresh_token), expires_at=ends,
                                            credentials_version=claims.get("ver", 0), staff_roles="")
    if refresh:
        if not refresh_token:
            raise ValueError("a continued session needs the refresh token its rotation stored")
        body["refresh_token"] = refresh_token
    return body


def _refresh_ttl() -> timedelta:
    return timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"])


def next_refresh_token(session_id: str, generation: int) -> str:
    return f"{REFRESH_PREFIX}{session_id}.{generation}.{secrets.token_urlsafe(24)}"


def parse_refresh_token(raw: str) -> tuple[str, int] | None:
    """(session id, generation) named by a session's refresh token; None for anything else (a token
    issued before sessions held their own has no dots)."""
    if not raw.startswith(REFRESH_PREFIX):
        return None
    session_id, _, rest = raw[len(REFRESH_PREFIX):].partition(".")
    generation, _, secret = rest.partition(".")
    if not session_id or not secret or not generation.isdigit() or len(generation) > 9:
        return None
    return session_id, int(generation)


def _person_claims(subject_id: str, channel: str, staff: str | None = None) -> tuple[list[str], dict]:
    roles, halls = staff_roles(subject_id) if staff is None else staff_roles_from(staff)
    extra = {"sub_type": "person", "channel": channel}
    if halls:
        extra["halls"] = halls
    return sorted(roles), extra


def issue_person_pair(person: Person | str, channel: str, family_id: str | None = None, *,
                      refresh_token: str | None = None, credentials_version: int | None = None,
                      staff: str | None = None) -> dict:
    """A token pair for a person (or their subject id) with their current roles and halls (not committed), in a
    new session or (`family_id`, `refresh_token`) a rotated one; `credentials_version` when the caller has just
    read the person's, `staff` their `staff_roles_column` when the caller has just read it (the rotation)."""
    subject_id = person if isinstance(person, str) else person.subject_id
    roles, extra = _person_claims(subject_id, channel, staff)
    return issue_tokens(subject_id, roles, extra, channel=channel, family_id=family_id,
                        refresh_token=refresh_token, credentials_version=credentials_version)


def issue_token_pair(subject: Person, *, channel: str = "app") -> dict:
    """Token pair for a person who signed in some other way (mini-programs); commits.

    Returns the contract body {"access_token","token_type":"Bearer","expires_in","refresh_token"}.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if not isinstance(subject, Person):
        raise TypeError("issue_token_pair expects a Person")
    if not subject.active:
        raise Forbidden("该账号已停用")
    body = issue_person_pair(subject, channel)
    audit.record("auth.login_succeeded", subject_id=subject.subject_id, actor=subject.subject_id,
                 details={"method": "channel", "channel": channel})
    db.session.commit()
    return body


def refresh_token_row(raw: str) -> RefreshToken | None:
    """The stored refresh token (issued before sessions held their own) whose hash matches `raw`, or None."""
    return db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(raw)))


def claim_refresh_token(raw: str):
    """Use a refresh token issued before sessions held their own, if nobody used or revoked it yet, in
    one statement; its row (id, family_id, subject_id, actor_id, channel, expires_at), or None."""
    return db.session.execute(
        update(RefreshToken).where(RefreshToken.token_hash == sha256_hex(raw), RefreshToken.used_at.is_(None),
                                   RefreshToken.revoked_at.is_(None))
        .values(used_at=utcnow())
        .returning(RefreshToken.id, RefreshToken.family_id, RefreshToken.subject_id, RefreshToken.actor_id,
                   RefreshToken.channel, RefreshToken.expires_at)
        .execution_options(synchronize_session=False)).first()


_SESSIONS, _PERSONS = AuthSession.__table__, Person.__table__


def _rotation(held) -> Update:
    """The rotation UPDATE, built once (Core tables only, so not the ORM's bulk path; parameters bound per
    call). It returns what a refresh needs of the acting person too: their credentials version, whether
    the account is active (NULL: no such person) and the session subject's staff roles. It commits alone
    when no transaction is open (the refresh writes nothing else): one round trip, no BEGIN or COMMIT."""
    acting = func.coalesce(_SESSIONS.c.actor_id, _SESSIONS.c.subject_id)
    version = select(_PERSONS.c.credentials_version).where(_PERSONS.c.subject_id == acting).scalar_subquery()
    active = select(_PERSONS.c.active).where(_PERSONS.c.subject_id == acting).scalar_subquery()
    return (update(_SESSIONS)
            .where(_SESSIONS.c.session_id == bindparam("session"), held, _SESSIONS.c.revoked_at.is_(None),
                   _SESSIONS.c.expires_at > bindparam("now"),
                   _SESSIONS.c.credentials_version >= func.coalesce(version, 0))
            .values(refresh_hash=bindparam("next_hash"), refresh_generation=bindparam("next_generation"),
                    last_used_at=bindparam("now"), expires_at=bindparam("until"))
            .returning(_SESSIONS.c.session_id.label("family_id"), _SESSIONS.c.subject_id, _SESSIONS.c.actor_id,
                       _SESSIONS.c.channel, _SESSIONS.c.expires_at, version.label("credentials_version"),
                       active.label("person_active"),
                       staff_roles_column(_SESSIONS.c.subject_id).label("staff_roles"))
            .execution_options(**{COMMITS_ALONE: True}))


_ROTATE_HELD = Prepared(_rotation(_SESSIONS.c.refresh_hash == bindparam("held_hash")))
_ROTATE_CLAIMED = Prepared(_rotation(_SESSIONS.c.refresh_generation == bindparam("held_generation")))


def rotate_refresh_token(session_id: str, *, generation: int, presented: str | None):
    """Swap the session's live refresh token (`presented`, of `generation`; None for a session whose old-style
    token was just claimed) for the next generation's, and extend the session: one UPDATE, which is also the
    check (session live, not expired, opened with the acting person's current credentials; the version is a
    subquery, so the check serialises with a concurrent end of the session). Returns (family_id, subject_id,
    actor_id, channel, expires_at, credentials_version, person_active, staff_roles) and the new token, or None."""
    new_token = next_refresh_token(session_id, generation + 1)
    now = utcnow()
    params = {"session": session_id, "now": now, "until": now + _refresh_ttl(), "next_hash": sha256_hex(new_token),
              "next_generation": generation + 1}
    if presented is not None:
        statement, params["held_hash"] = _ROTATE_HELD, sha256_hex(presented)
    else:
        statement, params["held_generation"] = _ROTATE_CLAIMED, generation
    row = statement.first(params)
    return None if row is None else (row, new_token)


def session_row(session_id: str) -> AuthSession | None:
    return db.session.scalar(select(AuthSession).where(AuthSession.session_id == session_id))


def refusal(row: AuthSession | None, generation: int, presented: str) -> str:
    """Why the session `row` refused a refresh token: "unknown" (no such token), "ended", "expired", "reused" (an
    older generation: whoever holds the newer one is not the caller) or "stale" (credentials changed since)."""
    if row is None or generation > row.refresh_generation:
        return "unknown"
    if generation < row.refresh_generation:
        return "reused"
    if row.refresh_hash != sha256_hex(presented):
        return "unknown"
    if row.revoked_at is not None:
        return "ended"
    if as_aware(row.expires_at) <= utcnow():
        return "expired"
    return "stale"


def revoke_family(family_id: str) -> int:
    """End a session: its row, any old-style refresh token of it and, on every worker, the access
    tokens issued in it (not committed). Returns the number of sessions ended (0 or 1)."""
    now = utcnow()
    ended = db.session.execute(update(AuthSession).where(AuthSession.session_id == family_id,
                                                         AuthSession.revoked_at.is_(None))
                               .values(revoked_at=now).execution_options(synchronize_session=False)).rowcount
    db.session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                       .values(revoked_at=now).execution_options(synchronize_session=False))
    revoke_session_tokens(family_id)
    held_sessions.release([family_id])
    return ended


def revoke_acting_sessions(*, subject_id: str, actor_id: str) -> None:
    """End every session in which `actor_id` acts as `subject_id` (refresh families and access tokens)."""
    families = db.session.scalars(select(AuthSession.session_id).where(
        AuthSession.subject_id == subject_id, AuthSession.actor_id == actor_id,
        AuthSession.revoked_at.is_(None))).all()
    for family in families:
        revoke_family(family)


def _signed_in_by(person: Person):
    """Sessions the person signed in to: their own, and those acting for a company or another person."""
    return or_(AuthSession.actor_id == person.subject_id,
               and_(AuthSession.subject_id == person.subject_id, AuthSession.actor_id.is_(None)))


def sessions_of(person: Person, *, current_session: str | None) -> list[dict]:
    """The person's live sessions, most recently used first (with the rotations the journal holds)."""
    journal.catch_up()
    rows = db.session.scalars(select(AuthSession).where(
        _signed_in_by(person), AuthSession.revoked_at.is_(None), AuthSession.expires_at > utcnow(),
        AuthSession.credentials_version >= person.credentials_version)
        .order_by(AuthSession.last_used_at.desc(), AuthSession.id.desc())).all()
    return [{"session_id": row.session_id, "created_at": row.created_at, "last_used_at": row.last_used_at,
             "channel": row.channel, "current": row.session_id == current_session,
             "acting_for": row.subject_id if row.subject_id != person.subject_id else None} for row in rows]


def end_own_session(person: Person, session_id: str) -> None:
    """End one of the person's sessions (404 for anyone else's or an unknown one); commits."""
    row = db.session.scalar(select(AuthSession).where(AuthSession.session_id == session_id, _signed_in_by(person)))
    if row is None or row.revoked_at is not None:
        raise NotFound("登录会话不存在或已结束")
    revoke_family(row.session_id)
    audit.record("session.ended", subject_id=person.subject_id, actor=person.subject_id,
                 details={"session": session_id[:8], "channel": row.channel})
    db.session.commit()


def end_channel_sessions(person: Person, channel: str) -> int:
    """End the person's sessions signed in through `channel` (not committed)."""
    families = db.session.scalars(select(AuthSession.session_id).where(
        _signed_in_by(person), AuthSession.channel == channel, AuthSession.revoked_at.is_(None))).all()
    for family in families:
        revoke_family(family)
    return len(families)


def end_sessions_of(person: Person, *, keep_session: str | None = None) -> int:
    """The person's credentials changed: raise their credentials version and end every session
    they signed in to or that acts for them, except `keep_session` (the caller's). Tokens of the
    old version die on every worker, sessions still being opened with them too. Not committed;
    returns the number of sessions ended."""
    db.session.execute(update(Person).where(Person.id == person.id)
                       .values(credentials_version=Person.credentials_version + 1)
                       .execution_options(synchronize_session=False))
    version = db.session.scalar(select(Person.credentials_version).where(Person.id == person.id))
    person.credentials_version = version
    if keep_session:
        held_sessions.release([keep_session])
        db.session.execute(update(AuthSession).where(AuthSession.session_id == keep_session)
                           .values(credentials_version=version).execution_options(synchronize_session=False))
    revoke_older_credentials(person.subject_id, version, keep_session=keep_session)
    families = db.session.scalars(select(AuthSession.session_id).where(
        or_(AuthSession.subject_id == person.subject_id, AuthSession.actor_id == person.subject_id),
        AuthSession.revoked_at.is_(None), AuthSession.session_id != (keep_session or ""))).all()
    for family in families:
        revoke_family(family)
    return len(families)


def logout(*, refresh_token: str | None, access_claims: dict | None) -> None:
    """End the session of the presented access token and/or refresh token (either is enough)."""
    subject = access_claims.get("sub") if access_claims else None
    ended = set()
    if access_claims:
        revoke_access_token(access_claims)
        if access_claims.get("sid"):
            revoke_family(access_claims["sid"])
            ended.add(access_claims["sid"])
    session = _session_holding(refresh_token) if refresh_token else None
    if session is not None:
        if session.session_id not in ended:
            revoke_family(session.session_id)
            ended.add(session.session_id)
        subject = subject or session.subject_id
    if subject is None:
        raise Unauthorized("刷新令牌无效")
    audit.record("auth.logout", subject_id=subject, actor=(access_claims or {}).get("act", {}).get("sub"),
                 details={"family_revoked": bool(ended)})
    db.session.commit()


def _session_holding(refresh_token: str):
    """The session whose live refresh token (or old-style token) this is, as (session_id, subject_id); else None."""
    journal.catch_up()  # a rotation the store made may not be on the row yet
    if parse_refresh_token(refresh_token) is not None:
        return db.session.execute(select(AuthSession.session_id, AuthSession.subject_id)
                                  .where(AuthSession.refresh_hash == sha256_hex(refresh_token))).first()
    row = refresh_token_row(refresh_token)
    return None if row is None else db.session.execute(
        select(AuthSession.session_id, AuthSession.subject_id).where(AuthSession.session_id == row.family_id)).first()
