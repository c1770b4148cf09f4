"""Campaign rules: which campaigns apply to an order or activity, and how they combine.

Precedence is explicit and shown in the breakdown:
1. EXCLUSIVE campaigns: if any applies, only the one with the highest priority
   (then lowest id) applies, alone.
2. Otherwise every STACK campaign applies, plus the single BEST_ONLY campaign
   that awards the most (ties: higher priority, then lower id).
Then, in priority order, each award is cut to the member's cap left and the
campaign budget left, so neither is ever exceeded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from ledger.domain.kinds import Channel

BASE_BPS = 10_000


class StackingMode(str, enum.Enum):
    STACK = "STACK"
    BEST_ONLY = "BEST_ONLY"
    EXCLUSIVE = "EXCLUSIVE"


class CampaignState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class CampaignStatus(str, enum.Enum):
    """Where a campaign stands at an instant: its stored state and its window together."""

    SCHEDULED = "SCHEDULED"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ENDED = "ENDED"


@dataclass(frozen=True)
class Conditions:
    channels: tuple[Channel, ...] = ()
    tiers: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    min_order_amount: int = 0
    activity_type: str = ""
    # Only members in one of these segments (ids) as the order is processed (ledger.service.segments).
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class CampaignRule:
    campaign_id: str
    name: str
    start: datetime
    end: datetime
    multiplier_bps: int = 0
    bonus_points: int = 0
    conditions: Conditions = field(default_factory=Conditions)
    stacking: StackingMode = StackingMode.STACK
    priority: int = 0
    per_member_cap: int = 0
    budget: int = 0
    state: CampaignState = CampaignState.ACTIVE

    def active_at(self, at: datetime) -> bool:
        return self.state is CampaignState.ACTIVE and self.start <= at < self.end

    def status_at(self, at: datetime) -> CampaignStatus:
        """ENDED once the window is over (paused or not), PAUSED, SCHEDULED before the window,
        else ACTIVE."""
        if at >= self.end:
            return CampaignStatus.ENDED
        if self.state is CampaignState.PAUSED:
            return CampaignStatus.PAUSED
        return CampaignStatus.SCHEDULED if at < self.start else CampaignStatus.ACTIVE


@dataclass(frozen=True)
class CampaignCounters:
    """What a campaign has awarded so far: in total, and to this member."""

    awarded_total: int = 0
    awarded_member: int = 0


@dataclass(frozen=True)
class Award:
    campaign_id: str
    name: str
    points: int
    description: str


def _by_priority(campaign: CampaignRule) -> tuple:
    return (-campaign.priority, campaign.campaign_id)


def select(candidates: list[tuple[CampaignRule, int]]) -> list[tuple[CampaignRule, int]]:
    """Applies the stacking precedence to (campaign, uncapped award) pairs."""
    exclusive = [c for c in candidates if c[0].stacking is StackingMode.EXCLUSIVE]
    if exclusive:
        return [min(exclusive, key=lambda c: _by_priority(c[0]))]
    chosen = [c for c in candidates if c[0].stacking is StackingMode.STACK]
    best = [c for c in candidates if c[0].stacking is StackingMode.BEST_ONLY]
    if best:
        chosen.append(min(best, key=lambda c: (-c[1], *_by_priority(c[0]))))
    return sorted(chosen, key=lambda c: _by_priority(c[0]))


def cap(campaign: CampaignRule, points: int, counters: CampaignCounters) -> int:
    """Cuts an award to what the per-member cap and the budget still allow."""
    allowed = points
    if campaign.per_member_cap > 0:
        allowed = min(allowed, campaign.per_member_cap - counters.awarded_member)
    if campaign.budget > 0:
        allowed = min(allowed, campaign.budget - counters.awarded_total)
    return max(0, allowed)


def describe(campaign: CampaignRule) -> str:
    if campaign.multiplier_bps:
        return f"{campaign.name}: {campaign.multiplier_bps / BASE_BPS:g}x base points"
    return f"{campaign.name}: {campaign.bonus_points} bonus points"


def award_all(
    candidates: list[tuple[CampaignRule, int]],
    counters: dict[str, CampaignCounters],
    segments: dict[str, str] | None = None,
) -> list[Award]:
    """segments: campaign id -> the segment through which the member qualified (named in the note)."""
    awards = []
    for campaign, points in select(candidates):
        granted = cap(campaign, points, counters.get(campaign.campaign_id, CampaignCounters()))
        note = describe(campaign)
        if segments and campaign.campaign_id in segments:
            note += f" (segment {segments[campaign.campaign_id]})"
        if granted < points:
            note += f" (cut from {points} by cap or budget)"
        if granted > 0:
            awards.append(Award(campaign.campaign_id, campaign.name, granted, note))
    return awards
