"""Lots: the points of one credit, when they become available and when they expire.

Debits consume lots first-expiring-first (lots that never expire last), so an
expiry can never wipe points that were already spent, and every debit records
exactly which lots it consumed. The invariant kept with the ledger:
sum(lot.remaining) == max(posted, 0).

A lot is past its expiry from its expires_at on (Lot.past_expiry: the one statement of
that rule; ledger.domain.expiry builds on it). From that instant its points are expired
whether or not the expiry job has written the EXPIRE entry yet: they are never spendable,
and a debit reaches them only when nothing else is left to take.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ledger.domain.program import ExpiryMode, ProgramRules

FAR_FUTURE = datetime.max.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Lot:
    lot_id: str
    remaining: int
    available_at: datetime
    expires_at: datetime | None
    order_id: str = ""

    def past_expiry(self, now: datetime) -> bool:
        """Expired at `now` by its own date (the expiry job may not have written it off yet)."""
        return self.expires_at is not None and self.expires_at <= now

    def pending(self, now: datetime) -> bool:
        """Not available yet (inside its return window) and not past its expiry."""
        return self.available_at > now and not self.past_expiry(now)


@dataclass(frozen=True)
class Consumption:
    lot_id: str
    points: int


def consumption_order(lot: Lot, now: datetime) -> tuple:
    """Matured lots before pending ones, lots past their expiry last of all; within each,
    soonest expiry first, then oldest.

    A spend never reaches an expired lot (it is refused unless the available points, which
    leave expired lots out, cover it); a debit that may overdraw (a refund, an adjustment, a
    reversal) takes one only when the member's other lots are used up. So a debit leaves
    the expiry job the same expired points whether it runs before the debit or after it.
    """
    return (lot.past_expiry(now), lot.available_at > now, lot.expires_at or FAR_FUTURE, lot.available_at, lot.lot_id)


def plan_consumption(lots: list[Lot], points: int, now: datetime, *, first_lot_id: str = "") -> tuple[Consumption, ...]:
    """Which lots a debit of `points` consumes; may cover less than points when lots run out.

    first_lot_id: a refund or an earn's reversal takes that earn's own lot first, so
    its still-pending points are cancelled before anything else is touched (even when
    that lot is past its expiry: the order's points leave once, by the refund or by the
    expiry, never both and never another lot's in their place).
    """

    def key(lot: Lot) -> tuple:
        return (0 if first_lot_id and lot.lot_id == first_lot_id else 1, *consumption_order(lot, now))

    plan: list[Consumption] = []
    left = points
    for lot in sorted((lot for lot in lots if lot.remaining > 0), key=key):
        if left <= 0:
            break
        take = min(lot.remaining, left)
        plan.append(Consumption(lot.lot_id, take))
        left -= take
    return tuple(plan)


def pending_points(lots: list[Lot], now: datetime) -> int:
    return sum(lot.remaining for lot in lots if lot.remaining > 0 and lot.pending(now))


def restore_plan(consumed: list[Consumption], restorable: int) -> tuple[tuple[Consumption, ...], int]:
    """Reversing a debit gives its lots back, up to what the balance can hold.

    Returns (consumptions to undo, points left over for a new lot).
    """
    plan: list[Consumption] = []
    left = restorable
    for item in consumed:
        if left <= 0:
            break
        take = min(item.points, left)
        plan.append(Consumption(item.lot_id, take))
        left -= take
    return tuple(plan), left


def new_lot_points(credit: int, posted_before: int) -> int:
    """A credit first repays a negative balance; only the rest becomes spendable lot points."""
    return max(0, min(credit, posted_before + credit))


def lot_dates(occurred_at: datetime, rules: ProgramRules, *, pending: bool) -> tuple[datetime, datetime | None]:
    """(available_at, expires_at) of a lot credited for an event at occurred_at."""
    available_at = occurred_at + timedelta(days=rules.pending_days) if pending else occurred_at
    expires_at = None
    if rules.expiry_mode is ExpiryMode.ROLLING and rules.expiry_days > 0:
        expires_at = occurred_at + timedelta(days=rules.expiry_days)
    return available_at, expires_at
