"""The NATS relay's units of work (ledger.delivery.relay): each program's events after the
relay's stored position, and the position moved once JetStream acknowledged them.

A program the relay has not seen yet starts from its oldest event kept, so switching the
relay on publishes the history the program still keeps, then follows.
"""

from __future__ import annotations

import time

from ledger.domain.events import Event
from ledger.store import events as event_store
from ledger.store import unit_of_work
from ledger.store import webhooks as store
from ledger.store.database import Database


def read_round(db: Database, batch: int) -> list[tuple[str, list[Event]]]:
    """(program_id, up to `batch` of its events after the relay's position), for each
    program that has some."""

    def read(conn) -> list[tuple[str, list[Event]]]:
        found = []
        for program_id, after, head in store.relay_behind(conn):
            events = event_store.after(conn, program_id, after, batch, through=head)
            if events:
                found.append((program_id, events))
        return found

    return unit_of_work.run(db, read, read_only=True)


def advance(db: Database, program_id: str, position: int) -> None:
    """JetStream acknowledged the program's events up to position."""
    now = time.time_ns() // 1000
    unit_of_work.run(db, lambda conn: store.set_relay_position(conn, program_id, position, now))


def oldest_unrelayed(db: Database) -> int | None:
    """created_at (micros) of the oldest event not yet acknowledged, over every program."""

    def read(conn) -> int | None:
        oldest = None
        for program_id, after, _head in store.relay_behind(conn):
            created = store.oldest_after(conn, program_id, after)
            if created is not None and (oldest is None or created < oldest):
                oldest = created
        return oldest

    return unit_of_work.run(db, read, read_only=True)
