"""Sign-in sessions held in the shared store, so that the daily refresh is one store step (check, swap,
journal) and a signature; the session row stays the durable record, written behind by the journal.

A person's own session is held from the commit that opens it (or the first refresh the database
answers) for `REFRESH_HOLD_SECONDS`. The store decides a refresh only when it holds the presented
generation with its secret, live and unexpired; an older generation is a reuse and ends the session
whatever the row says (the row may lag); anything else the database decides, after the journal has
caught up. Ending a session, changing a person's credentials, roles or standing releases their held
sessions (`release`) before the commit, so that a refresh racing the change cannot hold them again.

What a lost store loses: the rotations not yet written behind (about `journal.GATHER_SECONDS`); a
token those rotations had retired is then accepted once more by the database.
"""
from __future__ import annotations

import logging
from collections import namedtuple
from datetime import datetime, timezone

from itertools import chain

from flask import current_app
from sqlalchemy import bindparam, event, inspect, select, text, update

from .. import journal
from ..db_routing import RoutingSession
from ..extensions import db, store
from ..ratelimit import Window
from ..store import HELD_PREFIX, StoreUnavailable
from ..timeutil import as_aware, timestamp
from .common import sha256_hex
from .models import AuthSession, Person, StaffAssignment

logger = logging.getLogger("app.identity.held_sessions")
KIND = "auth.rotation"
RELEASE_SECONDS = 600  # outlives any refresh that read the row before the release
_PENDING = "auth.held.pending"  # session.info: sessions to hold once the transaction commits
_SESSIONS = AuthSession.__table__

HeldRow = namedtuple("HeldRow", "family_id subject_id actor_id channel credentials_version person_active staff_roles")


def key(session_id: str) -> str:
    return HELD_PREFIX + session_id


def holds(subject_id: str, actor_id: str | None) -> bool:
    """Whether a session of this subject is held: a person's own (companies and proxies ask the database)."""
    return actor_id is None and subject_id.startswith("p_")


def rotate(session_id: str, *, generation: int, presented: str, next_token: str, counted: Window | None = None):
    """The store's rotation of a held session: ("rotated", HeldRow), ("reused", subject id) or ("database", None);
    `counted`: a rate-limit hit counted in the same step (TooManyRequests past its limit, nothing rotated)."""
    now = timestamp()
    until = now + current_app.config["REFRESH_TOKEN_TTL"]
    next_hash = sha256_hex(next_token)
    line = journal.entry(KIND, session=session_id, generation=generation + 1, hash=next_hash, used=now, until=until)
    held_key = key(session_id)
    done = store.session_rotate(held_key, journal.beside(held_key), generation=generation,
                                presented_hash=sha256_hex(presented), next_hash=next_hash, now=now, until=until,
                                entry=line, awake_ttl=journal.AWAKE_SECONDS, hold_ttl=_hold_seconds(),
                                counter=None if counted is None else (counted.key, counted.seconds, counted.amount))
    if done.status == "limited":
        counted.refuse(done.reset_in)
    if done.status == "rotated":
        if done.wake:
            journal.wake()
        held = done.held
        return "rotated", HeldRow(session_id, held["sub"], None, held["ch"], int(held["ver"]), True,
                                  held.get("staff") or "")
    if done.status == "reused":
        return "reused", done.held["sub"]
    return "database", None


def hold_after_commit(*, session_id: str, subject_id: str, channel: str, generation: int, refresh_hash: str,
                      expires_at: datetime, credentials_version: int, staff_roles: str) -> None:
    """Hold this session once the current transaction commits (nothing if it rolls back)."""
    db.session.info.setdefault(_PENDING, {})[key(session_id)] = {
        "gen": generation, "hash": refresh_hash, "exp": repr(as_aware(expires_at).timestamp()), "sub": subject_id,
        "ch": channel, "ver": credentials_version, "staff": staff_roles}


def release(session_ids) -> None:
    """Let the database decide these sessions' refreshes from now on (call before the commit that changes them)."""
    session_ids = list(session_ids)
    if session_ids:
        store.session_release([key(session_id) for session_id in session_ids], RELEASE_SECONDS)


def write_entries(entries: list[dict]) -> None:
    """The journal's handler: each session's newest rotation onto its row (an older generation changes nothing)."""
    newest: dict[str, dict] = {}
    for item in entries:
        if item["generation"] > newest.get(item["session"], {"generation": -1})["generation"]:
            newest[item["session"]] = item
    rows = [{"session": item["session"], "next_generation": item["generation"], "next_hash": item["hash"],
             "used": _moment(item["used"]), "until": _moment(item["until"])} for item in newest.values()]
    if rows and db.session.get_bind().dialect.name == "postgresql":  # each parameter as an array of the rows'
        db.session.execute(_WRITE_BEHIND_ARRAYS, {name: [row[name] for row in rows] for name in rows[0]})
    elif rows:
        db.session.execute(_WRITE_BEHIND, rows)


# PostgreSQL: the batch as one statement over five arrays (a fixed text, prepared once by the driver), instead of
# one UPDATE per session: the database starts one executor per batch, not per rotation
_WRITE_BEHIND_ARRAYS = text(f"""
UPDATE {_SESSIONS.name} AS s
SET refresh_hash = v.next_hash, refresh_generation = v.next_generation, last_used_at = v.used, expires_at = v.until
FROM unnest(CAST(:session AS varchar[]), CAST(:next_generation AS integer[]), CAST(:next_hash AS varchar[]),
            CAST(:used AS timestamptz[]), CAST(:until AS timestamptz[]))
     AS v(session_id, next_generation, next_hash, used, until)
WHERE s.session_id = v.session_id AND s.refresh_generation < v.next_generation""")

_WRITE_BEHIND = (update(_SESSIONS)
                 .where(_SESSIONS.c.session_id == bindparam("session"),
                        _SESSIONS.c.refresh_generation < bindparam("next_generation"))
                 .values(refresh_hash=bindparam("next_hash"), refresh_generation=bindparam("next_generation"),
                         last_used_at=bindparam("used"), expires_at=bindparam("until")))


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _hold_seconds() -> int:
    return int(current_app.config["REFRESH_HOLD_SECONDS"])


@event.listens_for(RoutingSession, "after_flush")
def _flushed(session, _flush_context):
    """A person deactivated, or given or relieved of a role, in this flush: their sessions are released
    before the commit (what goes through Core statements releases by itself: `sessions`)."""
    subjects = {row.subject_id for row in chain(session.new, session.dirty, session.deleted)
                if isinstance(row, StaffAssignment)}
    subjects.update(row.subject_id for row in session.dirty
                    if isinstance(row, Person) and inspect(row).attrs.active.history.has_changes())
    if subjects:  # only their own sessions are held (`holds`)
        release(session.scalars(select(AuthSession.session_id).where(
            AuthSession.subject_id.in_(subjects), AuthSession.actor_id.is_(None), AuthSession.revoked_at.is_(None))))


@event.listens_for(RoutingSession, "after_commit")
def _committed(session):
    pending = session.info.pop(_PENDING, None)
    if pending:
        try:
            store.session_hold(pending, _hold_seconds())
        except StoreUnavailable:  # committed all the same: the database decides these sessions' refreshes
            logger.warning("shared store unavailable: %d sessions not held", len(pending))


@event.listens_for(RoutingSession, "after_rollback")
def _rolled_back(session):
    session.info.pop(_PENDING, None)
