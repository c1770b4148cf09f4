"""Lot reads: a member's open lots, what a transaction consumed, pending and expiring points."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select

from ledger.domain.holds import HoldState
from ledger.domain.lots import Consumption, Lot
from ledger.store import prefetch
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import holds, lot_consumptions, lots


_open_lots = select(
    lots.c.lot_id, lots.c.remaining, lots.c.available_at, lots.c.expires_at, lots.c.order_id
).where(lots.c.program_id == bindparam("program_id"), lots.c.member_id == bindparam("member_id"), lots.c.remaining > 0)
OPEN_LOTS = prefetch.Read("open_lots", _open_lots, ("program_id", "member_id"), many=True)


def open_lots(conn: Connection, program_id: str, member_id: str) -> list[Lot]:
    rows = prefetch.read(conn, OPEN_LOTS, {"program_id": program_id, "member_id": member_id})
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


# Read by every earn, spend and balance query: built once, so SQLAlchemy finds them
# compiled without rebuilding them.
_pending = (
    select(func.coalesce(func.sum(lots.c.remaining), 0))
    .where(
        lots.c.program_id == bindparam("program_id"),
        lots.c.member_id == bindparam("member_id"),
        lots.c.remaining > 0,
        lots.c.available_at > bindparam("at"),
    )
    .scalar_subquery()
)
_held = (
    select(func.coalesce(func.sum(holds.c.points), 0))
    .where(
        holds.c.program_id == bindparam("program_id"),
        holds.c.member_id == bindparam("member_id"),
        holds.c.state == HoldState.OPEN.value,
        holds.c.expires_at > bindparam("at"),
    )
    .scalar_subquery()
)
_pending_and_held = select(_pending.label("pending"), _held.label("held"))
PENDING_AND_HELD = prefetch.Read("pending_and_held", _pending_and_held, ("program_id", "member_id", "at"))
_expiring = (
    select(lots.c.expires_at, func.sum(lots.c.remaining).label("points"))
    .where(
        lots.c.program_id == bindparam("program_id"),
        lots.c.member_id == bindparam("member_id"),
        lots.c.remaining > 0,
        lots.c.expires_at > bindparam("start"),
        lots.c.expires_at <= bindparam("end"),
    )
    .group_by(lots.c.expires_at)
    .order_by(lots.c.expires_at)
)


def pending_and_held(conn: Connection, program_id: str, member_id: str, now: datetime) -> tuple[int, int]:
    """Live pending (lots not yet available) and held (open holds not yet lapsed), in one round trip."""
    params = {"program_id": program_id, "member_id": member_id, "at": to_micros(now)}
    row = prefetch.read(conn, PENDING_AND_HELD, params)
    return int(row.pending), int(row.held)


EXPIRING = prefetch.Read("expiring", _expiring, ("program_id", "member_id", "start", "end"), many=True)


def expiring_between(
    conn: Connection, program_id: str, member_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """Points still to expire after start up to end, per expiry instant, soonest first."""
    params = {"program_id": program_id, "member_id": member_id, "start": to_micros(start), "end": to_micros(end)}
    rows = sorted(prefetch.read(conn, EXPIRING, params), key=lambda row: row.expires_at)
    return [(from_micros(row.expires_at), int(row.points)) for row in rows]
