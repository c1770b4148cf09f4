"""Pure referral rules (ledger/domain/referrals.py): no database, no gRPC.

What it proves:
- check_attribution: an unknown code is NOT_FOUND REFERRAL_CODE_NOT_FOUND, the member's own code is
  FAILED_PRECONDITION SELF_REFERRAL, a second referrer is ALREADY_REFERRED, a member with orders is
  REFERRAL_AFTER_FIRST_ORDER; the same referrer again is an idempotent repeat (False, no error, even
  once the member has orders); a new attribution is True; refusals are checked in that precedence;
- decide_reward: below min_order_amount the order does not qualify (and says so); at exactly the
  minimum it qualifies; an order after the attribution window qualifies but is not rewarded (the
  "too late" case, which cannot be built over the API: attribution happens at enrollment and an
  order's occurred_at can never be in the future); exactly at the window's end it is still rewarded;
  window 0 means no limit; the per-referrer cap refuses once rewarded_in_cap_period >= cap, 0 = no
  cap; every decision text names the order or the rule that decided; the precedence is
  minimum > window > cap (hypothesis over all inputs against a model);
- reverses_reward: only before matures_at and only when the net amount falls below the minimum
  (a full refund always, even with a minimum of 0);
- state_of: REVERSED > QUALIFIED (rewarded, not yet mature) / REWARDED (mature, exactly at
  matures_at) > NOT_REWARDED (decided without reward) > ATTRIBUTED.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import errors
from ledger.domain.errors import Category
from ledger.domain.referrals import (
    ReferralRules,
    ReferralState,
    check_attribution,
    decide_reward,
    reverses_reward,
    state_of,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
member_ids = st.text(alphabet="abcxyz-0", min_size=1, max_size=6)


def refusal(call, *args) -> tuple[Category, str]:
    with pytest.raises(errors.LedgerError) as caught:
        call(*args)
    return caught.value.category, caught.value.reason


# --------------------------------------------------------------------------- check_attribution


def test_attribution_refusals_and_new_attribution():
    assert refusal(check_attribution, "bob", None, None, False) == (Category.NOT_FOUND, "REFERRAL_CODE_NOT_FOUND")
    assert refusal(check_attribution, "bob", "bob", None, False) == (Category.FAILED_PRECONDITION, "SELF_REFERRAL")
    assert refusal(check_attribution, "bob", "carol", "alice", False) == (
        Category.FAILED_PRECONDITION,
        "ALREADY_REFERRED",
    )
    assert refusal(check_attribution, "bob", "alice", None, True) == (
        Category.FAILED_PRECONDITION,
        "REFERRAL_AFTER_FIRST_ORDER",
    )
    assert check_attribution("bob", "alice", None, False) is True


def test_attribution_repeat_with_the_same_referrer_is_idempotent_even_after_orders():
    assert check_attribution("bob", "alice", "alice", False) is False
    assert check_attribution("bob", "alice", "alice", True) is False


@settings(max_examples=300, deadline=None)
@given(
    referee=member_ids,
    referrer=st.none() | member_ids,
    existing=st.none() | member_ids,
    has_orders=st.booleans(),
)
def test_attribution_matches_its_model(referee, referrer, existing, has_orders):
    """Precedence: unknown code, self-referral, same referrer (repeat), other referrer, orders."""
    if referrer is None:
        expected = (Category.NOT_FOUND, "REFERRAL_CODE_NOT_FOUND")
    elif referrer == referee:
        expected = (Category.FAILED_PRECONDITION, "SELF_REFERRAL")
    elif existing == referrer:
        expected = False
    elif existing is not None:
        expected = (Category.FAILED_PRECONDITION, "ALREADY_REFERRED")
    elif has_orders:
        expected = (Category.FAILED_PRECONDITION, "REFERRAL_AFTER_FIRST_ORDER")
    else:
        expected = True
    if isinstance(expected, bool):
        assert check_attribution(referee, referrer, existing, has_orders) is expected
    else:
        assert refusal(check_attribution, referee, referrer, existing, has_orders) == expected


# --------------------------------------------------------------------------- decide_reward

RULES = ReferralRules(referrer_points=500, referee_points=200, min_order_amount=2_000)


def test_order_below_the_minimum_does_not_qualify():
    decision = decide_reward(RULES, "o-1", 1_999, T0, T0, 0)
    assert (decision.qualifies, decision.rewarded) == (False, False)
    assert decision.decision == "order o-1 (1999) is below the minimum 2000"


def test_order_at_the_minimum_is_rewarded_with_an_explained_decision():
    decision = decide_reward(RULES, "o-1", 2_000, T0, T0, 0)
    assert (decision.qualifies, decision.rewarded) == (True, True)
    assert decision.decision == "first qualifying order o-1 (2000 >= 2000): 500 to the referrer, 200 to the new member"


def test_order_after_the_attribution_window_qualifies_but_is_not_rewarded():
    """The "too late" case: not constructible over gRPC (no order can be dated after now)."""
    rules = ReferralRules(referrer_points=500, referee_points=200, attribution_window_days=30)
    late = decide_reward(rules, "o-9", 5_000, T0 + timedelta(days=30, seconds=1), T0, 0)
    assert (late.qualifies, late.rewarded) == (True, False)
    assert late.decision == "order o-9 came after the 30-day attribution window"
    on_the_edge = decide_reward(rules, "o-9", 5_000, T0 + timedelta(days=30), T0, 0)
    assert (on_the_edge.qualifies, on_the_edge.rewarded) == (True, True)
    no_window = decide_reward(ReferralRules(referrer_points=1), "o-9", 5_000, T0 + timedelta(days=3000), T0, 0)
    assert no_window.rewarded


def test_the_per_referrer_cap():
    rules = ReferralRules(referrer_points=500, referee_points=200, max_rewarded_per_referrer=3, cap_period_days=7)
    assert decide_reward(rules, "o-1", 1, T0, T0, 2).rewarded
    capped = decide_reward(rules, "o-1", 1, T0, T0, 3)
    assert (capped.qualifies, capped.rewarded) == (True, False)
    assert capped.decision == "the referrer reached the cap of 3 rewarded referrals per 7 days"
    assert not decide_reward(rules, "o-1", 1, T0, T0, 40).rewarded
    uncapped = ReferralRules(referrer_points=500, max_rewarded_per_referrer=0)
    assert decide_reward(uncapped, "o-1", 1, T0, T0, 10_000).rewarded


@settings(max_examples=400, deadline=None)
@given(
    amount=st.integers(0, 10_000),
    minimum=st.integers(0, 10_000),
    window=st.integers(0, 60),
    days_after=st.integers(0, 90),
    cap=st.integers(0, 5),
    rewarded_before=st.integers(0, 8),
)
def test_decide_reward_matches_its_model(amount, minimum, window, days_after, cap, rewarded_before):
    rules = ReferralRules(
        referrer_points=300, referee_points=100, min_order_amount=minimum,
        max_rewarded_per_referrer=cap, attribution_window_days=window,
    )
    occurred = T0 + timedelta(days=days_after, hours=1)
    decision = decide_reward(rules, "o-x", amount, occurred, T0, rewarded_before)
    too_small = amount < minimum
    too_late = bool(window) and days_after >= window  # occurred is days_after days and 1 hour later
    capped = bool(cap) and rewarded_before >= cap
    assert decision.qualifies == (not too_small)
    assert decision.rewarded == (not too_small and not too_late and not capped)
    if too_small:
        assert "below the minimum" in decision.decision
    elif too_late:
        assert "attribution window" in decision.decision
    elif capped:
        assert "cap" in decision.decision
    else:
        assert decision.decision.startswith("first qualifying order o-x")


# --------------------------------------------------------------------------- reverses_reward


def test_reverses_reward_only_in_the_window_and_below_the_minimum():
    matures = T0 + timedelta(days=14)
    assert reverses_reward(2_000, 0, T0, matures)  # full refund
    assert reverses_reward(2_000, 1_999, T0, matures)  # partial, now below the minimum
    assert not reverses_reward(2_000, 2_000, T0, matures)  # partial, still at the minimum
    assert not reverses_reward(2_000, 0, matures, matures)  # matured: exactly at matures_at
    assert not reverses_reward(2_000, 0, matures + timedelta(seconds=1), matures)
    assert reverses_reward(0, 0, T0, matures)  # no minimum: a full refund still reverses
    assert not reverses_reward(0, 1, T0, matures)  # no minimum: a partial refund does not


@settings(max_examples=300, deadline=None)
@given(minimum=st.integers(0, 5_000), net=st.integers(0, 5_000), seconds=st.integers(-10**6, 10**6))
def test_reverses_reward_matches_its_model(minimum, net, seconds):
    matures = T0 + timedelta(days=14)
    now = matures + timedelta(seconds=seconds)
    assert reverses_reward(minimum, net, now, matures) == (now < matures and net < max(minimum, 1))


# --------------------------------------------------------------------------- state_of


def test_state_of_every_state():
    later = T0 + timedelta(days=14)
    assert state_of(False, False, False, None, T0) is ReferralState.ATTRIBUTED
    assert state_of(False, False, True, None, T0) is ReferralState.NOT_REWARDED
    assert state_of(True, False, True, later, T0) is ReferralState.QUALIFIED
    assert state_of(True, False, True, later, later) is ReferralState.REWARDED
    assert state_of(True, False, True, T0, later) is ReferralState.REWARDED
    assert state_of(True, True, True, later, T0) is ReferralState.REVERSED
    assert state_of(True, True, True, T0, later) is ReferralState.REVERSED


@settings(max_examples=200, deadline=None)
@given(
    rewarded=st.booleans(),
    reversed_=st.booleans(),
    decided=st.booleans(),
    offset=st.none() | st.integers(-10**6, 10**6),
)
def test_state_of_precedence(rewarded, reversed_, decided, offset):
    matures = None if offset is None else T0 + timedelta(seconds=offset)
    state = state_of(rewarded, reversed_, decided, matures, T0)
    if reversed_:
        assert state is ReferralState.REVERSED
    elif rewarded:
        pending = matures is not None and T0 < matures
        assert state is (ReferralState.QUALIFIED if pending else ReferralState.REWARDED)
    elif decided:
        assert state is ReferralState.NOT_REWARDED
    else:
        assert state is ReferralState.ATTRIBUTED
