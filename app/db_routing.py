"""How the app talks to its databases: pool settings, transactions begun only by what needs one,
a read retried once after a lost connection, and reads routed to a streaming replica.

- No pre-ping: a connection the server dropped (a restart, a failover) fails its statement, SQLAlchemy
  recycles the pool, and a plain read that started no transaction is retried once on a fresh one.
- Lazy BEGIN (PostgreSQL): a connection runs in autocommit until a statement needs a transaction
  (anything but a plain SELECT: writes, SELECT ... FOR UPDATE, advisory locks, streamed results,
  savepoints); then psycopg sends BEGIN and the transaction lasts until commit or rollback. A write
  marked COMMITS_ALONE (the refresh's rotation) with no transaction open commits by itself. Under
  READ COMMITTED each statement reads its own snapshot either way, so a read-only request costs
  its statements and nothing else: no ping, no BEGIN, no ROLLBACK.
- Replica (`DATABASE_REPLICA_URL`): plain reads of the GET views in `REPLICA_ENDPOINTS` go to the
  replica until the request writes; everything else, and every read after a write, stays on the
  primary. A replica that cannot be reached sends the read to the primary.
"""
from __future__ import annotations

import logging
import os
import re

from flask import current_app, has_request_context, request
from flask_sqlalchemy.session import Session
from sqlalchemy import create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CompoundSelect

logger = logging.getLogger("app.db")

# GET views whose reads may lag the primary by a moment: reference data and lists their caller did
# not just write (the journal's readers, the access log and the inbox, write first: not here).
REPLICA_ENDPOINTS = frozenset({
    "wallet.LicenseTypes", "wallet.LicenseTypesByCode", "wallet.WalletLicenses",
    "catalogue.HallServiceRevisions", "service_points.ServicePoints", "appointments.HallSlots",
    "evaluations.HallEvaluationSummary",
})
READ_METHODS = frozenset({"GET", "HEAD"})
# execution option of a write that is a whole transaction by itself: run in autocommit when no transaction is open
COMMITS_ALONE = "commits_alone"
_READS = (Select, CompoundSelect)
_WRITING_FUNCTIONS = re.compile(r"\b(nextval|setval|pg_(try_)?advisory_xact_lock(_shared)?|set_config)\s*\(", re.I)


def engine_options(url: str) -> dict:
    """Pool settings per database (no pre-ping: a lost connection is handled when it happens)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_size": 10, "max_overflow": 10, "pool_recycle": 1800, "connect_args": {"connect_timeout": 3}}


def is_plain_read(statement) -> bool:
    """A SELECT that locks nothing and changes nothing (what autocommit, a retry or a replica may run)."""
    return (isinstance(statement, _READS) and statement._for_update_arg is None
            and not any(not isinstance(cte.element, _READS) for cte in getattr(statement, "_independent_ctes", ())))


def _needs_transaction(context, statement: str) -> bool:
    compiled = context.compiled if context is not None else None
    if compiled is None or not is_plain_read(compiled.statement):
        return True
    options = context.execution_options
    return bool(options.get("stream_results") or options.get("yield_per")
                or any(not isinstance(cte.element, _READS) for cte in getattr(compiled, "ctes", None) or ())
                or _WRITING_FUNCTIONS.search(statement))


def _begin_when_needed(_conn, cursor, statement, _parameters, context, _executemany):
    connection = cursor.connection
    alone = context is not None and context.execution_options.get(COMMITS_ALONE)
    if _needs_transaction(context, statement) and not alone:
        if connection.autocommit:
            connection.autocommit = False  # psycopg sends BEGIN with this statement
    elif not connection.autocommit and connection.info.transaction_status.name == "IDLE":  # none open
        connection.autocommit = True


def lazy_begin(engine) -> None:
    """Autocommit for plain reads, BEGIN before the first statement that needs a transaction."""
    if engine.dialect.name == "postgresql" and not event.contains(engine, "before_cursor_execute",
                                                                  _begin_when_needed):
        event.listen(engine, "before_cursor_execute", _begin_when_needed)


def read_primary(session) -> None:
    """The rest of the session's reads go to the primary (what a cache tagged by a version must read)."""
    session.info["primary_only"] = True


def begin_transaction(dbapi_connection) -> None:
    """For statements run on the driver's connection directly (COPY): make them transactional."""
    if getattr(dbapi_connection, "autocommit", False):
        dbapi_connection.autocommit = False


def replica_engine(app):
    """The replica's engine in this process (made after a fork anew), or None without a replica."""
    url = app.config.get("DATABASE_REPLICA_URL")
    if not url:
        return None
    made = app.extensions.get("db_replica")
    if made is None or made[0] != os.getpid():
        if made is not None:
            made[1].dispose(close=False)  # the parent's connections stay the parent's
        engine = create_engine(url, **engine_options(url))
        lazy_begin(engine)
        made = app.extensions["db_replica"] = (os.getpid(), engine)
    return made[1]


class RoutingSession(Session):
    """Flask-SQLAlchemy's session, with the replica routing and the read retry described above.
    `info["writing"]`: the open transaction wrote (no silent retry); `info["primary_only"]`: this
    session wrote or lost the replica, so its reads stay on the primary from now on."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and clause is not None and self._may_use_replica(clause):
            engine = replica_engine(current_app)
            if engine is not None:
                self.info["on_replica"] = True
                return engine
        self.info["on_replica"] = False
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)

    def _may_use_replica(self, clause) -> bool:
        return (has_request_context() and request.method in READ_METHODS and request.endpoint in REPLICA_ENDPOINTS
                and not self.info.get("primary_only") and is_plain_read(clause))

    def _execute_internal(self, statement, *args, **kwargs):
        if not is_plain_read(statement):
            self.info["writing"] = self.info["primary_only"] = True
        try:
            return super()._execute_internal(statement, *args, **kwargs)
        except DBAPIError as exc:
            on_replica = self.info.get("on_replica")
            if kwargs.get("_parent_execute_state") is not None or self.info.get("writing") or not (
                    exc.connection_invalidated or on_replica) or not is_plain_read(statement):
                raise
            logger.warning("database %s lost (%s): the read is retried once on a fresh connection%s",
                           "replica" if on_replica else "connection", exc.orig.__class__.__name__,
                           " of the primary" if on_replica else "")
            self.rollback()
            if on_replica:
                self.info["primary_only"] = True
            return super()._execute_internal(statement, *args, **kwargs)


@event.listens_for(RoutingSession, "after_flush")
def _flushed(session, _flush_context):
    session.info["writing"] = session.info["primary_only"] = True


@event.listens_for(RoutingSession, "after_commit")
@event.listens_for(RoutingSession, "after_rollback")
def _transaction_ended(session):
    session.info.pop("writing", None)


def init_app(app) -> None:
    """Lazy BEGIN on the app's PostgreSQL engines (call after db.init_app)."""
    from .extensions import db
    with app.app_context():
        for engine in db.engines.values():
            lazy_begin(engine)
