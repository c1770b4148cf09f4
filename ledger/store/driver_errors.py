"""Errors of statements sent on the driver's own cursor, wrapped as SQLAlchemy wraps its own.

write_behind, pg_copy and prepared send some statements on psycopg2's cursor directly;
their errors must reach the unit of work in the same classes (and with the same
invalidation of a lost connection) as a statement sent through SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc


def as_sqlalchemy_error(conn: Connection, cursor, statement: str, error: Exception) -> Exception:
    """The driver's error from its own cursor, wrapped as SQLAlchemy wraps a statement's (so
    unit_of_work classifies it alike), the connection invalidated if it was lost."""
    dbapi = conn.dialect.loaded_dbapi
    if not isinstance(error, dbapi.Error):
        return error
    lost = conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(error)
    return sa_exc.DBAPIError.instance(statement, None, error, dbapi.Error, connection_invalidated=lost)


def stale_prepared_plan(error: BaseException | None) -> bool:
    """PostgreSQL refused to run a prepared statement whose result columns changed since it was
    prepared (a migration altered a table under a running server): preparing it again fixes it."""
    return getattr(error, "pgcode", None) == "0A000" and "cached plan must not change result type" in str(error)
