"""Runs a use case in one database transaction, retrying lost races a bounded number of times.

Serialization failures, deadlocks, lock timeouts and unique-key races are
retried inside the server (the retry sees the winner's committed rows); what is
still lost after the last attempt is ABORTED / CONFLICT_RETRY. A database that
cannot be reached is UNAVAILABLE / STORE_UNAVAILABLE.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from ledger.domain import errors

T = TypeVar("T")
ATTEMPTS = 6
log = logging.getLogger("ledger.unit_of_work")

# SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available, unique_violation.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03", "23505"}
# query_canceled (statement_timeout or a cancelled client call).
_TIMEOUT_SQLSTATES = {"57014"}


def _classify(exc: sa_exc.DBAPIError) -> str:
    if exc.connection_invalidated:
        return "unavailable"
    code = getattr(exc.orig, "pgcode", None)
    if code in _RETRY_SQLSTATES:
        return "retry"
    if code in _TIMEOUT_SQLSTATES:
        return "timeout"
    message = str(exc.orig).lower()
    if "database is locked" in message or "unique constraint failed" in message:
        return "retry"
    if code is None and isinstance(exc, sa_exc.OperationalError) and "sqlite" not in exc.__class__.__module__:
        # psycopg2 reports lost and refused connections as OperationalError without SQLSTATE.
        return "unavailable" if exc.orig.__class__.__module__.startswith("psycopg2") else "bug"
    if code is not None and code.startswith("08"):
        return "unavailable"
    return "bug"


def run(engine: Engine, work: Callable[[Connection], T], *, read_only: bool = False, snapshot: bool = False) -> T:
    """snapshot: every statement sees one consistent snapshot (REPEATABLE READ on PostgreSQL)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                if read_only:
                    conn = conn.execution_options(read_only=True)
                if snapshot and conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    return work(conn)
        except errors.LedgerError:
            raise
        except sa_exc.TimeoutError as exc:
            raise errors.store_unavailable("the ledger database is busy: no connection free in time") from exc
        except sa_exc.DBAPIError as exc:
            kind = _classify(exc)
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
    raise AssertionError("unreachable")
