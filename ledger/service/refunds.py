"""Use case: a returns desk refunds (part of) an order; the order's earned points are clawed back.

Load -> decide -> write: the order's earn and refunds are read under the member's lock, the
domain decides the whole refund (ledger.domain.refunds.decide_order_refund), the service
writes it. The clawback is proportional and cumulative. It consumes the
order's own lot first, so still-pending points are cancelled before spent ones.
When the member has already spent the points, the program's negative-balance
policy decides: ALLOW lets posted go negative; FORBID claws back what is left
and records the rest as written off in the breakdown.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.kinds import Channel, TransactionKind
from ledger.domain.program import NegativeBalancePolicy
from ledger.domain.records import (
    MemberState,
    NewTransaction,
    TransactionResult,
    TransactionView,
)
from ledger.domain.refunds import OrderRefund, OrderRefundFacts, decide_order_refund
from ledger.service import clock, idempotent, lookups, lot_postings, referrals, segments
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.posting import post, refreshed
from ledger.store import campaigns, tiers, transactions
from ledger.store.instants import from_micros


@dataclass(frozen=True)
class RefundCommand:
    member_id: str
    order_id: str
    amount: int
    currency: str  # "" when the request left it out: the order's currency applies
    reason: str


def _load(conn: Transaction, program_id: str, command: RefundCommand, member: MemberState) -> tuple[TransactionView, object, OrderRefundFacts]:
    """The order's earn and what the refund decides on; refuses an order that earned nothing
    for the member, a different currency, a reversed earn."""
    earned = transactions.earn_of_order(conn, program_id, command.order_id)
    if earned is None or earned[1] != command.member_id:
        raise errors.not_found(
            "ORDER_NOT_FOUND", f"order {command.order_id!r} earned nothing for member {command.member_id!r}"
        )
    earn = transactions.views_of(conn, program_id, earned[0])[0]
    if command.currency and command.currency != earn.currency:
        raise errors.invalid_field("currency", f"must be the order's currency {earn.currency}")
    if transactions.reversal_of(conn, program_id, earn.transaction_id):
        raise errors.refused("ORDER_EARN_REVERSED", f"the earn of order {command.order_id!r} was reversed")
    if earn.points == 0 and not referrals.rewarded_order(conn, program_id, command.order_id):
        raise errors.refused("ORDER_EARNED_NO_POINTS", f"order {command.order_id!r} earned no points to claw back")
    qualifying = tiers.qualifying_of_transaction(conn, program_id, command.member_id, earn.transaction_id)
    rules = lookups.program_rules(conn, program_id)
    expired, refunded_points = transactions.order_points_removed(
        conn, program_id, command.member_id, earn.transaction_id, command.order_id
    )
    facts = OrderRefundFacts(
        earned_points=earn.points,
        earned_lines=earn.breakdown,
        order_amount=earn.order_amount,
        qualifying_spend=qualifying.spend if qualifying else 0,
        refunded_amount_before=transactions.refunded_amount(conn, program_id, command.order_id),
        expired_points=expired,
        refunded_points=refunded_points,
        member_posted=member.balance.posted,
        forbid_negative_balance=rules.negative_balance_policy is NegativeBalancePolicy.FORBID,
    )
    return earn, qualifying, facts


def _write(
    conn: Transaction, caller: Caller, mutation: Mutation, command: RefundCommand, member: MemberState,
    earn: TransactionView, qualifying, refund: OrderRefund,
) -> TransactionResult:
    """The REFUND transaction (the order's own lot first), then what it takes back of the
    order's tier qualification and campaign awards, and a referral reward it reverses."""
    program_id = caller.program_id
    now = clock.now()
    tx = NewTransaction(
        transaction_id=credentials.new_id("tx"),
        member_id=command.member_id,
        kind=TransactionKind.REFUND,
        points=-refund.clawback,
        breakdown=refund.breakdown(command.amount, earn.order_amount, earn.points),
        channel=earn.channel if earn.channel else Channel.OTHER,
        idempotency_key=mutation.idempotency_key,
        api_key_id=caller.key_id,
        occurred_at=now,
        created_at=now,
        store_id=earn.store_id,
        order_id=command.order_id,
        order_amount=command.amount,
        currency=earn.currency,
        reason=command.reason or f"refund of order {command.order_id}",
        postings=(
            lot_postings.debit(
                conn, program_id, command.member_id, refund.clawback, now, first_lot_id=earn.transaction_id
            ),
        ),
    )
    result = post(conn, program_id, member, tx)
    if qualifying is not None:
        tiers.record_qualifying(
            conn, program_id, command.member_id, tx.transaction_id, from_micros(qualifying.occurred_at),
            -refund.spend_clawback, -refund.base_clawback,
        )
    given_back = {}
    for campaign_id, share in sorted(refund.campaign_returns.items()):
        record = campaigns.get(conn, program_id, campaign_id)
        if record is not None:
            given_back[campaign_id] = (record.rule, -share)
    campaigns.add_awards(conn, program_id, command.member_id, given_back)
    reversed_referral = referrals.on_refund(
        conn, caller, command.order_id, earn.order_amount - refund.refunded_total_after, mutation.idempotency_key
    )
    result = refreshed(conn, program_id, result) if reversed_referral else result
    # The member's RFM figures, read back from the ledger with this refund, and their segments.
    segments.after_change(conn, program_id, member, now, available=result.balance.available, reason="refund")
    return result


def refund_order(db: Database, caller: Caller, mutation: Mutation, command: RefundCommand) -> TransactionResult:
    """Load the order's earn and refunds under the member's lock, decide the refund
    (ledger.domain.refunds.decide_order_refund), write it."""
    program_id = caller.program_id

    def apply(conn: Transaction, member: MemberState) -> TransactionResult:
        earn, qualifying, facts = _load(conn, program_id, command, member)
        refund = decide_order_refund(facts, command.amount)
        return _write(conn, caller, mutation, command, member, earn, qualifying, refund)

    return idempotent.execute(
        db,
        caller,
        mutation,
        lock=lambda conn: lookups.member(conn, program_id, command.member_id, lock=True),
        apply=apply,
        decode=TransactionResult.from_json,
    )
