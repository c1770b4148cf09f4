"""The whole decision of one refund (ledger.domain.refunds.decide_order_refund). Pure.

What they prove, for any earn split over base and campaign lines and any refund that fits
the order: the clawback never exceeds the order's points still held above what the member
keeps; under FORBID it never exceeds the member's posted balance and the rest is written
off; campaigns get back at most what was clawed back, in proportion; the qualifying spend
and base points come back in proportion to the amount refunded.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import PointsSource
from ledger.domain.refunds import OrderRefundFacts, decide_order_refund, kept_points


@st.composite
def refunds(draw):
    order_amount = draw(st.integers(min_value=1, max_value=10**6))
    base = draw(st.integers(min_value=0, max_value=10**4))
    campaigns = draw(st.lists(st.integers(min_value=0, max_value=10**4), max_size=3))
    lines = (BreakdownLine(PointsSource.BASE, base),) + tuple(
        BreakdownLine(PointsSource.CAMPAIGN, points, campaign_id=f"cmp-{i}") for i, points in enumerate(campaigns)
    )
    earned = sum(line.points for line in lines)
    refunded_before = draw(st.integers(min_value=0, max_value=order_amount))
    amount = draw(st.integers(min_value=1, max_value=order_amount))
    assume(refunded_before + amount <= order_amount)
    kept_before = kept_points(earned, order_amount, refunded_before)
    refunded_points = earned - kept_before
    expired = draw(st.integers(min_value=0, max_value=kept_before))
    facts = OrderRefundFacts(
        earned_points=earned,
        earned_lines=lines,
        order_amount=order_amount,
        qualifying_spend=order_amount,
        refunded_amount_before=refunded_before,
        expired_points=expired,
        refunded_points=refunded_points,
        member_posted=draw(st.integers(min_value=-100, max_value=10**5)),
        forbid_negative_balance=draw(st.booleans()),
    )
    return facts, amount


@given(refunds())
def test_a_refund_never_takes_more_than_is_held_nor_more_than_the_rule(case):
    facts, amount = case
    refund = decide_order_refund(facts, amount)
    held = facts.earned_points - facts.expired_points - facts.refunded_points
    keep_after = kept_points(facts.earned_points, facts.order_amount, refund.refunded_total_after)
    assert 0 <= refund.clawback <= max(0, held - keep_after)
    assert refund.refunded_total_after == facts.refunded_amount_before + amount
    if facts.forbid_negative_balance:
        assert refund.clawback <= max(facts.member_posted, 0)
    else:
        assert refund.written_off == 0


@given(refunds())
def test_campaigns_get_back_at_most_what_was_clawed_back(case):
    facts, amount = case
    refund = decide_order_refund(facts, amount)
    assert all(points > 0 for points in refund.campaign_returns.values())
    assert sum(refund.campaign_returns.values()) <= refund.clawback
    earned_by = {line.campaign_id: line.points for line in facts.earned_lines if line.source is PointsSource.CAMPAIGN}
    assert all(refund.campaign_returns[c] <= earned_by[c] for c in refund.campaign_returns)


@given(refunds())
def test_qualification_comes_back_in_proportion_to_the_amount(case):
    facts, amount = case
    refund = decide_order_refund(facts, amount)
    # Cumulative: the spend kept after the refund is the order's share not refunded.
    kept_spend_before = kept_points(facts.qualifying_spend, facts.order_amount, facts.refunded_amount_before)
    kept_spend_after = kept_points(facts.qualifying_spend, facts.order_amount, refund.refunded_total_after)
    assert refund.spend_clawback == kept_spend_before - kept_spend_after
    base = facts.earned_lines[0].points
    assert 0 <= refund.base_clawback <= base


def test_an_example_with_a_campaign_and_a_written_off_share():
    lines = (BreakdownLine(PointsSource.BASE, 100), BreakdownLine(PointsSource.CAMPAIGN, 100, campaign_id="cmp-a"))
    facts = OrderRefundFacts(200, lines, 10_000, 10_000, 0, 0, 0, 50, True)
    refund = decide_order_refund(facts, 10_000)
    assert (refund.clawback, refund.written_off) == (50, 150)
    assert refund.campaign_returns == {"cmp-a": 25}  # half of what was actually clawed back
    assert refund.breakdown(10_000, 10_000, 200) == (
        BreakdownLine(PointsSource.LEDGER_OPERATION, -50, "clawback of 10000/10000 refunded of 200 earned"),
        BreakdownLine(PointsSource.LEDGER_OPERATION, 0, "150 points written off: already spent"),
    )
