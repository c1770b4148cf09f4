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


def consumptions_of(conn: Connection, program_id: str, member_id: str, transaction_id: str) -> list[Consumption]:
    """The lots a debit consumed, soonest-expiring first (the order they are given back in)."""
    rows = conn.execute(
        select(lot_consumptions.c.lot_id, lot_consumptions.c.points)
        .where(
            lot_consumptions.c.program_id == program_id,
            lot_consumptions.c.member_id == member_id,
            lot_consumptions.c.transaction_id == transaction_id,
            lot_consumptions.c.points > 0,
        )
        .order_by(lot_consumptions.c.lot_id)
    ).all()
    return [Consumption(row.lot_id, row.points) for row in rows]


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
