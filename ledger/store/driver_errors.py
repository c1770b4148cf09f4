"""Errors of statements sent on the driver's own cursor, wrapped as SQLAlchemy wraps its own.

write_behind, bulk_copy and prepared send some statements on psycopg2's cursor directly;
their errors must reach the unit of work in the same classes (and with the same
invalidation of a lost connection) as a statement sent through SQLAlchemy.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

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


def driver_connection(conn: Connection) -> Any:
    """The driver's own connection under conn (psycopg2's or sqlite3's, untyped to
    SQLAlchemy), which a connection in use always has."""
    driver = conn.connection.driver_connection
    if driver is None:
        raise sa_exc.ResourceClosedError("the connection was closed: it has no driver connection")
    return driver


@contextmanager
def driver_cursor(conn: Connection, what: str):
    """A cursor of the driver's own on conn's connection. An error of what is sent on it (a
    timeout, deadlock or lost connection) is raised as as_sqlalchemy_error wraps it, `what`
    naming the statement, so it is classified as usual."""
    with driver_connection(conn).cursor() as cursor:
        try:
            yield cursor
        except Exception as error:
            raise as_sqlalchemy_error(conn, cursor, what, error) from error


def stale_prepared_plan(error: BaseException | None) -> bool:
    """A prepared statement could not run as prepared, and preparing it again fixes that:
    its result columns changed since (a migration altered a table under a running server:
    PostgreSQL's plan-cache revalidation refuses it, whatever the server's message language),
    or it is gone from the session (someone ran DEALLOCATE or DISCARD ALL)."""
    code = getattr(error, "pgcode", None)
    if code == "26000":  # invalid_sql_statement_name: no prepared statement of that name
        return True
    if code != "0A000":  # feature_not_supported
        return False
    diag = getattr(error, "diag", None)
    return getattr(diag, "source_function", None) == "RevalidateCachedQuery" or (
        "cached plan must not change result type" in str(error)
    )
