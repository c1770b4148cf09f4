"""Events: what the ledger tells the outside world about each change (DESIGN.md section 10).

Every ledger transaction and every enrolment produces exactly one event, written in the same
database transaction as the change (ledger.store.outbox). This module decides, with no I/O,
which type an event has and what its payload says; the payload is stored as JSON in the
layout json.dumps gives it (the PostgreSQL expiry batch writes the same text in SQL).

event_id is opaque to clients: "ev_" and the event's position in its program (1, 2, 3, ...
in commit order) as 16 hex digits, so ids of one program sort as their events do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from ledger.domain.kinds import PointsSource, TransactionKind
from ledger.domain.moments import MEMBER_LAPSED, POINTS_EXPIRING, REVIEW_REQUESTED, TIER_DOWNGRADE_WARNING
from ledger.domain.records import NewTransaction

MEMBER_ENROLLED = "member.enrolled"
POINTS_EARNED = "points.earned"
POINTS_REDEEMED = "points.redeemed"
POINTS_ADJUSTED = "points.adjusted"
POINTS_REVERSED = "points.reversed"
POINTS_EXPIRED = "points.expired"
TIER_CHANGED = "tier.changed"
REFERRAL_REWARDED = "referral.rewarded"
REFERRAL_REVERSED = "referral.reversed"
TRANSFER_COMPLETED = "transfer.completed"
POINTS_FORFEITED = "points.forfeited"
SEGMENT_ENTERED = "segment.entered"
SEGMENT_EXITED = "segment.exited"

# The post-purchase moments: told by the due work because time passed (ledger.domain.moments).
MOMENTS = (POINTS_EXPIRING, TIER_DOWNGRADE_WARNING, REVIEW_REQUESTED, MEMBER_LAPSED)

# The types today's ledger writes, in the order docs list them.
TYPES = (
    MEMBER_ENROLLED,
    POINTS_EARNED,
    POINTS_REDEEMED,
    POINTS_ADJUSTED,
    POINTS_REVERSED,
    POINTS_EXPIRED,
    TIER_CHANGED,
    REFERRAL_REWARDED,
    REFERRAL_REVERSED,
    TRANSFER_COMPLETED,
    *MOMENTS,
    POINTS_FORFEITED,
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
)

# A refund claws back points an order earned: to a consumer that is earned points taken back,
# so it is points.reversed, its payload's kind REFUND telling it from a support reversal.
_BY_KIND = {
    TransactionKind.EARN: POINTS_EARNED,
    TransactionKind.ACTIVITY: POINTS_EARNED,
    TransactionKind.REDEEM: POINTS_REDEEMED,
    TransactionKind.CAPTURE: POINTS_REDEEMED,
    TransactionKind.ADJUST: POINTS_ADJUSTED,
    TransactionKind.REVERSAL: POINTS_REVERSED,
    TransactionKind.REFUND: POINTS_REVERSED,
    TransactionKind.EXPIRE: POINTS_EXPIRED,
    TransactionKind.TIER_CHANGE: TIER_CHANGED,
    TransactionKind.REFERRAL_REWARD: REFERRAL_REWARDED,
    TransactionKind.TRANSFER: TRANSFER_COMPLETED,
    TransactionKind.FORFEIT: POINTS_FORFEITED,
}

DEFAULT_RETENTION_DAYS = 30
_EVENT_ID = re.compile(r"ev_([0-9a-f]{16})")


@dataclass(frozen=True)
class NewEvent:
    type: str
    member_id: str
    transaction_id: str  # "" for an event of no transaction (member.enrolled)
    occurred_at: datetime
    created_at: datetime
    payload: str  # JSON


def event_id(position: int) -> str:
    return f"ev_{position:016x}"


def position_of(event_id_text: str) -> int | None:
    """The position an event id names, or None when it is not one of ours."""
    match = _EVENT_ID.fullmatch(event_id_text)
    return int(match.group(1), 16) if match else None


def type_of(tx: NewTransaction) -> str:
    if tx.kind is TransactionKind.REVERSAL and tx.breakdown and all(
        line.source is PointsSource.REFERRAL for line in tx.breakdown
    ):
        return REFERRAL_REVERSED  # a referral reward taken back (by a return or by support)
    return _BY_KIND[tx.kind]


def points_payload(kind: str, points: int, balance_after: int, order_id: str, channel: str, store_id: str,
                   reason: str, reverses_transaction_id: str, activity_type: str) -> str:
    """The payload of a points.* event; its keys and their order are the SQL writer's too."""
    return json.dumps(
        {
            "kind": kind,
            "points": points,
            "balance_after": balance_after,
            "order_id": order_id,
            "channel": channel,
            "store_id": store_id,
            "reason": reason,
            "reverses_transaction_id": reverses_transaction_id,
            "activity_type": activity_type,
        }
    )


def for_transaction(tx: NewTransaction, balances_after: dict[str, int]) -> NewEvent:
    """The event of tx; balances_after: each posted member's posted balance after tx."""
    kind = type_of(tx)
    if kind == TIER_CHANGED:
        payload = json.dumps({"from_tier": tx.tier_from, "to_tier": tx.tier_to, "reason": tx.reason})
    elif kind in (REFERRAL_REWARDED, REFERRAL_REVERSED):
        payload = json.dumps(
            {
                "points": {p.member_id: p.points for p in sorted(tx.postings, key=lambda p: p.member_id)},
                "order_id": tx.order_id,
                "reason": tx.reason,
                "reverses_transaction_id": tx.reverses_transaction_id,
            }
        )
    elif kind == TRANSFER_COMPLETED:
        # The event's member is the sender (the transaction's member); the receiver is named here.
        receiver = next((p.member_id for p in tx.postings if p.member_id != tx.member_id), "")
        payload = json.dumps(
            {
                "to_member_id": receiver,
                "points": -tx.points,
                "from_posted_after": balances_after.get(tx.member_id, 0),
                "to_posted_after": balances_after.get(receiver, 0),
                "reason": tx.reason,
            }
        )
    else:
        payload = points_payload(
            tx.kind.value,
            tx.points,
            balances_after.get(tx.member_id, 0),
            tx.order_id,
            tx.channel.value,
            tx.store_id,
            tx.reason,
            tx.reverses_transaction_id,
            tx.activity_type,
        )
    return NewEvent(kind, tx.member_id, tx.transaction_id, tx.occurred_at, tx.created_at, payload)


def segment_payload(segment_id: str, segment_name: str, reason: str) -> str:
    """The payload of segment.entered / segment.exited; reason: what recomputed the member
    ("earn", "refund", "enrol" or "refresh"). Its keys are the SQL writer's too."""
    return json.dumps({"segment_id": segment_id, "segment_name": segment_name, "reason": reason})


def segment_moved(entered: bool, member_id: str, segment_id: str, segment_name: str, reason: str, now: datetime) -> NewEvent:
    kind = SEGMENT_ENTERED if entered else SEGMENT_EXITED
    return NewEvent(kind, member_id, "", now, now, segment_payload(segment_id, segment_name, reason))


def member_enrolled(member_id: str, referral_code: str, now: datetime) -> NewEvent:
    return NewEvent(MEMBER_ENROLLED, member_id, "", now, now, json.dumps({"referral_code": referral_code}))


@dataclass(frozen=True)
class Event:
    """A stored event, as readers get it."""

    position: int
    type: str
    member_id: str
    transaction_id: str
    occurred_at: datetime
    created_at: datetime
    payload: dict

    @property
    def event_id(self) -> str:
        return event_id(self.position)


@dataclass(frozen=True)
class Window:
    """What a program's events hold now: positions first..last (first > last: none kept)."""

    first: int
    last: int

    def cursor_expired(self, after: int) -> bool:
        """A reader past `after` would miss events already pruned."""
        return after + 1 < self.first

    def cursor_unknown(self, after: int) -> bool:
        """No event of the program was ever at `after` (a cursor of another program, or forged)."""
        return after < 0 or after > self.last
