"""Writes a decided transaction through the single ledger write path and builds its result."""

from __future__ import annotations

from dataclasses import replace

from ledger.store.database import Transaction

from ledger.domain.balance import Balance
from ledger.domain.expiry import activity_after
from ledger.domain.records import (
    MemberState,
    NewTransaction,
    TransactionResult,
    TransactionView,
)
from ledger.service import clock
from ledger.service.balances import live_balance
from ledger.store import ledger_writes, members


def post(
    conn: Transaction,
    program_id: str,
    member: MemberState,
    tx: NewTransaction,
    *,
    unspendable: tuple[int, int, int] | None = None,
) -> TransactionResult:
    """unspendable: the member's pending, held and expired points after tx, when the caller
    knows them (then they are not read again)."""
    applied = ledger_writes.append(conn, program_id, tx)
    posted_after, seq = applied[member.member_id]
    view = TransactionView(
        transaction_id=tx.transaction_id,
        member_id=member.member_id,
        kind=tx.kind,
        points=sum(p.points for p in tx.postings if p.member_id == member.member_id),
        breakdown=tx.breakdown,
        channel=tx.channel,
        store_id=tx.store_id,
        order_id=tx.order_id,
        order_amount=tx.order_amount,
        currency=tx.currency,
        reason=tx.reason,
        idempotency_key=tx.idempotency_key,
        api_key_id=tx.api_key_id,
        reverses_transaction_id=tx.reverses_transaction_id,
        occurred_at=tx.occurred_at,
        created_at=tx.created_at,
        balance_after=posted_after,
        sequence=seq,
        activity_type=tx.activity_type,
        tier_from=tx.tier_from,
        tier_to=tx.tier_to,
    )
    if unspendable is None:
        after = replace(
            member,
            balance=Balance(posted=posted_after),
            last_activity_at=activity_after(member.last_activity_at, tx.kind, tx.occurred_at),
        )
        balance = live_balance(conn, program_id, after, tx.created_at)
    else:
        pending, held, expired = unspendable
        balance = Balance(posted=posted_after, pending=pending, held=held, expired=expired)
    return TransactionResult(view, balance)


def refreshed(conn: Transaction, program_id: str, result: TransactionResult) -> TransactionResult:
    """The same transaction with the member's balance as it stands now, after follow-up
    postings in the same database transaction (a referral reward or its reversal)."""
    state = members.get(conn, program_id, result.transaction.member_id)
    assert state is not None
    balance = live_balance(conn, program_id, state, clock.now())
    return TransactionResult(result.transaction, balance)
