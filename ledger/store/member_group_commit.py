"""Group commit for one member's concurrent operations (PostgreSQL).

Terminals that hit one member at once (a family sharing an account, a marketplace
backfilling one customer's orders) queue on the member's row lock, and each pays for a
transaction of its own while holding it: the lock hand-over, its reads, its COMMIT.
Here the first operation for a member in this process leads, and the operations that
arrive while it works line up behind it. The leader runs the line (up to MAX_BATCH) in
one database transaction: each operation exactly as it runs alone (lock, idempotency
lookup, decide, write, record its key) inside a savepoint of its own, then one COMMIT.

- An operation refused by a rule without a stored answer (LedgerError) rolls back to its
  savepoint alone; the rest of the line commits.
- A lost race (deadlock, unique key) makes unit_of_work run the whole line again, as it
  would one operation.
- A failure that is the member's or the database's, not one operation's (the member's row
  stayed locked, a timeout, the database unreachable), is every operation's answer:
  nothing of the line was committed, and each caller retries with its key.
- Any other failure makes each operation whose caller still waits run on its own, so one
  operation's failure is not its neighbours' answer.
- When the leader is done, it hands the lead to the first operation still waiting.

Each operation keeps its own idempotency key and record, so exactly-once holds per
operation; the line only shares the transaction. SQLite (one writer at a time, no round
trips) runs every operation on its own.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from sqlalchemy import Connection

from ledger.domain import errors
from ledger.domain.errors import LedgerError
from ledger.store.database import Database
from ledger import call_context
from ledger.store import unit_of_work
from ledger.store import locked_heads, outbox, programs
from ledger.store.postgres import prefetch, write_behind

T = TypeVar("T")
log = logging.getLogger("ledger.member_group_commit")
MAX_BATCH = 64
_SAVEPOINT = b"SAVEPOINT member_batch_item"
_RELEASE = b"RELEASE SAVEPOINT member_batch_item"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT member_batch_item"
# lock_not_available (the member's row stayed locked), query_canceled (a timeout).
_SHARED_SQLSTATES = {"55P03", "57014"}


@dataclass
class _Operation(Generic[T]):
    work: Callable[[Connection], T]
    context: contextvars.Context
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    finished: bool = False
    value: T | None = None
    error: BaseException | None = None

    def finish(self, value: T | None = None, error: BaseException | None = None) -> None:
        self.value, self.error, self.finished = value, error, True

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


_guard = threading.Lock()
_lines: dict[tuple[str, str], list[_Operation]] = {}


def waiting(member_key: tuple[str, str]) -> int:
    """How many operations for the member are lined up behind the one being run."""
    with _guard:
        return len(_lines.get(member_key, ()))


def run(db: Database, member_key: tuple[str, str], work: Callable[[Connection], T]) -> T:
    """work(conn) in a transaction shared with the member's other operations in line."""
    if not db.is_postgresql:
        return unit_of_work.run(db, work)
    operation = _Operation(work, contextvars.copy_context())
    with _guard:
        line = _lines.get(member_key)
        leading = line is None
        if line is None:
            _lines[member_key] = [operation]
        else:
            line.append(operation)
    if not leading:
        operation.wake.wait()
        if not operation.lead:
            return operation.result()
    _lead(db, member_key)
    return operation.result()


def _lead(db: Database, member_key: tuple[str, str]) -> None:
    with _guard:
        line = _lines[member_key]
        batch, rest = line[:MAX_BATCH], line[MAX_BATCH:]
        line[:] = rest  # later arrivals keep appending to the same list
    try:
        _run_batch(db, batch)
    finally:
        for operation in batch:
            if not operation.finished:
                operation.finish(error=RuntimeError("the batch ended without an answer"))
        with _guard:
            line = _lines[member_key]
            successor = line[0] if line else None
            if successor is None:
                del _lines[member_key]
            else:
                successor.lead = True
        for operation in batch:
            operation.wake.set()
        if successor is not None:
            successor.wake.set()


def _run_batch(db: Database, batch: list[_Operation]) -> None:
    if len(batch) == 1:
        _run_alone(db, batch[0])
        return

    def work(conn: Connection) -> list[tuple[object, BaseException | None]]:
        return [_in_savepoint(conn, operation) for operation in batch]

    try:
        # Whoever is still waiting gets an answer: the batch is not tied to the leader's caller.
        outcomes = contextvars.Context().run(unit_of_work.run, db, work)
    except LedgerError as lost:
        if _shared_by_the_line(lost):
            for operation in batch:
                operation.finish(error=lost)
            return
        _run_each_alone(db, batch)
    except Exception:
        _run_each_alone(db, batch)
    else:
        for operation, (value, error) in zip(batch, outcomes):
            operation.finish(value, error)


def _shared_by_the_line(lost: LedgerError) -> bool:
    """A lock wait or timeout on the member's row, or the database unreachable: running each
    operation alone would only meet it again, one after another."""
    if lost.reason == "STORE_UNAVAILABLE":
        return True
    return getattr(getattr(lost.__cause__, "orig", None), "pgcode", None) in _SHARED_SQLSTATES


def _run_each_alone(db: Database, batch: list[_Operation]) -> None:
    log.warning("a batch of %d operations failed; running each on its own", len(batch), exc_info=True)
    for operation in batch:
        if operation.context.run(call_context.caller_waiting.get)():
            _run_alone(db, operation)
        else:
            operation.finish(error=errors.conflict_retry("the caller went away; nothing was written"))


def _run_alone(db: Database, operation: _Operation) -> None:
    try:
        operation.finish(operation.context.run(unit_of_work.run, db, operation.work))
    except BaseException as error:  # handed to the operation's own thread, which raises it
        operation.finish(error=error)


def _in_savepoint(conn: Connection, operation: _Operation) -> tuple[object, BaseException | None]:
    before = write_behind.mark(conn)
    heads = locked_heads.snapshot(conn)
    events = outbox.snapshot(conn)
    write_behind.queue_raw(conn, _SAVEPOINT)  # rides with the operation's first statement
    try:
        value = operation.work(conn)
    except LedgerError as refusal:
        if write_behind.rewind(conn, before):
            conn.exec_driver_sql(_ROLLBACK_TO)
        locked_heads.restore(conn, heads)
        outbox.restore(conn, events)  # a refused operation's events go with its rows
        programs.forget(conn)  # what it read of its program may have been rolled back with it
        return None, refusal
    finally:
        # What one operation fetched ahead and did not use was read before its writes: the
        # next operation must read for itself.
        prefetch.forget(conn)
    write_behind.queue_raw(conn, _RELEASE)
    return value, None
