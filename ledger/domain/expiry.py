"""Expiry rules: which lot points are due to expire at `now`.

ROLLING: each lot expires at its own expires_at (set when it was credited; Lot.past_expiry).
INACTIVITY: when a member has had no earn or spend for expiry_days, all their
points expire at once. Expiry only ever takes a lot's remaining points, so
points already spent can never be expired.

Points are expired from the instant the rule says so, not from the moment the expiry job
writes their EXPIRE entry: until then they stay in posted but are counted as `expired`
in the live balance (live_balance), never as available, so no decision depends on when
the job last ran. The job writes exactly those points off (due_consumptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain.balance import Balance
from ledger.domain.credentials import fresh_system_key
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.lots import Consumption, Lot
from ledger.domain.program import ExpiryMode, ProgramRules
from ledger.domain.records import NewTransaction, Posting

# Kinds that count as the member's own activity: each moves the INACTIVITY clock (the
# member's last_activity_at) to its occurred_at, never back.
ACTIVITY_KINDS = frozenset(
    {
        TransactionKind.EARN,
        TransactionKind.REDEEM,
        TransactionKind.CAPTURE,
        TransactionKind.ACTIVITY,
        TransactionKind.REFERRAL_REWARD,
    }
)


def activity_after(last_activity_at: datetime, kind: TransactionKind, occurred_at: datetime) -> datetime:
    """The member's INACTIVITY clock after a transaction of `kind` that occurred at occurred_at."""
    return max(last_activity_at, occurred_at) if kind in ACTIVITY_KINDS else last_activity_at


# Why points expired, as an EXPIRE transaction states it: the rule that took them.
VALIDITY_ENDED = "validity ended"
NO_ACTIVITY = "no activity for the program's inactivity period"
# The transaction's reason and its breakdown line's description. They are %s templates that
# Python's % operator and PostgreSQL's format() fill alike: the bulk writer on PostgreSQL
# (ledger.store.postgres.expiry_writes) fills them in SQL, and both then state the same text.
REASON = "points expired: %s"
DESCRIPTION = "%s lot(s) expired: %s"


def inactivity_cutoff(mode: ExpiryMode, days: int, now: datetime) -> datetime | None:
    """Members whose last activity is at or before this instant are inactive (INACTIVITY mode only)."""
    if mode is not ExpiryMode.INACTIVITY or days <= 0:
        return None
    return now - timedelta(days=days)


def inactive_since(rules: ProgramRules, now: datetime) -> datetime | None:
    return inactivity_cutoff(rules.expiry_mode, rules.expiry_days, now)


def is_inactive(mode: ExpiryMode, days: int, last_activity_at: datetime, now: datetime) -> bool:
    """The member's points have all expired for inactivity (the job's INACTIVITY sweep takes them)."""
    cutoff = inactivity_cutoff(mode, days, now)
    return cutoff is not None and last_activity_at <= cutoff


@dataclass(frozen=True)
class LotTotals:
    """A member's open lots (remaining > 0) summed as the live balance needs them: pending
    (Lot.pending), past_expiry (Lot.past_expiry) and all of them (total). The store sums
    them in SQL (ledger.store.lots.BALANCE_FACTS); lot_totals is the definition."""

    pending: int = 0
    past_expiry: int = 0
    total: int = 0


def lot_totals(lots: list[Lot], now: datetime) -> LotTotals:
    open_lots = [lot for lot in lots if lot.remaining > 0]
    return LotTotals(
        pending=sum(lot.remaining for lot in open_lots if lot.pending(now)),
        past_expiry=sum(lot.remaining for lot in open_lots if lot.past_expiry(now)),
        total=sum(lot.remaining for lot in open_lots),
    )


def live_balance(posted: int, held: int, lots: LotTotals, *, inactive: bool) -> Balance:
    """The balance at the instant `lots` was summed for, as if the expiry job had just run:
    points due to expire (due_consumptions) are `expired`, not pending and not available."""
    if inactive:
        return Balance(posted=posted, pending=0, held=held, expired=lots.total)
    return Balance(posted=posted, pending=lots.pending, held=held, expired=lots.past_expiry)


def due_consumptions(lots: list[Lot], now: datetime, *, everything: bool) -> tuple[Consumption, ...]:
    """Lots (and points) to expire: those past expires_at, or all of them for an inactive member."""
    due = [lot for lot in lots if lot.remaining > 0 and (everything or lot.past_expiry(now))]
    due.sort(key=lambda lot: (lot.expires_at or now, lot.lot_id))
    return tuple(Consumption(lot.lot_id, lot.remaining) for lot in due)


# Every EXPIRE transaction's idempotency key is this, then its own id (fresh_system_key's
# layout): the job's SQL path and verify build or match keys from it.
EXPIRY_KEY_PREFIX = fresh_system_key("expire", "")


def expiry_key(transaction_id: str) -> str:
    """An EXPIRE transaction's idempotency key: its own id under the system mark. No request
    can carry such a key, so no idempotency record is written under it: the expired lots, left
    with nothing remaining, are what makes an expiry happen once."""
    return EXPIRY_KEY_PREFIX + transaction_id


def expiry_transaction(
    member_id: str,
    due: tuple[Consumption, ...],
    *,
    everything: bool,
    transaction_id: str,
    api_key_id: str,
    now: datetime,
) -> NewTransaction:
    """The EXPIRE transaction that writes off `due` (due_consumptions), stating which rule took
    the points, under its key (expiry_key). The expiry job's Python path writes it, and so does
    an activity credit of an inactive member (written_off); the job's PostgreSQL path writes the
    same rows in SQL."""
    points = sum(c.points for c in due)
    why = NO_ACTIVITY if everything else VALIDITY_ENDED
    return NewTransaction(
        transaction_id=transaction_id,
        member_id=member_id,
        kind=TransactionKind.EXPIRE,
        points=-points,
        breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, -points, DESCRIPTION % (len(due), why)),),
        channel=Channel.OTHER,
        idempotency_key=expiry_key(transaction_id),
        api_key_id=api_key_id,
        occurred_at=now,
        created_at=now,
        reason=REASON % why,
        postings=(Posting(member_id, -points, consumed=due),),
    )


def written_off(before: Balance) -> Balance:
    """The live balance once the points `before` counts as expired have been written off."""
    return Balance(before.posted - before.expired, before.pending, before.held, 0)


def after_credit(before: Balance, points: int, lot: Lot | None, now: datetime, *, inactive: bool) -> Balance:
    """The live balance after a credit of `points` that adds `lot`, from the live balance
    before it, for a member with nothing due for inactivity before the credit (an
    inactive member's points are written off first). inactive: the member is inactive after
    the credit all the same (a backdated activity older than the inactivity period)."""
    added = lot_totals([lot] if lot is not None else [], now)
    if inactive:
        return Balance(before.posted + points, 0, before.held, before.expired + added.total)
    return Balance(before.posted + points, before.pending + added.pending, before.held, before.expired + added.past_expiry)
