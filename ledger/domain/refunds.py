"""Refund clawback: how many earned points a (partial) refund takes back.

Cumulative, so a sequence of partial refunds telescopes: after refunding a
total R of an order of amount A that earned E points, the member keeps
floor(E * (A - R) / A). Rounding therefore never leaves the member more than
the proportional share (never creates points), and the clawbacks of any
sequence of refunds sum to at most E, exactly E once the whole order is refunded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain import errors


@dataclass(frozen=True)
class RefundDecision:
    clawback: int
    refunded_total_after: int


def kept_points(earned: int, order_amount: int, refunded_total: int) -> int:
    return (earned * (order_amount - refunded_total)) // order_amount


def decide_refund(earned: int, order_amount: int, refunded_before: int, refund_amount: int) -> RefundDecision:
    if refunded_before + refund_amount > order_amount:
        raise errors.refused(
            "REFUND_EXCEEDS_ORDER",
            f"refunding {refund_amount} more would exceed the order amount {order_amount} "
            f"({refunded_before} already refunded)",
            order_amount=str(order_amount),
            refunded=str(refunded_before),
        )
    after = refunded_before + refund_amount
    clawback = kept_points(earned, order_amount, refunded_before) - kept_points(earned, order_amount, after)
    return RefundDecision(clawback, after)


def split_write_off(clawback: int, collectable: int) -> tuple[int, int]:
    """Under a no-negative-balance policy: (points clawed back, points written off)."""
    taken = max(0, min(clawback, collectable))
    return taken, clawback - taken


@dataclass(frozen=True)
class SourceRefund:
    """A refund applied to each line of an earn's breakdown (base, tier bonus, each campaign)."""

    per_line: tuple[int, ...]
    spend_clawback: int
    refunded_total_after: int

    @property
    def clawback(self) -> int:
        return sum(self.per_line)


def decide_refund_by_source(
    line_points: list[int], qualifying_spend: int, order_amount: int, refunded_before: int, refund_amount: int
) -> SourceRefund:
    """The same cumulative rule applied to every breakdown line and to the qualifying spend,
    so campaign counters and tier qualification are undone in proportion too."""
    per_line = tuple(
        decide_refund(points, order_amount, refunded_before, refund_amount).clawback if points > 0 else 0
        for points in line_points
    )
    spend = decide_refund(qualifying_spend, order_amount, refunded_before, refund_amount)
    return SourceRefund(per_line, spend.clawback, spend.refunded_total_after)
