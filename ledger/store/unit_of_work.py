"""Runs a use case in one database transaction, retrying lost races a bounded number of times.

Serialization failures, deadlocks, lock timeouts, unique-key races and prepared statements
outdated by a migration are retried inside the server (the retry sees the winner's committed rows); what is
still lost after the last attempt is ABORTED / CONFLICT_RETRY. A database that
cannot be reached is UNAVAILABLE / STORE_UNAVAILABLE.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from ledger.call_context import caller_waiting, current_scope
from ledger.domain import errors
from ledger.store.database import Database
from ledger.store import driver_errors
from ledger.store.postgres import transaction_blocks, prepared

T = TypeVar("T")
ATTEMPTS = 6
# A row lock still held after one wait of lock_timeout is worth one more try, not six:
# the caller gets ABORTED in about two lock timeouts instead of twelve seconds.
LOCK_TIMEOUT_ATTEMPTS = 2

log = logging.getLogger("ledger.unit_of_work")

# SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available, unique_violation.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03", "23505"}
# query_canceled (statement_timeout or a cancelled client call).
_TIMEOUT_SQLSTATES = {"57014"}
# The server is going away or not there yet: admin/crash shutdown, cannot connect now
# (starting up or shutting down), too many connections, out of resources.
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300", "53000", "53100", "53200"}


def _driver_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    found: list[type[BaseException]] = [sqlite3.Error, sa_exc.PendingRollbackError, sa_exc.ResourceClosedError]
    try:
        import psycopg2

        found.append(psycopg2.Error)
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        pass
    return tuple(found)


_DRIVER_ERRORS = _driver_errors()


def _classify(exc: sa_exc.DBAPIError) -> str:
    if exc.connection_invalidated:
        return "unavailable"
    code = getattr(exc.orig, "pgcode", None)
    if code in _RETRY_SQLSTATES:
        return "retry"
    if driver_errors.stale_prepared_plan(exc.orig):
        # Also met on the driver's own cursor (queued writes sent with the COMMIT), where
        # SQLAlchemy's error hook does not see it: the retry must find them prepared afresh.
        prepared.forget_everywhere()
        return "retry"
    if code in _TIMEOUT_SQLSTATES:
        return "timeout"
    if code in _UNAVAILABLE_SQLSTATES:
        return "unavailable"
    message = str(exc.orig).lower()
    if "database is locked" in message or "unique constraint failed" in message:
        return "retry"
    if code is None and isinstance(exc, sa_exc.OperationalError) and "sqlite" not in exc.__class__.__module__:
        # psycopg2 reports lost and refused connections as OperationalError without SQLSTATE.
        return "unavailable" if exc.orig.__class__.__module__.startswith("psycopg2") else "bug"
    if code is not None and code.startswith("08"):
        return "unavailable"
    return "bug"


def run(
    db: Database,
    work: Callable[[Connection], T],
    *,
    read_only: bool = False,
    snapshot: bool = False,
) -> T:
    """read_only: work that only reads (on PostgreSQL, without snapshot, its statements need
    no transaction block: see ledger.store.postgres.transaction_blocks).
    snapshot: every statement sees one consistent snapshot (REPEATABLE READ on PostgreSQL)."""
    engine = db.engine
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                scope = current_scope.get()
                if scope is not None:
                    scope.attach(conn.connection.driver_connection)
                try:
                    if read_only:
                        conn = conn.execution_options(**{transaction_blocks.READ_ONLY: True})
                    if snapshot:
                        conn = conn.execution_options(**{transaction_blocks.SNAPSHOT: True})
                    with conn.begin():
                        result = work(conn)
                        if not caller_waiting.get()():
                            # The caller gave up while we worked: roll back rather than commit an
                            # answer nobody receives (a retry with the same key will do it once).
                            raise errors.conflict_retry("the caller went away; nothing was written")
                        return result
                finally:
                    if scope is not None:
                        scope.detach()  # before the connection goes back to the pool
        except errors.LedgerError:
            raise
        except sa_exc.TimeoutError as exc:
            raise errors.store_unavailable("the ledger database is busy: no connection free in time") from exc
        except sa_exc.DBAPIError as exc:
            kind = _classify(exc)
            if not caller_waiting.get()():
                raise errors.conflict_retry("the caller went away; nothing was written") from exc
            if kind == "retry" and getattr(exc.orig, "pgcode", None) == "55P03" and attempt >= LOCK_TIMEOUT_ATTEMPTS:
                raise errors.conflict_retry("a row stayed locked by another transaction; retry") from exc
            if kind == "unavailable" and exc.connection_invalidated and attempt == 1:
                continue  # a pooled connection died (database restart): once more on a fresh one
            if kind == "retry" and attempt < ATTEMPTS:
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
                continue
            if kind == "retry":
                raise errors.conflict_retry() from exc
            if kind == "timeout":
                raise errors.conflict_retry("the database timed out waiting for a lock or statement; retry") from exc
            if kind == "unavailable":
                raise errors.store_unavailable() from exc
            raise
        except _DRIVER_ERRORS as exc:
            # A connection that died mid-way can fail outside SQLAlchemy's wrapping (resetting a
            # dead connection on its way back to the pool, a raw driver cursor): the store is
            # unreachable for this call, and the caller retries with the same key.
            log.warning("driver error outside a statement; answered UNAVAILABLE", exc_info=True)
            raise errors.store_unavailable() from exc
    raise AssertionError("unreachable")


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A read-only transaction that sees one consistent snapshot for as long as it is open
    (a job streaming a big read while it writes on other connections); no retries."""
    with db.engine.connect() as conn:
        conn = conn.execution_options(**{transaction_blocks.READ_ONLY: True, transaction_blocks.SNAPSHOT: True})
        with conn.begin():
            yield conn
