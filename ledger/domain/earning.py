"""Earning rules: how many points an order earns, and why (the breakdown)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain import errors
from ledger.domain.kinds import PointsSource
from ledger.domain.limits import MAX_FUTURE_SKEW_SECONDS
from ledger.domain.program import EarnRate, ProgramRules, Rounding


@dataclass(frozen=True)
class BreakdownLine:
    source: PointsSource
    points: int
    description: str = ""
    campaign_id: str = ""


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    amount: int
    currency: str
    occurred_at: datetime


@dataclass(frozen=True)
class EarnDecision:
    points: int
    breakdown: tuple[BreakdownLine, ...]


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Exact integer division of non-negative numbers with explicit rounding."""
    quotient, remainder = divmod(numerator, denominator)
    if remainder == 0 or rounding is Rounding.DOWN:
        return quotient
    if rounding is Rounding.UP:
        return quotient + 1
    return quotient + (1 if 2 * remainder >= denominator else 0)


def base_points(amount: int, rate: EarnRate, rounding: Rounding) -> int:
    return divide(amount * rate.points, rate.per_amount, rounding)


def describe_rate(rate: EarnRate, currency: str, rounding: Rounding) -> str:
    return f"{rate.points} point(s) per {rate.per_amount} minor units of {currency}, rounded {rounding.value.lower()}"


def check_order_time(occurred_at: datetime, now: datetime, program: ProgramRules) -> None:
    """Orders are evaluated at occurred_at: never in the future, never older than the program allows."""
    if occurred_at > now + timedelta(seconds=MAX_FUTURE_SKEW_SECONDS):
        raise errors.invalid_field("order.occurred_at", "is in the future")
    if occurred_at < now - timedelta(days=program.max_backdate_days):
        raise errors.invalid_field(
            "order.occurred_at",
            f"is older than the program's backdating bound of {program.max_backdate_days} days",
        )


def decide_earn(order: OrderFacts, program: ProgramRules) -> EarnDecision:
    if order.currency != program.currency:
        raise errors.invalid_field(
            "order.currency", f"must be the program currency {program.currency}, got {order.currency}"
        )
    points = base_points(order.amount, program.earn_rate, program.rounding)
    line = BreakdownLine(
        PointsSource.BASE, points, describe_rate(program.earn_rate, program.currency, program.rounding)
    )
    return EarnDecision(points, (line,))
