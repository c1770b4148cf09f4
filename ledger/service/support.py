"""Use cases for customer support: goodwill adjustments and exact reversals."""

from __future__ import annotations

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.lots import lot_dates
from ledger.domain.records import (
    MemberState,
    NewTransaction,
    Posting,
    TransactionResult,
    TransactionView,
)
from ledger.domain.spending import check_posting, check_reversible
from ledger.service import clock, idempotent, lookups, lot_postings, referrals, segments
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.posting import post, refreshed
from ledger.store import campaigns, transactions
from ledger.store import tiers as tier_store
from ledger.store.instants import from_micros


def adjust_points(
    db: Database, caller: Caller, mutation: Mutation, member_id: str, points: int, reason: str
) -> TransactionResult:
    def posting(conn: Transaction, member: MemberState, rules, now) -> Posting:
        if points > 0:
            available_at, expires_at = lot_dates(now, rules, pending=False)
            return lot_postings.credit(member_id, points, member.balance.posted, available_at, expires_at)
        return lot_postings.debit(conn, caller.program_id, member_id, -points, now)

    return _adjustment(db, caller, mutation, member_id, points, reason, "support adjustment", Channel.SUPPORT, posting)


def _adjustment(
    db: Database, caller: Caller, mutation: Mutation, member_id: str, points: int, reason: str, description: str,
    channel: Channel, posting,
) -> TransactionResult:
    """An ADJUST transaction of `points` on the member, exactly once under the mutation's key;
    posting(conn, member, rules, now) gives its posting (the lots it credits or debits)."""

    def apply(conn: Transaction, member: MemberState) -> TransactionResult:
        rules = lookups.program_rules(conn, caller.program_id)
        check_posting(member.balance, points, rules.negative_balance_policy)
        now = clock.now()
        tx = NewTransaction(
            transaction_id=credentials.new_id("tx"),
            member_id=member_id,
            kind=TransactionKind.ADJUST,
            points=points,
            breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, points, description),),
            channel=channel,
            idempotency_key=mutation.idempotency_key,
            api_key_id=caller.key_id,
            occurred_at=now,
            created_at=now,
            reason=reason,
            postings=(posting(conn, member, rules, now),),
        )
        return post(conn, caller.program_id, member, tx)

    return idempotent.execute(
        db,
        caller,
        mutation,
        lock=lambda conn: lookups.member(conn, caller.program_id, member_id, lock=True),
        apply=apply,
        decode=TransactionResult.from_json,
    )


def _original(conn: Transaction, program_id: str, transaction_id: str) -> list[TransactionView]:
    views = transactions.views_of(conn, program_id, transaction_id)
    if not views:
        raise errors.not_found("TRANSACTION_NOT_FOUND", f"transaction {transaction_id!r} does not exist in this program")
    return views


def _reversing_posting(
    conn: Transaction, program_id: str, view: TransactionView, state: MemberState, rules, now
) -> Posting:
    """A credit is reversed by consuming its own lot first; a debit by giving its lots back."""
    if view.points >= 0:
        return lot_postings.debit(conn, program_id, view.member_id, view.points, now, first_lot_id=view.transaction_id)
    _, expires_at = lot_dates(now, rules, pending=False)
    return lot_postings.give_back(
        conn, program_id, view.member_id, -view.points, state.balance.posted, view.transaction_id, now, expires_at
    )


def _check_earn_untouched(conn: Transaction, program_id: str, earn: TransactionView) -> None:
    """An exact reversal of an earn is only exact while none of its points left another way."""
    expired, refunded = transactions.order_points_removed(
        conn, program_id, earn.member_id, earn.transaction_id, earn.order_id
    )
    if refunded or transactions.refunded_amount(conn, program_id, earn.order_id):
        raise errors.refused(
            "EARN_PARTLY_REFUNDED",
            f"order {earn.order_id!r} was partly refunded: refund the rest with RefundOrder, or reverse its refunds first",
        )
    if expired:
        raise errors.refused(
            "EARN_POINTS_EXPIRED",
            f"{expired} points of transaction {earn.transaction_id} already expired; correct with AdjustPoints",
        )


def _undo_earn_effects(conn: Transaction, program_id: str, earn: TransactionView, reversal_id: str) -> None:
    """The reversed order no longer counts toward tiers nor against its campaigns."""
    qualifying = tier_store.qualifying_of_transaction(conn, program_id, earn.member_id, earn.transaction_id)
    if qualifying is not None:
        tier_store.record_qualifying(
            conn, program_id, earn.member_id, reversal_id, from_micros(qualifying.occurred_at),
            -qualifying.spend, -qualifying.base_points,
        )
    given_back: dict[str, tuple] = {}
    for line in earn.breakdown:
        if line.source is PointsSource.CAMPAIGN and line.points > 0:
            record = campaigns.get(conn, program_id, line.campaign_id)
            if record is not None:
                previous = given_back.get(line.campaign_id, (record.rule, 0))[1]
                given_back[line.campaign_id] = (record.rule, previous - line.points)
    campaigns.add_awards(conn, program_id, earn.member_id, given_back)


def reverse_transaction(
    db: Database, caller: Caller, mutation: Mutation, transaction_id: str, reason: str
) -> TransactionResult:
    """Posts the exact negation of every entry of the transaction, once."""

    def lock(conn: Transaction) -> tuple[list[TransactionView], list[MemberState]]:
        views = _original(conn, caller.program_id, transaction_id)
        # Lock in member_id order (views are sorted) so concurrent reversals cannot deadlock.
        locked = [lookups.member(conn, caller.program_id, v.member_id, lock=True) for v in views]
        return views, locked

    def apply(conn: Transaction, locked) -> TransactionResult:
        views, states = locked
        first = views[0]
        check_reversible(first.kind, transaction_id, transactions.reversal_of(conn, caller.program_id, transaction_id))
        if first.kind is TransactionKind.EARN:
            _check_earn_untouched(conn, caller.program_id, first)
        rules = lookups.program_rules(conn, caller.program_id)
        for view, state in zip(views, states):
            check_posting(state.balance, -view.points, rules.negative_balance_policy)
        now = clock.now()
        primary = next(s for s in states if s.member_id == first.member_id)
        tx = NewTransaction(
            transaction_id=credentials.new_id("tx"),
            member_id=first.member_id,
            kind=TransactionKind.REVERSAL,
            points=-first.points,
            breakdown=tuple(
                BreakdownLine(line.source, -line.points, f"reversal of: {line.description}", line.campaign_id)
                for line in first.breakdown
            ),
            channel=Channel.SUPPORT,
            idempotency_key=mutation.idempotency_key,
            api_key_id=caller.key_id,
            occurred_at=now,
            created_at=now,
            order_id=first.order_id,
            order_amount=-first.order_amount,
            currency=first.currency,
            reason=reason or f"reversal of {transaction_id}",
            reverses_transaction_id=transaction_id,
            postings=tuple(
                _reversing_posting(conn, caller.program_id, view, state, rules, now)
                for view, state in zip(views, states)
            ),
        )
        result = post(conn, caller.program_id, primary, tx)
        if first.kind is TransactionKind.REFERRAL_REWARD:
            referrals.on_reward_reversed(conn, caller.program_id, transaction_id, tx.transaction_id)
        elif first.kind is TransactionKind.EARN:
            _undo_earn_effects(conn, caller.program_id, first, tx.transaction_id)
            # The order's spend is gone from the ledger: the member's figures are summed again.
            segments.after_change(
                conn, caller.program_id, primary, now, available=result.balance.available, reason="reversal"
            )
        if first.kind is TransactionKind.EARN and first.order_id:
            # The order is gone as if fully returned: a referral reward it earned inside its window goes too.
            if referrals.on_refund(conn, caller, first.order_id, 0, mutation.idempotency_key):
                return refreshed(conn, caller.program_id, result)
        return result

    return idempotent.execute(db, caller, mutation, lock=lock, apply=apply, decode=TransactionResult.from_json)


def opening_balance(
    db: Database, caller: Caller, mutation: Mutation, member_id: str, points: int, expires_at, reason: str
) -> TransactionResult:
    """A balance brought from another loyalty system (`loyalty-ledger import members`): an
    ADJUST credit whose lot expires when it did there (expires_at; None: never), available now."""

    def posting(conn: Transaction, member: MemberState, rules, now) -> Posting:
        return lot_postings.credit(member_id, points, member.balance.posted, now, expires_at)

    return _adjustment(db, caller, mutation, member_id, points, reason, "opening balance", Channel.OTHER, posting)
