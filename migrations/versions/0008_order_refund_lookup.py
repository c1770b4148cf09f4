"""Indexes for finding an order's refunds and their reversals.

A refund adds up what was refunded of its order before it, and how many of the order's
points refunds already clawed back; both looked the order's REFUND and REVERSAL
transactions up by order_id, which only the EARN-only unique index covered. Every refund
scanned all of the program's transactions (64 ms at 135 thousand; a 10-million-entry ledger
ran into the statement limit). One partial index per kind holds only those rare rows, so an
Earn pays nothing for them, and each planner (PostgreSQL's and SQLite's) can see that a
query for that kind may use it.

On PostgreSQL they are built CONCURRENTLY, outside a transaction: a plain CREATE INDEX would
block every write to transactions (every Earn and Redeem of the servers still running)
for as long as the build reads the whole table. An index left INVALID by an interrupted
build is dropped and built again when the migration is run again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_INDEXES = {"ix_transactions_order_refunds": "REFUND", "ix_transactions_order_reversals": "REVERSAL"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, kind in _INDEXES.items():
            op.create_index(name, "transactions", ["program_id", "order_id"], sqlite_where=sa.text(f"kind = '{kind}'"))
        return
    with op.get_context().autocommit_block():
        for name, kind in _INDEXES.items():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.create_index(
                name,
                "transactions",
                ["program_id", "order_id"],
                postgresql_where=sa.text(f"kind = '{kind}'"),
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="transactions")
