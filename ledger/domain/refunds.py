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
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import PointsSource


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


@dataclass(frozen=True)
class OrderRefundFacts:
    """What a refund of an order decides on, read under the member's lock."""

    earned_points: int
    earned_lines: tuple[BreakdownLine, ...]  # the earn's breakdown
    order_amount: int
    qualifying_spend: int
    refunded_amount_before: int
    # Points of this order already gone: expired, or clawed back by earlier refunds.
    expired_points: int
    refunded_points: int
    member_posted: int
    forbid_negative_balance: bool


@dataclass(frozen=True)
class OrderRefund:
    """The whole decision of one refund: what is clawed back and written off, and what it
    takes back of the order's tier qualification and campaign awards."""

    clawback: int
    written_off: int
    refunded_total_after: int
    spend_clawback: int
    base_clawback: int
    # Per campaign: the awarded points given back to its counters (only what was actually clawed back).
    campaign_returns: dict[str, int]

    def breakdown(self, amount: int, order_amount: int, earned: int) -> tuple[BreakdownLine, ...]:
        """The REFUND transaction's breakdown: the clawback, and what was written off (0 points)."""
        lines = [
            BreakdownLine(
                PointsSource.LEDGER_OPERATION, -self.clawback, f"clawback of {amount}/{order_amount} refunded of {earned} earned"
            )
        ]
        if self.written_off:
            lines.append(BreakdownLine(PointsSource.LEDGER_OPERATION, 0, f"{self.written_off} points written off: already spent"))
        return tuple(lines)


def decide_order_refund(facts: OrderRefundFacts, amount: int) -> OrderRefund:
    """Proportional and cumulative per breakdown line (decide_refund_by_source); never more
    than the order's points still held (what expired or was refunded is gone already), down
    to what the member keeps; under a no-negative-balance policy, only what the member's
    posted balance covers, the rest written off. A campaign gets back its share of what was
    actually clawed back, never of what was written off."""
    source = decide_refund_by_source(
        [line.points for line in facts.earned_lines],
        facts.qualifying_spend,
        facts.order_amount,
        facts.refunded_amount_before,
        amount,
    )
    still_held = facts.earned_points - facts.expired_points - facts.refunded_points
    keep_after = kept_points(facts.earned_points, facts.order_amount, source.refunded_total_after)
    clawback, written_off = min(source.clawback, max(0, still_held - keep_after)), 0
    if facts.forbid_negative_balance:
        clawback, written_off = split_write_off(clawback, max(facts.member_posted, 0))
    base_clawback = sum(
        points for line, points in zip(facts.earned_lines, source.per_line) if line.source is PointsSource.BASE
    )
    total = source.clawback
    returns: dict[str, int] = {}
    for line, points in zip(facts.earned_lines, source.per_line):
        if line.source is not PointsSource.CAMPAIGN or points <= 0:
            continue
        share = points * clawback // total if total else 0
        if share > 0:
            returns[line.campaign_id] = returns.get(line.campaign_id, 0) + share
    return OrderRefund(clawback, written_off, source.refunded_total_after, source.spend_clawback, base_clawback, returns)
