"""Use case: a returns desk refunds (part of) an order; the order's earned points are clawed back.

The clawback is proportional and cumulative (domain/refunds.py). It consumes the
order's own lot first, so still-pending points are cancelled before spent ones.
When the member has already spent the points, the program's negative-balance
policy decides: ALLOW lets posted go negative; FORBID claws back what is left
and records the rest as written off in the breakdown.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.program import NegativeBalancePolicy
from ledger.domain.records import (
    MemberState,
    NewTransaction,
    TransactionResult,
    TransactionView,
)
from ledger.domain.refunds import (
    SourceRefund,
    decide_refund_by_source,
    kept_points,
    split_write_off,
)
from ledger.service import clock, idempotent, lookups, lot_postings, referrals
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


def _undo_order_effects(
    conn: Transaction,
    program_id: str,
    member_id: str,
    earn: TransactionView,
    decision: SourceRefund,
    clawed: int,
    refund_transaction_id: str,
    qualifying,
) -> None:
    """A refund also takes back the order's share of tier qualification and campaign counters."""
    base_clawback = sum(
        points for line, points in zip(earn.breakdown, decision.per_line) if line.source is PointsSource.BASE
    )
    if qualifying is not None:
        tiers.record_qualifying(
            conn, program_id, member_id, refund_transaction_id, from_micros(qualifying.occurred_at),
            -decision.spend_clawback, -base_clawback,
        )
    total = decision.clawback
    given_back: dict[str, tuple] = {}
    for line, points in zip(earn.breakdown, decision.per_line):
        if line.source is not PointsSource.CAMPAIGN or points <= 0:
            continue
        # Only what was actually clawed back returns to the campaign; a written-off share stays spent.
        share = points * clawed // total if total else 0
        record = campaigns.get(conn, program_id, line.campaign_id)
        if record is not None and share > 0:
            previous = given_back.get(line.campaign_id, (record.rule, 0))[1]
            given_back[line.campaign_id] = (record.rule, previous - share)
    campaigns.add_awards(conn, program_id, member_id, given_back)


def refund_order(db: Database, caller: Caller, mutation: Mutation, command: RefundCommand) -> TransactionResult:
    program_id = caller.program_id

    def apply(conn: Transaction, member: MemberState) -> TransactionResult:
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
        before = transactions.refunded_amount(conn, program_id, command.order_id)
        qualifying = tiers.qualifying_of_transaction(conn, program_id, command.member_id, earn.transaction_id)
        decision = decide_refund_by_source(
            [line.points for line in earn.breakdown],
            qualifying.spend if qualifying else 0,
            earn.order_amount,
            before,
            command.amount,
        )
        rules = lookups.program_rules(conn, program_id)
        # Points of this order that already expired are gone: a refund never takes them a second time.
        expired, refunded_points = transactions.order_points_removed(
            conn, program_id, command.member_id, earn.transaction_id, command.order_id
        )
        still_held = earn.points - expired - refunded_points
        keep_after = kept_points(earn.points, earn.order_amount, decision.refunded_total_after)
        clawback, written_off = min(decision.clawback, max(0, still_held - keep_after)), 0
        if rules.negative_balance_policy is NegativeBalancePolicy.FORBID:
            clawback, written_off = split_write_off(clawback, max(member.balance.posted, 0))
        now = clock.now()
        breakdown = [
            BreakdownLine(
                PointsSource.LEDGER_OPERATION,
                -clawback,
                f"clawback of {command.amount}/{earn.order_amount} refunded of {earn.points} earned",
            )
        ]
        if written_off:
            breakdown.append(
                BreakdownLine(PointsSource.LEDGER_OPERATION, 0, f"{written_off} points written off: already spent")
            )
        tx = NewTransaction(
            transaction_id=credentials.new_id("tx"),
            member_id=command.member_id,
            kind=TransactionKind.REFUND,
            points=-clawback,
            breakdown=tuple(breakdown),
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
                    conn, program_id, command.member_id, clawback, now, first_lot_id=earn.transaction_id
                ),
            ),
        )
        result = post(conn, program_id, member, tx)
        _undo_order_effects(conn, program_id, command.member_id, earn, decision, clawback, tx.transaction_id, qualifying)
        reversed_referral = referrals.on_refund(
            conn, caller, command.order_id, earn.order_amount - decision.refunded_total_after, mutation.idempotency_key
        )
        return refreshed(conn, program_id, result) if reversed_referral else result

    return idempotent.execute(
        db,
        caller,
        mutation,
        lock=lambda conn: lookups.member(conn, program_id, command.member_id, lock=True),
        apply=apply,
        decode=TransactionResult.from_json,
    )
