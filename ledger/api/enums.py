"""Proto enum numbers <-> domain enums."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from ledger.domain.campaigns import CampaignState, CampaignStatus, StackingMode
from ledger.domain.kinds import Channel, PointsSource, Role, TransactionKind
from ledger.domain.program import (
    ExpiryMode,
    NegativeBalancePolicy,
    Rounding,
    TierBasis,
    TierWindow,
)
from ledger.domain.profiles import ClosePolicy
from ledger.domain.records import MemberStatus
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

# A proto enum's number (its mypy-protobuf ValueType) and the domain enum's member.
V = TypeVar("V", bound=int)
E = TypeVar("E", bound=Enum)


def _by_suffix(proto_enum: _EnumTypeWrapper[V], domain_enum: type[E], prefix: str) -> dict[V, E]:
    return {proto_enum.Value(f"{prefix}{member.value}"): member for member in domain_enum}


CHANNELS = _by_suffix(common_pb2.Channel, Channel, "CHANNEL_")
KINDS = _by_suffix(common_pb2.TransactionKind, TransactionKind, "TRANSACTION_KIND_")
SOURCES = _by_suffix(common_pb2.PointsSource, PointsSource, "POINTS_SOURCE_")
MEMBER_STATUSES = _by_suffix(ledger_pb2.MemberStatus, MemberStatus, "MEMBER_STATUS_")
ROUNDINGS = _by_suffix(programs_pb2.RoundingMode, Rounding, "ROUNDING_MODE_")
NEGATIVE_POLICIES = _by_suffix(
    programs_pb2.NegativeBalancePolicy, NegativeBalancePolicy, "NEGATIVE_BALANCE_POLICY_"
)
EXPIRY_MODES = _by_suffix(programs_pb2.ExpiryMode, ExpiryMode, "EXPIRY_MODE_")
TIER_BASES = _by_suffix(programs_pb2.TierBasis, TierBasis, "TIER_BASIS_")
TIER_WINDOWS = _by_suffix(programs_pb2.TierWindow, TierWindow, "TIER_WINDOW_")
STACKING_MODES = _by_suffix(programs_pb2.StackingMode, StackingMode, "STACKING_MODE_")
# What UpdateCampaign may set (ACTIVE, PAUSED), and what a campaign shows and ListCampaigns
# filters by (SCHEDULED and ENDED too).
CAMPAIGN_STATES = _by_suffix(programs_pb2.Campaign.State, CampaignState, "STATE_")
CAMPAIGN_STATUSES = _by_suffix(programs_pb2.Campaign.State, CampaignStatus, "STATE_")
CLOSE_POLICIES = _by_suffix(programs_pb2.ClosePolicy, ClosePolicy, "CLOSE_POLICY_")
ROLES = {programs_pb2.ApiKeyRole.Value(f"API_KEY_ROLE_{role.name}"): role for role in Role}


def number(mapping: Mapping[V, E], member: E) -> V:
    """The proto number of a domain enum's member."""
    for key, value in mapping.items():
        if value is member:
            return key
    raise KeyError(member)
