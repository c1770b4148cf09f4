"""The ledger's records as plain values: members, transactions and their postings.

Results that go into an idempotency record round-trip through to_json/from_json,
so a replay returns exactly the original answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from ledger.domain.balance import Balance
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.lots import Consumption


class MemberStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class MemberState:
    member_id: str
    referral_code: str
    status: MemberStatus
    enrolled_at: datetime
    balance: Balance
    last_seq: int
    # The member's last earn or spend (the epoch before any): the INACTIVITY expiry clock.
    last_activity_at: datetime
    # When CloseMember closed the member, and when EraseMember erased its profile (None: not yet).
    closed_at: datetime | None = None
    erased_at: datetime | None = None


@dataclass(frozen=True)
class TransactionView:
    """One transaction as seen from one member's statement."""

    transaction_id: str
    member_id: str
    kind: TransactionKind
    points: int
    breakdown: tuple[BreakdownLine, ...]
    channel: Channel
    store_id: str
    order_id: str
    order_amount: int
    currency: str
    reason: str
    idempotency_key: str
    api_key_id: str
    reverses_transaction_id: str
    occurred_at: datetime
    created_at: datetime
    balance_after: int
    sequence: int
    activity_type: str = ""
    tier_from: str = ""
    tier_to: str = ""


@dataclass(frozen=True)
class TransactionResult:
    """What a mutating call answers: the transaction and the balance it left."""

    transaction: TransactionView
    balance: Balance

    def to_json(self) -> dict:
        # A shallow copy of the flat fields: dataclasses.asdict deep-copies every value, and
        # took a tenth of an Earn's server time doing so.
        tx = dict(vars(self.transaction))
        data = {"transaction": tx, "balance": dict(vars(self.balance))}
        tx["kind"] = self.transaction.kind.value
        tx["channel"] = self.transaction.channel.value
        tx["occurred_at"] = self.transaction.occurred_at.isoformat()
        tx["created_at"] = self.transaction.created_at.isoformat()
        tx["breakdown"] = [breakdown_to_json(line) for line in self.transaction.breakdown]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "TransactionResult":
        tx = dict(data["transaction"])
        tx["kind"] = TransactionKind(tx["kind"])
        tx["channel"] = Channel(tx["channel"])
        tx["occurred_at"] = datetime.fromisoformat(tx["occurred_at"])
        tx["created_at"] = datetime.fromisoformat(tx["created_at"])
        tx["breakdown"] = tuple(breakdown_from_json(line) for line in tx["breakdown"])
        return cls(TransactionView(**tx), Balance(**data["balance"]))


def breakdown_to_json(line: BreakdownLine) -> dict:
    return {
        "source": line.source.value,
        "points": line.points,
        "description": line.description,
        "campaign_id": line.campaign_id,
    }


def breakdown_from_json(data: dict) -> BreakdownLine:
    return BreakdownLine(PointsSource(data["source"]), data["points"], data["description"], data["campaign_id"])


@dataclass(frozen=True)
class NewLot:
    points: int
    available_at: datetime
    expires_at: datetime | None
    order_id: str = ""
    # "" names the lot after its transaction; a transfer credits several lots (ledger.domain.transfers).
    lot_id: str = ""


@dataclass(frozen=True)
class Posting:
    """A signed change to one member's posted balance, and what it does to the member's lots.

    A debit names the lots it consumes; a credit creates a lot or, when it
    reverses a debit, gives that debit's lots back.
    """

    member_id: str
    points: int
    consumed: tuple[Consumption, ...] = ()
    restored: tuple[Consumption, ...] = ()
    new_lot: NewLot | None = None
    # Further lots of a credit, each with its own lot_id (a transfer's, which keep their expiry dates).
    more_lots: tuple[NewLot, ...] = ()


@dataclass(frozen=True)
class NewTransaction:
    """Everything the ledger records about one applied request."""

    transaction_id: str
    member_id: str
    kind: TransactionKind
    points: int
    breakdown: tuple[BreakdownLine, ...]
    channel: Channel
    idempotency_key: str
    api_key_id: str
    occurred_at: datetime
    created_at: datetime
    store_id: str = ""
    order_id: str = ""
    order_amount: int = 0
    currency: str = ""
    reason: str = ""
    reverses_transaction_id: str = ""
    activity_type: str = ""
    tier_from: str = ""
    tier_to: str = ""
    postings: tuple[Posting, ...] = field(default=())
