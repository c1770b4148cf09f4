"""Use case: TransferPoints, points moved from one member to another in one transaction.

Both members' rows are locked in member_id order (so two members transferring to each other
at once queue instead of deadlocking), the sender's available points are debited through the
one ledger write path, and the receiver is credited in the same transaction with lots that
keep the sender's lots' expiry dates (ledger.domain.transfers). Exactly once by the
idempotency key, like every mutating call; a refusal by a rule or a limit is recorded too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ledger.store.database import Database, Transaction

from ledger.domain import credentials
from ledger.domain.balance import Balance
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, Role, TransactionKind
from ledger.domain.records import MemberState, NewTransaction, TransactionResult
from ledger.domain.spending import check_posting, check_redeemable
from ledger.domain.transfers import check_caller, check_limits, check_members, month_start
from ledger.service import clock, idempotent, lookups, lot_postings
from ledger.service.balances import live_balance
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.posting import post
from ledger.store import transactions
from ledger.store import transfers as transfer_store


@dataclass(frozen=True)
class TransferCommand:
    from_member_id: str
    to_member_id: str
    points: int
    reason: str


@dataclass(frozen=True)
class TransferResult:
    """The transfer as each member's statement shows it, with each member's balance after it."""

    sent: TransactionResult
    received: TransactionResult

    def to_json(self) -> dict:
        return {"sent": self.sent.to_json(), "received": self.received.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "TransferResult":
        return cls(TransactionResult.from_json(data["sent"]), TransactionResult.from_json(data["received"]))


_CHANNELS = {Role.POS: Channel.POS, Role.SUPPORT: Channel.SUPPORT}


def transfer_points(db: Database, caller: Caller, mutation: Mutation, command: TransferCommand) -> TransferResult:
    check_members(command.from_member_id, command.to_member_id)

    def lock(conn: Transaction) -> dict[str, MemberState]:
        # Sorted: every writer that locks several members takes them in member_id order.
        return {
            member_id: lookups.member(conn, caller.program_id, member_id, lock=True)
            for member_id in sorted((command.from_member_id, command.to_member_id))
        }

    def apply(conn: Transaction, locked: dict[str, MemberState]) -> TransferResult:
        sender, receiver = locked[command.from_member_id], locked[command.to_member_id]
        rules = lookups.program_rules(conn, caller.program_id)
        check_caller(rules.transfer, caller.role)
        lookups.require_active(sender)
        lookups.require_active(receiver)
        now = clock.now()
        since = month_start(now)
        sent, _ = transfer_store.moved_since(conn, caller.program_id, sender.member_id, since)
        _, received = transfer_store.moved_since(conn, caller.program_id, receiver.member_id, since)
        check_limits(rules.transfer, command.points, sent, received)
        balance = live_balance(conn, caller.program_id, sender, now)
        check_redeemable(balance, command.points)
        check_posting(receiver.balance, command.points, rules.negative_balance_policy)
        transaction_id = credentials.new_id("tx")
        debit, credit = lot_postings.transfer(
            conn,
            caller.program_id,
            sender.member_id,
            receiver.member_id,
            command.points,
            receiver.balance.posted,
            transaction_id,
            now,
        )
        tx = NewTransaction(
            transaction_id=transaction_id,
            member_id=sender.member_id,
            kind=TransactionKind.TRANSFER,
            points=-command.points,
            breakdown=(BreakdownLine(PointsSource.TRANSFER, -command.points, f"transfer to {receiver.member_id}"),),
            channel=_CHANNELS.get(caller.role, Channel.OTHER),
            idempotency_key=mutation.idempotency_key,
            api_key_id=caller.key_id,
            occurred_at=now,
            created_at=now,
            reason=command.reason,
            postings=(debit, credit),
        )
        # The sender spent available points: pending, held and expired points are unchanged.
        sent_result = post(
            conn, caller.program_id, sender, tx, unspendable=(balance.pending, balance.held, balance.expired)
        )
        view = transactions.view_of(conn, caller.program_id, transaction_id, receiver.member_id)
        after = replace(receiver, balance=Balance(posted=view.balance_after))
        return TransferResult(sent_result, TransactionResult(view, live_balance(conn, caller.program_id, after, now)))

    return idempotent.execute(db, caller, mutation, lock=lock, apply=apply, decode=TransferResult.from_json)
