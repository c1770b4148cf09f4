"""PostgreSQL transactions that cost no round trip of their own.

psycopg2 normally sends BEGIN as a round trip of its own before a transaction's first
statement, and switching a pooled connection to autocommit for a single read costs a SET
on its next use. Instead the engine's connections stay in autocommit mode and this module
writes the transaction boundaries itself, through write_behind's queue:

- begin: BEGIN (ISOLATION LEVEL REPEATABLE READ for a `snapshot` unit of work) is queued,
  so it rides in front of the transaction's first statement. A `read_only` unit of work
  without `snapshot` gets no BEGIN at all: under READ COMMITTED every statement sees its
  own snapshot anyway, so a read-only transaction of such statements sees exactly what the
  same statements see on their own, and needs no COMMIT round trip;
- commit: whatever is still queued is sent with COMMIT after it, in one round trip, and a
  transaction that never sent anything sends nothing;
- rollback, or a connection going back to the pool inside a transaction: ROLLBACK.

This is SQLAlchemy's documented recipe for drivers whose own BEGIN does not suit (the
same one the SQLite engine uses), with libpq's transaction status as the source of truth.
"""

from __future__ import annotations

import logging

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Engine, event

from ledger.store.postgres import write_behind

log = logging.getLogger("ledger.store")
SNAPSHOT = "snapshot"
READ_ONLY = "read_only"


def install(engine: Engine) -> None:
    event.listen(engine, "begin", _begin)
    event.listen(engine, "commit", _commit)
    event.listen(engine, "rollback", _rollback)
    event.listen(engine.pool, "checkin", _end_abandoned)


def _begin(conn) -> None:
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return  # asked for explicitly: each statement on its own (VACUUM cannot run in a block)
    if options.get(READ_ONLY) and not options.get(SNAPSHOT):
        return
    write_behind.queue_first(conn, b"BEGIN ISOLATION LEVEL REPEATABLE READ" if options.get(SNAPSHOT) else b"BEGIN")


def _commit(conn) -> None:
    dbapi_connection = conn.connection.driver_connection
    if dbapi_connection.info.transaction_status == TRANSACTION_STATUS_IDLE and write_behind.only_begin_queued(conn):
        write_behind.discard(conn)  # nothing was sent: there is nothing to commit
        return
    status = write_behind.send_with(conn, b"COMMIT")
    if status != "COMMIT":
        # PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, not an error.
        raise RuntimeError(f"the transaction was not committed (the server answered {status})")


def _rollback(conn) -> None:
    if conn.invalidated:
        return  # the connection is gone (and the server ended its transaction)
    write_behind.discard(conn)
    _roll_back_if_open(conn.connection.driver_connection)


def _roll_back_if_open(dbapi_connection) -> None:
    """ROLLBACK when the server has a transaction open on this connection (libpq knows)."""
    if dbapi_connection.closed or dbapi_connection.info.transaction_status == TRANSACTION_STATUS_IDLE:
        return
    with dbapi_connection.cursor() as cursor:
        cursor.execute("ROLLBACK")


def _end_abandoned(dbapi_connection, record) -> None:
    """Makes sure no connection goes back to the pool inside a transaction (after a failed
    COMMIT, or a caller that closed without ending its transaction)."""
    record.info.pop(write_behind.QUEUE, None)
    if dbapi_connection is None:
        return
    try:
        _roll_back_if_open(dbapi_connection)
    except Exception:
        # A connection that cannot even roll back is closed; the pool replaces it on next use.
        log.warning("closing a pooled connection that could not roll back", exc_info=True)
        dbapi_connection.close()
