"""Hot single statements on PostgreSQL as server-side prepared statements, without the ORM session and
Core's execution around them (about 0.3 ms of CPU per statement on the daily path's refresh).

`Prepared(statement).first(params)` runs a Core statement that is a whole transaction by itself (it commits
alone) on a pooled psycopg connection in autocommit, with the SQL and fixed parameters SQLAlchemy's
compiler renders for it, once per worker. Its row comes back as a named tuple of the statement's columns.
Elsewhere (SQLite, or a session that has a transaction open, which the statement must join) it runs
through the session as any statement does. A failure is raised as SQLAlchemy raises it, a lost connection
dropped from the pool first, so the app answers as it does for any statement (503) and the pool recovers."""
from __future__ import annotations

from collections import namedtuple

import psycopg
from sqlalchemy.exc import DBAPIError

from .extensions import db


class Prepared:
    """A Core statement with `bindparam`s, run as described above."""

    def __init__(self, statement):
        self.statement = statement
        self._rendered: tuple[str, dict] | None = None  # (sql, the fixed parameters)
        self._row_type = None

    def first(self, params: dict):
        """The statement's first row (None when it returns none)."""
        engine = db.engine
        if engine.dialect.name != "postgresql" or db.session().in_transaction():
            return db.session.execute(self.statement, params).first()
        sql, fixed = self._render(engine)
        pooled = connection = None
        try:
            pooled = engine.raw_connection()
            connection = pooled.driver_connection
            if not connection.autocommit:
                connection.autocommit = True
            cursor = connection.execute(sql, {**fixed, **params}, prepare=True)
            row = cursor.fetchone()
            if row is not None and self._row_type is None:
                self._row_type = namedtuple("Row", [column.name for column in cursor.description])
        except psycopg.Error as exc:
            lost = connection is None or engine.dialect.is_disconnect(exc, connection, None)
            if lost and pooled is not None:
                pooled.invalidate(exc)
            raise DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=lost,
                                      dialect=engine.dialect) from exc
        finally:
            if pooled is not None:
                pooled.close()
        return None if row is None else self._row_type(*row)

    def _render(self, engine) -> tuple[str, dict]:
        if self._rendered is None:
            compiled = self.statement.compile(dialect=engine.dialect)
            names = [name for name, bind in compiled.binds.items() if bind.value is None and not bind.callable]
            state = compiled.construct_expanded_state({name: None for name in names})
            fixed = {name: value for name, value in state.parameters.items() if name not in names}
            self._rendered = (state.statement, fixed)
        return self._rendered
