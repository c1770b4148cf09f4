"""Builds postings together with their effect on lots (credit a lot, consume lots, give lots back)."""

from __future__ import annotations

from datetime import datetime

from ledger.store.database import Transaction

from ledger.domain.lots import new_lot_points, plan_consumption, restore_plan
from ledger.domain.records import NewLot, Posting
from ledger.store import lots


def credit(
    member_id: str,
    points: int,
    posted_before: int,
    available_at: datetime,
    expires_at: datetime | None,
    order_id: str = "",
) -> Posting:
    lot_points = new_lot_points(points, posted_before)
    new_lot = NewLot(lot_points, available_at, expires_at, order_id) if lot_points > 0 else None
    return Posting(member_id, points, new_lot=new_lot)


def debit(
    conn: Transaction, program_id: str, member_id: str, points: int, now: datetime, *, first_lot_id: str = ""
) -> Posting:
    plan = plan_consumption(lots.open_lots(conn, program_id, member_id), points, now, first_lot_id=first_lot_id)
    return Posting(member_id, -points, consumed=plan)


def give_back(
    conn: Transaction,
    program_id: str,
    member_id: str,
    points: int,
    posted_before: int,
    debit_transaction_id: str,
    now: datetime,
    expires_at: datetime | None,
) -> Posting:
    """The credit that reverses a debit: the debit's lots come back first, any rest is a new lot."""
    consumed = lots.consumptions_of(conn, program_id, member_id, debit_transaction_id, now)
    restored, rest = restore_plan(consumed, new_lot_points(points, posted_before))
    new_lot = NewLot(rest, now, expires_at) if rest > 0 else None
    return Posting(member_id, points, restored=restored, new_lot=new_lot)
