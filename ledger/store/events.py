"""Reads of the events outbox (written by ledger.store.outbox) and its pruning.

A program's events are read by position from its primary key; each read is one statement,
so a reader holds no snapshot open between reads. What a reader sees is always a prefix of
the program's events in commit order (ledger.store.outbox explains why), so a reader that
asks for the positions after the last one it got never misses one.
"""

from __future__ import annotations

import json
from typing import Sequence

from sqlalchemy import Connection, bindparam, delete, func, select, text, update

from ledger.domain.events import Event, Window
from ledger.store.instants import from_micros
from ledger.store.tables import event_heads, events, programs

_after = (
    select(
        events.c.position,
        events.c.type,
        events.c.member_id,
        events.c.transaction_id,
        events.c.occurred_at,
        events.c.created_at,
        events.c.payload,
    )
    .where(events.c.program_id == bindparam("program_id"), events.c.position > bindparam("after"))
    .order_by(events.c.position)
    .limit(bindparam("limit"))
)


def head(conn: Connection, program_id: str) -> int:
    """The program's last committed event position (0 before any). Every event up to it is
    committed: positions are given out in commit order (ledger.store.outbox)."""
    return conn.execute(
        select(event_heads.c.last_position).where(event_heads.c.program_id == program_id)
    ).scalar_one_or_none() or 0


def after(
    conn: Connection, program_id: str, position: int, limit: int, types: Sequence[str] = (), through: int | None = None
) -> list[Event]:
    """Up to `limit` events after `position` (and up to `through`), in order; with types, only
    events of those types."""
    statement = _after
    if through is not None:
        statement = statement.where(events.c.position <= through)
    if types:
        statement = statement.where(events.c.type.in_(list(types)))
    rows = conn.execute(statement, {"program_id": program_id, "after": position, "limit": limit}).all()
    return [
        Event(
            row.position,
            row.type,
            row.member_id,
            row.transaction_id or "",
            from_micros(row.occurred_at),
            from_micros(row.created_at),
            json.loads(row.payload),
        )
        for row in rows
    ]


def window(conn: Connection, program_id: str) -> Window:
    last = conn.execute(
        select(event_heads.c.last_position).where(event_heads.c.program_id == program_id)
    ).scalar_one_or_none() or 0
    first = conn.execute(
        select(func.min(events.c.position)).where(events.c.program_id == program_id)
    ).scalar_one_or_none()
    return Window(first if first is not None else last + 1, last)


def retention_days(conn: Connection, program_id: str) -> int:
    return conn.execute(
        select(programs.c.event_retention_days).where(programs.c.program_id == program_id)
    ).scalar_one()


def programs_with_events(conn: Connection) -> list[tuple[str, int]]:
    """(program_id, event_retention_days) of every program that has an event head."""
    rows = conn.execute(
        select(programs.c.program_id, programs.c.event_retention_days)
        .join(event_heads, event_heads.c.program_id == programs.c.program_id)
        .order_by(programs.c.program_id)
    ).all()
    return [(row.program_id, row.event_retention_days) for row in rows]


_DATABASE_NOW = {
    "postgresql": "SELECT (extract(epoch from clock_timestamp()) * 1000000)::bigint",
    "sqlite": "SELECT CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
}


def prune(conn: Connection, program_id: str, cutoff: int, limit: int, retention_days: int) -> int:
    """Deletes up to `limit` of the program's oldest events created before cutoff (stored
    microseconds), only a prefix of its positions, so what is kept stays gap-free; moves
    events_since so verify asks no event of the transactions before cutoff. Returns how many.
    The database's guard (migration 0012) lets an event go by the database's clock: cutoff is
    held to that clock's, less a minute, so a server whose clock runs ahead asks no refusal."""
    database_now = conn.execute(text(_DATABASE_NOW[conn.dialect.name])).scalar_one()
    cutoff = min(cutoff, database_now - retention_days * 86_400_000_000 - 60_000_000)
    newest_kept = (
        select(events.c.position)
        .where(events.c.program_id == program_id, events.c.created_at >= cutoff)
        .order_by(events.c.position)
        .limit(1)
        .scalar_subquery()
    )
    doomed = (
        select(events.c.position)
        .where(events.c.program_id == program_id, events.c.created_at < cutoff)
        .where(events.c.position < func.coalesce(newest_kept, 2**62))
        .order_by(events.c.position)
        .limit(limit)
    )
    positions = list(conn.execute(doomed).scalars())
    if not positions:
        return 0
    conn.execute(delete(events).where(events.c.program_id == program_id, events.c.position <= positions[-1]))
    conn.execute(
        update(event_heads)
        .where(event_heads.c.program_id == program_id, event_heads.c.events_since < cutoff)
        .values(events_since=cutoff)
    )
    return len(positions)
