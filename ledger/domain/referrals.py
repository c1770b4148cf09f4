"""Referral rules: attribution at enrollment, the reward for the referee's first qualifying
order, the abuse limits, and the reversal when that order is returned.

Every decision says which rule made it; the text is stored with the referral.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain import errors


@dataclass(frozen=True)
class ReferralRules:
    referrer_points: int = 0
    referee_points: int = 0
    min_order_amount: int = 0
    max_rewarded_per_referrer: int = 0
    cap_period_days: int = 30
    attribution_window_days: int = 0
    counts_toward_tiers: bool = False


class ReferralState(str, enum.Enum):
    ATTRIBUTED = "ATTRIBUTED"
    QUALIFIED = "QUALIFIED"
    REWARDED = "REWARDED"
    REVERSED = "REVERSED"
    NOT_REWARDED = "NOT_REWARDED"


@dataclass(frozen=True)
class RewardDecision:
    qualifies: bool
    rewarded: bool
    decision: str


@dataclass(frozen=True)
class ReferralFacts:
    """An undecided referral an order may complete, and its referrer's rewarded count in the cap period."""

    referrer_id: str
    referee_id: str
    attributed_at: datetime
    rewarded_in_cap_period: int


def decide_for_order(
    rules: ReferralRules, facts: ReferralFacts | None, order_id: str, order_amount: int, occurred_at: datetime
) -> RewardDecision | None:
    """The referral an order completes, if the member has one undecided."""
    if facts is None:
        return None
    return decide_reward(
        rules, order_id, order_amount, occurred_at, facts.attributed_at, facts.rewarded_in_cap_period
    )


def check_attribution(
    referee_id: str, referrer_id: str | None, existing_referrer: str | None, has_orders: bool
) -> bool:
    """True when the attribution is new; False when it is a repeat of the same one. Raises otherwise."""
    if referrer_id is None:
        raise errors.not_found("REFERRAL_CODE_NOT_FOUND", "no member of this program has that referral code")
    if referrer_id == referee_id:
        raise errors.refused("SELF_REFERRAL", "a member cannot use their own referral code")
    if existing_referrer == referrer_id:
        return False
    if existing_referrer is not None:
        raise errors.refused("ALREADY_REFERRED", f"member {referee_id!r} was already referred by another member")
    if has_orders:
        raise errors.refused(
            "REFERRAL_AFTER_FIRST_ORDER", f"member {referee_id!r} already has orders; a referral must come first"
        )
    return True


def decide_reward(
    rules: ReferralRules,
    order_id: str,
    order_amount: int,
    occurred_at: datetime,
    attributed_at: datetime,
    rewarded_in_cap_period: int,
) -> RewardDecision:
    if order_amount < rules.min_order_amount:
        return RewardDecision(
            False, False, f"order {order_id} ({order_amount}) is below the minimum {rules.min_order_amount}"
        )
    window = rules.attribution_window_days
    if window and occurred_at > attributed_at + timedelta(days=window):
        return RewardDecision(True, False, f"order {order_id} came after the {window}-day attribution window")
    cap = rules.max_rewarded_per_referrer
    if cap and rewarded_in_cap_period >= cap:
        return RewardDecision(
            True, False, f"the referrer reached the cap of {cap} rewarded referrals per {rules.cap_period_days} days"
        )
    return RewardDecision(
        True,
        True,
        f"first qualifying order {order_id} ({order_amount} >= {rules.min_order_amount}): "
        f"{rules.referrer_points} to the referrer, {rules.referee_points} to the new member",
    )


def reverses_reward(min_order_amount: int, net_amount_after_refund: int, now: datetime, matures_at: datetime) -> bool:
    """A refund within the return window that leaves the order below the minimum reverses the reward."""
    return now < matures_at and net_amount_after_refund < max(min_order_amount, 1)


def state_of(
    rewarded: bool, reversed_: bool, decided: bool, matures_at: datetime | None, now: datetime
) -> ReferralState:
    if reversed_:
        return ReferralState.REVERSED
    if rewarded:
        return ReferralState.QUALIFIED if matures_at is not None and now < matures_at else ReferralState.REWARDED
    if decided:
        return ReferralState.NOT_REWARDED
    return ReferralState.ATTRIBUTED
