"""The one path every ledger write takes: postings, entries, the transaction row.

Keeping it single makes group commit possible later and keeps the invariants in
one place: each posting moves the member's cached balance, appends an entry with
the next per-member sequence number and the running balance, in the same
database transaction as the transaction row and the idempotency record.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, update

from ledger.domain.balance import Balance
from ledger.domain.records import NewTransaction, breakdown_to_json
from ledger.store.instants import to_micros
from ledger.store.tables import entries, members, transactions


def append(conn: Connection, program_id: str, tx: NewTransaction) -> dict[str, tuple[int, int]]:
    """Writes tx; returns {member_id: (posted_after, seq)} for every posting.

    The caller holds the row lock of every posted member (taken in member_id order).
    """
    now = to_micros(tx.created_at)
    conn.execute(
        insert(transactions).values(
            program_id=program_id,
            transaction_id=tx.transaction_id,
            member_id=tx.member_id,
            kind=tx.kind.value,
            points=tx.points,
            breakdown=json.dumps([breakdown_to_json(line) for line in tx.breakdown]),
            channel=tx.channel.value,
            store_id=tx.store_id,
            order_id=tx.order_id or None,
            order_amount=tx.order_amount,
            currency=tx.currency,
            reason=tx.reason,
            idempotency_key=tx.idempotency_key,
            api_key_id=tx.api_key_id,
            reverses_transaction_id=tx.reverses_transaction_id or None,
            occurred_at=to_micros(tx.occurred_at),
            created_at=now,
        )
    )
    applied: dict[str, tuple[int, int]] = {}
    for posting in sorted(tx.postings, key=lambda p: p.member_id):
        row = conn.execute(
            update(members)
            .where(members.c.program_id == program_id, members.c.member_id == posting.member_id)
            .values(
                posted=members.c.posted + posting.points,
                last_seq=members.c.last_seq + 1,
                updated_at=now,
            )
            .returning(members.c.posted, members.c.last_seq)
        ).one()
        conn.execute(
            insert(entries).values(
                program_id=program_id,
                member_id=posting.member_id,
                seq=row.last_seq,
                transaction_id=tx.transaction_id,
                kind=tx.kind.value,
                points=posting.points,
                balance_after=row.posted,
                created_at=now,
            )
        )
        applied[posting.member_id] = (row.posted, row.last_seq)
    return applied


def balance_after(before: Balance, posted_after: int) -> Balance:
    return Balance(posted=posted_after, pending=before.pending, held=before.held)
