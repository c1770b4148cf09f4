"""Tier rules: which tier qualifying activity earns, when upgrades and downgrades happen.

- Basis is explicit (qualifying spend or base points in a window), never the balance.
- An upgrade takes effect with the order that crosses the threshold: that order
  earns at the old tier, later ones at the new one. The tier is then held for the
  program's tier period.
- A downgrade is only evaluated at the end of the tier period (plus grace),
  never mid-period; changing the tier configuration never downgrades by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ledger.domain import errors
from ledger.domain.program import ProgramRules, TierBasis, TierWindow

BASE_MULTIPLIER_BPS = 10_000
DEFAULT_QUALIFICATION_DAYS = 365
MAX_TIERS = 20


@dataclass(frozen=True)
class TierDefinition:
    name: str
    threshold: int
    multiplier_bps: int = BASE_MULTIPLIER_BPS
    qualification_days: int = DEFAULT_QUALIFICATION_DAYS


@dataclass(frozen=True)
class TierState:
    name: str
    multiplier_bps: int
    reached_at: datetime
    held_until: datetime


@dataclass(frozen=True)
class TierProgress:
    next_tier: str
    qualifying_value: int
    remaining: int


def validate_tiers(tiers: list[TierDefinition]) -> list[TierDefinition]:
    """Tiers sorted by threshold; names unique, thresholds strictly increasing, multipliers >= 1x."""
    if len(tiers) > MAX_TIERS:
        raise errors.invalid_field("tiers", f"at most {MAX_TIERS} tiers")
    violations = []
    names = set()
    for i, tier in enumerate(tiers):
        if not tier.name or len(tier.name) > 64 or tier.name != tier.name.strip():
            violations.append(errors.FieldViolation(f"tiers[{i}].name", "must be 1-64 characters, no outer spaces"))
        if tier.name in names:
            violations.append(errors.FieldViolation(f"tiers[{i}].name", f"duplicate tier name {tier.name!r}"))
        names.add(tier.name)
        if not 0 <= tier.threshold <= 10**15:
            violations.append(errors.FieldViolation(f"tiers[{i}].threshold", "must be between 0 and 10^15"))
        if not BASE_MULTIPLIER_BPS <= tier.multiplier_bps <= 100 * BASE_MULTIPLIER_BPS:
            violations.append(
                errors.FieldViolation(f"tiers[{i}].earn_multiplier_bps", "must be between 10000 (1x) and 1000000 (100x)")
            )
        if not 1 <= tier.qualification_days <= 3650:
            violations.append(errors.FieldViolation(f"tiers[{i}].qualification_days", "must be between 1 and 3650"))
    ordered = sorted(tiers, key=lambda t: t.threshold)
    if len({t.threshold for t in tiers}) != len(tiers):
        violations.append(errors.FieldViolation("tiers", "thresholds must be distinct"))
    if violations:
        raise errors.invalid(violations)
    return ordered


def window_start(rules: ProgramRules, tier: TierDefinition | None, at: datetime) -> datetime:
    if rules.tier_window is TierWindow.CALENDAR_YEAR:
        return datetime(at.year, 1, 1, tzinfo=timezone.utc)
    days = tier.qualification_days if tier else DEFAULT_QUALIFICATION_DAYS
    return at - timedelta(days=days)


def qualified_tier(tiers: list[TierDefinition], value: int) -> TierDefinition | None:
    """The highest tier whose threshold the qualifying value reaches."""
    reached = None
    for tier in tiers:  # sorted by threshold
        if value >= tier.threshold:
            reached = tier
    return reached


def rank(tiers: list[TierDefinition], name: str | None) -> int:
    for i, tier in enumerate(tiers):
        if tier.name == name:
            return i
    return -1


def upgrade(
    state: TierState | None, tiers: list[TierDefinition], value_after: int, at: datetime, rules: ProgramRules
) -> TierState | None:
    """The new tier state if the value after an order reaches a higher tier, else None."""
    target = qualified_tier(tiers, value_after)
    if target is None or rank(tiers, target.name) <= rank(tiers, state.name if state else None):
        return None
    return TierState(target.name, target.multiplier_bps, at, at + timedelta(days=rules.tier_period_days))


def carried_over(
    tiers: list[TierDefinition], rules: ProgramRules, state: TierState | None, name: str, at: datetime
) -> TierChange | None:
    """A tier a member brings from another loyalty system: held from `at` for a full tier
    period, after which the usual period-end review applies. None when the member already
    holds that tier or a higher one (an import never moves anyone down)."""
    target = next((t for t in tiers if t.name == name), None)
    if target is None:
        known = ", ".join(t.name for t in tiers) or "none"
        raise errors.invalid_field("tier", f"{name!r} is not a tier of this program (its tiers: {known})")
    if state is not None and rank(tiers, state.name) >= rank(tiers, name):
        return None
    new = TierState(target.name, target.multiplier_bps, at, at + timedelta(days=rules.tier_period_days))
    return TierChange(state.name if state else "", new, "carried over from the previous loyalty program (import)")


def period_end_review(
    state: TierState, tiers: list[TierDefinition], value_at_period_end: int, now: datetime, rules: ProgramRules
) -> TierState | None:
    """At held_until + grace: keep (re-held for a new period) or move down to what the value earns.

    Returns None while the period (plus grace) is still running.
    """
    review_at = state.held_until + timedelta(days=rules.tier_grace_days)
    if now < review_at:
        return None
    target = qualified_tier(tiers, value_at_period_end)
    if target is not None and rank(tiers, target.name) >= rank(tiers, state.name) >= 0:
        target = next(t for t in tiers if t.name == state.name)
    start = state.held_until
    if target is None:
        return TierState("", BASE_MULTIPLIER_BPS, start, start + timedelta(days=rules.tier_period_days))
    return TierState(target.name, target.multiplier_bps, start, start + timedelta(days=rules.tier_period_days))


def progress(tiers: list[TierDefinition], state: TierState | None, value: int) -> TierProgress | None:
    current = rank(tiers, state.name if state else None)
    for tier in tiers[current + 1 :]:
        if tier.threshold > value:
            return TierProgress(tier.name, value, tier.threshold - value)
    return None


@dataclass(frozen=True)
class QualifyingTotals:
    """A member's qualifying spend and base points over one tier's window."""

    spend: int = 0
    points: int = 0

    def value(self, rules: ProgramRules) -> int:
        return self.spend if rules.tier_basis is TierBasis.QUALIFYING_SPEND else self.points

    def plus(self, other: QualifyingTotals) -> QualifyingTotals:
        return QualifyingTotals(self.spend + other.spend, self.points + other.points)


@dataclass(frozen=True)
class TierChange:
    old: str
    new: TierState
    why: str


def with_order(
    windows: dict[datetime, list[QualifyingTotals]],
    tiers: list[TierDefinition],
    rules: ProgramRules,
    occurred_at: datetime,
    order: QualifyingTotals,
) -> dict[datetime, list[QualifyingTotals]]:
    """The totals as they are once the order is recorded: it counts in every window
    (since, until] that holds its time. windows maps each instant measured at to the totals
    of each tier's window ending then, read before the order."""
    return {
        until: [
            totals.plus(order) if window_start(rules, tier, until) < occurred_at <= until else totals
            for tier, totals in zip(tiers, per_tier)
        ]
        for until, per_tier in windows.items()
    }


def highest_reached(
    tiers: list[TierDefinition], rules: ProgramRules, per_tier: list[QualifyingTotals]
) -> tuple[TierDefinition | None, int]:
    """The highest tier whose own window's qualifying value reaches its threshold, with that value."""
    reached, reached_value = None, 0
    for tier, totals in zip(tiers, per_tier):
        value = totals.value(rules)
        if value >= tier.threshold:
            reached, reached_value = tier, value
    return reached, reached_value


def change_after_order(
    tiers: list[TierDefinition],
    rules: ProgramRules,
    state: TierState | None,
    windows: dict[datetime, list[QualifyingTotals]],
    at: datetime,
) -> TierChange | None:
    """The upgrade an order causes, if any. windows: the totals after the order, measured at
    the order's time and at now; the better counts (a backdated order synced late counts with
    the newer ones, and one from an earlier window still lifts at its own time). The order
    itself earned at the old tier; the new one is reached at the order's time."""
    candidates = [highest_reached(tiers, rules, per_tier) for per_tier in windows.values()]
    if not candidates:
        return None
    target, value = max(candidates, key=lambda c: rank(tiers, c[0].name) if c[0] else -1)
    if target is None:
        return None
    if state is not None and rank(tiers, state.name) < 0 and target.multiplier_bps <= state.multiplier_bps:
        return None  # a tier removed by SetTiers is held to the end of its period, never replaced by a lower one
    new = upgrade(state, tiers, target.threshold, at, rules)
    if new is None:
        return None
    why = f"qualifying value {value} reached {new.name} (threshold {target.threshold})"
    return TierChange(state.name if state else "", new, why)
