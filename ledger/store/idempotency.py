"""Idempotency records: the durable answer to every applied or refused request.

A record is claimed with INSERT ... ON CONFLICT DO NOTHING in the same database
transaction as the effect, so an effect exists exactly when its record does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

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


def _claim_statement(dialect):
    return (
        dialect.insert(idempotency_records)
        .on_conflict_do_nothing(index_elements=["program_id", "idempotency_key"])
        .returning(idempotency_records.c.idempotency_key)
    )


_claim = {"postgresql": _claim_statement(postgresql), "sqlite": _claim_statement(sqlite)}


def find(conn: Connection, program_id: str, key: str) -> StoredOutcome | None:
    row = conn.execute(_by_key, {"program_id": program_id, "key": key}).first()
    if row is None:
        return None
    return StoredOutcome(row.method, row.request_hash, json.loads(row.outcome))


def claim(
    conn: Connection, program_id: str, key: str, method: str, request_hash: str, outcome: dict, now: datetime
) -> bool:
    """Records the outcome under key; False if another request holds the key already."""
    row = dict(
        program_id=program_id,
        idempotency_key=key,
        method=method,
        request_hash=request_hash,
        outcome=json.dumps(outcome, separators=(",", ":")),
        created_at=to_micros(now),
    )
    return conn.execute(_claim[conn.dialect.name], row).first() is not None


def claim_many(conn: Connection, records: list[tuple[str, str, str, str, dict]], now: datetime) -> None:
    """Records system-made transactions (program_id, key, method, request_hash, outcome); keys are fresh."""
    if not records:
        return
    from sqlalchemy import insert

    conn.execute(
        insert(idempotency_records),
        [
            dict(
                program_id=program_id,
                idempotency_key=key,
                method=method,
                request_hash=request_hash,
                outcome=json.dumps(outcome, separators=(",", ":")),
                created_at=to_micros(now),
            )
            for program_id, key, method, request_hash, outcome in records
        ],
    )
