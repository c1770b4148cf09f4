"""A member's live balance: posted from the cached row, pending, held and expired computed at `now`.

Pending points mature, holds lapse and lots expire by time alone, with no write at that
moment (the expiry job writes an expiry's entry later), so all three are computed when
asked rather than cached: a decision never depends on when the job last ran.
"""

from __future__ import annotations

from datetime import datetime

from ledger.store.database import Transaction

from ledger.domain import expiry
from ledger.domain.balance import Balance
from ledger.domain.records import MemberState
from ledger.store import lots


def live_balance(conn: Transaction, program_id: str, member: MemberState, now: datetime) -> Balance:
    return live(conn, program_id, member, now)[0]


def live(conn: Transaction, program_id: str, member: MemberState, now: datetime) -> tuple[Balance, bool]:
    """The member's live balance (posted and the INACTIVITY clock as `member` has them), and
    whether the member is inactive (all their points expired) at `now`."""
    facts = lots.balance_facts(conn, program_id, member.member_id, now)
    inactive = expiry.is_inactive(facts.expiry_mode, facts.expiry_days, member.last_activity_at, now)
    return expiry.live_balance(member.balance.posted, facts.held, facts.lots, inactive=inactive), inactive
