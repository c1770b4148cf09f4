"""The transactional outbox: each change's event, written in the change's own database transaction.

Writers (ledger_writes for every ledger transaction, members for an enrolment) hand their
events to add(); they wait on the connection until the transaction commits, and go to the
database with the COMMIT, in the same transaction as the rows that caused them. A rollback
(or a rollback to a member batch's savepoint: snapshot/restore) drops them with those rows.
So there is no event without its change and no change without its event.

Commit order. Consumers follow a program's events by position and must never miss one: a
reader that has seen position 41 will only ask for positions after it. Positions from a
sequence would not do: a transaction can take position 41 and commit after the one that took
42, and a reader that saw 42 in between never sees 41. Here the position is given out under a
lock that is held until the commit: at the commit, the transaction increments its program's
row in event_heads (taking that row's lock) and writes its events at the positions it got,
and COMMIT follows in the same round trip (PostgreSQL; SQLite has one writer at a time
anyway). The next transaction of the program waits for the lock, so it gets the next
positions and becomes visible only after this one: positions are 1, 2, 3, ... with no gap, in
commit order, and whatever a reader sees is a prefix of the program's events.

The head's lock is the last lock a transaction takes (members first, in key order), so it
cannot deadlock with them, and it is held for one round trip and the commit's WAL flush. Its
price is that commits of one program no longer share a WAL flush with each other; the
member group commit (ledger.store.member_group_commit) still folds a member's concurrent
operations into one. The alternatives weighed: ordering by the writer's xid8 and reading
only below pg_snapshot_xmin() gives no gaps but not commit order (an older xid can commit
later, so one member's events could come out of their ledger order), and it stalls every
program's readers behind any long transaction of the cluster.

The PostgreSQL expiry batch (ledger.store.postgres.expiry_writes) writes its events in SQL
through insert_from with the same head increment, in the same statement as its rows.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, event, text

from ledger.domain.events import NewEvent
from ledger.store.instants import to_micros
from ledger.store.postgres import write_behind

_KEY = "outbox.pending"

# The program's head moves by n, taking its row lock (a program's first event creates it).
BUMP_HEAD = """
INSERT INTO event_heads (program_id, last_position, events_since) VALUES (:program_id, :n, 0)
ON CONFLICT (program_id) DO UPDATE SET last_position = event_heads.last_position + excluded.last_position
"""
_BUMP_HEAD = text(BUMP_HEAD)
# Each event at its position: `back` before the moved head (the last event has back = 0).
_INSERT_EVENT = text(
    """
INSERT INTO events (program_id, position, type, member_id, transaction_id, occurred_at, created_at, payload)
SELECT :program_id, last_position - :back, :type, :member_id, :transaction_id, :occurred_at, :created_at, :payload
FROM event_heads WHERE program_id = :program_id
"""
)


def add(conn: Connection, program_id: str, new_event: NewEvent) -> None:
    """new_event goes to the database with this transaction's COMMIT, or nowhere."""
    conn.info.setdefault(_KEY, []).append((program_id, new_event))


def snapshot(conn: Connection) -> int:
    return len(conn.info.get(_KEY, ()))


def restore(conn: Connection, mark: int) -> None:
    """Drops what was added since snapshot() (its writes were rolled back to a savepoint)."""
    del conn.info.setdefault(_KEY, [])[mark:]


def pending(conn: Connection) -> list[tuple[str, NewEvent]]:
    return list(conn.info.get(_KEY, ()))


def write_pending(conn: Connection) -> None:
    """Writes the events added in this transaction, each program's under its head's lock."""
    waiting = conn.info.pop(_KEY, None)
    if not waiting:
        return
    by_program: dict[str, list[NewEvent]] = {}
    for program_id, new_event in waiting:
        by_program.setdefault(program_id, []).append(new_event)
    for program_id in sorted(by_program):  # one lock order for a transaction of several programs
        events = by_program[program_id]
        write_behind.execute(conn, _BUMP_HEAD, {"program_id": program_id, "n": len(events)})
        write_behind.execute(
            conn,
            _INSERT_EVENT,
            [
                {
                    "program_id": program_id,
                    "back": len(events) - 1 - index,
                    "type": e.type,
                    "member_id": e.member_id,
                    "transaction_id": e.transaction_id or None,
                    "occurred_at": to_micros(e.occurred_at),
                    "created_at": to_micros(e.created_at),
                    "payload": e.payload,
                }
                for index, e in enumerate(events)
            ],
        )


def _forget(conn) -> None:
    if not conn.invalidated:
        conn.info.pop(_KEY, None)


def install(engine: Engine) -> None:
    """Before any other commit listener (PostgreSQL's sends the queue with COMMIT)."""
    event.listen(engine, "commit", write_pending)
    event.listen(engine, "rollback", _forget)
    event.listen(engine.pool, "checkin", lambda _dbapi, record: record.info.pop(_KEY, None))
