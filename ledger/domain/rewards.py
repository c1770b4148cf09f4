"""A reward of the catalog: a points price, an optional window and an optional stock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RewardRecord:
    reward_id: str
    name: str
    points_price: int
    start: datetime | None
    end: datetime | None
    stock: int | None
    redeemed: int

    def to_json(self) -> dict:
        """For a stored response (idempotency records)."""
        return {
            **vars(self),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> RewardRecord:
        instants = {key: datetime.fromisoformat(data[key]) if data[key] else None for key in ("start", "end")}
        return cls(**{**data, **instants})
