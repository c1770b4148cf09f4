"""Set-based reads for the expiry job: who has due lots, who is inactive, lock and load a batch."""

from __future__ import annotations

from datetime import datetime
from typing import Iterator

from sqlalchemy import Connection, select

from ledger.domain.lots import Lot
from ledger.domain.program import ExpiryMode
from ledger.store.postgres import streaming
from ledger.store.lots import past_expiry
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import lots, members, programs

MemberKey = tuple[str, str]


def _due(now: datetime):
    """Lots with points left past their expiry (the same rule the live balance applies)."""
    return (lots.c.remaining > 0) & past_expiry(to_micros(now))


def due_member_batches(conn: Connection, now: datetime, size: int) -> Iterator[list[MemberKey]]:
    """Every member with lots past expires_at, in key order, `size` members at a time, streamed
    off one query (ledger.store.postgres.streaming: never every key in memory at once).

    The batches are disjoint and each is a contiguous key range, so several can be expired at
    once without ever waiting on each other's row locks. conn should be a read-only snapshot
    transaction: it stays open while the batches are expired on other connections.
    """
    due = (
        select(lots.c.program_id, lots.c.member_id)
        .distinct()
        .where(_due(now))
        .order_by(lots.c.program_id, lots.c.member_id)
    )
    for rows in streaming.pages(conn, due, size):
        yield [(row.program_id, row.member_id) for row in rows]


def inactivity_programs(conn: Connection) -> list[str]:
    rows = conn.execute(
        select(programs.c.program_id).where(
            programs.c.expiry_mode == ExpiryMode.INACTIVITY.value, programs.c.expiry_days > 0
        )
    )
    return [row.program_id for row in rows]


def inactive_members(
    conn: Connection, program_id: str, cutoff: datetime, after: str | None, limit: int
) -> list[MemberKey]:
    query = (
        select(members.c.member_id)
        .where(
            members.c.program_id == program_id,
            members.c.posted > 0,
            members.c.last_activity_at <= to_micros(cutoff),
        )
        .order_by(members.c.member_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(members.c.member_id > after)
    return [(program_id, row.member_id) for row in conn.execute(query)]


def _by_program(keys: list[MemberKey]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for program_id, member_id in sorted(keys):
        grouped.setdefault(program_id, []).append(member_id)
    return grouped


def lock_members(conn: Connection, keys: list[MemberKey]) -> dict[MemberKey, tuple[int, int, int, str]]:
    """Row-locks the members in (program_id, member_id) order;
    {key: (posted, last_seq, last_activity_at, last_entry_hash)}."""
    locked = {}
    for program_id, member_ids in _by_program(keys).items():
        rows = conn.execute(
            select(
                members.c.member_id,
                members.c.posted,
                members.c.last_seq,
                members.c.last_activity_at,
                members.c.last_entry_hash,
            )
            .where(members.c.program_id == program_id, members.c.member_id.in_(member_ids))
            .order_by(members.c.member_id)
            .with_for_update()
        )
        for member_id, posted, last_seq, last_activity_at, last_entry_hash in rows:
            locked[(program_id, member_id)] = (posted, last_seq, last_activity_at, last_entry_hash)
    return locked


def open_lots_of(conn: Connection, keys: list[MemberKey], due_at: datetime | None = None) -> dict[MemberKey, list[Lot]]:
    """The members' lots with points left; with due_at, only those expired by then (a member
    may hold many lots, and reading the others is wasted work for the ROLLING sweep)."""
    found: dict[MemberKey, list[Lot]] = {}
    for program_id, member_ids in _by_program(keys).items():
        query = select(
            lots.c.member_id, lots.c.lot_id, lots.c.remaining, lots.c.available_at, lots.c.expires_at, lots.c.order_id
        ).where(lots.c.program_id == program_id, lots.c.member_id.in_(member_ids), lots.c.remaining > 0)
        if due_at is not None:
            query = query.where(_due(due_at))
        for member_id, lot_id, remaining, available_at, expires_at, order_id in conn.execute(query):
            found.setdefault((program_id, member_id), []).append(
                Lot(
                    lot_id,
                    remaining,
                    from_micros(available_at),
                    from_micros(expires_at) if expires_at is not None else None,
                    order_id or "",
                )
            )
    return found
