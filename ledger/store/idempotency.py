"""Idempotency records: the durable answer to every applied or refused request.

A record is claimed with INSERT ... ON CONFLICT DO NOTHING in the same database
transaction as the effect, so an effect exists exactly when its record does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from ledger.store import pg_copy
from ledger.store.instants import to_micros
from ledger.store.tables import idempotency_records


@dataclass(frozen=True)
class StoredOutcome:
    method: str
    request_hash: str
    outcome: dict


def find(conn: Connection, program_id: str, key: str) -> StoredOutcome | None:
    row = conn.execute(
        select(idempotency_records.c.method, idempotency_records.c.request_hash, idempotency_records.c.outcome).where(
            idempotency_records.c.program_id == program_id, idempotency_records.c.idempotency_key == key
        )
    ).first()
    if row is None:
        return None
    return StoredOutcome(row.method, row.request_hash, json.loads(row.outcome))


def claim(
    conn: Connection, program_id: str, key: str, method: str, request_hash: str, outcome: dict, now: datetime
) -> bool:
    """Records the outcome under key; False if another request holds the key already."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(idempotency_records)
        .values(
            program_id=program_id,
            idempotency_key=key,
            method=method,
            request_hash=request_hash,
            outcome=json.dumps(outcome, separators=(",", ":")),
            created_at=to_micros(now),
        )
        .on_conflict_do_nothing(index_elements=["program_id", "idempotency_key"])
        .returning(idempotency_records.c.idempotency_key)
    )
    return conn.execute(statement).first() is not None


def claim_many(conn: Connection, records: list[tuple[str, str, str, str, dict]], now: datetime) -> None:
    """Records system-made transactions (program_id, key, method, request_hash, outcome); keys are fresh.
    On PostgreSQL they go in through COPY (ledger.store.pg_copy)."""
    if not records:
        return
    rows = [
        dict(
            program_id=program_id,
            idempotency_key=key,
            method=method,
            request_hash=request_hash,
            outcome=json.dumps(outcome, separators=(",", ":")),
            created_at=to_micros(now),
        )
        for program_id, key, method, request_hash, outcome in records
    ]
    if conn.dialect.name == "postgresql":
        pg_copy.copy_rows(conn, "idempotency_records", rows)
    else:
        conn.execute(insert(idempotency_records), rows)
