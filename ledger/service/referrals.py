"""Use cases of the referral program: attribute at enrollment, reward the first qualifying
order (pending for its return window), reverse on an early return, list and report.

The reward is one REFERRAL_REWARD transaction posting to both members, so the two
can never drift apart; its lots mature with the qualifying order's return window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.store.database import Database, Transaction

from ledger.domain import credentials
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.lots import lot_dates
from ledger.domain.program import ProgramRules
from ledger.domain.records import MemberState, NewTransaction
from ledger.domain.referrals import (
    ReferralFacts,
    ReferralState,
    RewardDecision,
    check_attribution,
    reverses_reward,
    state_of,
)
from ledger.service import clock, expiry, lookups, lot_postings, page_tokens
from ledger.store import unit_of_work
from ledger.service.caller import Caller
from ledger.service.tiers import upgrade_after_order
from ledger.store import idempotency, ledger_writes, members, transactions
from ledger.store import referrals as store
from ledger.store import tiers as tier_store
from ledger.store.instants import from_micros
from ledger.store.referrals import ReferralRecord


def attribute(conn: Transaction, program_id: str, referee: MemberState, code: str, now: datetime) -> None:
    """Attributes a (new or order-less) member to the owner of code; idempotent for the same code."""
    referrer_id = members.member_by_code(conn, program_id, code)
    existing = store.of_referee(conn, program_id, referee.member_id)
    has_orders = transactions.has_earned(conn, program_id, referee.member_id)
    if check_attribution(referee.member_id, referrer_id, existing.referrer_id if existing else None, has_orders):
        assert referrer_id is not None  # check_attribution refused an unknown code
        store.attribute(conn, program_id, referee.member_id, referrer_id, now)


def _post_reward(
    conn: Transaction, caller: Caller, rules: ProgramRules, referral: ReferralFacts, order_id: str,
    occurred_at: datetime, decision: str, key: str,
) -> tuple[str, datetime]:
    now = clock.now()
    referral_rules = rules.referral
    available_at, expires_at = lot_dates(occurred_at, rules, pending=True)
    postings = []
    for member_id, points in sorted(
        ((referral.referrer_id, referral_rules.referrer_points), (referral.referee_id, referral_rules.referee_points))
    ):
        state = lookups.member(conn, caller.program_id, member_id, lock=True)
        # The reward (even of 0 points) makes the member active again: what expired for inactivity goes first.
        state = expiry.write_off_if_inactive(conn, caller.program_id, state, rules, now)
        # Both members get an entry (0 points possible) so the statement of each shows the referral.
        postings.append(lot_postings.credit(member_id, points, state.balance.posted, available_at, expires_at, order_id))
    transaction_id = credentials.new_id("tx")
    tx = NewTransaction(
        transaction_id=transaction_id,
        member_id=referral.referee_id,
        kind=TransactionKind.REFERRAL_REWARD,
        points=referral_rules.referee_points,
        breakdown=(BreakdownLine(PointsSource.REFERRAL, referral_rules.referee_points, decision),),
        channel=Channel.OTHER,
        idempotency_key=credentials.system_key("referral", key),
        api_key_id=caller.key_id,
        occurred_at=occurred_at,
        created_at=now,
        order_id=order_id,
        reason=f"referral of {referral.referee_id} by {referral.referrer_id}: {decision}",
        postings=tuple(postings),
    )
    ledger_writes.append(conn, caller.program_id, tx)
    idempotency.claim_many(
        conn, [(caller.program_id, tx.idempotency_key, "ReferralReward", transaction_id, {"order": order_id})], now
    )
    if referral_rules.counts_toward_tiers:
        for posting in postings:
            tier_store.record_qualifying(
                conn, caller.program_id, posting.member_id, transaction_id, occurred_at, 0, posting.points
            )
    return transaction_id, available_at


def facts_for_order(conn: Transaction, caller: Caller, member: MemberState, rules: ProgramRules) -> ReferralFacts | None:
    """What deciding the referral an order may complete needs, read inside the Earn: the
    member's undecided referral and how many referrals its referrer was rewarded for in the
    cap period. None: nothing to decide (not referred, or decided already)."""
    referral = store.of_referee(conn, caller.program_id, member.member_id)
    if referral is None or referral.decided_at is not None:
        return None
    # The referrer's row lock serialises referees of one referrer, so the cap count is exact.
    lookups.member(conn, caller.program_id, referral.referrer_id, lock=True)
    since = clock.now() - timedelta(days=rules.referral.cap_period_days)
    rewarded = store.rewarded_since(conn, caller.program_id, referral.referrer_id, since)
    return ReferralFacts(referral.referrer_id, referral.referee_id, referral.attributed_at, rewarded)


def write_decision(
    conn: Transaction, caller: Caller, rules: ProgramRules, referral: ReferralFacts, decision: RewardDecision,
    order_id: str, occurred_at: datetime, key: str,
) -> bool:
    """Writes what the order decided of the referral (domain: decide_reward): the decision, and
    with a reward, its transaction and the tiers it may lift. True when a reward was posted
    (the member's balance changed again)."""
    if not decision.qualifies:
        return False
    now = clock.now()
    if not decision.rewarded or not (rules.referral.referrer_points or rules.referral.referee_points):
        store.decide(conn, caller.program_id, referral.referee_id, now, decision.decision, order_id)
        return False
    transaction_id, matures_at = _post_reward(
        conn, caller, rules, referral, order_id, occurred_at, decision.decision, key
    )
    store.decide(
        conn, caller.program_id, referral.referee_id, now, decision.decision, order_id, transaction_id,
        rules.referral.referrer_points, rules.referral.referee_points, matures_at,
    )
    if rules.referral.counts_toward_tiers:
        for member_id in sorted((referral.referrer_id, referral.referee_id)):
            state = lookups.member(conn, caller.program_id, member_id)
            upgrade_after_order(conn, caller, state, rules, occurred_at)
    return True


def on_refund(conn: Transaction, caller: Caller, order_id: str, net_amount_after: int, key: str) -> bool:
    """Called inside a RefundOrder: a return within the window reverses both referral rewards.
    True when a reversal was posted."""
    referral = store.of_order(conn, caller.program_id, order_id)
    if referral is None or not referral.reward_transaction_id or referral.reversal_transaction_id:
        return False
    if transactions.reversal_of(conn, caller.program_id, referral.reward_transaction_id):
        return False  # support already reversed the reward
    rules = lookups.program_rules(conn, caller.program_id)
    now = clock.now()
    if referral.matures_at is None or not reverses_reward(
        rules.referral.min_order_amount, net_amount_after, now, referral.matures_at
    ):
        return False
    original = transactions.views_of(conn, caller.program_id, referral.reward_transaction_id)
    postings = []
    for view in original:  # sorted by member_id: the lock order
        lookups.member(conn, caller.program_id, view.member_id, lock=True)
        postings.append(
            lot_postings.debit(conn, caller.program_id, view.member_id, view.points, now, first_lot_id=view.transaction_id)
        )
    referee_points = next(v.points for v in original if v.member_id == referral.referee_id)
    transaction_id = credentials.new_id("tx")
    why = f"order {order_id} was returned within its return window"
    tx = NewTransaction(
        transaction_id=transaction_id,
        member_id=referral.referee_id,
        kind=TransactionKind.REVERSAL,
        points=-referee_points,
        breakdown=(BreakdownLine(PointsSource.REFERRAL, -referee_points, why),),
        channel=Channel.OTHER,
        idempotency_key=credentials.system_key("referral-reversal", key),
        api_key_id=caller.key_id,
        occurred_at=now,
        created_at=now,
        order_id=order_id,
        reason=f"referral reward reversed: {why}",
        reverses_transaction_id=referral.reward_transaction_id,
        postings=tuple(postings),
    )
    ledger_writes.append(conn, caller.program_id, tx)
    idempotency.claim_many(
        conn, [(caller.program_id, tx.idempotency_key, "ReferralReversal", transaction_id, {"order": order_id})], now
    )
    if rules.referral.counts_toward_tiers:
        _undo_qualifying(conn, caller.program_id, original, transaction_id)
    store.mark_reversed(conn, caller.program_id, referral.referee_id, transaction_id, f"reversed: {why}")
    return True


def _undo_qualifying(conn: Transaction, program_id: str, original, reversal_id: str) -> None:
    for view in original:
        earned = tier_store.qualifying_of_transaction(conn, program_id, view.member_id, view.transaction_id)
        if earned is not None:
            tier_store.record_qualifying(
                conn, program_id, view.member_id, reversal_id, from_micros(earned.occurred_at), -earned.spend,
                -earned.base_points,
            )


def rewarded_order(conn: Transaction, program_id: str, order_id: str) -> bool:
    """Whether a referral reward hangs on this order (a refund must be able to undo it)."""
    referral = store.of_order(conn, program_id, order_id)
    return referral is not None and bool(referral.reward_transaction_id) and not referral.reversal_transaction_id


def on_reward_reversed(conn: Transaction, program_id: str, reward_transaction_id: str, reversal_id: str) -> None:
    """Support reversed a referral reward directly: the referral shows it, and tier progress goes back."""
    referral = store.of_reward(conn, program_id, reward_transaction_id)
    if referral is None:
        return
    store.mark_reversed(conn, program_id, referral.referee_id, reversal_id, "reversed by support")
    _undo_qualifying(conn, program_id, transactions.views_of(conn, program_id, reward_transaction_id), reversal_id)


@dataclass(frozen=True)
class ReferralView:
    record: ReferralRecord
    state: ReferralState


@dataclass(frozen=True)
class ReferralPage:
    referral_code: str
    referrals: list[ReferralView]
    next_page_token: str


def list_referrals(db: Database, caller: Caller, referrer_id: str, page_size: int, page_token: str) -> ReferralPage:
    """Sorted by referee; the page token (signed, bound to the program and the referrer) holds the
    last referee served."""
    pages = page_tokens.pages(db, "ListReferrals", caller.program_id, referrer_id)
    after = pages.position(page_token)

    def work(conn: Transaction) -> ReferralPage:
        referrer = lookups.member(conn, caller.program_id, referrer_id)
        found = store.page(conn, caller.program_id, referrer_id, after, page_size + 1)
        now = clock.now()
        views = [
            ReferralView(
                r,
                state_of(bool(r.reward_transaction_id), bool(r.reversal_transaction_id), r.decided_at is not None,
                         r.matures_at, now),
            )
            for r in found[:page_size]
        ]
        token = pages.token_after(found[page_size - 1].referee_id) if len(found) > page_size else ""
        return ReferralPage(referrer.referral_code, views, token)

    return unit_of_work.run(db, work, read_only=True)


def report(db: Database, caller: Caller) -> dict[str, int]:
    return unit_of_work.run(db, lambda conn: store.report(conn, caller.program_id, clock.now()), read_only=True)


