"""Many rows into one table inside the session's transaction (COPY on PostgreSQL, executemany elsewhere),
and a condition on many values that costs the same for five hundred as for one (`among`)."""
from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import JSON, ColumnElement, Table, any_, bindparam, insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError

from .db_routing import begin_transaction
from .extensions import db
from .json_output import json_text


def insert_rows(table: Table, rows: list[dict]) -> None:
    """Insert `rows` (each naming the same columns; Python-side column defaults are not applied)."""
    if not rows:
        return
    session = db.session
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    columns = [table.columns[name] for name in rows[0]]
    as_json = [isinstance(column.type, JSON) for column in columns]
    names = ", ".join(f'"{column.name}"' for column in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    import psycopg  # COPY runs on PostgreSQL only: SQLite deployments never load the driver
    connection = session.connection().connection.driver_connection
    begin_transaction(connection)  # COPY bypasses the statement events that begin lazily
    try:
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([_json_text(row[column.key]) if is_json else row[column.key]
                                for column, is_json in zip(columns, as_json)])
    except psycopg.Error as exc:  # as SQLAlchemy raises them (callers tell transient errors apart)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def among(column, values: Collection) -> ColumnElement[bool]:
    """`column IN values`: on PostgreSQL as `= ANY(array)`, one parameter however many values, which
    SQLAlchemy and the driver pass as is (an IN list is expanded into one placeholder per value and
    parsed again for every batch); elsewhere as IN."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _json_text(value) -> str | None:
    return None if value is None else json_text(value, default=None)
