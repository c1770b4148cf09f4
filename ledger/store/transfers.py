"""Reads for TransferPoints: the points a member sent or received by transfers since an instant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from ledger.domain.kinds import TransactionKind
from ledger.store.instants import to_micros
from ledger.store.tables import entries


def moved_since(conn: Connection, program_id: str, member_id: str, since: datetime) -> tuple[int, int]:
    """(points sent, points received) by the member's transfers recorded at or after `since`,
    from the member's own entries (read under the member's row lock, so exact)."""
    row = conn.execute(
        select(
            func.coalesce(func.sum(-entries.c.points).filter(entries.c.points < 0), 0),
            func.coalesce(func.sum(entries.c.points).filter(entries.c.points > 0), 0),
        ).where(
            entries.c.program_id == program_id,
            entries.c.member_id == member_id,
            entries.c.kind == TransactionKind.TRANSFER.value,
            entries.c.created_at >= to_micros(since),
        )
    ).one()
    return int(row[0]), int(row[1])
