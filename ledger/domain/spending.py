"""Rules for taking points away: redemptions, adjustments and reversals."""

from __future__ import annotations

from ledger.domain import errors
from ledger.domain.balance import Balance
from ledger.domain.kinds import TransactionKind
from ledger.domain.limits import MAX_ABS_BALANCE
from ledger.domain.program import NegativeBalancePolicy

# A transfer is undone by a transfer back (its receiver may have spent the points meanwhile).
NOT_REVERSIBLE = frozenset({TransactionKind.REVERSAL, TransactionKind.TIER_CHANGE, TransactionKind.TRANSFER})


def check_redeemable(balance: Balance, points: int) -> None:
    """A redeem, hold or capture never takes available below zero, and so never spends
    expired points (Balance.expired: not available, whether or not the expiry job has
    written them off yet). When some are expired, the refusal says how many (`expired`)."""
    if points > balance.available:
        message = f"{points} points requested but only {balance.available} available"
        details = {"requested": str(points), "available": str(balance.available)}
        if balance.expired > 0:
            message += f"; {balance.expired} expired points are not available"
            details["expired"] = str(balance.expired)
        raise errors.refused("INSUFFICIENT_POINTS", message, **details)


def check_posting(balance: Balance, delta: int, policy: NegativeBalancePolicy) -> None:
    """A support adjustment or reversal may push posted below zero only as policy allows."""
    after = balance.posted + delta
    if abs(after) > MAX_ABS_BALANCE:
        raise errors.refused("BALANCE_OUT_OF_RANGE", f"the balance would become {after}, beyond the ledger's range")
    if delta < 0 and after < 0 and policy is NegativeBalancePolicy.FORBID:
        raise errors.refused(
            "NEGATIVE_BALANCE_FORBIDDEN",
            f"the program forbids negative balances; posted would become {after}",
            posted=str(balance.posted),
        )


def check_reversible(kind: TransactionKind, transaction_id: str, reversed_by: str | None) -> None:
    if kind in NOT_REVERSIBLE:
        raise errors.refused(
            "TRANSACTION_NOT_REVERSIBLE",
            f"transaction {transaction_id} is a {kind.value.lower()} and cannot be reversed; adjust instead",
        )
    if reversed_by:
        raise errors.refused(
            "TRANSACTION_ALREADY_REVERSED",
            f"transaction {transaction_id} was already reversed by {reversed_by}",
            reversed_by=reversed_by,
        )
