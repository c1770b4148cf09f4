"""ledger.domain.transfers: the receiver's lots keep each consumed lot's expiry date and hold
exactly the points a credit may put in lots; limits and roles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import LedgerError
from ledger.domain.kinds import Role
from ledger.domain.lots import Consumption, Lot, new_lot_points
from ledger.domain.program import TransferRules
from ledger.domain.transfers import check_caller, check_limits, month_start, received_lot_id, received_lots

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=timezone.utc)


@given(
    takes=st.lists(st.tuples(st.integers(1, 1000), st.one_of(st.none(), st.integers(1, 900))), min_size=1, max_size=20),
    receiver_posted=st.integers(-5000, 5000),
)
def test_received_lots_keep_expiry_and_hold_what_a_credit_may(takes, receiver_posted):
    lots = {
        f"tx_{i}": Lot(f"tx_{i}", points, NOW, NOW + timedelta(days=days) if days else None)
        for i, (points, days) in enumerate(takes)
    }
    consumed = tuple(Consumption(f"tx_{i}", points) for i, (points, _) in enumerate(takes))
    made = received_lots(consumed, lots, receiver_posted, "tx_t", NOW)
    total = sum(c.points for c in consumed)
    assert sum(lot.points for lot in made) == new_lot_points(total, receiver_posted)
    assert all(lot.points > 0 and lot.available_at == NOW for lot in made)
    assert len({lot.lot_id for lot in made}) == len(made)
    by_id = {received_lot_id("tx_t", n): lots[c.lot_id] for n, c in enumerate(consumed, start=1)}
    assert all(lot.expires_at == by_id[lot.lot_id].expires_at for lot in made)
    # A negative balance is repaid from the first (soonest-expiring) lots.
    if made and receiver_posted < 0:
        assert made[-1].lot_id == received_lot_id("tx_t", len(consumed))


def test_lot_ids_have_a_fixed_width_suffix():
    assert received_lot_id("tx_ab", 1) == "tx_ab/000001"
    assert len(received_lot_id("tx_ab", 999_999)) == len("tx_ab") + 7


def test_limits_per_transfer_and_month():
    rules = TransferRules(max_points_per_transfer=100, max_points_per_month=250)
    check_limits(rules, 100, 150, 150)
    for points, sent, received, which in ((101, 0, 0, "per_transfer"), (100, 151, 0, "sent_per_month"),
                                          (100, 0, 151, "received_per_month")):
        with pytest.raises(LedgerError) as caught:
            check_limits(rules, points, sent, received)
        assert caught.value.reason == "TRANSFER_LIMIT_EXCEEDED" and caught.value.metadata["limit"] == which
    check_limits(TransferRules(), 10**12, 10**15, 10**15)


def test_roles_and_month():
    check_caller(TransferRules(), Role.SUPPORT)
    with pytest.raises(LedgerError, match="TRANSFER_ROLE_NOT_ALLOWED"):
        check_caller(TransferRules(), Role.POS)
    check_caller(TransferRules(pos_allowed=True), Role.POS)
    with pytest.raises(LedgerError, match="TRANSFERS_DISABLED"):
        check_caller(TransferRules(enabled=False), Role.ADMIN)
    assert month_start(NOW) == datetime(2026, 12, 1, tzinfo=timezone.utc)
