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
- Any other failure (a lost race, the database going away) fails the whole transaction,
  and every operation of the line then runs on its own through unit_of_work, which
  retries or answers exactly as it does without batching.
- When the leader is done, it hands the lead to the first operation still waiting.

Each operation keeps its own idempotency key and record, so exactly-once holds per
operation; the line only shares the transaction. SQLite (one writer at a time, no round
trips) runs every operation on its own.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from sqlalchemy import Connection, Engine

from ledger.domain.errors import LedgerError
from ledger.service import unit_of_work
from ledger.store import locked_heads, prefetch, write_behind

T = TypeVar("T")
MAX_BATCH = 64
_SAVEPOINT = b"SAVEPOINT member_batch_item"
_RELEASE = b"RELEASE SAVEPOINT member_batch_item"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT member_batch_item"


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


def run(engine: Engine, member_key: tuple[str, str], work: Callable[[Connection], T]) -> T:
    """work(conn) in a transaction shared with the member's other operations in line."""
    if engine.dialect.name != "postgresql":
        return unit_of_work.run(engine, work)
    operation = _Operation(work, contextvars.copy_context())
    with _guard:
        line = _lines.get(member_key)
        leading = line is None
        if leading:
            _lines[member_key] = [operation]
        else:
            line.append(operation)
    if not leading:
        operation.wake.wait()
        if not operation.lead:
            return operation.result()
    _lead(engine, member_key)
    return operation.result()


def _lead(engine: Engine, member_key: tuple[str, str]) -> None:
    with _guard:
        line = _lines[member_key]
        batch, rest = line[:MAX_BATCH], line[MAX_BATCH:]
        line[:] = rest  # later arrivals keep appending to the same list
    try:
        _run_batch(engine, batch)
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


def _run_batch(engine: Engine, batch: list[_Operation]) -> None:
    if len(batch) == 1:
        _run_alone(engine, batch[0])
        return

    def work(conn: Connection) -> list[tuple[object, BaseException | None]]:
        return [_in_savepoint(conn, operation) for operation in batch]

    try:
        # Whoever is still waiting gets an answer: the batch is not tied to the leader's caller.
        outcomes = contextvars.Context().run(unit_of_work.run, engine, work)
    except Exception:
        for operation in batch:
            _run_alone(engine, operation)
        return
    for operation, (value, error) in zip(batch, outcomes):
        operation.finish(value, error)


def _run_alone(engine: Engine, operation: _Operation) -> None:
    try:
        operation.finish(operation.context.run(unit_of_work.run, engine, operation.work))
    except BaseException as error:  # handed to the operation's own thread, which raises it
        operation.finish(error=error)


def _in_savepoint(conn: Connection, operation: _Operation) -> tuple[object, BaseException | None]:
    before = write_behind.mark(conn)
    heads = locked_heads.snapshot(conn)
    write_behind.queue_raw(conn, _SAVEPOINT)  # rides with the operation's first statement
    try:
        value = operation.work(conn)
    except LedgerError as refusal:
        if write_behind.rewind(conn, before):
            conn.exec_driver_sql(_ROLLBACK_TO)
        locked_heads.restore(conn, heads)
        prefetch.forget(conn)
        return None, refusal
    write_behind.queue_raw(conn, _RELEASE)
    return value, None
