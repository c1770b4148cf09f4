"""Rules of TransferPoints: who may send, how much, and which lots the receiver gets.

A transfer debits the sender's available lots soonest-expiry first (ledger.domain.lots) and
credits the receiver with one lot per lot consumed, each keeping its expiry date, so moving
points never extends (nor shortens) their life. Pending and held points are not available,
so they are never transferred. Limits are the program's (TransferRules): points per transfer
and points a member may send, or receive, per calendar month (UTC).
"""

from __future__ import annotations

from datetime import datetime, timezone

from ledger.domain import errors
from ledger.domain.kinds import Role
from ledger.domain.lots import Consumption, Lot, new_lot_points
from ledger.domain.program import TransferRules
from ledger.domain.records import NewLot

# The receiver's lots are named after the transfer: "<transaction id>/000001", ... (a fixed
# width, so verify can find the transaction of such a lot by cutting the suffix off).
LOT_SUFFIX_WIDTH = 7


def received_lot_id(transaction_id: str, n: int) -> str:
    return f"{transaction_id}/{n:06d}"


def month_start(now: datetime) -> datetime:
    """The start of now's calendar month in UTC: the period of the monthly limit."""
    return now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def check_caller(rules: TransferRules, role: Role) -> None:
    """Roles support and admin may transfer; pos only when the program allows it."""
    if not rules.enabled:
        raise errors.refused("TRANSFERS_DISABLED", "this program does not allow point transfers")
    if role is Role.POS and not rules.pos_allowed:
        raise errors.permission_denied(
            "TRANSFER_ROLE_NOT_ALLOWED", "this program does not let pos keys transfer points", role=role.value
        )


def check_members(from_member_id: str, to_member_id: str) -> None:
    if from_member_id == to_member_id:
        raise errors.refused("SAME_MEMBER", f"member {from_member_id!r} cannot transfer points to itself")


def check_limits(rules: TransferRules, points: int, sent_this_month: int, received_this_month: int) -> None:
    """Per transfer, then per month for what the sender sent and the receiver received."""
    if rules.max_points_per_transfer and points > rules.max_points_per_transfer:
        raise errors.refused(
            "TRANSFER_LIMIT_EXCEEDED",
            f"{points} points exceed the program's limit of {rules.max_points_per_transfer} per transfer",
            limit="per_transfer",
            max_points=str(rules.max_points_per_transfer),
        )
    monthly = rules.max_points_per_month
    if monthly and sent_this_month + points > monthly:
        raise errors.refused(
            "TRANSFER_LIMIT_EXCEEDED",
            f"the sender already sent {sent_this_month} points this month; the limit is {monthly}",
            limit="sent_per_month",
            max_points=str(monthly),
            used=str(sent_this_month),
        )
    if monthly and received_this_month + points > monthly:
        raise errors.refused(
            "TRANSFER_LIMIT_EXCEEDED",
            f"the receiver already received {received_this_month} points this month; the limit is {monthly}",
            limit="received_per_month",
            max_points=str(monthly),
            used=str(received_this_month),
        )


def received_lots(
    consumed: tuple[Consumption, ...], lots: dict[str, Lot], receiver_posted: int, transaction_id: str, now: datetime
) -> tuple[NewLot, ...]:
    """The receiver's new lots: one per consumed lot with that lot's expiry date, available now.

    A receiver with a negative balance repays it first (ledger.domain.lots.new_lot_points): the
    repaid points come off the soonest-expiring lots, the ones that would have gone first.
    """
    points = sum(c.points for c in consumed)
    repay = points - new_lot_points(points, receiver_posted)
    made: list[NewLot] = []
    for n, item in enumerate(consumed, start=1):
        take = min(repay, item.points)
        repay -= take
        if item.points - take > 0:
            made.append(
                NewLot(item.points - take, now, lots[item.lot_id].expires_at, lot_id=received_lot_id(transaction_id, n))
            )
    return tuple(made)
