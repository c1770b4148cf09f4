"""Expiry rules: which lot points are due to expire at `now`.

ROLLING: each lot expires at its own expires_at (set when it was credited).
INACTIVITY: when a member has had no earn or spend for expiry_days, all their
points expire at once. Expiry only ever takes a lot's remaining points, so
points already spent can never be expired.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ledger.domain.lots import Consumption, Lot
from ledger.domain.program import ExpiryMode, ProgramRules

# Why points expired, as an EXPIRE transaction states it: the rule that took them.
VALIDITY_ENDED = "validity ended"
NO_ACTIVITY = "no activity for the program's inactivity period"
# The transaction's reason and its breakdown line's description. They are %s templates that
# Python's % operator and PostgreSQL's format() fill alike: the bulk writer on PostgreSQL
# (ledger.store.expiry_writes) fills them in SQL, and both then state the same text.
REASON = "points expired: %s"
DESCRIPTION = "%s lot(s) expired: %s"


def inactive_since(rules: ProgramRules, now: datetime) -> datetime | None:
    """Members whose last activity is at or before this instant are inactive (INACTIVITY mode only)."""
    if rules.expiry_mode is not ExpiryMode.INACTIVITY or rules.expiry_days <= 0:
        return None
    return now - timedelta(days=rules.expiry_days)


def due_consumptions(lots: list[Lot], now: datetime, *, everything: bool) -> tuple[Consumption, ...]:
    """Lots (and points) to expire: those past expires_at, or all of them for an inactive member."""
    due = [
        lot
        for lot in lots
        if lot.remaining > 0 and (everything or (lot.expires_at is not None and lot.expires_at <= now))
    ]
    due.sort(key=lambda lot: (lot.expires_at or now, lot.lot_id))
    return tuple(Consumption(lot.lot_id, lot.remaining) for lot in due)
