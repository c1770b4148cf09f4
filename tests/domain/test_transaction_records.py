"""A mutating call's result survives its idempotency record: to_json, JSON text, from_json."""

from __future__ import annotations

import json
from datetime import timezone

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.balance import Balance
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.records import TransactionResult, TransactionView

_text = st.text(max_size=20)
_points = st.integers(-(10**12), 10**12)
_instants = st.datetimes(timezones=st.just(timezone.utc))
_lines = st.builds(BreakdownLine, st.sampled_from(PointsSource), _points, _text, _text)

_views = st.builds(
    TransactionView,
    transaction_id=_text,
    member_id=_text,
    kind=st.sampled_from(TransactionKind),
    points=_points,
    breakdown=st.lists(_lines, max_size=4).map(tuple),
    channel=st.sampled_from(Channel),
    store_id=_text,
    order_id=_text,
    order_amount=st.integers(0, 10**12),
    currency=_text,
    reason=_text,
    idempotency_key=_text,
    api_key_id=_text,
    reverses_transaction_id=_text,
    occurred_at=_instants,
    created_at=_instants,
    balance_after=_points,
    sequence=st.integers(0, 10**9),
    activity_type=_text,
    tier_from=_text,
    tier_to=_text,
)
_results = st.builds(TransactionResult, _views, st.builds(Balance, _points, _points, _points))


@given(_results)
def test_a_result_round_trips_through_its_stored_json(result):
    stored = json.loads(json.dumps(result.to_json()))
    assert TransactionResult.from_json(stored) == result


@given(_results)
def test_to_json_leaves_the_result_as_it_was(result):
    before = TransactionResult.from_json(result.to_json())
    data = result.to_json()
    data["transaction"]["breakdown"].append("changed")
    data["transaction"]["points"] = "changed"
    data["balance"]["posted"] = "changed"
    data["transaction"] = None
    assert result == before
