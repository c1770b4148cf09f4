"""Runs a use case in one database transaction, retrying lost races a bounded number of times.

Serialization failures, deadlocks, lock timeouts, unique-key races and prepared statements
outdated by a migration are retried inside the server (the retry sees the winner's committed rows); what is
still lost after the last attempt is ABORTED / CONFLICT_RETRY. A database that
cannot be reached is UNAVAILABLE / STORE_UNAVAILABLE.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from typing import Callable, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from ledger.domain import errors
from ledger.store import driver_errors, pg_transactions, prepared

T = TypeVar("T")
ATTEMPTS = 6
# A row lock still held after one wait of lock_timeout is worth one more try, not six:
# the caller gets ABORTED in about two lock timeouts instead of twelve seconds.
LOCK_TIMEOUT_ATTEMPTS = 2

# Set by the transport for the current call: False once the caller is gone (deadline,
# cancel). Work for an abandoned call is not retried, so nothing is committed for it.
caller_waiting: contextvars.ContextVar[Callable[[], bool]] = contextvars.ContextVar(
    "caller_waiting", default=lambda: True
)


class CallScope:
    """Lets the transport cancel the statement a call is waiting on when the caller goes away."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection = None
        self.abandoned = False

    def attach(self, dbapi_connection) -> None:
        with self._lock:
            self._connection = dbapi_connection

    def detach(self) -> None:
        with self._lock:
            self._connection = None

    def caller_waiting(self) -> bool:
        """False once the caller is gone (the transport marked the call abandoned)."""
        return not self.abandoned

    @property
    def attached(self) -> bool:
        """Whether the call's work holds a connection now (a statement may be running)."""
        return self._connection is not None

    def cancel(self) -> None:
        """Called when the call ends; cancels only a statement still running for it."""
        with self._lock:
            self.abandoned = True
            connection = self._connection
            if connection is None:
                return
            try:
                if hasattr(connection, "cancel"):
                    connection.cancel()  # psycopg2: asks the server to cancel the running statement
                elif hasattr(connection, "interrupt"):
                    connection.interrupt()  # sqlite3
            except Exception:  # best effort: the statement may have just finished
                log.debug("cancel of an abandoned call's statement failed", exc_info=True)


current_scope: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("current_scope", default=None)
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
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    read_only: bool = False,
    snapshot: bool = False,
) -> T:
    """read_only: work that only reads (on PostgreSQL, without snapshot, its statements need
    no transaction block: see ledger.store.pg_transactions).
    snapshot: every statement sees one consistent snapshot (REPEATABLE READ on PostgreSQL)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                scope = current_scope.get()
                if scope is not None:
                    scope.attach(conn.connection.driver_connection)
                try:
                    if read_only:
                        conn = conn.execution_options(**{pg_transactions.READ_ONLY: True})
                    if snapshot:
                        conn = conn.execution_options(**{pg_transactions.SNAPSHOT: True})
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
