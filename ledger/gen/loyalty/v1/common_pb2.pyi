import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_POS: _ClassVar[Channel]
    CHANNEL_WEB: _ClassVar[Channel]
    CHANNEL_MOBILE: _ClassVar[Channel]
    CHANNEL_MARKETPLACE: _ClassVar[Channel]
    CHANNEL_SUPPORT: _ClassVar[Channel]
    CHANNEL_OTHER: _ClassVar[Channel]

class TransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_KIND_UNSPECIFIED: _ClassVar[TransactionKind]
    TRANSACTION_KIND_EARN: _ClassVar[TransactionKind]
    TRANSACTION_KIND_REDEEM: _ClassVar[TransactionKind]
    TRANSACTION_KIND_CAPTURE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_REFUND: _ClassVar[TransactionKind]
    TRANSACTION_KIND_ADJUST: _ClassVar[TransactionKind]
    TRANSACTION_KIND_EXPIRE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_REFERRAL_REWARD: _ClassVar[TransactionKind]
    TRANSACTION_KIND_REVERSAL: _ClassVar[TransactionKind]
    TRANSACTION_KIND_ACTIVITY: _ClassVar[TransactionKind]
    TRANSACTION_KIND_TIER_CHANGE: _ClassVar[TransactionKind]

class PointsSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POINTS_SOURCE_UNSPECIFIED: _ClassVar[PointsSource]
    POINTS_SOURCE_BASE: _ClassVar[PointsSource]
    POINTS_SOURCE_TIER_BONUS: _ClassVar[PointsSource]
    POINTS_SOURCE_CAMPAIGN: _ClassVar[PointsSource]
    POINTS_SOURCE_ACTIVITY: _ClassVar[PointsSource]
    POINTS_SOURCE_REFERRAL: _ClassVar[PointsSource]
    POINTS_SOURCE_LEDGER_OPERATION: _ClassVar[PointsSource]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_POS: Channel
CHANNEL_WEB: Channel
CHANNEL_MOBILE: Channel
CHANNEL_MARKETPLACE: Channel
CHANNEL_SUPPORT: Channel
CHANNEL_OTHER: Channel
TRANSACTION_KIND_UNSPECIFIED: TransactionKind
TRANSACTION_KIND_EARN: TransactionKind
TRANSACTION_KIND_REDEEM: TransactionKind
TRANSACTION_KIND_CAPTURE: TransactionKind
TRANSACTION_KIND_REFUND: TransactionKind
TRANSACTION_KIND_ADJUST: TransactionKind
TRANSACTION_KIND_EXPIRE: TransactionKind
TRANSACTION_KIND_REFERRAL_REWARD: TransactionKind
TRANSACTION_KIND_REVERSAL: TransactionKind
TRANSACTION_KIND_ACTIVITY: TransactionKind
TRANSACTION_KIND_TIER_CHANGE: TransactionKind
POINTS_SOURCE_UNSPECIFIED: PointsSource
POINTS_SOURCE_BASE: PointsSource
POINTS_SOURCE_TIER_BONUS: PointsSource
POINTS_SOURCE_CAMPAIGN: PointsSource
POINTS_SOURCE_ACTIVITY: PointsSource
POINTS_SOURCE_REFERRAL: PointsSource
POINTS_SOURCE_LEDGER_OPERATION: PointsSource

class Balance(_message.Message):
    __slots__ = ("posted", "pending", "held", "available", "expired")
    POSTED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    posted: int
    pending: int
    held: int
    available: int
    expired: int
    def __init__(self, posted: _Optional[int] = ..., pending: _Optional[int] = ..., held: _Optional[int] = ..., available: _Optional[int] = ..., expired: _Optional[int] = ...) -> None: ...

class PointsBreakdown(_message.Message):
    __slots__ = ("source", "points", "campaign_id", "description")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    source: PointsSource
    points: int
    campaign_id: str
    description: str
    def __init__(self, source: _Optional[_Union[PointsSource, str]] = ..., points: _Optional[int] = ..., campaign_id: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("sku", "category", "quantity", "amount")
    SKU_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    sku: str
    category: str
    quantity: int
    amount: int
    def __init__(self, sku: _Optional[str] = ..., category: _Optional[str] = ..., quantity: _Optional[int] = ..., amount: _Optional[int] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "channel", "amount", "currency", "lines", "occurred_at", "store_id", "paid_with_points_amount")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    PAID_WITH_POINTS_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    channel: Channel
    amount: int
    currency: str
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    occurred_at: _timestamp_pb2.Timestamp
    store_id: str
    paid_with_points_amount: int
    def __init__(self, order_id: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., store_id: _Optional[str] = ..., paid_with_points_amount: _Optional[int] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("transaction_id", "member_id", "kind", "points", "breakdown", "channel", "store_id", "order_id", "reason", "idempotency_key", "reverses_transaction_id", "occurred_at", "created_at", "balance_after", "api_key_id", "order_amount", "currency", "sequence", "activity_type", "tier_from", "tier_to")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REVERSES_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIER_FROM_FIELD_NUMBER: _ClassVar[int]
    TIER_TO_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    member_id: str
    kind: TransactionKind
    points: int
    breakdown: _containers.RepeatedCompositeFieldContainer[PointsBreakdown]
    channel: Channel
    store_id: str
    order_id: str
    reason: str
    idempotency_key: str
    reverses_transaction_id: str
    occurred_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    balance_after: int
    api_key_id: str
    order_amount: int
    currency: str
    sequence: int
    activity_type: str
    tier_from: str
    tier_to: str
    def __init__(self, transaction_id: _Optional[str] = ..., member_id: _Optional[str] = ..., kind: _Optional[_Union[TransactionKind, str]] = ..., points: _Optional[int] = ..., breakdown: _Optional[_Iterable[_Union[PointsBreakdown, _Mapping]]] = ..., channel: _Optional[_Union[Channel, str]] = ..., store_id: _Optional[str] = ..., order_id: _Optional[str] = ..., reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reverses_transaction_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., balance_after: _Optional[int] = ..., api_key_id: _Optional[str] = ..., order_amount: _Optional[int] = ..., currency: _Optional[str] = ..., sequence: _Optional[int] = ..., activity_type: _Optional[str] = ..., tier_from: _Optional[str] = ..., tier_to: _Optional[str] = ...) -> None: ...
