"""Set-based reads for the expiry job: who has due lots, who is inactive, lock and load a batch."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from ledger.domain.lots import Lot
from ledger.domain.program import ExpiryMode
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import lots, members, programs

MemberKey = tuple[str, str]


def members_with_due_lots(conn: Connection, now: datetime, limit: int) -> list[MemberKey]:
    """Up to `limit` members with lots past expires_at, soonest first, straight off the partial
    index ix_lots_due (expired lots leave it, so each call finds the next ones)."""
    rows = conn.execute(
        select(lots.c.program_id, lots.c.member_id)
        .where(lots.c.remaining > 0, lots.c.expires_at.is_not(None), lots.c.expires_at <= to_micros(now))
        .order_by(lots.c.expires_at)
        .limit(limit)
    )
    return sorted({(row.program_id, row.member_id) for row in rows})


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
                members.c.program_id,
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
        locked.update(
            {(r.program_id, r.member_id): (r.posted, r.last_seq, r.last_activity_at, r.last_entry_hash) for r in rows}
        )
    return locked


def open_lots_of(conn: Connection, keys: list[MemberKey]) -> dict[MemberKey, list[Lot]]:
    rows = [
        row
        for program_id, member_ids in _by_program(keys).items()
        for row in conn.execute(
            select(lots).where(lots.c.program_id == program_id, lots.c.member_id.in_(member_ids), lots.c.remaining > 0)
        )
    ]
    found: dict[MemberKey, list[Lot]] = {}
    for row in rows:
        found.setdefault((row.program_id, row.member_id), []).append(
            Lot(
                row.lot_id,
                row.remaining,
                from_micros(row.available_at),
                from_micros(row.expires_at) if row.expires_at is not None else None,
                row.order_id or "",
            )
        )
    return found
