import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.gen.loyalty.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoundingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUNDING_MODE_UNSPECIFIED: _ClassVar[RoundingMode]
    ROUNDING_MODE_DOWN: _ClassVar[RoundingMode]
    ROUNDING_MODE_HALF_UP: _ClassVar[RoundingMode]
    ROUNDING_MODE_UP: _ClassVar[RoundingMode]

class NegativeBalancePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NEGATIVE_BALANCE_POLICY_UNSPECIFIED: _ClassVar[NegativeBalancePolicy]
    NEGATIVE_BALANCE_POLICY_ALLOW: _ClassVar[NegativeBalancePolicy]
    NEGATIVE_BALANCE_POLICY_FORBID: _ClassVar[NegativeBalancePolicy]

class ExpiryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPIRY_MODE_UNSPECIFIED: _ClassVar[ExpiryMode]
    EXPIRY_MODE_NONE: _ClassVar[ExpiryMode]
    EXPIRY_MODE_ROLLING: _ClassVar[ExpiryMode]
    EXPIRY_MODE_INACTIVITY: _ClassVar[ExpiryMode]

class ApiKeyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_ROLE_UNSPECIFIED: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_POS: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_STOREFRONT: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_SUPPORT: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_MARKETING: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_ADMIN: _ClassVar[ApiKeyRole]

class TierBasis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_BASIS_UNSPECIFIED: _ClassVar[TierBasis]
    TIER_BASIS_QUALIFYING_SPEND: _ClassVar[TierBasis]
    TIER_BASIS_QUALIFYING_POINTS: _ClassVar[TierBasis]

class TierWindow(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_WINDOW_UNSPECIFIED: _ClassVar[TierWindow]
    TIER_WINDOW_ROLLING: _ClassVar[TierWindow]
    TIER_WINDOW_CALENDAR_YEAR: _ClassVar[TierWindow]

class StackingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STACKING_MODE_UNSPECIFIED: _ClassVar[StackingMode]
    STACKING_MODE_STACK: _ClassVar[StackingMode]
    STACKING_MODE_BEST_ONLY: _ClassVar[StackingMode]
    STACKING_MODE_EXCLUSIVE: _ClassVar[StackingMode]
ROUNDING_MODE_UNSPECIFIED: RoundingMode
ROUNDING_MODE_DOWN: RoundingMode
ROUNDING_MODE_HALF_UP: RoundingMode
ROUNDING_MODE_UP: RoundingMode
NEGATIVE_BALANCE_POLICY_UNSPECIFIED: NegativeBalancePolicy
NEGATIVE_BALANCE_POLICY_ALLOW: NegativeBalancePolicy
NEGATIVE_BALANCE_POLICY_FORBID: NegativeBalancePolicy
EXPIRY_MODE_UNSPECIFIED: ExpiryMode
EXPIRY_MODE_NONE: ExpiryMode
EXPIRY_MODE_ROLLING: ExpiryMode
EXPIRY_MODE_INACTIVITY: ExpiryMode
API_KEY_ROLE_UNSPECIFIED: ApiKeyRole
API_KEY_ROLE_POS: ApiKeyRole
API_KEY_ROLE_STOREFRONT: ApiKeyRole
API_KEY_ROLE_SUPPORT: ApiKeyRole
API_KEY_ROLE_MARKETING: ApiKeyRole
API_KEY_ROLE_ADMIN: ApiKeyRole
TIER_BASIS_UNSPECIFIED: TierBasis
TIER_BASIS_QUALIFYING_SPEND: TierBasis
TIER_BASIS_QUALIFYING_POINTS: TierBasis
TIER_WINDOW_UNSPECIFIED: TierWindow
TIER_WINDOW_ROLLING: TierWindow
TIER_WINDOW_CALENDAR_YEAR: TierWindow
STACKING_MODE_UNSPECIFIED: StackingMode
STACKING_MODE_STACK: StackingMode
STACKING_MODE_BEST_ONLY: StackingMode
STACKING_MODE_EXCLUSIVE: StackingMode

class EarnRate(_message.Message):
    __slots__ = ("points", "per_amount")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    PER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    points: int
    per_amount: int
    def __init__(self, points: _Optional[int] = ..., per_amount: _Optional[int] = ...) -> None: ...

class EarnRateRule(_message.Message):
    __slots__ = ("sku", "category", "rate", "excluded")
    SKU_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    sku: str
    category: str
    rate: EarnRate
    excluded: bool
    def __init__(self, sku: _Optional[str] = ..., category: _Optional[str] = ..., rate: _Optional[_Union[EarnRate, _Mapping]] = ..., excluded: _Optional[bool] = ...) -> None: ...

class ChannelEarnRate(_message.Message):
    __slots__ = ("channel", "rate")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    channel: _common_pb2.Channel
    rate: EarnRate
    def __init__(self, channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., rate: _Optional[_Union[EarnRate, _Mapping]] = ...) -> None: ...

class ActivityRule(_message.Message):
    __slots__ = ("activity_type", "points", "max_per_period", "period_days", "allowed_roles")
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_DAYS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ROLES_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    points: int
    max_per_period: int
    period_days: int
    allowed_roles: _containers.RepeatedScalarFieldContainer[ApiKeyRole]
    def __init__(self, activity_type: _Optional[str] = ..., points: _Optional[int] = ..., max_per_period: _Optional[int] = ..., period_days: _Optional[int] = ..., allowed_roles: _Optional[_Iterable[_Union[ApiKeyRole, str]]] = ...) -> None: ...

class Program(_message.Message):
    __slots__ = ("program_id", "name", "currency", "earn_rate", "rounding_mode", "pending_days", "expiry_mode", "expiry_days", "negative_balance_policy", "hold_ttl_seconds", "max_backdate_days", "created_at", "updated_at", "min_order_amount", "channel_earn_rates", "earn_rate_rules", "activity_rules", "tier_basis", "tier_window", "tier_period_days", "tier_grace_days", "referral")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EARN_RATE_FIELD_NUMBER: _ClassVar[int]
    ROUNDING_MODE_FIELD_NUMBER: _ClassVar[int]
    PENDING_DAYS_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_MODE_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_DAYS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_BALANCE_POLICY_FIELD_NUMBER: _ClassVar[int]
    HOLD_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKDATE_DAYS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MIN_ORDER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_EARN_RATES_FIELD_NUMBER: _ClassVar[int]
    EARN_RATE_RULES_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_RULES_FIELD_NUMBER: _ClassVar[int]
    TIER_BASIS_FIELD_NUMBER: _ClassVar[int]
    TIER_WINDOW_FIELD_NUMBER: _ClassVar[int]
    TIER_PERIOD_DAYS_FIELD_NUMBER: _ClassVar[int]
    TIER_GRACE_DAYS_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    name: str
    currency: str
    earn_rate: EarnRate
    rounding_mode: RoundingMode
    pending_days: int
    expiry_mode: ExpiryMode
    expiry_days: int
    negative_balance_policy: NegativeBalancePolicy
    hold_ttl_seconds: int
    max_backdate_days: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    min_order_amount: int
    channel_earn_rates: _containers.RepeatedCompositeFieldContainer[ChannelEarnRate]
    earn_rate_rules: _containers.RepeatedCompositeFieldContainer[EarnRateRule]
    activity_rules: _containers.RepeatedCompositeFieldContainer[ActivityRule]
    tier_basis: TierBasis
    tier_window: TierWindow
    tier_period_days: int
    tier_grace_days: int
    referral: ReferralRules
    def __init__(self, program_id: _Optional[str] = ..., name: _Optional[str] = ..., currency: _Optional[str] = ..., earn_rate: _Optional[_Union[EarnRate, _Mapping]] = ..., rounding_mode: _Optional[_Union[RoundingMode, str]] = ..., pending_days: _Optional[int] = ..., expiry_mode: _Optional[_Union[ExpiryMode, str]] = ..., expiry_days: _Optional[int] = ..., negative_balance_policy: _Optional[_Union[NegativeBalancePolicy, str]] = ..., hold_ttl_seconds: _Optional[int] = ..., max_backdate_days: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., min_order_amount: _Optional[int] = ..., channel_earn_rates: _Optional[_Iterable[_Union[ChannelEarnRate, _Mapping]]] = ..., earn_rate_rules: _Optional[_Iterable[_Union[EarnRateRule, _Mapping]]] = ..., activity_rules: _Optional[_Iterable[_Union[ActivityRule, _Mapping]]] = ..., tier_basis: _Optional[_Union[TierBasis, str]] = ..., tier_window: _Optional[_Union[TierWindow, str]] = ..., tier_period_days: _Optional[int] = ..., tier_grace_days: _Optional[int] = ..., referral: _Optional[_Union[ReferralRules, _Mapping]] = ...) -> None: ...

class ReferralRules(_message.Message):
    __slots__ = ("referrer_points", "referee_points", "min_order_amount", "max_rewarded_per_referrer", "cap_period_days", "attribution_window_days", "counts_toward_tiers")
    REFERRER_POINTS_FIELD_NUMBER: _ClassVar[int]
    REFEREE_POINTS_FIELD_NUMBER: _ClassVar[int]
    MIN_ORDER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_REWARDED_PER_REFERRER_FIELD_NUMBER: _ClassVar[int]
    CAP_PERIOD_DAYS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTION_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_TOWARD_TIERS_FIELD_NUMBER: _ClassVar[int]
    referrer_points: int
    referee_points: int
    min_order_amount: int
    max_rewarded_per_referrer: int
    cap_period_days: int
    attribution_window_days: int
    counts_toward_tiers: bool
    def __init__(self, referrer_points: _Optional[int] = ..., referee_points: _Optional[int] = ..., min_order_amount: _Optional[int] = ..., max_rewarded_per_referrer: _Optional[int] = ..., cap_period_days: _Optional[int] = ..., attribution_window_days: _Optional[int] = ..., counts_toward_tiers: _Optional[bool] = ...) -> None: ...

class Tier(_message.Message):
    __slots__ = ("name", "threshold", "earn_multiplier_bps", "qualification_days")
    NAME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EARN_MULTIPLIER_BPS_FIELD_NUMBER: _ClassVar[int]
    QUALIFICATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    name: str
    threshold: int
    earn_multiplier_bps: int
    qualification_days: int
    def __init__(self, name: _Optional[str] = ..., threshold: _Optional[int] = ..., earn_multiplier_bps: _Optional[int] = ..., qualification_days: _Optional[int] = ...) -> None: ...

class CampaignConditions(_message.Message):
    __slots__ = ("channels", "tiers", "skus", "categories", "min_order_amount", "activity_type")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    MIN_ORDER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedScalarFieldContainer[_common_pb2.Channel]
    tiers: _containers.RepeatedScalarFieldContainer[str]
    skus: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    min_order_amount: int
    activity_type: str
    def __init__(self, channels: _Optional[_Iterable[_Union[_common_pb2.Channel, str]]] = ..., tiers: _Optional[_Iterable[str]] = ..., skus: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., min_order_amount: _Optional[int] = ..., activity_type: _Optional[str] = ...) -> None: ...

class Campaign(_message.Message):
    __slots__ = ("campaign_id", "name", "start_time", "end_time", "time_zone", "multiplier_bps", "bonus_points", "conditions", "stacking_mode", "priority", "per_member_cap", "budget", "state", "points_awarded", "budget_remaining", "created_at", "updated_at", "members_awarded")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Campaign.State]
        STATE_ACTIVE: _ClassVar[Campaign.State]
        STATE_PAUSED: _ClassVar[Campaign.State]
    STATE_UNSPECIFIED: Campaign.State
    STATE_ACTIVE: Campaign.State
    STATE_PAUSED: Campaign.State
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_BPS_FIELD_NUMBER: _ClassVar[int]
    BONUS_POINTS_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    STACKING_MODE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PER_MEMBER_CAP_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POINTS_AWARDED_FIELD_NUMBER: _ClassVar[int]
    BUDGET_REMAINING_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_AWARDED_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    name: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    time_zone: str
    multiplier_bps: int
    bonus_points: int
    conditions: CampaignConditions
    stacking_mode: StackingMode
    priority: int
    per_member_cap: int
    budget: int
    state: Campaign.State
    points_awarded: int
    budget_remaining: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    members_awarded: int
    def __init__(self, campaign_id: _Optional[str] = ..., name: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., time_zone: _Optional[str] = ..., multiplier_bps: _Optional[int] = ..., bonus_points: _Optional[int] = ..., conditions: _Optional[_Union[CampaignConditions, _Mapping]] = ..., stacking_mode: _Optional[_Union[StackingMode, str]] = ..., priority: _Optional[int] = ..., per_member_cap: _Optional[int] = ..., budget: _Optional[int] = ..., state: _Optional[_Union[Campaign.State, str]] = ..., points_awarded: _Optional[int] = ..., budget_remaining: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., members_awarded: _Optional[int] = ...) -> None: ...

class Reward(_message.Message):
    __slots__ = ("reward_id", "name", "points_price", "start_time", "end_time", "stock", "unlimited_stock", "redeemed")
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POINTS_PRICE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    UNLIMITED_STOCK_FIELD_NUMBER: _ClassVar[int]
    REDEEMED_FIELD_NUMBER: _ClassVar[int]
    reward_id: str
    name: str
    points_price: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    stock: int
    unlimited_stock: bool
    redeemed: int
    def __init__(self, reward_id: _Optional[str] = ..., name: _Optional[str] = ..., points_price: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stock: _Optional[int] = ..., unlimited_stock: _Optional[bool] = ..., redeemed: _Optional[int] = ...) -> None: ...

class GetProgramRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetProgramResponse(_message.Message):
    __slots__ = ("program",)
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    program: Program
    def __init__(self, program: _Optional[_Union[Program, _Mapping]] = ...) -> None: ...

class UpdateProgramRequest(_message.Message):
    __slots__ = ("program", "update_mask")
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    program: Program
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, program: _Optional[_Union[Program, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateProgramResponse(_message.Message):
    __slots__ = ("program",)
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    program: Program
    def __init__(self, program: _Optional[_Union[Program, _Mapping]] = ...) -> None: ...

class SetTiersRequest(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    def __init__(self, tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ...) -> None: ...

class SetTiersResponse(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    def __init__(self, tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ...) -> None: ...

class ListTiersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTiersResponse(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    def __init__(self, tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ...) -> None: ...

class CreateCampaignRequest(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: Campaign
    def __init__(self, campaign: _Optional[_Union[Campaign, _Mapping]] = ...) -> None: ...

class CreateCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: Campaign
    def __init__(self, campaign: _Optional[_Union[Campaign, _Mapping]] = ...) -> None: ...

class UpdateCampaignRequest(_message.Message):
    __slots__ = ("campaign", "update_mask")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    campaign: Campaign
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, campaign: _Optional[_Union[Campaign, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: Campaign
    def __init__(self, campaign: _Optional[_Union[Campaign, _Mapping]] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class GetCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: Campaign
    def __init__(self, campaign: _Optional[_Union[Campaign, _Mapping]] = ...) -> None: ...

class ListCampaignsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: Campaign.State
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[Campaign.State, str]] = ...) -> None: ...

class ListCampaignsResponse(_message.Message):
    __slots__ = ("campaigns", "next_page_token")
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[Campaign]
    next_page_token: str
    def __init__(self, campaigns: _Optional[_Iterable[_Union[Campaign, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PauseCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class PauseCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: Campaign
    def __init__(self, campaign: _Optional[_Union[Campaign, _Mapping]] = ...) -> None: ...

class CreateRewardRequest(_message.Message):
    __slots__ = ("reward",)
    REWARD_FIELD_NUMBER: _ClassVar[int]
    reward: Reward
    def __init__(self, reward: _Optional[_Union[Reward, _Mapping]] = ...) -> None: ...

class CreateRewardResponse(_message.Message):
    __slots__ = ("reward",)
    REWARD_FIELD_NUMBER: _ClassVar[int]
    reward: Reward
    def __init__(self, reward: _Optional[_Union[Reward, _Mapping]] = ...) -> None: ...

class ListRewardsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRewardsResponse(_message.Message):
    __slots__ = ("rewards", "next_page_token")
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rewards: _containers.RepeatedCompositeFieldContainer[Reward]
    next_page_token: str
    def __init__(self, rewards: _Optional[_Iterable[_Union[Reward, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReferralReportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetReferralReportResponse(_message.Message):
    __slots__ = ("attributed", "qualified", "rewarded", "reversed", "not_rewarded", "points_awarded")
    ATTRIBUTED_FIELD_NUMBER: _ClassVar[int]
    QUALIFIED_FIELD_NUMBER: _ClassVar[int]
    REWARDED_FIELD_NUMBER: _ClassVar[int]
    REVERSED_FIELD_NUMBER: _ClassVar[int]
    NOT_REWARDED_FIELD_NUMBER: _ClassVar[int]
    POINTS_AWARDED_FIELD_NUMBER: _ClassVar[int]
    attributed: int
    qualified: int
    rewarded: int
    reversed: int
    not_rewarded: int
    points_awarded: int
    def __init__(self, attributed: _Optional[int] = ..., qualified: _Optional[int] = ..., rewarded: _Optional[int] = ..., reversed: _Optional[int] = ..., not_rewarded: _Optional[int] = ..., points_awarded: _Optional[int] = ...) -> None: ...
