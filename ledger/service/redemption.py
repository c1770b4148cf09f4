"""Use case: redeem points immediately (an instant debit at the till or online)."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.records import MemberState, NewTransaction, TransactionResult
from ledger.domain.spending import check_redeemable
from ledger.service import clock, idempotent, lookups, lot_postings
from ledger.service.balances import live_balance
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.posting import post
from ledger.store import idempotency, lots, rewards
from ledger.domain.rewards import RewardRecord


_REDEEM_READS = (idempotency.BY_KEY, lots.BALANCE_FACTS, lots.OPEN_LOTS)


@dataclass(frozen=True)
class RedeemCommand:
    member_id: str
    points: int
    reward_id: str
    order_id: str
    channel: Channel
    store_id: str


def _available_reward(conn: Transaction, program_id: str, reward_id: str, now) -> RewardRecord:
    """The reward, row-locked so concurrent redemptions can never oversell its stock."""
    reward = rewards.get(conn, program_id, reward_id, lock=True)
    if reward is None:
        raise errors.not_found("REWARD_NOT_FOUND", f"reward {reward_id!r} does not exist in this program")
    if (reward.start and now < reward.start) or (reward.end and now >= reward.end):
        raise errors.refused("REWARD_NOT_AVAILABLE", f"reward {reward.name!r} is outside its availability window")
    if reward.stock is not None and reward.stock <= 0:
        raise errors.refused("REWARD_OUT_OF_STOCK", f"reward {reward.name!r} is out of stock")
    return reward


def redeem(db: Database, caller: Caller, mutation: Mutation, command: RedeemCommand) -> TransactionResult:
    now = clock.now()

    def lock(conn: Transaction) -> MemberState:
        nonlocal now
        member, now = lookups.locked_member(conn, caller, command.member_id, mutation.idempotency_key, _REDEEM_READS)
        return member

    def apply(conn: Transaction, member: MemberState) -> TransactionResult:
        lookups.require_active(member)
        points, description = command.points, "redeemed"
        reward = None
        if command.reward_id:
            reward = _available_reward(conn, caller.program_id, command.reward_id, now)
            points, description = reward.points_price, f"reward {reward.name} ({reward.reward_id})"
        balance = live_balance(conn, caller.program_id, member, now)
        check_redeemable(balance, points)
        if reward is not None:
            rewards.take_one(conn, caller.program_id, reward.reward_id)
        tx = NewTransaction(
            transaction_id=credentials.new_id("tx"),
            member_id=command.member_id,
            kind=TransactionKind.REDEEM,
            points=-points,
            breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, -points, description),),
            channel=command.channel,
            idempotency_key=mutation.idempotency_key,
            api_key_id=caller.key_id,
            occurred_at=now,
            created_at=now,
            store_id=command.store_id,
            order_id=command.order_id,
            reason=description if reward is not None else "",
            postings=(lot_postings.debit(conn, caller.program_id, command.member_id, points, now),),
        )
        # Spending available lots changes neither pending points, holds nor expired points.
        return post(conn, caller.program_id, member, tx, unspendable=(balance.pending, balance.held, balance.expired))

    return idempotent.execute(
        db, caller, mutation, lock=lock, apply=apply, decode=TransactionResult.from_json, member_id=command.member_id
    )
