"""A member's balance and the rule that available never goes below zero by a spend."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Balance:
    """posted: the sum of the member's entries. pending: points of lots still inside their
    return window. held: points reserved by open holds. expired: points of lots already
    expired (past their date, or all of an inactive member's) that the expiry job has not
    written off yet; still in posted until it does, never available."""

    posted: int = 0
    pending: int = 0
    held: int = 0
    expired: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.pending - self.held - self.expired

    def with_posted(self, delta: int) -> "Balance":
        return Balance(self.posted + delta, self.pending, self.held, self.expired)
