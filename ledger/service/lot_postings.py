"""Builds postings together with their effect on lots (credit a lot, consume lots, give lots back)."""

from __future__ import annotations

from datetime import datetime

from ledger.store.database import Transaction

from ledger.domain.lots import new_lot_points, plan_consumption, restore_plan
from ledger.domain.records import NewLot, Posting
from ledger.domain.transfers import received_lots
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
    """The debit's posting: the lots it consumes, in ledger.domain.lots.consumption_order
    (first_lot_id's first). Planned on the member's first open lots in that order, which give
    the same plan as all of them whenever they cover the debit; otherwise on all of them."""
    first, complete = lots.first_open_lots(conn, program_id, member_id, now)
    if first_lot_id and all(lot.lot_id != first_lot_id for lot in first):
        own = lots.open_lot(conn, program_id, member_id, first_lot_id)
        first = first + [own] if own is not None else first
    plan = plan_consumption(first, points, now, first_lot_id=first_lot_id)
    if not complete and sum(c.points for c in plan) < points:
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


def transfer(
    conn: Transaction,
    program_id: str,
    from_member_id: str,
    to_member_id: str,
    points: int,
    receiver_posted: int,
    transaction_id: str,
    now: datetime,
) -> tuple[Posting, Posting]:
    """A transfer's two postings: the sender's debit (its lots soonest-expiry first, as any
    spend) and the receiver's credit, one lot per lot consumed with that lot's expiry date."""
    first, complete = lots.first_open_lots(conn, program_id, from_member_id, now)
    candidates = first
    plan = plan_consumption(first, points, now)
    if not complete and sum(c.points for c in plan) < points:
        candidates = lots.open_lots(conn, program_id, from_member_id)
        plan = plan_consumption(candidates, points, now)
    by_id = {lot.lot_id: lot for lot in candidates}
    new_lots = received_lots(plan, by_id, receiver_posted, transaction_id, now)
    return (
        Posting(from_member_id, -points, consumed=plan),
        Posting(to_member_id, points, more_lots=new_lots),
    )
