"""The whole decision of one order (ledger.domain.orders): the points, the tier the order
lifts the member to, the referral it completes. Pure: no database, no gRPC.

What they prove:
- with_order counts the order in exactly the windows (since, until] that hold its time;
- the order that crosses a threshold lifts the member, from the order's own time, and the
  order itself earns at the old tier; an order that crosses nothing changes nothing;
- a backdated order counts with the newer ones measured now;
- a member never moves down with an order, and a tier removed by SetTiers is never replaced
  by a lower one mid-period;
- the referral is decided only for a member with one undecided, by decide_reward's rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.earning import OrderFacts
from ledger.domain.orders import MemberFacts, decide_order
from ledger.domain.program import EarnRate, ProgramRules
from ledger.domain.referrals import ReferralFacts, ReferralRules
from ledger.domain.tiers import QualifyingTotals, TierDefinition, TierState, change_after_order, rank, with_order

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
TIERS = [
    TierDefinition("Bronze", 0),
    TierDefinition("Silver", 10_000, 12_500),
    TierDefinition("Gold", 50_000, 15_000),
]
RULES = ProgramRules("prg", "test", earn_rate=EarnRate(1, 100))


def order(amount: int, at: datetime = NOW, order_id: str = "o-1") -> OrderFacts:
    return OrderFacts(order_id, amount, "USD", at)


def windows(spend_before: int, *instants: datetime) -> dict[datetime, list[QualifyingTotals]]:
    return {until: [QualifyingTotals(spend_before, 0) for _ in TIERS] for until in instants or (NOW,)}


def member(spend_before: int = 0, tier: TierState | None = None, referral: ReferralFacts | None = None) -> MemberFacts:
    return MemberFacts(tier, windows(spend_before), referral)


@given(
    st.integers(min_value=-400, max_value=400),
    st.integers(min_value=1, max_value=3650),
)
def test_the_order_counts_in_exactly_the_windows_that_hold_its_time(days_before_now, qualification_days):
    tiers = [TierDefinition("Only", 0, qualification_days=qualification_days)]
    occurred = NOW - timedelta(days=days_before_now)
    counted = with_order(
        {NOW: [QualifyingTotals(7, 3)]}, tiers, RULES, occurred, QualifyingTotals(100, 1)
    )
    inside = NOW - timedelta(days=qualification_days) < occurred <= NOW
    assert counted[NOW] == [QualifyingTotals(107, 4) if inside else QualifyingTotals(7, 3)]


def test_the_order_that_crosses_a_threshold_lifts_the_member_and_earns_at_the_old_tier():
    bronze = TierState("Bronze", 10_000, NOW - timedelta(days=30), NOW + timedelta(days=335))
    outcome = decide_order(order(4_000), RULES, TIERS, [], {}, member(spend_before=6_000, tier=bronze))
    assert outcome.earn.points == 40  # 1 point per 100 at Bronze's 1x, not Silver's 1.25x
    assert outcome.tier_change is not None
    assert (outcome.tier_change.old, outcome.tier_change.new.name) == ("Bronze", "Silver")
    assert outcome.tier_change.new.reached_at == NOW
    assert outcome.tier_change.new.held_until == NOW + timedelta(days=RULES.tier_period_days)
    assert "10000" in outcome.tier_change.why


def test_an_order_below_the_next_threshold_changes_no_tier():
    entry = TierState("Bronze", 10_000, datetime(1970, 1, 1, tzinfo=timezone.utc), datetime.max.replace(tzinfo=timezone.utc))
    outcome = decide_order(order(3_999), RULES, TIERS, [], {}, member(spend_before=6_000, tier=entry))
    assert outcome.tier_change is None


def test_without_tiers_nothing_is_measured():
    outcome = decide_order(order(10**6), RULES, [], [], {}, MemberFacts(None, {}, None))
    assert outcome.tier_change is None and outcome.referral is None


def test_a_backdated_order_counts_with_the_newer_ones_measured_now():
    occurred = NOW - timedelta(days=400)  # outside the 365-day window that ends now
    measured = {occurred: [QualifyingTotals(0, 0)] * 3, NOW: [QualifyingTotals(9_000, 0)] * 3}
    # Measured at its own time it reaches nothing (only itself counts there, 2,000); measured
    # now it falls outside the window, and the newer 9,000 alone do not reach Silver.
    assert change_after_order(TIERS, RULES, None, with_order(measured, TIERS, RULES, occurred, QualifyingTotals(2_000, 0)), occurred).new.name == "Bronze"
    recent = NOW - timedelta(days=3)
    measured = {recent: [QualifyingTotals(0, 0)] * 3, NOW: [QualifyingTotals(9_000, 0)] * 3}
    change = change_after_order(TIERS, RULES, None, with_order(measured, TIERS, RULES, recent, QualifyingTotals(2_000, 0)), recent)
    assert change.new.name == "Silver" and change.new.reached_at == recent


@given(st.integers(min_value=0, max_value=200_000), st.integers(min_value=0, max_value=200_000), st.sampled_from(TIERS))
def test_an_order_never_moves_a_member_down(spend_before, amount, held):
    state = TierState(held.name, held.multiplier_bps, NOW - timedelta(days=1), NOW + timedelta(days=300))
    outcome = decide_order(order(amount), RULES, TIERS, [], {}, member(spend_before, tier=state))
    if outcome.tier_change is not None:
        assert rank(TIERS, outcome.tier_change.new.name) > rank(TIERS, held.name)
        assert spend_before + amount >= next(t.threshold for t in TIERS if t.name == outcome.tier_change.new.name)


def test_a_removed_tier_is_not_replaced_by_a_lower_one():
    platinum = TierState("Platinum", 20_000, NOW - timedelta(days=10), NOW + timedelta(days=300))
    outcome = decide_order(order(60_000), RULES, TIERS, [], {}, member(0, tier=platinum))
    assert outcome.tier_change is None


REFERRAL = ReferralRules(referrer_points=500, referee_points=250, min_order_amount=2_000)
REFERRED = ProgramRules("prg", "test", earn_rate=EarnRate(1, 100), referral=REFERRAL)


def test_the_first_qualifying_order_of_a_referred_member_decides_the_referral():
    facts = ReferralFacts("m-referrer", "m-new", NOW - timedelta(days=2), 0)
    rewarded = decide_order(order(2_000), REFERRED, [], [], {}, MemberFacts(None, {}, facts)).referral
    assert rewarded is not None and rewarded.qualifies and rewarded.rewarded
    below = decide_order(order(1_999), REFERRED, [], [], {}, MemberFacts(None, {}, facts)).referral
    assert below is not None and not below.qualifies
    assert decide_order(order(2_000), REFERRED, [], [], {}, MemberFacts(None, {}, None)).referral is None
