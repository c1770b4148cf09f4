"""Loads what the earning rules need for one member at one instant, inside the caller's transaction:
the settings in force at that instant, the member's tier, the campaigns running then, and
their counters (a budgeted campaign's counter locked so concurrent earns cannot overspend it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ledger.store.database import Transaction

from ledger.domain import errors
from ledger.domain.campaigns import Award, CampaignCounters, CampaignRule
from ledger.domain.program import ProgramRules, earning_rules_at
from ledger.domain.segments import CutPoints, Segment
from ledger.domain.tiers import TierDefinition, TierState
from ledger.service import config_cache
from ledger.service.tiers import current_tier
from ledger.store import campaigns, programs


@dataclass(frozen=True)
class EarnContext:
    rules: ProgramRules
    tier: TierState | None
    campaigns: list[CampaignRule]
    counters: dict[str, CampaignCounters]
    tiers: list[TierDefinition]
    # Today's settings (rules holds the earning rules of the event's time).
    current: ProgramRules
    # The program's segments and RFM cut points (ledger.service.segments).
    segments: list[Segment] = field(default_factory=list)
    cuts: CutPoints = CutPoints()


def load(
    conn: Transaction,
    program_id: str,
    member_id: str,
    at: datetime,
    *,
    lock_budgets: bool,
    current: ProgramRules | None = None,
) -> EarnContext:
    """Settings, tiers and campaigns come from the per-process cache when the program's
    config_version says it is current."""
    found = programs.get_with_version(conn, program_id)
    if found is None:
        raise errors.not_found("PROGRAM_NOT_FOUND", f"program {program_id} does not exist")
    current, version = found
    cached = config_cache.config(conn, program_id, version)
    rules = earning_rules_at(current, cached.rules_at(at))
    definitions = cached.tiers
    tier = current_tier(conn, program_id, member_id, definitions)
    running = cached.campaigns_at(at)
    counters = campaigns.counters_for(conn, program_id, member_id, running, lock=lock_budgets)
    return EarnContext(rules, tier, running, counters, definitions, current, cached.segments, cached.cuts)


def lock_budgets(conn: Transaction, program_id: str, instants: list[datetime]) -> None:
    """For a batch of orders: locks, in campaign_id order, the budget counter of every budgeted
    campaign running at any of their instants (each order's load then takes nothing new)."""
    found = programs.get_with_version(conn, program_id)
    if found is None:
        return  # each order's load refuses it
    cached = config_cache.config(conn, program_id, found[1])
    running = {c.campaign_id for at in set(instants) for c in cached.campaigns_at(at) if c.budget > 0}
    campaigns.lock_budgets(conn, program_id, sorted(running))


def record_awards(conn: Transaction, program_id: str, member_id: str, context: EarnContext, awards: tuple[Award, ...]) -> None:
    by_id = {rule.campaign_id: rule for rule in context.campaigns}
    campaigns.add_awards(conn, program_id, member_id, {a.campaign_id: (by_id[a.campaign_id], a.points) for a in awards})
