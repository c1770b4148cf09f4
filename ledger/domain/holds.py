"""Redemption holds at the till: a reservation of available points, captured or voided once.

A hold is open until captured, voided or lapsed. Lapse is decided by time at
the moment of use, so a lagging sweeper never lets a lapsed hold be captured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain import errors

MAX_HOLD_TTL_SECONDS = 7 * 86_400


class HoldState(str, enum.Enum):
    OPEN = "OPEN"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    LAPSED = "LAPSED"


@dataclass(frozen=True)
class HoldFacts:
    hold_id: str
    member_id: str
    points: int
    state: HoldState
    expires_at: datetime
    order_id: str
    captured_points: int
    created_at: datetime

    def to_json(self) -> dict:
        return {
            "hold_id": self.hold_id,
            "member_id": self.member_id,
            "points": self.points,
            "state": self.state.value,
            "expires_at": self.expires_at.isoformat(),
            "order_id": self.order_id,
            "captured_points": self.captured_points,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict) -> "HoldFacts":
        return cls(
            data["hold_id"],
            data["member_id"],
            data["points"],
            HoldState(data["state"]),
            datetime.fromisoformat(data["expires_at"]),
            data["order_id"],
            data["captured_points"],
            datetime.fromisoformat(data["created_at"]),
        )

    def closed(self, state: "HoldState", captured: int = 0) -> "HoldFacts":
        return HoldFacts(
            self.hold_id, self.member_id, self.points, state, self.expires_at, self.order_id, captured, self.created_at
        )

    def effective_state(self, now: datetime) -> HoldState:
        if self.state is HoldState.OPEN and self.expires_at <= now:
            return HoldState.LAPSED
        return self.state


def hold_expiry(now: datetime, requested_ttl: int, default_ttl: int) -> datetime:
    ttl = requested_ttl or default_ttl
    if not 0 < ttl <= MAX_HOLD_TTL_SECONDS:
        raise errors.invalid_field("ttl_seconds", f"must be between 1 and {MAX_HOLD_TTL_SECONDS} seconds")
    return now + timedelta(seconds=ttl)


def check_open(hold: HoldFacts, now: datetime) -> None:
    state = hold.effective_state(now)
    if state is not HoldState.OPEN:
        raise errors.refused(
            "HOLD_NOT_OPEN",
            f"hold {hold.hold_id} is {state.value.lower()}",
            state=state.value,
        )


def capture_points(hold: HoldFacts, requested: int) -> int:
    """0 captures the whole hold; more than held is refused."""
    if requested == 0:
        return hold.points
    if requested > hold.points:
        raise errors.refused(
            "CAPTURE_EXCEEDS_HOLD",
            f"cannot capture {requested} points from a hold of {hold.points}",
            held=str(hold.points),
        )
    return requested
