"""What one order decides, as a whole: the points it earns and the campaigns' awards
(ledger.domain.earning), the tier it lifts the member to (ledger.domain.tiers) and the
referral it completes (ledger.domain.referrals).

Pure: the Earn use case loads the facts, calls decide_order, and writes what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.domain.campaigns import CampaignCounters, CampaignRule
from ledger.domain.earning import EarnDecision, OrderFacts, decide_earn
from ledger.domain.program import ProgramRules
from ledger.domain.referrals import ReferralFacts, RewardDecision, decide_for_order
from ledger.domain.tiers import QualifyingTotals, TierChange, TierDefinition, TierState, change_after_order, with_order


@dataclass(frozen=True)
class MemberFacts:
    """What an order's decision needs to know of the member, read under their row lock."""

    tier: TierState | None
    # Qualifying totals over each tier's window, ending at each instant measured at (the
    # order's time, then now), before this order; empty when the program has no tiers.
    windows: dict[datetime, list[QualifyingTotals]]
    referral: ReferralFacts | None
    # The ids of the segments the member is in as the order is processed (campaign conditions).
    segments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OrderOutcome:
    earn: EarnDecision
    tier_change: TierChange | None
    referral: RewardDecision | None


def decide_order(
    order: OrderFacts,
    rules: ProgramRules,
    tiers: list[TierDefinition],
    campaigns: list[CampaignRule],
    counters: dict[str, CampaignCounters],
    member: MemberFacts,
) -> OrderOutcome:
    """The order earns at the member's tier before it; the order that crosses a threshold
    lifts the member from its own time on; a referred member's first qualifying order
    decides the referral."""
    earn = decide_earn(order, rules, member.tier, campaigns, counters, member.segments)
    tier_change = None
    if tiers:
        counted = with_order(
            member.windows, tiers, rules, order.occurred_at, QualifyingTotals(earn.qualifying_spend, earn.base_points)
        )
        tier_change = change_after_order(tiers, rules, member.tier, counted, order.occurred_at)
    referral = decide_for_order(rules.referral, member.referral, order.order_id, order.amount, order.occurred_at)
    return OrderOutcome(earn, tier_change, referral)
