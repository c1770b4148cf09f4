"""Pure earning rules: exact integer rounding, breakdown sums, order-time bounds."""

from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import errors
from ledger.domain.earning import OrderFacts, base_points, check_order_time, decide_earn, divide
from ledger.domain.limits import MAX_AMOUNT_MINOR, MAX_POINTS_PER_REQUEST
from ledger.domain.program import EarnRate, ProgramRules, Rounding

amounts = st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR)
rates = st.builds(EarnRate, st.integers(0, 1_000_000), st.integers(1, 1_000_000_000))
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@given(amounts, rates)
def test_round_down_never_creates_points(amount, rate):
    exact = Fraction(amount * rate.points, rate.per_amount)
    points = base_points(amount, rate, Rounding.DOWN)
    assert points <= exact < points + 1


@given(amounts, rates, st.sampled_from(list(Rounding)))
def test_every_rounding_stays_within_one_point_of_exact(amount, rate, rounding):
    exact = Fraction(amount * rate.points, rate.per_amount)
    assert abs(base_points(amount, rate, rounding) - exact) < 1


@given(st.integers(0, 10**12), st.integers(1, 10**6))
def test_half_up_rounds_halves_up(numerator, denominator):
    expected = (2 * numerator + denominator) // (2 * denominator)
    assert divide(numerator, denominator, Rounding.HALF_UP) == expected


@given(amounts, amounts, rates)
def test_more_spend_never_earns_less(a, b, rate):
    low, high = sorted((a, b))
    assert base_points(low, rate, Rounding.DOWN) <= base_points(high, rate, Rounding.DOWN)


@given(amounts, rates, st.sampled_from(list(Rounding)))
def test_breakdown_sums_to_points_or_the_order_is_refused_as_too_large(amount, rate, rounding):
    rules = ProgramRules("p", "p", earn_rate=rate, rounding=rounding)
    if base_points(amount, rate, rounding) > MAX_POINTS_PER_REQUEST:
        with pytest.raises(errors.LedgerError) as caught:
            decide_earn(OrderFacts("o", amount, "USD", NOW), rules)
        assert caught.value.category is errors.Category.INVALID_ARGUMENT
        return
    decision = decide_earn(OrderFacts("o", amount, "USD", NOW), rules)
    assert sum(line.points for line in decision.breakdown) == decision.points


def test_design_example_earns_25_points():
    rules = ProgramRules("p", "p")
    assert decide_earn(OrderFacts("o-1", 2599, "USD", NOW), rules).points == 25


def test_other_currency_is_refused():
    with pytest.raises(errors.LedgerError) as caught:
        decide_earn(OrderFacts("o", 100, "EUR", NOW), ProgramRules("p", "p"))
    assert caught.value.violations[0].field == "order.currency"


@pytest.mark.parametrize(
    "offset, ok",
    [
        (timedelta(minutes=4), True),
        (timedelta(minutes=6), False),
        (-timedelta(days=89), True),
        (-timedelta(days=90, seconds=200), True),  # inside the clock-skew tolerance
        (-timedelta(days=91), False),
    ],
)
def test_order_time_bounds(offset, ok):
    rules = ProgramRules("p", "p", max_backdate_days=90)
    if ok:
        check_order_time(NOW + offset, NOW, rules)
    else:
        with pytest.raises(errors.LedgerError) as caught:
            check_order_time(NOW + offset, NOW, rules)
        assert caught.value.category is errors.Category.INVALID_ARGUMENT
