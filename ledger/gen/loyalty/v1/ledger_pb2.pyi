import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.gen.loyalty.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_STATUS_UNSPECIFIED: _ClassVar[MemberStatus]
    MEMBER_STATUS_ACTIVE: _ClassVar[MemberStatus]
    MEMBER_STATUS_CLOSED: _ClassVar[MemberStatus]
MEMBER_STATUS_UNSPECIFIED: MemberStatus
MEMBER_STATUS_ACTIVE: MemberStatus
MEMBER_STATUS_CLOSED: MemberStatus

class MemberTier(_message.Message):
    __slots__ = ("name", "earn_multiplier_bps", "reached_at", "held_until")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EARN_MULTIPLIER_BPS_FIELD_NUMBER: _ClassVar[int]
    REACHED_AT_FIELD_NUMBER: _ClassVar[int]
    HELD_UNTIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    earn_multiplier_bps: int
    reached_at: _timestamp_pb2.Timestamp
    held_until: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., earn_multiplier_bps: _Optional[int] = ..., reached_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., held_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TierProgress(_message.Message):
    __slots__ = ("next_tier_name", "qualifying_value", "remaining")
    NEXT_TIER_NAME_FIELD_NUMBER: _ClassVar[int]
    QUALIFYING_VALUE_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    next_tier_name: str
    qualifying_value: int
    remaining: int
    def __init__(self, next_tier_name: _Optional[str] = ..., qualifying_value: _Optional[int] = ..., remaining: _Optional[int] = ...) -> None: ...

class ExpiringPoints(_message.Message):
    __slots__ = ("points", "expires_at")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    points: int
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, points: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("member_id", "balance", "tier", "tier_progress", "referral_code", "expiring_points", "status", "enrolled_at")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    TIER_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_POINTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    balance: _common_pb2.Balance
    tier: MemberTier
    tier_progress: TierProgress
    referral_code: str
    expiring_points: _containers.RepeatedCompositeFieldContainer[ExpiringPoints]
    status: MemberStatus
    enrolled_at: _timestamp_pb2.Timestamp
    def __init__(self, member_id: _Optional[str] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ..., tier: _Optional[_Union[MemberTier, _Mapping]] = ..., tier_progress: _Optional[_Union[TierProgress, _Mapping]] = ..., referral_code: _Optional[str] = ..., expiring_points: _Optional[_Iterable[_Union[ExpiringPoints, _Mapping]]] = ..., status: _Optional[_Union[MemberStatus, str]] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Hold(_message.Message):
    __slots__ = ("hold_id", "member_id", "points", "expires_at", "state", "order_id", "captured_points", "created_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Hold.State]
        STATE_OPEN: _ClassVar[Hold.State]
        STATE_CAPTURED: _ClassVar[Hold.State]
        STATE_VOIDED: _ClassVar[Hold.State]
        STATE_LAPSED: _ClassVar[Hold.State]
    STATE_UNSPECIFIED: Hold.State
    STATE_OPEN: Hold.State
    STATE_CAPTURED: Hold.State
    STATE_VOIDED: Hold.State
    STATE_LAPSED: Hold.State
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_POINTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    member_id: str
    points: int
    expires_at: _timestamp_pb2.Timestamp
    state: Hold.State
    order_id: str
    captured_points: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, hold_id: _Optional[str] = ..., member_id: _Optional[str] = ..., points: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[Hold.State, str]] = ..., order_id: _Optional[str] = ..., captured_points: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnrollMemberRequest(_message.Message):
    __slots__ = ("member_id", "referral_code")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    referral_code: str
    def __init__(self, member_id: _Optional[str] = ..., referral_code: _Optional[str] = ...) -> None: ...

class EnrollMemberResponse(_message.Message):
    __slots__ = ("member", "created")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    member: Member
    created: bool
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetMemberRequest(_message.Message):
    __slots__ = ("member_id",)
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    def __init__(self, member_id: _Optional[str] = ...) -> None: ...

class GetMemberResponse(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: Member
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ...) -> None: ...

class EarnRequest(_message.Message):
    __slots__ = ("member_id", "idempotency_key", "order")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    idempotency_key: str
    order: _common_pb2.Order
    def __init__(self, member_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ...) -> None: ...

class EarnResponse(_message.Message):
    __slots__ = ("transaction", "balance")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class QuoteEarnRequest(_message.Message):
    __slots__ = ("member_id", "idempotency_key", "order")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    idempotency_key: str
    order: _common_pb2.Order
    def __init__(self, member_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ...) -> None: ...

class QuoteEarnResponse(_message.Message):
    __slots__ = ("transaction", "balance")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class RedeemRequest(_message.Message):
    __slots__ = ("member_id", "idempotency_key", "points", "reward_id", "order_id", "channel", "store_id")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    idempotency_key: str
    points: int
    reward_id: str
    order_id: str
    channel: _common_pb2.Channel
    store_id: str
    def __init__(self, member_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., points: _Optional[int] = ..., reward_id: _Optional[str] = ..., order_id: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., store_id: _Optional[str] = ...) -> None: ...

class RedeemResponse(_message.Message):
    __slots__ = ("transaction", "balance")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class AuthorizeRedemptionRequest(_message.Message):
    __slots__ = ("member_id", "idempotency_key", "points", "order_id", "ttl_seconds", "channel", "store_id")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    idempotency_key: str
    points: int
    order_id: str
    ttl_seconds: int
    channel: _common_pb2.Channel
    store_id: str
    def __init__(self, member_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., points: _Optional[int] = ..., order_id: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., store_id: _Optional[str] = ...) -> None: ...

class AuthorizeRedemptionResponse(_message.Message):
    __slots__ = ("hold", "balance")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    balance: _common_pb2.Balance
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class CaptureRedemptionRequest(_message.Message):
    __slots__ = ("hold_id", "idempotency_key", "points")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    idempotency_key: str
    points: int
    def __init__(self, hold_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class CaptureRedemptionResponse(_message.Message):
    __slots__ = ("transaction", "balance", "hold")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    hold: Hold
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ..., hold: _Optional[_Union[Hold, _Mapping]] = ...) -> None: ...

class VoidRedemptionRequest(_message.Message):
    __slots__ = ("hold_id", "idempotency_key")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    idempotency_key: str
    def __init__(self, hold_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class VoidRedemptionResponse(_message.Message):
    __slots__ = ("hold", "balance")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    balance: _common_pb2.Balance
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class RefundOrderRequest(_message.Message):
    __slots__ = ("member_id", "order_id", "idempotency_key", "amount", "currency", "reason")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    order_id: str
    idempotency_key: str
    amount: int
    currency: str
    reason: str
    def __init__(self, member_id: _Optional[str] = ..., order_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RefundOrderResponse(_message.Message):
    __slots__ = ("transaction", "balance")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class RecordActivityRequest(_message.Message):
    __slots__ = ("member_id", "idempotency_key", "activity_type", "occurred_at", "channel")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    idempotency_key: str
    activity_type: str
    occurred_at: _timestamp_pb2.Timestamp
    channel: _common_pb2.Channel
    def __init__(self, member_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., activity_type: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ...) -> None: ...

class RecordActivityResponse(_message.Message):
    __slots__ = ("transaction", "balance")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class AdjustPointsRequest(_message.Message):
    __slots__ = ("member_id", "idempotency_key", "points", "reason")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    idempotency_key: str
    points: int
    reason: str
    def __init__(self, member_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., points: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class AdjustPointsResponse(_message.Message):
    __slots__ = ("transaction", "balance")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class ReverseTransactionRequest(_message.Message):
    __slots__ = ("transaction_id", "idempotency_key", "reason")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    idempotency_key: str
    reason: str
    def __init__(self, transaction_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReverseTransactionResponse(_message.Message):
    __slots__ = ("transaction", "balance")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction: _common_pb2.Transaction
    balance: _common_pb2.Balance
    def __init__(self, transaction: _Optional[_Union[_common_pb2.Transaction, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Balance, _Mapping]] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("member_id", "page_size", "page_token", "kinds", "created_after", "created_before")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    page_size: int
    page_token: str
    kinds: _containers.RepeatedScalarFieldContainer[_common_pb2.TransactionKind]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, member_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[_common_pb2.TransactionKind, str]]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Transaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[_common_pb2.Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Referral(_message.Message):
    __slots__ = ("referee_member_id", "state", "attributed_at", "qualifying_order_id", "referrer_points", "referee_points", "matures_at", "decision", "reward_transaction_id")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Referral.State]
        STATE_ATTRIBUTED: _ClassVar[Referral.State]
        STATE_QUALIFIED: _ClassVar[Referral.State]
        STATE_REWARDED: _ClassVar[Referral.State]
        STATE_REVERSED: _ClassVar[Referral.State]
        STATE_NOT_REWARDED: _ClassVar[Referral.State]
    STATE_UNSPECIFIED: Referral.State
    STATE_ATTRIBUTED: Referral.State
    STATE_QUALIFIED: Referral.State
    STATE_REWARDED: Referral.State
    STATE_REVERSED: Referral.State
    STATE_NOT_REWARDED: Referral.State
    REFEREE_MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_AT_FIELD_NUMBER: _ClassVar[int]
    QUALIFYING_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRER_POINTS_FIELD_NUMBER: _ClassVar[int]
    REFEREE_POINTS_FIELD_NUMBER: _ClassVar[int]
    MATURES_AT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REWARD_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    referee_member_id: str
    state: Referral.State
    attributed_at: _timestamp_pb2.Timestamp
    qualifying_order_id: str
    referrer_points: int
    referee_points: int
    matures_at: _timestamp_pb2.Timestamp
    decision: str
    reward_transaction_id: str
    def __init__(self, referee_member_id: _Optional[str] = ..., state: _Optional[_Union[Referral.State, str]] = ..., attributed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., qualifying_order_id: _Optional[str] = ..., referrer_points: _Optional[int] = ..., referee_points: _Optional[int] = ..., matures_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decision: _Optional[str] = ..., reward_transaction_id: _Optional[str] = ...) -> None: ...

class ListReferralsRequest(_message.Message):
    __slots__ = ("member_id", "page_size", "page_token")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    page_size: int
    page_token: str
    def __init__(self, member_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReferralsResponse(_message.Message):
    __slots__ = ("referrals", "next_page_token", "referral_code")
    REFERRALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    referrals: _containers.RepeatedCompositeFieldContainer[Referral]
    next_page_token: str
    referral_code: str
    def __init__(self, referrals: _Optional[_Iterable[_Union[Referral, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., referral_code: _Optional[str] = ...) -> None: ...
