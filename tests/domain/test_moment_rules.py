"""The post-purchase moments' rules (ledger.domain.moments). Pure: no database, no gRPC.

What they prove:
- points.expiring: one moment per member and UTC expiry day within N days, with the day's
  points summed and the first instant; nothing outside (now, now + N]; N = 0 tells nothing;
  the key depends only on the member and the day, so a second run (or lots read in another
  order) asks for the same keys;
- tier.downgrade_warning: only for a review within N days that would move the member down,
  with the threshold less the tier's own window's value as what is needed;
- review.requested: N days after an order, within the catch-up horizon, never for an order
  fully refunded or reversed, once per order (the key is the order);
- member.lapsed: N days after the last order, once per last order.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import moments
from ledger.domain.moments import LATE_HORIZON, OrderFacts
from ledger.domain.program import MomentSettings, ProgramRules
from ledger.domain.tiers import QualifyingTotals, TierDefinition

NOW = datetime(2026, 6, 1, 15, 30, tzinfo=timezone.utc)
DAY = timedelta(days=1)
SETTINGS = MomentSettings()
RULES = ProgramRules("prg", "test")
TIERS = [TierDefinition("Silver", 1_000, qualification_days=90), TierDefinition("Gold", 5_000, qualification_days=90)]


def payload(moment) -> dict:
    return json.loads(moment.payload)


# ---------------------------------------------------------------- points.expiring


def test_lots_expiring_the_same_day_make_one_reminder_with_their_sum():
    lots = [
        (NOW + 10 * DAY, 100),
        (NOW + 10 * DAY + timedelta(hours=2), 50),  # same UTC day
        (NOW + 12 * DAY, 7),
        (NOW + 31 * DAY, 1_000),  # beyond 30 days: not yet
        (NOW - DAY, 5),  # already past: the expiry job's, not a reminder
        (NOW + 5 * DAY, 0),  # nothing left
    ]
    told = moments.points_expiring("m-1", lots, NOW, SETTINGS)
    assert [(payload(m)["expire_date"], payload(m)["points"], payload(m)["days_left"]) for m in told] == [
        ("2026-06-11", 150, 10),
        ("2026-06-13", 7, 12),
    ]
    assert told[0].key == f"points.expiring/m-1/{(datetime(2026, 6, 11, tzinfo=timezone.utc) - moments.EPOCH).days}"
    assert told[0].occurred_at == NOW + 10 * DAY
    assert payload(told[0])["expire_time"] == "2026-06-11T15:30:00Z"


def test_points_expiring_can_be_turned_off():
    assert moments.points_expiring("m-1", [(NOW + DAY, 10)], NOW, MomentSettings(points_expiring_days=0)) == []


lot_lists = st.lists(
    st.tuples(st.integers(-5 * 24, 60 * 24).map(lambda hours: NOW + timedelta(hours=hours)), st.integers(0, 10_000)),
    max_size=20,
)


@given(lot_lists, st.integers(0, 60), st.randoms())
def test_expiring_reminders_cover_exactly_the_points_in_the_window_once_per_day(lots, days, rnd):
    settings = MomentSettings(points_expiring_days=days)
    told = moments.points_expiring("m-1", lots, NOW, settings)
    in_window = [(at, points) for at, points in lots if points > 0 and NOW < at <= NOW + days * DAY]
    assert sum(payload(m)["points"] for m in told) == sum(points for _, points in in_window)
    assert len({m.key for m in told}) == len(told) == len({at.date() for at, _ in in_window})
    shuffled = list(lots)
    rnd.shuffle(shuffled)
    assert moments.points_expiring("m-1", shuffled, NOW, settings) == told  # read order does not matter


# ---------------------------------------------------------------- tier.downgrade_warning


def totals(silver_window_spend: int, gold_window_spend: int | None = None) -> list[QualifyingTotals]:
    return [QualifyingTotals(silver_window_spend, 0), QualifyingTotals(silver_window_spend if gold_window_spend is None else gold_window_spend, 0)]


def test_a_review_within_the_window_that_would_move_down_warns_with_what_is_needed():
    warning = moments.downgrade_warning("m-1", "Gold", NOW + 5 * DAY, TIERS, RULES, totals(3_200), NOW, SETTINGS)
    assert warning is not None
    assert payload(warning) == {
        "tier": "Gold",
        "review_time": "2026-06-06T15:30:00Z",
        "would_move_to": "Silver",
        "basis": "QUALIFYING_SPEND",
        "qualifying_value": 3_200,
        "threshold": 5_000,
        "needed": 1_800,
    }
    assert warning.key == "tier.downgrade_warning/m-1/2026-06-06T15:30:00Z"


def test_no_warning_when_the_tier_is_kept_or_the_review_is_not_near():
    assert moments.downgrade_warning("m-1", "Gold", NOW + 5 * DAY, TIERS, RULES, totals(5_000), NOW, SETTINGS) is None
    assert moments.downgrade_warning("m-1", "Gold", NOW + 20 * DAY, TIERS, RULES, totals(0), NOW, SETTINGS) is None
    assert moments.downgrade_warning("m-1", "Gold", NOW - DAY, TIERS, RULES, totals(0), NOW, SETTINGS) is None
    off = MomentSettings(tier_downgrade_warning_days=0)
    assert moments.downgrade_warning("m-1", "Gold", NOW + DAY, TIERS, RULES, totals(0), NOW, off) is None


def test_losing_every_tier_warns_with_no_tier_to_move_to():
    warning = moments.downgrade_warning("m-1", "Silver", NOW + DAY, TIERS, RULES, totals(400), NOW, SETTINGS)
    assert warning is not None and payload(warning)["would_move_to"] == "" and payload(warning)["needed"] == 600


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_warning_is_given_exactly_when_the_review_would_not_keep_the_tier(silver, gold):
    warning = moments.downgrade_warning("m-1", "Gold", NOW + DAY, TIERS, RULES, totals(silver, gold), NOW, SETTINGS)
    assert (warning is None) == (gold >= 5_000)
    if warning is not None:
        assert payload(warning)["needed"] == 5_000 - gold > 0


# ---------------------------------------------------------------- review.requested


def order(placed: datetime, amount: int = 5_000, refunded: int = 0, reversed_: bool = False) -> OrderFacts:
    return OrderFacts("m-1", "o-1", "tx-1", placed, amount, "USD", "POS", "store-7", refunded, reversed_)


def test_review_is_requested_n_days_after_the_order():
    request = moments.review_request(order(NOW - 10 * DAY - timedelta(minutes=1)), NOW, SETTINGS)
    assert request is not None and request.key == "review.requested/o-1"
    assert payload(request)["order_amount"] == 5_000 and payload(request)["store_id"] == "store-7"
    assert moments.review_request(order(NOW - 9 * DAY), NOW, SETTINGS) is None  # not yet


def test_no_review_request_for_a_fully_refunded_or_reversed_order():
    placed = NOW - 11 * DAY
    assert moments.review_request(order(placed, refunded=5_000), NOW, SETTINGS) is None
    assert moments.review_request(order(placed, reversed_=True), NOW, SETTINGS) is None
    assert moments.review_request(order(placed, refunded=4_999), NOW, SETTINGS) is not None


def test_a_review_request_late_by_more_than_the_horizon_is_not_sent():
    late = NOW - 10 * DAY - LATE_HORIZON - timedelta(seconds=1)
    assert moments.review_request(order(late), NOW, SETTINGS) is None


@given(st.integers(0, 40 * 24 * 60), st.integers(0, 30))
def test_review_request_window(minutes_ago, days):
    placed = NOW - timedelta(minutes=minutes_ago)
    request = moments.review_request(order(placed), NOW, MomentSettings(review_request_days=days))
    due = days > 0 and NOW - days * DAY - LATE_HORIZON < placed <= NOW - days * DAY
    assert (request is not None) == due


# ---------------------------------------------------------------- member.lapsed


def test_a_member_lapses_n_days_after_the_last_order_once_per_last_order():
    last = NOW - 180 * DAY - timedelta(hours=1)
    lapsed = moments.lapse("m-1", "o-9", last, NOW, SETTINGS)
    assert lapsed is not None and payload(lapsed)["days_without_order"] == 180
    assert lapsed.key == moments.lapse("m-1", "o-9", last, NOW + DAY, SETTINGS).key
    assert moments.lapse("m-1", "o-9", NOW - 179 * DAY, NOW, SETTINGS) is None
    assert moments.lapse("m-1", "o-9", last, NOW, MomentSettings(lapsed_days=0)) is None
