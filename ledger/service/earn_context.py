"""Loads what the earning rules need for one member at one instant, inside the caller's transaction:
the settings in force at that instant, the member's tier, the campaigns running then, and
their counters (a budgeted campaign's counter locked so concurrent earns cannot overspend it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection

from ledger.domain.campaigns import Award, CampaignCounters, CampaignRule
from ledger.domain.program import ProgramRules
from ledger.domain.tiers import TierDefinition, TierState
from ledger.service import lookups
from ledger.service.tiers import current_tier
from ledger.store import campaigns, programs
from ledger.store import tiers as tier_store


@dataclass(frozen=True)
class EarnContext:
    rules: ProgramRules
    tier: TierState | None
    campaigns: list[CampaignRule]
    counters: dict[str, CampaignCounters]
    tiers: list[TierDefinition]


def earning_rules_at(current: ProgramRules, then: ProgramRules | None) -> ProgramRules:
    """Earning rules (rates, rounding, minimum, activities) are those in force at the event;
    the points' lifecycle (pending, expiry, balance policy) and tier settings are today's."""
    if then is None:
        return current
    return replace(
        current,
        earn_rate=then.earn_rate,
        rounding=then.rounding,
        min_order_amount=then.min_order_amount,
        channel_rates=then.channel_rates,
        rate_rules=then.rate_rules,
        activity_rules=then.activity_rules,
    )


def load(
    conn: Connection,
    program_id: str,
    member_id: str,
    at: datetime,
    *,
    lock_budgets: bool,
    current: ProgramRules | None = None,
) -> EarnContext:
    """current: today's rules when the caller has read them already (saves a query)."""
    current = current or lookups.program_rules(conn, program_id)
    rules = earning_rules_at(current, programs.rules_at(conn, program_id, at))
    definitions = tier_store.definitions(conn, program_id)
    tier = current_tier(conn, program_id, member_id, definitions)
    running = campaigns.active_rules(conn, program_id, at)
    counters = campaigns.counters_for(conn, program_id, member_id, running, lock=lock_budgets)
    return EarnContext(rules, tier, running, counters, definitions)


def record_awards(conn: Connection, program_id: str, member_id: str, context: EarnContext, awards: tuple[Award, ...]) -> None:
    by_id = {rule.campaign_id: rule for rule in context.campaigns}
    campaigns.add_awards(conn, program_id, member_id, {a.campaign_id: (by_id[a.campaign_id], a.points) for a in awards})
