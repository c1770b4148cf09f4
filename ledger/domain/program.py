"""The program settings that rules read: earn rates, rounding, policies, tiers basis, activities.

ProgramRules round-trips through JSON so every version of the settings can be
kept: earning is evaluated with the settings in force at the order's occurred_at.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from ledger.domain import errors
from ledger.domain.kinds import Channel, Role
from ledger.domain.liability import PointValue
from ledger.domain.profiles import ClosePolicy
from ledger.domain.referrals import ReferralRules


class Rounding(str, enum.Enum):
    DOWN = "DOWN"
    HALF_UP = "HALF_UP"
    UP = "UP"


class NegativeBalancePolicy(str, enum.Enum):
    ALLOW = "ALLOW"
    FORBID = "FORBID"


class ExpiryMode(str, enum.Enum):
    NONE = "NONE"
    ROLLING = "ROLLING"
    INACTIVITY = "INACTIVITY"


class TierBasis(str, enum.Enum):
    QUALIFYING_SPEND = "QUALIFYING_SPEND"
    QUALIFYING_POINTS = "QUALIFYING_POINTS"


class TierWindow(str, enum.Enum):
    ROLLING = "ROLLING"
    CALENDAR_YEAR = "CALENDAR_YEAR"


@dataclass(frozen=True)
class EarnRate:
    """points earned per `per_amount` minor units of the program currency."""

    points: int = 1
    per_amount: int = 100


@dataclass(frozen=True)
class RateRule:
    """A line-level rate by SKU or category; excluded lines earn nothing."""

    sku: str = ""
    category: str = ""
    rate: EarnRate = EarnRate()
    excluded: bool = False


# Who may record an activity whose rule names no roles: not storefront keys, which often sit
# somewhere less trusted (a web page, an app) and would otherwise mint points at will.
DEFAULT_ACTIVITY_ROLES: tuple[Role, ...] = (Role.POS, Role.SUPPORT, Role.ADMIN)


@dataclass(frozen=True)
class ActivityRule:
    activity_type: str
    points: int
    max_per_period: int = 0
    period_days: int = 30
    # The roles of the keys that may record it (RecordActivity).
    roles: tuple[Role, ...] = DEFAULT_ACTIVITY_ROLES


def check_activity_role(activity_type: str, role: Role, *rules: ActivityRule | None) -> None:
    """A key may record an activity only when every given rule lets its role (the rule in force
    now and the one in force when the activity happened: a backdated call must not reach back to
    a rule that let more roles in). A missing rule lets the default roles in; whether a rule
    exists at all is decide_activity's to say."""
    for rule in rules:
        allowed = rule.roles if rule is not None else DEFAULT_ACTIVITY_ROLES
        if role not in allowed:
            raise errors.permission_denied(
                "ACTIVITY_ROLE_NOT_ALLOWED",
                f"a {role.value} key may not record activity {activity_type!r}"
                f" (allowed: {', '.join(r.value for r in allowed) or 'no role'})",
                activity_type=activity_type,
                role=role.value,
            )


@dataclass(frozen=True)
class TransferRules:
    """Point transfers between members (ledger.domain.transfers). 0 means no limit.
    pos_allowed: POS keys may transfer too (support and admin keys always may)."""

    enabled: bool = True
    max_points_per_transfer: int = 0
    max_points_per_month: int = 0
    pos_allowed: bool = False


@dataclass(frozen=True)
class MomentSettings:
    """Each post-purchase moment's N in days (ledger.domain.moments); 0 turns it off."""

    points_expiring_days: int = 30
    tier_downgrade_warning_days: int = 14
    review_request_days: int = 10
    lapsed_days: int = 180

    def to_json(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: dict | None) -> MomentSettings:
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class ProgramRules:
    program_id: str
    name: str
    currency: str = "USD"
    earn_rate: EarnRate = EarnRate()
    rounding: Rounding = Rounding.DOWN
    pending_days: int = 0
    expiry_mode: ExpiryMode = ExpiryMode.NONE
    expiry_days: int = 0
    negative_balance_policy: NegativeBalancePolicy = NegativeBalancePolicy.ALLOW
    hold_ttl_seconds: int = 900
    max_backdate_days: int = 90
    # Events older than this are pruned; a cursor older than that is OUT_OF_RANGE (DESIGN.md section 10).
    event_retention_days: int = 30
    # Recency, frequency and monetary value are measured over this many days (ledger.domain.segments).
    rfm_window_days: int = 365
    min_order_amount: int = 0
    channel_rates: tuple[tuple[Channel, EarnRate], ...] = field(default=())
    rate_rules: tuple[RateRule, ...] = field(default=())
    activity_rules: tuple[ActivityRule, ...] = field(default=())
    tier_basis: TierBasis = TierBasis.QUALIFYING_SPEND
    tier_window: TierWindow = TierWindow.ROLLING
    tier_period_days: int = 365
    tier_grace_days: int = 0
    referral: ReferralRules = ReferralRules()
    transfer: TransferRules = TransferRules()
    moments: MomentSettings = MomentSettings()
    # What CloseMember does with the remaining points (ledger.domain.profiles).
    close_policy: ClosePolicy = ClosePolicy.KEEP
    # Money per point, for the liability report (ledger.domain.liability).
    point_value: PointValue = PointValue()

    def rate_for_channel(self, channel: Channel) -> EarnRate:
        for rule_channel, rate in self.channel_rates:
            if rule_channel is channel:
                return rate
        return self.earn_rate

    def activity_rule(self, activity_type: str) -> ActivityRule | None:
        return next((r for r in self.activity_rules if r.activity_type == activity_type), None)

    def earning_json(self) -> dict:
        """The settings that live in the program's JSON column (the rest are plain columns)."""
        return {
            "min_order_amount": self.min_order_amount,
            "channel_rates": [[c.value, r.points, r.per_amount] for c, r in self.channel_rates],
            "rate_rules": [
                {"sku": r.sku, "category": r.category, "points": r.rate.points, "per_amount": r.rate.per_amount,
                 "excluded": r.excluded}
                for r in self.rate_rules
            ],
            "activity_rules": [
                {"activity_type": a.activity_type, "points": a.points, "max_per_period": a.max_per_period,
                 "period_days": a.period_days, "roles": [r.value for r in a.roles]}
                for a in self.activity_rules
            ],
            "tier_basis": self.tier_basis.value,
            "tier_window": self.tier_window.value,
            "tier_period_days": self.tier_period_days,
            "tier_grace_days": self.tier_grace_days,
            "referral": vars(self.referral),
            "transfer": vars(self.transfer),
            "moments": self.moments.to_json(),
            "close_policy": self.close_policy.value,
            "point_value": [self.point_value.minor_units, self.point_value.scale],
        }


def earning_fields(data: dict) -> dict:
    """Inverse of ProgramRules.earning_json: keyword arguments for ProgramRules."""
    if not data:
        return {}
    return {
        "min_order_amount": data.get("min_order_amount", 0),
        "channel_rates": tuple((Channel(c), EarnRate(p, a)) for c, p, a in data.get("channel_rates", [])),
        "rate_rules": tuple(
            RateRule(r["sku"], r["category"], EarnRate(r["points"], r["per_amount"]), r["excluded"])
            for r in data.get("rate_rules", [])
        ),
        "activity_rules": tuple(
            ActivityRule(
                a["activity_type"], a["points"], a["max_per_period"], a["period_days"],
                # Settings written before migration 0009 (or by a server of that time) name no roles.
                tuple(Role(r) for r in a["roles"]) if "roles" in a else DEFAULT_ACTIVITY_ROLES,
            )
            for a in data.get("activity_rules", [])
        ),
        "tier_basis": TierBasis(data.get("tier_basis", TierBasis.QUALIFYING_SPEND.value)),
        "tier_window": TierWindow(data.get("tier_window", TierWindow.ROLLING.value)),
        "tier_period_days": data.get("tier_period_days", 365),
        "tier_grace_days": data.get("tier_grace_days", 0),
        "referral": ReferralRules(**data.get("referral", {})),
        # Settings written before transfers existed have none: the defaults.
        "transfer": TransferRules(**data.get("transfer", {})),
        # Settings written before the moments existed have none: the defaults.
        "moments": MomentSettings.from_json(data.get("moments")),
        "close_policy": ClosePolicy(data.get("close_policy", ClosePolicy.KEEP.value)),
        "point_value": PointValue(*data.get("point_value", (0, 0))),
    }


def rules_to_json(rules: ProgramRules) -> dict:
    """Every setting, for the settings history."""
    return {
        "program_id": rules.program_id,
        "name": rules.name,
        "currency": rules.currency,
        "earn_rate": [rules.earn_rate.points, rules.earn_rate.per_amount],
        "rounding": rules.rounding.value,
        "pending_days": rules.pending_days,
        "expiry_mode": rules.expiry_mode.value,
        "expiry_days": rules.expiry_days,
        "negative_balance_policy": rules.negative_balance_policy.value,
        "hold_ttl_seconds": rules.hold_ttl_seconds,
        "max_backdate_days": rules.max_backdate_days,
        "event_retention_days": rules.event_retention_days,
        "rfm_window_days": rules.rfm_window_days,
        **rules.earning_json(),
    }


def rules_from_json(data: dict) -> ProgramRules:
    return ProgramRules(
        program_id=data["program_id"],
        name=data["name"],
        currency=data["currency"],
        earn_rate=EarnRate(*data["earn_rate"]),
        rounding=Rounding(data["rounding"]),
        pending_days=data["pending_days"],
        expiry_mode=ExpiryMode(data["expiry_mode"]),
        expiry_days=data["expiry_days"],
        negative_balance_policy=NegativeBalancePolicy(data["negative_balance_policy"]),
        hold_ttl_seconds=data["hold_ttl_seconds"],
        max_backdate_days=data["max_backdate_days"],
        event_retention_days=data.get("event_retention_days", 30),  # versions before 0012 have none
        rfm_window_days=data.get("rfm_window_days", 365),  # versions before 0013 have none
        **earning_fields(data),
    )


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
