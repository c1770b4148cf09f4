"""Recency, frequency and monetary value (RFM) and segments: the rules, with no I/O.

Figures, per member, over the program's RFM window (default 365 days) ending now:
- last order: the occur_time of the member's latest Earn (any time, not only in the window);
- frequency: the member's orders (Earn transactions) with occur_time in the window; refunds
  and reversals do not change the count;
- monetary: the qualifying spend of those orders, less what refunds and reversals took back
  of them (a refund counts against the window of the order it refunds).

Scores 1-5 by quintile among all the program's members (those without an order included, as
the lowest): for each measure the refresh sorts the N members' values ascending (x_1 <= ... <=
x_N) and keeps four cut points c_k = x_ceil(k*N/5), k = 1..4; a value v scores 1 + #{k: v > c_k}.
So members with equal values always get equal scores (a tie never straddles a cut point), a
higher frequency or monetary value never scores lower, and R ranks by the last order's instant
(more recent scores higher; no order at all ranks below every order). Cut points are stored
per program and kept until the next refresh: a member's own change rescores them at once
against the current cut points. Score 0 means not scored yet (no refresh has run).

A segment is a conjunction of conditions, each an inclusive range with either end open. A
condition on recency never matches a member without an order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone

DAY_MICROS = 86_400_000_000
DEFAULT_WINDOW_DAYS = 365
MAX_WINDOW_DAYS = 3650
QUINTILES = 5
MAX_SEGMENTS = 100


@dataclass(frozen=True)
class Range:
    """low <= value <= high; None leaves that end open."""

    low: int | None = None
    high: int | None = None

    def holds(self, value: int) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    @property
    def is_open(self) -> bool:
        return self.low is None and self.high is None

    def to_json(self) -> list:
        return [self.low, self.high]

    @classmethod
    def from_json(cls, data) -> Range:
        return cls(data[0], data[1]) if data else cls()


# The numeric conditions, by the field name of SegmentConditions.
RANGE_FIELDS = (
    "recency_days",
    "orders",
    "spend",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "days_since_enrolment",
    "available_points",
    "referrals_made",
)


@dataclass(frozen=True)
class SegmentConditions:
    """All given conditions must hold (an open range or an empty tier list is no condition)."""

    recency_days: Range = Range()
    orders: Range = Range()
    spend: Range = Range()
    recency_score: Range = Range()
    frequency_score: Range = Range()
    monetary_score: Range = Range()
    days_since_enrolment: Range = Range()
    available_points: Range = Range()
    referrals_made: Range = Range()
    tiers: tuple[str, ...] = ()

    def to_json(self) -> dict:
        data: dict = {name: getattr(self, name).to_json() for name in RANGE_FIELDS if not getattr(self, name).is_open}
        if self.tiers:
            data["tiers"] = list(self.tiers)
        return data

    @classmethod
    def from_json(cls, data: dict) -> SegmentConditions:
        ranges = {name: Range.from_json(data.get(name)) for name in RANGE_FIELDS}
        return cls(tiers=tuple(data.get("tiers", ())), **ranges)

    def uses(self, name: str) -> bool:
        if name == "tiers":
            return bool(self.tiers)
        return not getattr(self, name).is_open


@dataclass(frozen=True)
class Segment:
    segment_id: str
    name: str
    description: str
    conditions: SegmentConditions
    preset: bool = False


@dataclass(frozen=True)
class CutPoints:
    """Four ascending cut points per measure (R on the last order's instant in microseconds,
    0 for none); empty when no refresh has run yet."""

    recency: tuple[int, ...] = ()
    frequency: tuple[int, ...] = ()
    monetary: tuple[int, ...] = ()
    computed_at: datetime | None = None
    members: int = 0


@dataclass(frozen=True)
class Figures:
    """A member's raw RFM figures now: last_order_at in microseconds (None: no order)."""

    last_order_at: int | None = None
    orders: int = 0
    spend: int = 0

    def with_order(self, occurred_at: int, spend: int, window_start: int) -> Figures:
        """After one more order (an Earn), from the figures before it."""
        latest = occurred_at if self.last_order_at is None else max(self.last_order_at, occurred_at)
        if occurred_at > window_start:
            return Figures(latest, self.orders + 1, self.spend + spend)
        return replace(self, last_order_at=latest)


@dataclass(frozen=True)
class Scores:
    recency: int = 0
    frequency: int = 0
    monetary: int = 0


@dataclass(frozen=True)
class MemberProfile:
    """Everything a segment's conditions look at, for one member at one instant."""

    figures: Figures
    scores: Scores
    recency_days: int | None  # None: no order
    days_since_enrolment: int
    tier: str  # "" without one
    available_points: int
    referrals_made: int = 0


def window_start(now_micros: int, window_days: int) -> int:
    """Orders with occur_time after this instant are in the window ending now."""
    return now_micros - window_days * DAY_MICROS


def cut_points(values: list[int]) -> tuple[int, ...]:
    """The four quintile cut points of values (x_ceil(k*N/5)); () for no value."""
    n = len(values)
    if n == 0:
        return ()
    ordered = sorted(values)
    return tuple(ordered[(k * n + QUINTILES - 1) // QUINTILES - 1] for k in range(1, QUINTILES))


def score(value: int, cuts: tuple[int, ...]) -> int:
    """1-5: one more than the number of cut points value is above; 0 without cut points."""
    if not cuts:
        return 0
    return 1 + sum(1 for cut in cuts if value > cut)


def recency_value(figures: Figures) -> int:
    """What R ranks: the last order's instant, 0 (below any order) without one."""
    return figures.last_order_at if figures.last_order_at is not None else 0


def scores(figures: Figures, cuts: CutPoints) -> Scores:
    return Scores(
        score(recency_value(figures), cuts.recency),
        score(figures.orders, cuts.frequency),
        score(figures.spend, cuts.monetary),
    )


def days_between(earlier_micros: int, later_micros: int) -> int:
    """Whole days from one instant to a later one (0 within the first 24 hours)."""
    return max(later_micros - earlier_micros, 0) // DAY_MICROS


def profile(
    figures: Figures, cuts: CutPoints, now_micros: int, enrolled_micros: int, tier: str, available: int, referrals: int = 0
) -> MemberProfile:
    recency = None if figures.last_order_at is None else days_between(figures.last_order_at, now_micros)
    return MemberProfile(
        figures, scores(figures, cuts), recency, days_between(enrolled_micros, now_micros), tier, available, referrals
    )


def matches(conditions: SegmentConditions, member: MemberProfile) -> bool:
    """Whether every condition holds for the member."""
    if conditions.uses("recency_days") and (member.recency_days is None or not conditions.recency_days.holds(member.recency_days)):
        return False
    checks = (
        (conditions.orders, member.figures.orders),
        (conditions.spend, member.figures.spend),
        (conditions.recency_score, member.scores.recency),
        (conditions.frequency_score, member.scores.frequency),
        (conditions.monetary_score, member.scores.monetary),
        (conditions.days_since_enrolment, member.days_since_enrolment),
        (conditions.available_points, member.available_points),
        (conditions.referrals_made, member.referrals_made),
    )
    if not all(condition.holds(value) for condition, value in checks):
        return False
    return not conditions.tiers or member.tier in conditions.tiers


def membership(segments: list[Segment], member: MemberProfile) -> frozenset[str]:
    """The ids of the segments the member is in."""
    return frozenset(s.segment_id for s in segments if matches(s.conditions, member))


@dataclass(frozen=True)
class MembershipChange:
    entered: tuple[str, ...]
    exited: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.entered or self.exited)


def change(before: frozenset[str] | set[str], after: frozenset[str] | set[str]) -> MembershipChange:
    return MembershipChange(tuple(sorted(set(after) - set(before))), tuple(sorted(set(before) - set(after))))


def needs_referrals(segments: list[Segment]) -> bool:
    return any(s.conditions.uses("referrals_made") for s in segments)


# The presets every program has (ids are "seg_" + name; marketing may change their conditions).
PRESETS: tuple[tuple[str, str, SegmentConditions], ...] = (
    (
        "champions",
        "Bought recently, often and for the most: R, F and M scores 4-5.",
        SegmentConditions(recency_score=Range(4, 5), frequency_score=Range(4, 5), monetary_score=Range(4, 5)),
    ),
    (
        "loyal",
        "Buy often and not long ago: F score 4-5, R score 3-5.",
        SegmentConditions(recency_score=Range(3, 5), frequency_score=Range(4, 5)),
    ),
    (
        "at_risk",
        "Used to buy often, not lately: R score 1-2, F score 3-5.",
        SegmentConditions(recency_score=Range(1, 2), frequency_score=Range(3, 5)),
    ),
    (
        "lapsed",
        "Ordered before, but not in the last 180 days.",
        SegmentConditions(recency_days=Range(180, None)),
    ),
    (
        "new",
        "Enrolled in the last 30 days, no order yet (a first-purchase offer).",
        SegmentConditions(days_since_enrolment=Range(None, 30), orders=Range(None, 0)),
    ),
)


def preset_id(name: str) -> str:
    return f"seg_{name}"


def presets() -> list[Segment]:
    return [Segment(preset_id(name), name, description, conditions, True) for name, description, conditions in PRESETS]


def problems(conditions: SegmentConditions) -> list[tuple[str, str]]:
    """(field, description) of each condition that can never hold or is out of bounds."""
    found = []
    for f in fields(conditions):
        if f.name == "tiers":
            continue
        r: Range = getattr(conditions, f.name)
        if r.low is not None and r.high is not None and r.low > r.high:
            found.append((f.name, "min must not be above max"))
        if f.name.endswith("_score"):
            for end in (r.low, r.high):
                if end is not None and not 1 <= end <= QUINTILES:
                    found.append((f.name, "scores are between 1 and 5"))
                    break
        elif f.name != "available_points":
            for end in (r.low, r.high):
                if end is not None and end < 0:
                    found.append((f.name, "must not be negative"))
                    break
    return found


def conditions_json(conditions: SegmentConditions) -> str:
    return json.dumps(conditions.to_json(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class RfmView:
    """What GetMember shows of a member's RFM and segments."""

    figures: Figures
    profile: MemberProfile
    window_days: int
    cuts: CutPoints
    segments: tuple[str, ...] = field(default=())  # names, sorted

    @property
    def last_order_time(self) -> datetime | None:
        micros = self.figures.last_order_at
        return None if micros is None else datetime.fromtimestamp(0, timezone.utc) + timedelta(microseconds=micros)
