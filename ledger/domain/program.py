"""The program settings that rules read: earn rate, rounding, policies."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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


@dataclass(frozen=True)
class EarnRate:
    """points earned per `per_amount` minor units of the program currency."""

    points: int = 1
    per_amount: int = 100


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
