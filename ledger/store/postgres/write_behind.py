"""Write-behind inside one database transaction: writes nobody reads back share a round trip.

Most of what a ledger operation writes (the transaction row, its entry and lot, campaign
counters, qualifying spend) is never read back by the operation itself. On PostgreSQL such
writes are queued here instead of sent one at a time; the queue rides in front of the
next statement sent on the same connection, in the same round trip (PostgreSQL runs a
multi-statement string in order, inside the open transaction), or goes with the COMMIT
(ledger.store.postgres.transaction_blocks). The effects and their order are exactly those of
sending the statements one by one, and an error in any of them fails the round trip it
rode in and so the whole database transaction, as before.

psycopg2 binds parameters on the client anyway (mogrify), so queuing adds no quoting work.
SQLite is in-process with no round trip to save: writes run at once.

Statements passed here are module-level constants (compiled once per parameter shape), and
hot ones go out as EXECUTE of a prepared statement (ledger.store.postgres.prepared).
"""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import Connection, Engine, event
from sqlalchemy.sql.dml import Insert

from ledger.store import driver_errors
from ledger.store.postgres import prepared

QUEUE = "write_behind.queue"
_SENDS = "write_behind.sends"  # how many times a queue was sent on this connection
_WRITTEN = "write_behind.written"  # how many statements were ever queued on this connection
_COMPILED: dict[tuple[int, tuple[str, ...]], object] = {}
_COMPILED_LIMIT = 512


def execute(conn: Connection, statement, params: dict | list[dict]) -> None:
    """Runs statement (once per parameter set) no later than the next statement or the commit."""
    rows = params if isinstance(params, list) else [params]
    if not rows:
        return
    conn.info[_WRITTEN] = conn.info.get(_WRITTEN, 0) + len(rows)
    if conn.dialect.name != "postgresql":
        conn.execute(statement, rows if len(rows) > 1 else rows[0])
        return
    queue = conn.info.setdefault(QUEUE, [])
    cursor = driver_errors.driver_connection(conn).cursor()
    try:
        for row in rows:
            compiled = _compiled(conn, statement, row)
            sql = prepared.execute_form(conn, compiled.string)
            queue.append(cursor.mogrify(sql, compiled.construct_params(row)))
    finally:
        cursor.close()


def discard(conn: Connection) -> None:
    """Forgets queued writes (the transaction is being rolled back, or a new one starts)."""
    if conn.invalidated:
        return  # the connection is gone, and its info with it; touching it would raise
    conn.info.pop(QUEUE, None)


def queue_raw(conn: Connection, sql: bytes) -> None:
    """Queues a statement written out in full (a SAVEPOINT, say); on SQLite it runs at once."""
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(sql.decode())
        return
    conn.info.setdefault(QUEUE, []).append(sql)


def written(conn: Connection) -> int:
    """How many writes went through execute() on this connection so far: unchanged across an
    operation, it wrote nothing, whatever it read meanwhile."""
    return conn.info.get(_WRITTEN, 0)


def mark(conn: Connection) -> tuple[int, int]:
    """Where the queue stands now, for rewind()."""
    return conn.info.get(_SENDS, 0), len(conn.info.get(QUEUE, []))


def rewind(conn: Connection, to: tuple[int, int]) -> bool:
    """Drops what was queued since mark `to`; True if some of it was sent already (then the
    caller must undo it in the database, e.g. ROLLBACK TO SAVEPOINT)."""
    sends, length = to
    if conn.info.get(_SENDS, 0) == sends:
        del conn.info.setdefault(QUEUE, [])[length:]
        return False
    discard(conn)
    return True


def queue_first(conn: Connection, sql: bytes) -> None:
    """Puts sql at the head of the queue (a transaction's BEGIN)."""
    conn.info.setdefault(QUEUE, []).insert(0, sql)


def only_begin_queued(conn: Connection) -> bool:
    """Nothing but (at most) the transaction's BEGIN is waiting: the transaction sent nothing."""
    queue = conn.info.get(QUEUE, [])
    return len(queue) <= 1 and all(sql.startswith(b"BEGIN") for sql in queue)


def send_queued(conn: Connection) -> None:
    """Sends the queue now: before using the driver's cursor directly, which no queue rides on."""
    joined = _take(conn)
    if joined is not None:
        _send_alone(conn, joined)


@contextmanager
def driver_cursor(conn: Connection, what: str):
    """The driver's own cursor (driver_errors.driver_cursor), after what is queued (the
    transaction's BEGIN among it): nothing queued rides on that cursor."""
    send_queued(conn)
    with driver_errors.driver_cursor(conn, what) as cursor:
        yield cursor


def send_with(conn: Connection, tail: bytes) -> str:
    """Sends the queue with tail after it (a COMMIT) in one round trip; returns the server's
    status for tail."""
    conn.info.setdefault(QUEUE, []).append(tail)
    joined = _take(conn)
    assert joined is not None  # the queue holds tail at least
    return _send_alone(conn, joined)


def install(engine: Engine) -> None:
    """Lets queued writes ride in front of every statement sent on the engine's connections
    and forgets them on a rollback. The commit is transaction_blocks' (it sends what is left
    with the COMMIT), and so is the clean-up when a connection goes back to the pool."""
    event.listen(engine, "before_cursor_execute", _ride_along, retval=True)
    event.listen(engine, "rollback", discard)


def _compiled(conn: Connection, statement, row: dict):
    keys = tuple(sorted(row)) if isinstance(statement, Insert) else ()
    cache_key = (id(statement), keys)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.clear()  # only constants come here: this is a guard, not a policy
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(keys) if keys else None)
        _COMPILED[cache_key] = compiled
    return compiled


def _take(conn: Connection) -> str | None:
    queue = conn.info.pop(QUEUE, None)
    if not queue:
        return None
    conn.info[_SENDS] = conn.info.get(_SENDS, 0) + 1
    return b";\n".join(queue).decode("utf-8")  # the engine sets client_encoding=utf8


def _ride_along(conn, cursor, statement, parameters, context, executemany):
    joined = _take(conn)
    if joined is None:
        return statement, parameters
    if parameters and not executemany:
        # The statement's own parameters are bound by psycopg2 with %-formatting, which
        # would also read the queued (already bound) text: its percent signs are escaped.
        return joined.replace("%", "%%") + ";\n" + statement, parameters
    _send(conn, cursor, joined)
    return statement, parameters


def _send_alone(conn: Connection, joined: str) -> str:
    with driver_errors.driver_cursor(conn, joined) as cursor:
        cursor.execute(joined)
        return cursor.statusmessage or ""


def _send(conn, cursor, joined: str) -> None:
    """Sends on SQLAlchemy's cursor for a statement (see _ride_along)."""
    try:
        cursor.execute(joined)
    except Exception as error:
        raise driver_errors.as_sqlalchemy_error(conn, cursor, joined, error) from error
