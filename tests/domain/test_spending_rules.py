"""Pure rules for taking points: available never below zero, negative-balance policy, reversibility."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import errors
from ledger.domain.balance import Balance
from ledger.domain.kinds import TransactionKind
from ledger.domain.program import NegativeBalancePolicy
from ledger.domain.spending import check_posting, check_redeemable, check_reversible

points = st.integers(min_value=1, max_value=10**12)
balances = st.builds(Balance, st.integers(-(10**12), 10**12), st.integers(0, 10**12), st.integers(0, 10**12))


@given(balances, points)
def test_redeem_allowed_exactly_when_available(balance, requested):
    if requested <= balance.available:
        check_redeemable(balance, requested)
    else:
        with pytest.raises(errors.LedgerError) as caught:
            check_redeemable(balance, requested)
        assert caught.value.reason == "INSUFFICIENT_POINTS"
        assert caught.value.recorded


@given(balances, st.integers(-(10**12), 10**12))
def test_forbid_policy_never_leaves_a_debit_below_zero(balance, delta):
    try:
        check_posting(balance, delta, NegativeBalancePolicy.FORBID)
    except errors.LedgerError as error:
        assert error.reason in {"NEGATIVE_BALANCE_FORBIDDEN", "BALANCE_OUT_OF_RANGE"}
        return
    assert delta >= 0 or balance.posted + delta >= 0


@given(balances, st.integers(-(10**12), 10**12))
def test_allow_policy_accepts_every_in_range_posting(balance, delta):
    check_posting(balance, delta, NegativeBalancePolicy.ALLOW)


def test_available_is_posted_minus_pending_minus_held():
    assert Balance(posted=100, pending=30, held=20).available == 50


def test_reversal_rules():
    check_reversible(TransactionKind.EARN, "tx_1", None)
    with pytest.raises(errors.LedgerError) as twice:
        check_reversible(TransactionKind.EARN, "tx_1", "tx_2")
    assert twice.value.reason == "TRANSACTION_ALREADY_REVERSED"
    with pytest.raises(errors.LedgerError) as reversal:
        check_reversible(TransactionKind.REVERSAL, "tx_2", None)
    assert reversal.value.reason == "TRANSACTION_NOT_REVERSIBLE"
