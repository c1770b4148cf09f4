"""Use case: redeem points immediately (an instant debit at the till or online)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

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


@dataclass(frozen=True)
class RedeemCommand:
    member_id: str
    points: int
    reward_id: str
    order_id: str
    channel: Channel
    store_id: str


def redeem(engine: Engine, caller: Caller, mutation: Mutation, command: RedeemCommand) -> TransactionResult:
    if command.reward_id:
        raise errors.unimplemented("redeeming a catalog reward", "the earning-engine issue adds the catalog")

    def apply(conn: Connection, member: MemberState) -> TransactionResult:
        now = clock.now()
        balance = live_balance(conn, caller.program_id, command.member_id, member.balance.posted, now)
        check_redeemable(balance, command.points)
        tx = NewTransaction(
            transaction_id=credentials.new_id("tx"),
            member_id=command.member_id,
            kind=TransactionKind.REDEEM,
            points=-command.points,
            breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, -command.points, "redeemed"),),
            channel=command.channel,
            idempotency_key=mutation.idempotency_key,
            api_key_id=caller.key_id,
            occurred_at=now,
            created_at=now,
            store_id=command.store_id,
            order_id=command.order_id,
            postings=(lot_postings.debit(conn, caller.program_id, command.member_id, command.points, now),),
        )
        return post(conn, caller.program_id, member, tx)

    return idempotent.execute(
        engine,
        caller,
        mutation,
        lock=lambda conn: lookups.active_member(conn, caller.program_id, command.member_id),
        apply=apply,
        decode=TransactionResult.from_json,
    )
