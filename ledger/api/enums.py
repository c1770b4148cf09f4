"""Proto enum numbers <-> domain enums."""

from __future__ import annotations

from ledger.domain.campaigns import CampaignState, CampaignStatus, StackingMode
from ledger.domain.kinds import Channel, PointsSource, Role, TransactionKind
from ledger.domain.program import (
    ExpiryMode,
    NegativeBalancePolicy,
    Rounding,
    TierBasis,
    TierWindow,
)
from ledger.domain.records import MemberStatus
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2


def _by_suffix(proto_enum, domain_enum, prefix: str) -> dict[int, object]:
    mapping = {}
    for member in domain_enum:
        mapping[proto_enum.Value(f"{prefix}{member.value}")] = member
    return mapping


CHANNELS: dict[int, Channel] = _by_suffix(common_pb2.Channel, Channel, "CHANNEL_")
KINDS: dict[int, TransactionKind] = _by_suffix(common_pb2.TransactionKind, TransactionKind, "TRANSACTION_KIND_")
SOURCES: dict[int, PointsSource] = _by_suffix(common_pb2.PointsSource, PointsSource, "POINTS_SOURCE_")
MEMBER_STATUSES: dict[int, MemberStatus] = _by_suffix(ledger_pb2.MemberStatus, MemberStatus, "MEMBER_STATUS_")
ROUNDINGS: dict[int, Rounding] = _by_suffix(programs_pb2.RoundingMode, Rounding, "ROUNDING_MODE_")
NEGATIVE_POLICIES: dict[int, NegativeBalancePolicy] = _by_suffix(
    programs_pb2.NegativeBalancePolicy, NegativeBalancePolicy, "NEGATIVE_BALANCE_POLICY_"
)
EXPIRY_MODES: dict[int, ExpiryMode] = _by_suffix(programs_pb2.ExpiryMode, ExpiryMode, "EXPIRY_MODE_")
TIER_BASES: dict[int, TierBasis] = _by_suffix(programs_pb2.TierBasis, TierBasis, "TIER_BASIS_")
TIER_WINDOWS: dict[int, TierWindow] = _by_suffix(programs_pb2.TierWindow, TierWindow, "TIER_WINDOW_")
STACKING_MODES: dict[int, StackingMode] = _by_suffix(programs_pb2.StackingMode, StackingMode, "STACKING_MODE_")
# What UpdateCampaign may set (ACTIVE, PAUSED), and what a campaign shows and ListCampaigns
# filters by (SCHEDULED and ENDED too).
CAMPAIGN_STATES: dict[int, CampaignState] = _by_suffix(programs_pb2.Campaign.State, CampaignState, "STATE_")
CAMPAIGN_STATUSES: dict[int, CampaignStatus] = _by_suffix(programs_pb2.Campaign.State, CampaignStatus, "STATE_")
ROLES: dict[int, Role] = {programs_pb2.ApiKeyRole.Value(f"API_KEY_ROLE_{role.name}"): role for role in Role}


def number(mapping: dict[int, object], member: object) -> int:
    for key, value in mapping.items():
        if value is member:
            return key
    raise KeyError(member)
