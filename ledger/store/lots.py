"""Lot reads: a member's open lots, what a transaction consumed, pending and expiring points."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, func, select

from ledger.domain.holds import HoldState
from ledger.domain.lots import Consumption, Lot
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import holds, lot_consumptions, lots


def open_lots(conn: Connection, program_id: str, member_id: str) -> list[Lot]:
    rows = conn.execute(
        select(lots.c.lot_id, lots.c.remaining, lots.c.available_at, lots.c.expires_at, lots.c.order_id).where(
            lots.c.program_id == program_id, lots.c.member_id == member_id, lots.c.remaining > 0
        )
    ).all()
    return [
        Lot(
            row.lot_id,
            row.remaining,
            from_micros(row.available_at),
            from_micros(row.expires_at) if row.expires_at is not None else None,
            row.order_id or "",
        )
        for row in rows
    ]


def consumptions_of(
    conn: Connection, program_id: str, member_id: str, transaction_id: str, now: datetime
) -> list[Consumption]:
    """The still-valid lots a debit consumed, latest-expiring first (the order they are given
    back in). Lots that expired meanwhile are left out: their points come back as a new lot."""
    c = lot_consumptions
    rows = conn.execute(
        select(c.c.lot_id, c.c.points, lots.c.expires_at)
        .join(lots, (lots.c.program_id == c.c.program_id) & (lots.c.member_id == c.c.member_id) & (lots.c.lot_id == c.c.lot_id))
        .where(
            c.c.program_id == program_id,
            c.c.member_id == member_id,
            c.c.transaction_id == transaction_id,
            c.c.points > 0,
        )
    ).all()
    at = to_micros(now)
    valid = [row for row in rows if row.expires_at is None or row.expires_at > at]
    valid.sort(key=lambda row: (-(row.expires_at if row.expires_at is not None else 2**62), row.lot_id))
    return [Consumption(row.lot_id, row.points) for row in valid]


def pending_and_held(conn: Connection, program_id: str, member_id: str, now: datetime) -> tuple[int, int]:
    """Live pending (lots not yet available) and held (open holds not yet lapsed), in one round trip."""
    at = to_micros(now)
    pending = (
        select(func.coalesce(func.sum(lots.c.remaining), 0))
        .where(
            lots.c.program_id == program_id,
            lots.c.member_id == member_id,
            lots.c.remaining > 0,
            lots.c.available_at > at,
        )
        .scalar_subquery()
    )
    held = (
        select(func.coalesce(func.sum(holds.c.points), 0))
        .where(
            holds.c.program_id == program_id,
            holds.c.member_id == member_id,
            holds.c.state == HoldState.OPEN.value,
            holds.c.expires_at > at,
        )
        .scalar_subquery()
    )
    row = conn.execute(select(pending, held)).one()
    return int(row[0]), int(row[1])


def expiring_between(
    conn: Connection, program_id: str, member_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    rows = conn.execute(
        select(lots.c.expires_at, func.sum(lots.c.remaining).label("points"))
        .where(
            and_(
                lots.c.program_id == program_id,
                lots.c.member_id == member_id,
                lots.c.remaining > 0,
                lots.c.expires_at > to_micros(start),
                lots.c.expires_at <= to_micros(end),
            )
        )
        .group_by(lots.c.expires_at)
        .order_by(lots.c.expires_at)
    ).all()
    return [(from_micros(row.expires_at), int(row.points)) for row in rows]
