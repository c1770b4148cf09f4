"""Programs service requests -> validated settings, tiers, campaigns and rewards."""

from __future__ import annotations

from datetime import datetime

from ledger.api import enums
from ledger.api.fields import Fields
from ledger.api.requests import mutation
from ledger.domain.campaigns import (
    CampaignRule,
    CampaignStatus,
    Conditions,
    StackingMode,
)
from ledger.domain.holds import MAX_HOLD_TTL_SECONDS
from ledger.domain.limits import (
    MAX_AMOUNT_MINOR,
    MAX_ID_LENGTH,
    MAX_POINTS_PER_REQUEST,
)
from ledger.domain.kinds import Role
from ledger.domain.moments import MAX_DAYS as MAX_MOMENT_DAYS
from ledger.domain.liability import PointValue
from ledger.domain.program import DEFAULT_ACTIVITY_ROLES, ActivityRule, EarnRate, MomentSettings, RateRule, TransferRules
from ledger.domain.referrals import ReferralRules
from ledger.domain.segments import RANGE_FIELDS, Range, Segment, SegmentConditions
from ledger.domain.tiers import DEFAULT_QUALIFICATION_DAYS, TierDefinition
from ledger.service.idempotent import Mutation
from loyalty.v1 import programs_pb2
from ledger.domain.rewards import RewardRecord

MAX_RULES = 200
_MOMENT_FIELDS = tuple(vars(MomentSettings()))


def _rate(fields: Fields, path: str, rate: programs_pb2.EarnRate) -> EarnRate:
    if not 0 <= rate.points <= 1_000_000:
        fields.bad(f"{path}.points", "must be between 0 and 1000000")
    if not 0 < rate.per_amount <= 1_000_000_000:
        fields.bad(f"{path}.per_amount", "must be between 1 and 1000000000")
    return EarnRate(rate.points, max(rate.per_amount, 1))


def _days(fields: Fields, path: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        fields.bad(path, f"must be between {low} and {high}")
    return value


def _list(fields: Fields, path: str, items) -> list:
    if len(items) > MAX_RULES:
        fields.bad(path, f"has more than {MAX_RULES} entries")
        return []
    return list(items)


def _activity_roles(fields: Fields, path: str, numbers) -> tuple[Role, ...]:
    """The roles that may record an activity, in Role order; none given means the default."""
    if not numbers:
        return DEFAULT_ACTIVITY_ROLES
    roles = set()
    for i, number in enumerate(_list(fields, path, numbers)):
        role = fields.enum(f"{path}[{i}]", number, enums.ROLES, required=True)
        if role is Role.MARKETING:
            fields.bad(f"{path}[{i}]", "a marketing key cannot call RecordActivity")
        elif role is not None:
            roles.add(role)
    return tuple(role for role in Role if role in roles)


def program_changes(request: programs_pb2.UpdateProgramRequest) -> dict:
    """ProgramRules field name -> new value, for the paths in update_mask."""
    fields = Fields()
    paths = list(request.update_mask.paths)
    if not paths:
        fields.bad("update_mask", "name at least one field to change")
    p = request.program
    changes: dict = {}
    for path in paths:
        if path == "name":
            changes["name"] = fields.identifier("program.name", p.name, max_length=MAX_ID_LENGTH)
        elif path == "currency":
            changes["currency"] = fields.currency("program.currency", p.currency)
        elif path == "earn_rate":
            changes["earn_rate"] = _rate(fields, "program.earn_rate", p.earn_rate)
        elif path == "rounding_mode":
            changes["rounding"] = fields.enum("program.rounding_mode", p.rounding_mode, enums.ROUNDINGS, required=True)
        elif path == "negative_balance_policy":
            changes["negative_balance_policy"] = fields.enum(
                "program.negative_balance_policy", p.negative_balance_policy, enums.NEGATIVE_POLICIES, required=True
            )
        elif path == "max_backdate_days":
            changes["max_backdate_days"] = _days(fields, "program.max_backdate_days", p.max_backdate_days, 0, 3650)
        elif path == "event_retention_days":
            changes["event_retention_days"] = _days(
                fields, "program.event_retention_days", p.event_retention_days, 1, 3650
            )
        elif path == "rfm_window_days":
            changes["rfm_window_days"] = _days(fields, "program.rfm_window_days", p.rfm_window_days, 1, 3650)
        elif path == "pending_days":
            changes["pending_days"] = _days(fields, "program.pending_days", p.pending_days, 0, 365)
        elif path == "expiry_mode":
            changes["expiry_mode"] = fields.enum("program.expiry_mode", p.expiry_mode, enums.EXPIRY_MODES, required=True)
        elif path == "expiry_days":
            changes["expiry_days"] = _days(fields, "program.expiry_days", p.expiry_days, 0, 3650)
        elif path == "hold_ttl_seconds":
            changes["hold_ttl_seconds"] = _days(fields, "program.hold_ttl_seconds", p.hold_ttl_seconds, 1, MAX_HOLD_TTL_SECONDS)
        elif path == "min_order_amount":
            if not 0 <= p.min_order_amount <= MAX_AMOUNT_MINOR:
                fields.bad("program.min_order_amount", f"must be between 0 and {MAX_AMOUNT_MINOR}")
            changes["min_order_amount"] = p.min_order_amount
        elif path == "channel_earn_rates":
            rates = []
            for i, item in enumerate(_list(fields, "program.channel_earn_rates", p.channel_earn_rates)):
                channel = fields.enum(f"program.channel_earn_rates[{i}].channel", item.channel, enums.CHANNELS, required=True)
                rates.append((channel, _rate(fields, f"program.channel_earn_rates[{i}].rate", item.rate)))
            if len({c for c, _ in rates}) != len(rates):
                fields.bad("program.channel_earn_rates", "names a channel twice")
            changes["channel_rates"] = tuple(rates)
        elif path == "earn_rate_rules":
            rules = []
            for i, item in enumerate(_list(fields, "program.earn_rate_rules", p.earn_rate_rules)):
                at = f"program.earn_rate_rules[{i}]"
                sku = fields.identifier(f"{at}.sku", item.sku, required=False)
                category = fields.identifier(f"{at}.category", item.category, required=False)
                if bool(sku) == bool(category):
                    fields.bad(at, "give exactly one of sku and category")
                rate = EarnRate() if item.excluded else _rate(fields, f"{at}.rate", item.rate)
                rules.append(RateRule(sku, category, rate, item.excluded))
            changes["rate_rules"] = tuple(rules)
        elif path == "activity_rules":
            activities: list[ActivityRule] = []
            for i, item in enumerate(_list(fields, "program.activity_rules", p.activity_rules)):
                at = f"program.activity_rules[{i}]"
                kind = fields.identifier(f"{at}.activity_type", item.activity_type, max_length=64)
                fields.positive_points(f"{at}.points", item.points)
                _days(fields, f"{at}.max_per_period", item.max_per_period, 0, 1_000_000)
                period = item.period_days or 30
                _days(fields, f"{at}.period_days", period, 1, 3650)
                roles = _activity_roles(fields, f"{at}.allowed_roles", item.allowed_roles)
                activities.append(ActivityRule(kind, item.points, item.max_per_period, period, roles))
            if len({r.activity_type for r in activities}) != len(activities):
                fields.bad("program.activity_rules", "names an activity type twice")
            changes["activity_rules"] = tuple(activities)
        elif path == "tier_basis":
            changes["tier_basis"] = fields.enum("program.tier_basis", p.tier_basis, enums.TIER_BASES, required=True)
        elif path == "tier_window":
            changes["tier_window"] = fields.enum("program.tier_window", p.tier_window, enums.TIER_WINDOWS, required=True)
        elif path == "tier_period_days":
            changes["tier_period_days"] = _days(fields, "program.tier_period_days", p.tier_period_days, 1, 3650)
        elif path == "tier_grace_days":
            changes["tier_grace_days"] = _days(fields, "program.tier_grace_days", p.tier_grace_days, 0, 365)
        elif path == "referral":
            r = p.referral
            fields.amount("program.referral.referrer_points", r.referrer_points, allow_zero=True)
            fields.amount("program.referral.referee_points", r.referee_points, allow_zero=True)
            if max(r.referrer_points, r.referee_points) > MAX_POINTS_PER_REQUEST:
                fields.bad("program.referral", f"rewards must be at most {MAX_POINTS_PER_REQUEST} points")
            fields.amount("program.referral.min_order_amount", r.min_order_amount, allow_zero=True)
            _days(fields, "program.referral.max_rewarded_per_referrer", r.max_rewarded_per_referrer, 0, 1_000_000)
            cap_days = r.cap_period_days or 30
            _days(fields, "program.referral.cap_period_days", cap_days, 1, 3650)
            _days(fields, "program.referral.attribution_window_days", r.attribution_window_days, 0, 3650)
            changes["referral"] = ReferralRules(
                r.referrer_points, r.referee_points, r.min_order_amount, r.max_rewarded_per_referrer, cap_days,
                r.attribution_window_days, r.counts_toward_tiers,
            )
        elif path == "point_value":
            if not 0 <= p.point_value.minor_units <= 1_000_000_000:
                fields.bad("program.point_value.minor_units", "must be between 0 and 1000000000")
            if not 0 <= p.point_value.scale <= 9:
                fields.bad("program.point_value.scale", "must be between 0 and 9")
            changes["point_value"] = PointValue(p.point_value.minor_units, p.point_value.scale)
        elif path == "close_policy":
            changes["close_policy"] = fields.enum(
                "program.close_policy", p.close_policy, enums.CLOSE_POLICIES, required=True
            )
        elif path == "transfer_rules":
            t = p.transfer_rules
            fields.amount("program.transfer_rules.max_points_per_transfer", t.max_points_per_transfer, allow_zero=True)
            fields.amount("program.transfer_rules.max_points_per_month", t.max_points_per_month, allow_zero=True)
            changes["transfer"] = TransferRules(
                not t.disabled, t.max_points_per_transfer, t.max_points_per_month, t.pos_allowed
            )
        elif path == "moments":
            changes["moments"] = MomentSettings(
                **{name: _days(fields, f"program.moments.{name}", getattr(p.moments, name), 0, MAX_MOMENT_DAYS)
                   for name in _MOMENT_FIELDS}
            )
        elif path.startswith("moments.") and path.split(".", 1)[1] in _MOMENT_FIELDS:
            name = path.split(".", 1)[1]
            changes[path] = _days(fields, f"program.{path}", getattr(p.moments, name), 0, MAX_MOMENT_DAYS)
        else:
            fields.bad("update_mask", f"{path[:64]!r} is not a field of Program that can be changed")
    fields.no_control_characters(request)
    fields.done()
    return changes


def liability(request: programs_pb2.GetLiabilityReportRequest) -> datetime | None:
    fields = Fields()
    as_of = fields.timestamp("as_of_time", request.as_of_time, request.HasField("as_of_time"))
    fields.done()
    return as_of


def _request_id(fields: Fields, request) -> str:
    """The optional AIP-155 request_id: like an idempotency key, printable and at most 128 characters."""
    return fields.identifier("request_id", request.request_id, required=False)


def _mutation(method: str, request, request_id: str) -> Mutation | None:
    """The request under its request_id, to be applied once; None without one (nothing is recorded)."""
    return mutation(method, request, request_id) if request_id else None


def tiers(request: programs_pb2.SetTiersRequest) -> tuple[list[TierDefinition], Mutation | None]:
    fields = Fields()
    items = _list(fields, "tiers", request.tiers)
    request_id = _request_id(fields, request)
    fields.no_control_characters(request)
    fields.done()
    definitions = [
        TierDefinition(t.name, t.threshold, t.earn_multiplier_bps or 10_000, t.qualification_days or DEFAULT_QUALIFICATION_DAYS)
        for t in items
    ]
    return definitions, _mutation("SetTiers", request, request_id)


def _conditions(fields: Fields, c: programs_pb2.CampaignConditions) -> Conditions:
    channels = [
        fields.enum(f"campaign.conditions.channels[{i}]", ch, enums.CHANNELS, required=True)
        for i, ch in enumerate(_list(fields, "campaign.conditions.channels", c.channels))
    ]

    def names(path: str, values) -> tuple[str, ...]:
        return tuple(fields.identifier(f"{path}[{i}]", v) for i, v in enumerate(_list(fields, path, values)))

    if not 0 <= c.min_order_amount <= MAX_AMOUNT_MINOR:
        fields.bad("campaign.conditions.min_order_amount", f"must be between 0 and {MAX_AMOUNT_MINOR}")
    activity = fields.identifier("campaign.conditions.activity_type", c.activity_type, required=False, max_length=64)
    return Conditions(
        tuple(ch for ch in channels if ch is not None),
        names("campaign.conditions.tiers", c.tiers),
        names("campaign.conditions.skus", c.skus),
        names("campaign.conditions.categories", c.categories),
        c.min_order_amount,
        activity,
        tuple(dict.fromkeys(names("campaign.conditions.segments", c.segments))),
    )


def _instant(fields: Fields, path: str, message, present: bool, required: bool) -> datetime | None:
    value = fields.timestamp(path, message, present)
    if required and not present:
        fields.bad(path, "is required")
    return value


EFFECTS = ("multiplier_bps", "bonus_points")  # the members of Campaign's oneof `effect`


def _effect(message: programs_pb2.Campaign, path: str) -> int:
    """The value of one member of the oneof `effect`, by presence: 0 unless it is the one set."""
    return getattr(message, path) if message.WhichOneof("effect") == path else 0


def create_campaign(request: programs_pb2.CreateCampaignRequest) -> tuple[CampaignRule, str, Mutation | None]:
    fields = Fields()
    message = request.campaign
    request_id = _request_id(fields, request)
    effect = message.WhichOneof("effect")
    if effect is None:
        fields.bad("campaign", "give exactly one effect: multiplier_bps or bonus_points")
    elif getattr(message, effect) == 0:
        fields.bad(f"campaign.{effect}", "must not be 0")
    start = _instant(fields, "campaign.start_time", message.start_time, message.HasField("start_time"), True)
    end = _instant(fields, "campaign.end_time", message.end_time, message.HasField("end_time"), True)
    stacking = fields.enum(
        "campaign.stacking_mode", message.stacking_mode, enums.STACKING_MODES, required=False, default=StackingMode.STACK
    )
    conditions = _conditions(fields, message.conditions)
    time_zone = fields.identifier("campaign.time_zone", message.time_zone, required=False, max_length=64) or "UTC"
    fields.no_control_characters(request)
    fields.done()
    assert start is not None and end is not None  # required: done() raised without them
    rule = CampaignRule(
        campaign_id="",
        name=message.name,
        start=start,
        end=end,
        multiplier_bps=_effect(message, "multiplier_bps"),
        bonus_points=_effect(message, "bonus_points"),
        conditions=conditions,
        stacking=stacking,
        priority=message.priority,
        per_member_cap=message.per_member_cap,
        budget=message.budget,
    )
    return rule, time_zone, _mutation("CreateCampaign", request, request_id)


CAMPAIGN_PATHS = {
    "name", "start_time", "end_time", "time_zone", "multiplier_bps", "bonus_points", "conditions",
    "stacking_mode", "priority", "per_member_cap", "budget", "state",
}


def campaign_changes(request: programs_pb2.UpdateCampaignRequest) -> tuple[str, dict]:
    fields = Fields()
    message = request.campaign
    campaign_id = fields.identifier("campaign.campaign_id", message.campaign_id, max_length=64)
    paths = list(request.update_mask.paths)
    if not paths:
        fields.bad("update_mask", "name at least one field to change")
    changes: dict = {}
    for path in paths:
        if path not in CAMPAIGN_PATHS:
            fields.bad("update_mask", f"{path[:64]!r} is not a field of Campaign that can be changed")
        elif path == "start_time":
            changes["start"] = _instant(fields, "campaign.start_time", message.start_time, message.HasField("start_time"), True)
        elif path == "end_time":
            changes["end"] = _instant(fields, "campaign.end_time", message.end_time, message.HasField("end_time"), True)
        elif path == "conditions":
            changes["conditions"] = _conditions(fields, message.conditions)
        elif path == "stacking_mode":
            changes["stacking"] = fields.enum("campaign.stacking_mode", message.stacking_mode, enums.STACKING_MODES, required=True)
        elif path == "state":
            changes["state"] = fields.enum("campaign.state", message.state, enums.CAMPAIGN_STATES, required=True)
        elif path == "time_zone":
            changes["time_zone"] = fields.identifier("campaign.time_zone", message.time_zone, max_length=64)
        elif path in EFFECTS:
            # A member of the oneof named in the mask but not the one set is cleared (to switch a
            # campaign from a multiplier to a bonus, name both and set the bonus).
            changes[path] = _effect(message, path)
        else:
            changes[path] = getattr(message, path)
    fields.no_control_characters(request)
    fields.done()
    return campaign_id, changes


def list_rewards(request: programs_pb2.ListRewardsRequest) -> tuple[int, str]:
    fields = Fields()
    size, token = fields.page_size(request.page_size), fields.page_token(request.page_token)
    fields.done()
    return size, token


def list_campaigns(request: programs_pb2.ListCampaignsRequest) -> tuple[int, str, CampaignStatus | None]:
    fields = Fields()
    size, token = fields.page_size(request.page_size), fields.page_token(request.page_token)
    state = fields.enum("state", request.state, enums.CAMPAIGN_STATUSES, required=False)
    fields.done()
    return size, token, state


def create_reward(request: programs_pb2.CreateRewardRequest) -> tuple[RewardRecord, Mutation | None]:
    fields = Fields()
    message = request.reward
    request_id = _request_id(fields, request)
    start = _instant(fields, "reward.start_time", message.start_time, message.HasField("start_time"), False)
    end = _instant(fields, "reward.end_time", message.end_time, message.HasField("end_time"), False)
    if message.unlimited_stock and message.stock:
        fields.bad("reward.stock", "give a stock or unlimited_stock, not both")
    fields.no_control_characters(request)
    fields.done()
    stock = None if message.unlimited_stock else message.stock
    return RewardRecord("", message.name, message.points_price, start, end, stock, 0), _mutation("CreateReward", request, request_id)


SEGMENT_PATHS = {"name", "description", "conditions"}
_MAX_RANGE = 10**15


def _segment_conditions(fields: Fields, c: programs_pb2.SegmentConditions) -> SegmentConditions:
    ranges = {}
    for name in RANGE_FIELDS:
        given = getattr(c, name)
        low = given.min if given.HasField("min") else None
        high = given.max if given.HasField("max") else None
        for end in (low, high):
            if end is not None and abs(end) > _MAX_RANGE:
                fields.bad(f"segment.conditions.{name}", f"ends must be within +-{_MAX_RANGE}")
        ranges[name] = Range(low, high)
    tiers = tuple(
        fields.identifier(f"segment.conditions.tiers[{i}]", t, max_length=64)
        for i, t in enumerate(_list(fields, "segment.conditions.tiers", c.tiers))
    )
    return SegmentConditions(tiers=tiers, **ranges)


def _segment_name(fields: Fields, value: str) -> str:
    return fields.identifier("segment.name", value, max_length=64)


def create_segment(request: programs_pb2.CreateSegmentRequest) -> tuple[Segment, Mutation | None]:
    fields = Fields()
    message = request.segment
    request_id = _request_id(fields, request)
    segment = Segment(
        "",
        _segment_name(fields, message.name),
        fields.text("segment.description", message.description, max_length=500),
        _segment_conditions(fields, message.conditions),
    )
    fields.no_control_characters(request)
    fields.done()
    return segment, _mutation("CreateSegment", request, request_id)


def segment_changes(request: programs_pb2.UpdateSegmentRequest) -> tuple[str, dict]:
    fields = Fields()
    message = request.segment
    segment_id = fields.identifier("segment.segment_id", message.segment_id, max_length=64)
    paths = list(request.update_mask.paths)
    if not paths:
        fields.bad("update_mask", "name at least one field to change")
    changes: dict = {}
    for path in paths:
        if path not in SEGMENT_PATHS:
            fields.bad("update_mask", f"{path[:64]!r} is not a field of Segment that can be changed")
        elif path == "name":
            changes["name"] = _segment_name(fields, message.name)
        elif path == "description":
            changes["description"] = fields.text("segment.description", message.description, max_length=500)
        else:
            changes["conditions"] = _segment_conditions(fields, message.conditions)
    fields.no_control_characters(request)
    fields.done()
    return segment_id, changes


def segment_ref(value: str) -> str:
    fields = Fields()
    checked = fields.identifier("segment", value, max_length=64)
    fields.done()
    return checked


def list_segments(request: programs_pb2.ListSegmentsRequest) -> tuple[int, str]:
    fields = Fields()
    size, token = fields.page_size(request.page_size), fields.page_token(request.page_token)
    fields.done()
    return size, token


def list_segment_members(request: programs_pb2.ListSegmentMembersRequest) -> tuple[str, int, str]:
    fields = Fields()
    segment = fields.identifier("segment", request.segment, max_length=64)
    size, token = fields.page_size(request.page_size), fields.page_token(request.page_token)
    fields.done()
    return segment, size, token
