"""A member's balance and the rule that available never goes below zero by a spend."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Balance:
    posted: int = 0
    pending: int = 0
    held: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.pending - self.held

    def with_posted(self, delta: int) -> "Balance":
        return Balance(self.posted + delta, self.pending, self.held)
