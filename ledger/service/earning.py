"""Use cases: earn points for an order, and quote what an order would earn.

Earn, in one database transaction, reads as load -> decide -> write:
- load, under the member's row lock: the rules in force at the order's time, the member's
  tier and the running campaigns (budget counters locked), the live balance, the qualifying
  totals of each tier's window and an undecided referral (its referrer locked); refuse an
  order outside the backdating bound or already earned;
- decide (ledger.domain.orders): the points and awards, the tier the order lifts the member
  to (the order itself earns at the old tier), the referral it completes;
- write: the transaction and its lot, the awards against the campaigns, the qualifying
  spend, the tier change and the referral reward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors, expiry
from ledger.domain.balance import Balance
from ledger.domain.earning import (
    EarnDecision,
    OrderFacts,
    check_order_time,
    decide_earn,
)
from ledger.domain.kinds import Channel, TransactionKind
from ledger.domain.lots import Lot, lot_dates
from ledger.domain.program import ProgramRules
from ledger.domain.records import (
    MemberState,
    MemberStatus,
    NewTransaction,
    TransactionResult,
    TransactionView,
)
from ledger.domain.spending import check_posting
from ledger.domain.orders import MemberFacts, OrderOutcome, decide_order
from ledger.service import clock, earn_context, idempotent, lookups, lot_postings, referrals, segments, tiers
from ledger.store import unit_of_work
from ledger.service import expiry as expiry_job
from ledger.service.balances import live_balance
from ledger.service.caller import Caller
from ledger.service.earn_context import EarnContext
from ledger.service.idempotent import Mutation
from ledger.service.posting import post, refreshed
from ledger.store import idempotency, transactions
from ledger.store import lots as lot_store
from ledger.store import programs as program_store
from ledger.store import referrals as referral_store
from ledger.store import tiers as tier_store
from ledger.store import segments as segment_store
from ledger.domain.segments import Figures, window_start
from ledger.store.instants import to_micros


# What an Earn reads right after its member's lock, in one round trip (lookups.read_ahead).
EARN_READS = (
    idempotency.BY_KEY,
    program_store.BY_ID,
    tier_store.STATE,
    transactions.EARN_OF_ORDER,
    referral_store.OF_REFEREE,
    lot_store.BALANCE_FACTS,
) + ((segment_store.STORED_FIGURES, segment_store.MEMBERSHIP) if segments.UPKEEP else ())


@dataclass(frozen=True)
class EarnCommand:
    member_id: str
    order: OrderFacts
    channel: Channel
    store_id: str


def _context(
    conn: Transaction, caller: Caller, command: EarnCommand, *, lock: bool, preview: bool = False
) -> EarnContext:
    """The rules, tier and campaigns in force at the order's time; refuses an order outside
    the backdating bound or already earned. preview: a quote, which may look at an order
    still to come (rules and campaigns in force then)."""
    context = earn_context.load(conn, caller.program_id, command.member_id, command.order.occurred_at, lock_budgets=lock)
    now = clock.now()
    # Lifecycle settings (the backdating bound among them) are today's: context.rules has them.
    check_order_time(command.order.occurred_at, max(now, command.order.occurred_at) if preview else now, context.rules)
    earned = transactions.earn_of_order(conn, caller.program_id, command.order.order_id)
    if earned is not None:
        raise errors.already_exists(
            "ORDER_ALREADY_EARNED",
            f"order {command.order.order_id!r} already earned points in transaction {earned[0]}",
            transaction_id=earned[0],
        )
    return context


@dataclass(frozen=True)
class _EarnFacts:
    """Everything an Earn decides on, read under the member's lock before anything is written."""

    context: EarnContext
    before: Balance  # the member's live balance before the order
    member: MemberFacts
    figures: Figures  # the member's RFM figures before the order, as stored (ledger.service.segments)
    figures_stored: bool  # whether the member has a stored row of figures
    segments: frozenset[str]  # the segments the member is in as the order is processed


def _load(conn: Transaction, caller: Caller, command: EarnCommand, member: MemberState, now: datetime) -> _EarnFacts:
    context = _context(conn, caller, command, lock=True)
    before = live_balance(conn, caller.program_id, member, now)
    windows = {}
    if context.tiers:
        # Qualification is measured at the order's time and now: a backdated order synced
        # late still counts with the newer ones.
        occurred = command.order.occurred_at
        windows = tiers.qualifying_windows(
            conn, caller.program_id, command.member_id, context.rules, context.tiers, (occurred, max(occurred, now))
        )
    referral = referrals.facts_for_order(conn, caller, member, context.rules)
    figures, stored = _figures_before(conn, caller.program_id, command.member_id, now) if segments.UPKEEP else (Figures(), False)
    by_segment = any(c.conditions.segments for c in context.campaigns)
    inside = (
        segment_store.membership(conn, caller.program_id, command.member_id)
        if segments.UPKEEP or by_segment
        else frozenset()
    )
    return _EarnFacts(context, before, MemberFacts(context.tier, windows, referral, inside), figures, stored, inside)


def _figures_before(conn: Transaction, program_id: str, member_id: str, now: datetime) -> tuple[Figures, bool]:
    """The member's figures as stored by the refresh or their own last change, to which the
    order is added: one row whatever the member's history. Orders that have left the RFM
    window since then still count until the next refresh (daily) takes them out. A member with
    nothing stored yet (no refresh since they enrolled) has them summed from the ledger."""
    stored = segment_store.stored_figures(conn, program_id, member_id)
    if stored is not None:
        return stored, True
    return segment_store.figures(conn, program_id, member_id, now), False


def _new_transaction(
    caller: Caller,
    command: EarnCommand,
    decision: EarnDecision,
    context: EarnContext,
    member: MemberState,
    key: str,
    now: datetime,
) -> NewTransaction:
    available_at, expires_at = lot_dates(command.order.occurred_at, context.rules, pending=True)
    posting = lot_postings.credit(
        command.member_id, decision.points, member.balance.posted, available_at, expires_at, command.order.order_id
    )
    return NewTransaction(
        transaction_id=credentials.new_id("tx"),
        member_id=command.member_id,
        kind=TransactionKind.EARN,
        points=decision.points,
        breakdown=decision.breakdown,
        channel=command.channel,
        idempotency_key=key,
        api_key_id=caller.key_id,
        occurred_at=command.order.occurred_at,
        created_at=now,
        store_id=command.store_id,
        order_id=command.order.order_id,
        order_amount=command.order.amount,
        currency=command.order.currency,
        postings=(posting,),
    )


def _after(before: Balance, tx: NewTransaction, rules: ProgramRules, member: MemberState, now: datetime) -> Balance:
    """The live balance after tx, from the one before it (in which nothing is due for
    inactivity): tx's lot is pending, or already expired when the order is backdated past its
    expiry, and the earn moves the member's activity clock to the order's time."""
    lot = tx.postings[0].new_lot
    new_lot = Lot("", lot.points, lot.available_at, lot.expires_at) if lot is not None else None
    active_at = expiry.activity_after(member.last_activity_at, tx.kind, tx.occurred_at)
    inactive = expiry.is_inactive(rules.expiry_mode, rules.expiry_days, active_at, now)
    return expiry.after_credit(before, tx.points, new_lot, now, inactive=inactive)


def _inactive(rules: ProgramRules, member: MemberState, now: datetime) -> bool:
    return expiry.is_inactive(rules.expiry_mode, rules.expiry_days, member.last_activity_at, now)


def earn(db: Database, caller: Caller, mutation: Mutation, command: EarnCommand) -> TransactionResult:
    """Load the facts under the member's lock, decide (ledger.domain.orders), write the decision."""
    now = clock.now()

    def apply(conn: Transaction, member: MemberState) -> TransactionResult:
        return apply_earn(conn, caller, command, member, mutation.idempotency_key, now)

    def lock(conn: Transaction) -> MemberState:
        nonlocal now
        member, now = lookups.locked_member(
            conn, caller, command.member_id, mutation.idempotency_key, EARN_READS,
            referee_id=command.member_id, order_id=command.order.order_id,
        )
        return member

    return idempotent.execute(
        db, caller, mutation, lock=lock, apply=apply, decode=TransactionResult.from_json, member_id=command.member_id
    )


def apply_earn(
    conn: Transaction, caller: Caller, command: EarnCommand, member: MemberState, key: str, now: datetime
) -> TransactionResult:
    """The Earn once its member is locked and its key found fresh: decide and write."""
    lookups.require_active(member)
    facts = _load(conn, caller, command, member, now)
    context = facts.context
    outcome = decide_order(command.order, context.rules, context.tiers, context.campaigns, context.counters, facts.member)
    check_posting(member.balance, outcome.earn.points, context.rules.negative_balance_policy)
    return _write(conn, caller, command, member, facts, outcome, key, now)


def _write(
    conn: Transaction, caller: Caller, command: EarnCommand, member: MemberState, facts: _EarnFacts,
    outcome: OrderOutcome, key: str, now: datetime,
) -> TransactionResult:
    """Writes what the order decided: the earn (after an inactive member's write-off), the
    campaigns' awards, the qualifying spend, the tier change and the referral."""
    program_id, context, before = caller.program_id, facts.context, facts.before
    if _inactive(context.rules, member, now):
        # The earn makes the member active again: what expired for inactivity goes first.
        member = expiry_job.write_off_if_inactive(conn, program_id, member, context.rules, now)
        before = expiry.written_off(before)
    tx = _new_transaction(caller, command, outcome.earn, context, member, key, now)
    # An earn adds its lot and touches no hold: the answer's balance needs no second read.
    after = _after(before, tx, context.rules, member, now)
    result = post(conn, program_id, member, tx, unspendable=(after.pending, after.held, after.expired))
    earn_context.record_awards(conn, program_id, command.member_id, context, outcome.earn.awards)
    occurred = command.order.occurred_at
    tier_store.record_qualifying(
        conn, program_id, command.member_id, tx.transaction_id, occurred,
        outcome.earn.qualifying_spend, outcome.earn.base_points,
    )
    if outcome.tier_change is not None:
        tiers.write_change(conn, caller.key_id, program_id, member, outcome.tier_change, occurred)
    referral = facts.member.referral  # the member's undecided referral, which outcome.referral decides
    rewarded = outcome.referral is not None and referral is not None and referrals.write_decision(
        conn, caller, context.rules, referral, outcome.referral, command.order.order_id, occurred, key
    )
    _keep_segments(conn, program_id, member, facts, outcome, after.available, now, to_micros(occurred))
    return refreshed(conn, program_id, result) if rewarded else result


def _keep_segments(
    conn: Transaction, program_id: str, member: MemberState, facts: _EarnFacts, outcome: OrderOutcome,
    available: int, now: datetime, occurred: int,
) -> None:
    """The member's RFM figures and segments after the order, in its transaction: the figures
    read before it (in the Earn's first round trip) plus the order itself."""
    if not segments.UPKEEP:
        return
    context = facts.context
    start = window_start(to_micros(now), context.rules.rfm_window_days)
    figures = facts.figures.with_order(occurred, outcome.earn.qualifying_spend, start)
    # What the order adds, for a stored row (added to it as it stands when written).
    added = (
        Figures(occurred, figures.orders - facts.figures.orders, figures.spend - facts.figures.spend)
        if facts.figures_stored
        else None
    )
    if outcome.tier_change is not None:
        tier = outcome.tier_change.new.name
    else:
        tier = context.tier.name if context.tier else ""
    segments.keep_current(
        conn, program_id, member, figures, now, segments=context.segments, cuts=context.cuts, tier=tier,
        available=available, reason="earn", before=facts.segments, added=added,
    )


def quote_earn(db: Database, caller: Caller, command: EarnCommand) -> TransactionResult:
    """What earn would answer, with an empty transaction id, writing nothing. The order may
    lie in the future (a preview of a campaign still to come, evaluated by the rules and
    campaigns in force then), and without a member_id the quote is for a new member."""

    def work(conn: Transaction) -> TransactionResult:
        now = clock.now()
        if command.member_id:
            member = lookups.member(conn, caller.program_id, command.member_id)
            lookups.require_active(member)
        else:
            member = MemberState("", "", MemberStatus.ACTIVE, now, Balance(), 0, now)
        context = _context(conn, caller, command, lock=False, preview=True)
        # The member's segments as they stand now (a campaign for a segment applies as Earn would apply it).
        inside = segment_store.membership(conn, caller.program_id, command.member_id) if command.member_id else frozenset()
        decision = decide_earn(
            command.order, context.rules, context.tier, context.campaigns, context.counters, inside
        )
        before = live_balance(conn, caller.program_id, member, now)
        if _inactive(context.rules, member, now):  # as the earn would write them off
            member = replace(member, balance=member.balance.with_posted(-before.expired))
            before = expiry.written_off(before)
        tx = _new_transaction(caller, command, decision, context, member, "", now)
        balance = _after(before, tx, context.rules, member, now)
        view = TransactionView(
            transaction_id="",
            member_id=command.member_id,
            kind=tx.kind,
            points=decision.points,
            breakdown=decision.breakdown,
            channel=tx.channel,
            store_id=tx.store_id,
            order_id=tx.order_id,
            order_amount=tx.order_amount,
            currency=tx.currency,
            reason="",
            idempotency_key="",
            api_key_id=caller.key_id,
            reverses_transaction_id="",
            occurred_at=tx.occurred_at,
            created_at=tx.created_at,
            balance_after=balance.posted,
            sequence=member.last_seq + 1,
        )
        return TransactionResult(view, balance)

    return unit_of_work.run(db, work, read_only=True)
