"""Earning rules: how many points an order or activity earns, and why (the breakdown).

Order of evaluation, shown line by line in the breakdown:
1. BASE: each order line at its rate (SKU rule, else category rule, else the
   channel's rate, else the program's base rate; excluded lines earn nothing).
   The part paid with points earns nothing. Rounded once per order, as the
   program says (down by default). Orders below the minimum amount earn no base.
2. TIER_BONUS: base x (tier multiplier - 1), rounded down.
3. CAMPAIGN: each applicable campaign (see campaigns.py for precedence, caps
   and budget): a multiplier on the base points of matching lines, or a bonus.
The breakdown always sums to the transaction's points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from ledger.domain import campaigns as campaign_rules
from ledger.domain import errors
from ledger.domain.campaigns import Award, CampaignCounters, CampaignRule
from ledger.domain.kinds import Channel, PointsSource
from ledger.domain.limits import MAX_FUTURE_SKEW_SECONDS, MAX_POINTS_PER_REQUEST
from ledger.domain.program import ActivityRule, EarnRate, ProgramRules, Rounding
from ledger.domain.tiers import BASE_MULTIPLIER_BPS, TierState


@dataclass(frozen=True)
class BreakdownLine:
    source: PointsSource
    points: int
    description: str = ""
    campaign_id: str = ""


@dataclass(frozen=True)
class OrderLine:
    sku: str
    category: str
    quantity: int
    amount: int


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    amount: int
    currency: str
    occurred_at: datetime
    channel: Channel = Channel.OTHER
    lines: tuple[OrderLine, ...] = ()
    paid_with_points: int = 0


@dataclass(frozen=True)
class EarnDecision:
    points: int
    breakdown: tuple[BreakdownLine, ...]
    base_points: int = 0
    qualifying_spend: int = 0
    awards: tuple[Award, ...] = field(default=())


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Exact integer division of non-negative numbers with explicit rounding."""
    quotient, remainder = divmod(numerator, denominator)
    if remainder == 0 or rounding is Rounding.DOWN:
        return quotient
    if rounding is Rounding.UP:
        return quotient + 1
    return quotient + (1 if 2 * remainder >= denominator else 0)


def round_fraction(value: Fraction, rounding: Rounding) -> int:
    return divide(value.numerator, value.denominator, rounding)


def base_points(amount: int, rate: EarnRate, rounding: Rounding) -> int:
    return divide(amount * rate.points, rate.per_amount, rounding)


def describe_rate(rate: EarnRate, currency: str, rounding: Rounding) -> str:
    return f"{rate.points} point(s) per {rate.per_amount} minor units of {currency}, rounded {rounding.value.lower()}"


def check_order_time(occurred_at: datetime, now: datetime, program: ProgramRules, path: str = "order.occur_time") -> None:
    """Orders are evaluated at occurred_at: never in the future, never older than the program allows."""
    if occurred_at > now + timedelta(seconds=MAX_FUTURE_SKEW_SECONDS):
        raise errors.invalid_field(path, "is in the future")
    # The same skew tolerance backwards: an order "now" is never too old, even with a 0-day bound.
    if occurred_at < now - timedelta(days=program.max_backdate_days, seconds=MAX_FUTURE_SKEW_SECONDS):
        raise errors.invalid_field(
            path, f"is older than the program's backdating bound of {program.max_backdate_days} days"
        )


def line_rate(line: OrderLine, rules: ProgramRules, channel: Channel) -> EarnRate | None:
    """The most specific rate for a line; None when the line earns nothing."""
    by_sku = next((r for r in rules.rate_rules if r.sku and r.sku == line.sku), None)
    by_category = next((r for r in rules.rate_rules if r.category and r.category == line.category), None)
    rule = by_sku or by_category
    if rule is not None:
        return None if rule.excluded else rule.rate
    return rules.rate_for_channel(channel)


def _cash_share(order: OrderFacts) -> Fraction:
    if order.amount <= 0:
        return Fraction(0)
    return Fraction(max(order.amount - order.paid_with_points, 0), order.amount)


def exact_base(order: OrderFacts, rules: ProgramRules, matches=lambda line: True) -> Fraction:
    """Unrounded base points of the order's (matching) lines, without the part paid with points."""
    if not order.lines:
        rate = rules.rate_for_channel(order.channel)
        total = Fraction(order.amount * rate.points, rate.per_amount)
    else:
        total = Fraction(0)
        for line in order.lines:
            per_line = line_rate(line, rules, order.channel)
            if per_line is not None and matches(line):
                total += Fraction(line.amount * per_line.points, per_line.per_amount)
        lines_total = sum(line.amount for line in order.lines)
        if lines_total > order.amount:
            # Lines above the amount paid (a discount on the order): they earn on what was paid.
            total *= Fraction(order.amount, lines_total)
    return total * _cash_share(order)


def _order_matches(campaign: CampaignRule, order: OrderFacts, tier: TierState | None, segments: frozenset[str]) -> bool:
    c = campaign.conditions
    if c.activity_type:
        return False
    if c.segments and segments.isdisjoint(c.segments):
        return False
    if c.channels and order.channel not in c.channels:
        return False
    if c.tiers and (tier is None or tier.name not in c.tiers):
        return False
    if c.min_order_amount and order.amount < c.min_order_amount:
        return False
    if c.skus or c.categories:
        return any(_line_matches(campaign, line) for line in order.lines)
    return True


def _line_matches(campaign: CampaignRule, line: OrderLine) -> bool:
    c = campaign.conditions
    return (not c.skus and not c.categories) or line.sku in c.skus or line.category in c.categories


def _multiplied(points: int, multiplier_bps: int) -> int:
    """Extra points of a multiplier (10000 = 1x adds nothing), rounded down."""
    return points * max(multiplier_bps - BASE_MULTIPLIER_BPS, 0) // BASE_MULTIPLIER_BPS


def decide_earn(
    order: OrderFacts,
    rules: ProgramRules,
    tier: TierState | None = None,
    campaigns: list[CampaignRule] | tuple = (),
    counters: dict[str, CampaignCounters] | None = None,
    segments: frozenset[str] = frozenset(),
) -> EarnDecision:
    """segments: the ids of the segments the member is in as the order is processed."""
    if order.currency != rules.currency:
        raise errors.invalid_field(
            "order.currency", f"must be the program currency {rules.currency}, got {order.currency}"
        )
    below_minimum = order.amount < rules.min_order_amount
    base = 0 if below_minimum else round_fraction(exact_base(order, rules), rules.rounding)
    note = describe_rate(rules.rate_for_channel(order.channel), rules.currency, rules.rounding)
    if below_minimum:
        note = f"order below the minimum amount {rules.min_order_amount}: no base points"
    lines = [BreakdownLine(PointsSource.BASE, base, note)]
    tier_bonus = _multiplied(base, tier.multiplier_bps) if tier else 0
    if tier and tier_bonus:
        lines.append(
            BreakdownLine(PointsSource.TIER_BONUS, tier_bonus, f"{tier.name} tier: {tier.multiplier_bps / 10000:g}x")
        )
    candidates = []
    via: dict[str, str] = {}
    if not below_minimum:
        for campaign in campaigns:
            if not campaign.active_at(order.occurred_at) or not _order_matches(campaign, order, tier, segments):
                continue
            through = [s for s in campaign.conditions.segments if s in segments]
            if through:
                via[campaign.campaign_id] = through[0]
            if campaign.multiplier_bps:
                if campaign.conditions.skus or campaign.conditions.categories:
                    matching = exact_base(order, rules, lambda line: _line_matches(campaign, line))
                    campaign_base = round_fraction(matching, rules.rounding)
                else:
                    campaign_base = base
                points = _multiplied(campaign_base, campaign.multiplier_bps)
            else:
                points = campaign.bonus_points
            if points > 0:
                candidates.append((campaign, points))
    awards = campaign_rules.award_all(candidates, counters or {}, via)
    lines += [BreakdownLine(PointsSource.CAMPAIGN, a.points, a.description, a.campaign_id) for a in awards]
    total = sum(line.points for line in lines)
    check_earnable(total, "order.amount")
    return EarnDecision(total, tuple(lines), base, max(order.amount - order.paid_with_points, 0), tuple(awards))


def check_earnable(points: int, path: str) -> None:
    """One request never moves more points than the ledger accepts (keeps every sum in int64)."""
    if points > MAX_POINTS_PER_REQUEST:
        raise errors.invalid_field(
            path, f"would earn {points} points, more than the {MAX_POINTS_PER_REQUEST} one request may move"
        )


def decide_activity(
    activity_type: str,
    rule: ActivityRule | None,
    done_in_period: int,
    occurred_at: datetime,
    tier: TierState | None = None,
    campaigns: list[CampaignRule] | tuple = (),
    counters: dict[str, CampaignCounters] | None = None,
) -> EarnDecision:
    if rule is None:
        raise errors.not_found(
            "ACTIVITY_RULE_NOT_FOUND", f"the program has no rule for activity type {activity_type!r}"
        )
    if rule.max_per_period and done_in_period >= rule.max_per_period:
        raise errors.refused(
            "ACTIVITY_LIMIT_REACHED",
            f"{activity_type!r} is rewarded at most {rule.max_per_period} time(s) per {rule.period_days} days",
            limit=str(rule.max_per_period),
        )
    lines = [BreakdownLine(PointsSource.ACTIVITY, rule.points, f"activity {activity_type}")]
    candidates = []
    for campaign in campaigns:
        c = campaign.conditions
        if not campaign.active_at(occurred_at) or c.activity_type != activity_type:
            continue
        if c.tiers and (tier is None or tier.name not in c.tiers):
            continue
        points = _multiplied(rule.points, campaign.multiplier_bps) if campaign.multiplier_bps else campaign.bonus_points
        if points > 0:
            candidates.append((campaign, points))
    awards = campaign_rules.award_all(candidates, counters or {})
    lines += [BreakdownLine(PointsSource.CAMPAIGN, a.points, a.description, a.campaign_id) for a in awards]
    total = sum(line.points for line in lines)
    check_earnable(total, "activity_type")
    return EarnDecision(total, tuple(lines), 0, 0, tuple(awards))
