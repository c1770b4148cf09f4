"""Names shared by every layer: transaction kinds, channels, points sources."""

from __future__ import annotations

import enum


class TransactionKind(str, enum.Enum):
    EARN = "EARN"
    REDEEM = "REDEEM"
    CAPTURE = "CAPTURE"
    REFUND = "REFUND"
    ADJUST = "ADJUST"
    EXPIRE = "EXPIRE"
    REFERRAL_REWARD = "REFERRAL_REWARD"
    REVERSAL = "REVERSAL"
    ACTIVITY = "ACTIVITY"
    TIER_CHANGE = "TIER_CHANGE"
    # Points moved from one member to another (TransferPoints): one transaction, two entries.
    TRANSFER = "TRANSFER"
    # A closed member's remaining points written off (CloseMember under ClosePolicy.FORFEIT).
    FORFEIT = "FORFEIT"


class Channel(str, enum.Enum):
    POS = "POS"
    WEB = "WEB"
    MOBILE = "MOBILE"
    MARKETPLACE = "MARKETPLACE"
    SUPPORT = "SUPPORT"
    OTHER = "OTHER"


class PointsSource(str, enum.Enum):
    BASE = "BASE"
    TIER_BONUS = "TIER_BONUS"
    CAMPAIGN = "CAMPAIGN"
    ACTIVITY = "ACTIVITY"
    REFERRAL = "REFERRAL"
    LEDGER_OPERATION = "LEDGER_OPERATION"
    # Points sent or received by a transfer between members.
    TRANSFER = "TRANSFER"


class Role(str, enum.Enum):
    POS = "pos"
    STOREFRONT = "storefront"
    SUPPORT = "support"
    MARKETING = "marketing"
    ADMIN = "admin"
    # Reads the program's events (loyalty.v1.Events), nothing else.
    EVENTS = "events"
