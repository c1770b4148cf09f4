"""Idempotency records: the durable answer to every applied or refused request.

A record is inserted in the same database transaction as the effect, so an effect
exists exactly when its record does; two requests racing for one key cannot both commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select

from ledger.store.postgres import bulk_copy, prefetch, write_behind
from ledger.store.instants import to_micros
from ledger.store.tables import idempotency_records


@dataclass(frozen=True)
class StoredOutcome:
    method: str
    request_hash: str
    outcome: dict


# Built once: SQLAlchemy then finds them compiled without rebuilding them.
_by_key = select(
    idempotency_records.c.method, idempotency_records.c.request_hash, idempotency_records.c.outcome
).where(
    idempotency_records.c.program_id == bindparam("program_id"),
    idempotency_records.c.idempotency_key == bindparam("key"),
)


_insert_record = insert(idempotency_records)


BY_KEY = prefetch.Read("idempotency_record", _by_key, ("program_id", "key"))


def find(conn: Connection, program_id: str, key: str) -> StoredOutcome | None:
    row = prefetch.read(conn, BY_KEY, {"program_id": program_id, "key": key})
    if row is None:
        return None
    return StoredOutcome(row.method, row.request_hash, json.loads(row.outcome))


def _row(program_id: str, key: str, method: str, request_hash: str, outcome: dict, now: datetime) -> dict:
    return dict(
        program_id=program_id,
        idempotency_key=key,
        method=method,
        request_hash=request_hash,
        outcome=json.dumps(outcome, separators=(",", ":")),
        created_at=to_micros(now),
    )


def record(
    conn: Connection, program_id: str, key: str, method: str, request_hash: str, outcome: dict, now: datetime
) -> None:
    """Records the outcome under key, with the operation's other writes (write_behind). A key
    another request recorded meanwhile fails the transaction on the primary key."""
    write_behind.execute(conn, _insert_record, _row(program_id, key, method, request_hash, outcome, now))


def claim_many(conn: Connection, records: list[tuple[str, str, str, str, dict]], now: datetime) -> None:
    """Records the outcomes of transactions the ledger itself made (program_id, key, method,
    request_hash, outcome) under their system keys (a referral's reward, a tier's change, a
    closing member's forfeit), at once; on PostgreSQL through COPY (ledger.store.postgres.bulk_copy).
    An expiry has no record (ledger.domain.expiry.expiry_key)."""
    if not records:
        return
    rows = [_row(*record, now) for record in records]
    if conn.dialect.name == "postgresql":
        bulk_copy.copy_rows(conn, "idempotency_records", rows)
    else:
        conn.execute(insert(idempotency_records), rows)
