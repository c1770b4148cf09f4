"""Reads of the ledger: one transaction, a member's statement page, an order's earn."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, bindparam, literal_column, select

from ledger.domain.kinds import Channel, TransactionKind
from ledger.domain.records import TransactionView, breakdown_from_json
from ledger.store.postgres import prefetch
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import entries, transactions

_STATEMENT_COLUMNS = (
    transactions,
    entries.c.member_id.label("entry_member_id"),
    entries.c.points.label("entry_points"),
    entries.c.balance_after,
    entries.c.seq,
)


def _view(row) -> TransactionView:
    breakdown = tuple(breakdown_from_json(line) for line in json.loads(row.breakdown))
    if row.kind == TransactionKind.TRANSFER.value and row.entry_points > 0:
        # The receiver's side of a transfer (recorded as the sender's): its lines, received.
        breakdown = tuple(
            replace(line, points=-line.points, description=f"transfer from {row.member_id}")
            for line in breakdown
        )
    return TransactionView(
        transaction_id=row.transaction_id,
        member_id=row.entry_member_id,
        kind=TransactionKind(row.kind),
        points=row.entry_points,
        breakdown=breakdown,
        channel=Channel(row.channel),
        store_id=row.store_id,
        order_id=row.order_id or "",
        order_amount=row.order_amount,
        currency=row.currency,
        reason=row.reason,
        idempotency_key=row.idempotency_key,
        api_key_id=row.api_key_id,
        reverses_transaction_id=row.reverses_transaction_id or "",
        occurred_at=from_micros(row.occurred_at),
        created_at=from_micros(row.created_at),
        balance_after=row.balance_after,
        sequence=row.seq,
        activity_type=row.activity_type or "",
        tier_from=row.tier_from or "",
        tier_to=row.tier_to or "",
    )


def _joined():
    return select(*_STATEMENT_COLUMNS).join(
        transactions,
        (transactions.c.program_id == entries.c.program_id)
        & (transactions.c.transaction_id == entries.c.transaction_id),
    )


def entry_view(conn: Connection, program_id: str, member_id: str, seq: int) -> TransactionView:
    row = conn.execute(
        _joined().where(entries.c.program_id == program_id, entries.c.member_id == member_id, entries.c.seq == seq)
    ).one()
    return _view(row)


# The entries by the transaction's id alone, as member_by_code reads a code: the index led
# by transaction_id is then the only one that can find them, whatever the statistics say
# (with entries.program_id in the WHERE clause, the primary key, led by program_id, would
# compete). The program is checked on the rows: transaction ids are random, so another
# program's transaction of the same id is a theoretical case, and it is left out.
_views_of = _joined().where(entries.c.transaction_id == bindparam("transaction_id")).order_by(entries.c.member_id)


def views_of(conn: Connection, program_id: str, transaction_id: str) -> list[TransactionView]:
    """The transaction as seen by each member it posted to."""
    rows = conn.execute(_views_of, {"transaction_id": transaction_id}).all()
    return [_view(row) for row in rows if row.program_id == program_id]


def view_of(conn: Connection, program_id: str, transaction_id: str, member_id: str) -> TransactionView:
    """The transaction as the member it posted to sees it (a replayed answer)."""
    found = [view for view in views_of(conn, program_id, transaction_id) if view.member_id == member_id]
    if not found:
        raise LookupError(f"transaction {transaction_id} of {member_id} is not in the ledger")
    return found[0]


def _is_kind(kind: TransactionKind):
    """kind = '<kind>' written into the statement: the indexes on order_id are partial on the
    kind, and a prepared statement's generic plan (made without its parameters' values) can
    use such an index only if the statement itself names the kind."""
    return transactions.c.kind == literal_column(f"'{kind.value}'")


# Read by every earn: built once, so SQLAlchemy finds it compiled without rebuilding it.
_earn_of_order = select(transactions.c.transaction_id, transactions.c.member_id).where(
    transactions.c.program_id == bindparam("program_id"),
    transactions.c.order_id == bindparam("order_id"),
    _is_kind(TransactionKind.EARN),
)


EARN_OF_ORDER = prefetch.Read("earn_of_order", _earn_of_order, ("program_id", "order_id"))


def earn_of_order(conn: Connection, program_id: str, order_id: str) -> tuple[str, str] | None:
    """(transaction_id, member_id) of the order's earn, if it earned."""
    row = prefetch.read(conn, EARN_OF_ORDER, {"program_id": program_id, "order_id": order_id})
    return (row.transaction_id, row.member_id) if row else None


def reversal_of(conn: Connection, program_id: str, transaction_id: str) -> str | None:
    row = conn.execute(
        select(transactions.c.transaction_id).where(
            transactions.c.program_id == program_id, transactions.c.reverses_transaction_id == transaction_id
        )
    ).first()
    return row.transaction_id if row else None


_NO_SEQ_LIMIT = 2**63 - 1
_page_of_member = _joined().where(
    entries.c.program_id == bindparam("program_id"),
    entries.c.member_id == bindparam("member_id"),
    entries.c.seq < bindparam("before_seq"),
)
# The unfiltered page, the one storefronts ask for: built once, so SQLAlchemy finds it compiled.
_plain_page = _page_of_member.order_by(entries.c.seq.desc()).limit(bindparam("limit"))


def statement_page(
    conn: Connection,
    program_id: str,
    member_id: str,
    *,
    before_seq: int | None,
    limit: int,
    kinds: tuple[TransactionKind, ...],
    created_after: datetime | None,
    created_before: datetime | None,
) -> list[TransactionView]:
    """Newest first by the member's entry sequence: stable while new entries arrive."""
    params = {
        "program_id": program_id,
        "member_id": member_id,
        "before_seq": before_seq if before_seq is not None else _NO_SEQ_LIMIT,
        "limit": limit,
    }
    if not (kinds or created_after or created_before):
        return [_view(row) for row in conn.execute(_plain_page, params)]
    query = _page_of_member
    if kinds:
        query = query.where(entries.c.kind.in_([k.value for k in kinds]))
    if created_after is not None:
        query = query.where(entries.c.created_at >= to_micros(created_after))
    if created_before is not None:
        query = query.where(entries.c.created_at < to_micros(created_before))
    rows = conn.execute(query.order_by(entries.c.seq.desc()).limit(bindparam("limit")), params).all()
    return [_view(row) for row in rows]


def refunded_amount(conn: Connection, program_id: str, order_id: str) -> int:
    """Amount refunded so far for an order: REFUND transactions record it as order_amount;
    a reversed refund no longer counts."""
    refunds = select(transactions.c.transaction_id, transactions.c.order_amount).where(
        transactions.c.program_id == program_id,
        transactions.c.order_id == order_id,
        _is_kind(TransactionKind.REFUND),
    )
    reversed_ids = select(transactions.c.reverses_transaction_id).where(
        transactions.c.program_id == program_id,
        transactions.c.order_id == order_id,
        _is_kind(TransactionKind.REVERSAL),
        transactions.c.reverses_transaction_id.is_not(None),
    )
    rows = conn.execute(refunds).all()
    reversed_set = {row[0] for row in conn.execute(reversed_ids).all()}
    return sum(row.order_amount for row in rows if row.transaction_id not in reversed_set)


def activity_count(conn: Connection, program_id: str, member_id: str, activity_type: str, since: datetime) -> int:
    """Rewarded activities of a type since an instant (a reversed one still counts: it was rewarded)."""
    from sqlalchemy import func

    return conn.execute(
        select(func.count()).where(
            transactions.c.program_id == program_id,
            transactions.c.member_id == member_id,
            transactions.c.kind == TransactionKind.ACTIVITY.value,
            transactions.c.occurred_at > to_micros(since),
            transactions.c.activity_type == activity_type,
        )
    ).scalar_one()


def order_points_removed(conn: Connection, program_id: str, member_id: str, earn_id: str, order_id: str) -> tuple[int, int]:
    """(points of the earn's own lot that expired, points already clawed back by refunds of the order)."""
    from sqlalchemy import func

    from ledger.store.tables import lot_consumptions

    expired = conn.execute(
        select(func.coalesce(func.sum(lot_consumptions.c.points), 0))
        .select_from(
            lot_consumptions.join(
                transactions,
                (transactions.c.program_id == lot_consumptions.c.program_id)
                & (transactions.c.transaction_id == lot_consumptions.c.transaction_id),
            )
        )
        .where(
            lot_consumptions.c.program_id == program_id,
            lot_consumptions.c.member_id == member_id,
            lot_consumptions.c.lot_id == earn_id,
            transactions.c.kind == TransactionKind.EXPIRE.value,
        )
    ).scalar_one()
    refunded = conn.execute(
        select(func.coalesce(func.sum(transactions.c.points), 0)).where(
            transactions.c.program_id == program_id,
            transactions.c.order_id == order_id,
            _is_kind(TransactionKind.REFUND),
        )
    ).scalar_one()
    return int(expired), -int(refunded)


def has_earned(conn: Connection, program_id: str, member_id: str) -> bool:
    row = conn.execute(
        select(transactions.c.transaction_id)
        .where(
            transactions.c.program_id == program_id,
            transactions.c.member_id == member_id,
            transactions.c.kind == TransactionKind.EARN.value,
        )
        .limit(1)
    ).first()
    return row is not None
