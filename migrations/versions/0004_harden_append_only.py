"""Harden the append-only guards.

PostgreSQL: triggers fire even with session_replication_role=replica (ENABLE ALWAYS),
so a superuser cannot slip an UPDATE past them that way.
SQLite: INSERT OR REPLACE deletes the old row without firing DELETE triggers
(unless recursive_triggers is on), so a BEFORE INSERT trigger refuses an insert
that would replace an existing ledger row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PRIMARY_KEYS = {
    "transactions": ("program_id", "transaction_id"),
    "entries": ("program_id", "member_id", "seq"),
    "idempotency_records": ("program_id", "idempotency_key"),
    "lot_consumptions": ("program_id", "member_id", "transaction_id", "lot_id"),
    "qualifying_events": ("program_id", "member_id", "transaction_id"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in PRIMARY_KEYS:
            op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only")
            op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate")
        return
    for table, key in PRIMARY_KEYS.items():
        match = " AND ".join(f"{column} = NEW.{column}" for column in key)
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {match}) "
            f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: replacing a row refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in PRIMARY_KEYS:
            op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")
            op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_no_truncate")
        return
    for table in PRIMARY_KEYS:
        op.execute(f"DROP TRIGGER {table}_no_replace")
