"""Server-side prepared statements on PostgreSQL, written out by hand.

PostgreSQL parses, analyses and plans every statement it receives as text. For the hot
path that costs more than running it: the prefetch SELECT of six subqueries took 1.6 ms
sent as text against 0.4 ms as EXECUTE of a prepared statement (measured with psycopg2 on
the bench database). psycopg2 has no protocol-level prepare, so this module does what
psycopg 3's `prepare_threshold` does, in SQL:

- a statement's text seen THRESHOLD times in this process (a hot statement: the module-level
  statements of the hot path always compile to the same text) is prepared on the
  connection it is about to run on, `PREPARE ledger_n AS <its SQL with $1, $2...>`, in a
  round trip of its own, once per connection;
- from then on it is sent as `EXECUTE ledger_n(%(a)s, %(b)s...)`, its values bound by
  psycopg2 as before (written out as literals, which PostgreSQL coerces to the parameter
  types it inferred at PREPARE).

A prepared statement lives as long as its session and outside transactions (a ROLLBACK
does not undo PREPARE), so each DBAPI connection keeps what it prepared in its info dict,
which SQLAlchemy drops with the connection. A migration that changes a table's columns
under a running server makes PostgreSQL refuse a prepared SELECT of it ("cached plan must
not change result type"): every connection then prepares afresh, and the unit of work
retries the transaction that met it. A statement PostgreSQL refuses to prepare
(a parameter whose type it cannot infer) is sent as text from then on; inside a
transaction the attempt runs under a savepoint, so the refusal changes nothing else.

Bounded: statements with many parameters (expanded IN lists of a batch) are not prepared,
nor more than MAX_PER_CONNECTION per connection. `LOYALTY_PG_PREPARE=off` turns this off
(needed behind a transaction-pooling PgBouncer, whose server sessions change under a
client).
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from psycopg2 import errorcodes
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Connection, Engine, event

from ledger.store import driver_errors

log = logging.getLogger("ledger.store")

THRESHOLD = 5
MAX_PER_CONNECTION = 200
MAX_PARAMETERS = 64
_PREPARABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
_KEY = "prepared.statements"  # on a DBAPI connection's info: {sql text: its EXECUTE form}
_GENERATION = "prepared.generation"  # the _generation its statements were prepared in
_NAMED = "prepared.named"  # how many names this session has handed out
_PLACEHOLDER = re.compile(r"%%|%\(([^)]+)\)s")

_uses: Counter[str] = Counter()
_refused: set[str] = set()
# Bumped when the schema changed under prepared statements: every connection then prepares
# afresh, under new names, before its next statement.
_generation = 0
_SEEN_LIMIT = 10_000  # texts counted per process before the count starts over (a guard)


def install(engine: Engine) -> None:
    """Prepares hot statements on the engine's connections: those run through SQLAlchemy
    (installed before write_behind, so a queue rides in front of the EXECUTE form) and
    those write_behind queues."""
    event.listen(engine.pool, "connect", _start_tracking)
    event.listen(engine, "before_cursor_execute", _rewrite, retval=True)
    event.listen(engine, "handle_error", _forget_stale_plans)


def execute_form(conn: Connection, sql: str) -> str:
    """sql (pyformat, as SQLAlchemy compiles it for psycopg2) as it should be sent on conn:
    EXECUTE of its prepared statement once it is hot, preparing it there first if need be;
    otherwise sql itself."""
    mine = conn.info.get(_KEY)
    if mine is None:
        return sql  # not installed on this engine
    generation = _generation  # read once: another thread may bump it meanwhile
    if conn.info[_GENERATION] != generation:
        if mine:
            _deallocate_all(conn)
            mine.clear()
        conn.info[_GENERATION] = generation
    found = mine.get(sql)
    if found is not None:
        return found
    if sql in _refused:
        return sql
    if len(_uses) >= _SEEN_LIMIT:
        _uses.clear()
        _refused.clear()
    _uses[sql] += 1
    if _uses[sql] < THRESHOLD or not sql.lstrip().upper().startswith(_PREPARABLE):
        return sql
    if len(mine) >= MAX_PER_CONNECTION:
        return sql
    body, names = _numbered(sql)
    if len(names) > MAX_PARAMETERS:
        _refused.add(sql)
        return sql
    # Never reused on this session, whatever became of an earlier attempt (a PREPARE that
    # ran but whose answer was lost to a cancel still holds its name).
    conn.info[_NAMED] += 1
    name = f"ledger_{conn.info[_NAMED]}"
    if not _prepare(conn, name, body, sql):
        return sql
    arguments = ", ".join(f"%({n})s" for n in names)
    mine[sql] = f"EXECUTE {name}({arguments})" if names else f"EXECUTE {name}"
    return mine[sql]


def _numbered(sql: str) -> tuple[str, list[str]]:
    """sql with its %(name)s placeholders as $1, $2... (in order of first use) and %% as %,
    and the names in parameter order."""
    names: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(replace, sql), names


def _prepare(conn: Connection, name: str, body: str, sql: str) -> bool:
    dbapi_connection = driver_errors.driver_connection(conn)
    in_transaction = dbapi_connection.info.transaction_status != TRANSACTION_STATUS_IDLE
    statement = f"PREPARE {name} AS {body}"
    if in_transaction:
        statement = f"SAVEPOINT ledger_prepare; {statement}; RELEASE SAVEPOINT ledger_prepare"
    with driver_errors.driver_cursor(conn, statement) as cursor:
        try:
            cursor.execute(statement)  # no parameters: psycopg2 sends the text as it is
            return True
        except Exception as error:
            code = getattr(error, "pgcode", None)
            if code is None or not _refusal(code):
                raise
            if in_transaction:
                cursor.execute("ROLLBACK TO SAVEPOINT ledger_prepare; RELEASE SAVEPOINT ledger_prepare")
            _refused.add(sql)
            log.info("statement left unprepared", extra={"reason": str(error).strip(), "sql": sql[:200]})
            return False


def _deallocate_all(conn: Connection) -> None:
    """Drops the session's prepared statements (prepared against a schema since changed).
    DEALLOCATE is not transactional and may run inside a transaction block."""
    with driver_errors.driver_cursor(conn, "DEALLOCATE ALL") as cursor:
        cursor.execute("DEALLOCATE ALL")


def _refusal(pgcode: str) -> bool:
    """PostgreSQL could not prepare the text as it stands (an indeterminate parameter type,
    say): class 42, syntax error or access rule violation."""
    return pgcode.startswith("42") and pgcode != errorcodes.INSUFFICIENT_PRIVILEGE


def _start_tracking(dbapi_connection, record) -> None:
    record.info[_KEY] = {}  # a new session: nothing prepared on it yet
    record.info[_GENERATION] = _generation
    record.info[_NAMED] = 0


def forget_everywhere() -> None:
    """Every connection of this process prepares its statements afresh before its next one
    (the schema changed: ledger.store.migrate calls this after a migration)."""
    global _generation
    _generation += 1


def _forget_stale_plans(context) -> None:
    """After 'cached plan must not change result type' (a migration run by another process)
    or a prepared statement gone from its session, every connection prepares afresh; the unit
    of work retries the transaction that met it (driver_errors.stale_prepared_plan)."""
    if driver_errors.stale_prepared_plan(context.original_exception):
        forget_everywhere()


def _rewrite(conn, cursor, statement, parameters, context, executemany):
    # Only a single execution with named parameters: executemany and statements without
    # parameters keep their text (psycopg2 does not %-format a statement without them).
    if executemany or not isinstance(parameters, dict) or not parameters:
        return statement, parameters
    return execute_form(conn, statement), parameters
