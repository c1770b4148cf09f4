"""An index for finding an order's refunds and their reversals.

A refund adds up what was refunded of its order before it, and how many of the order's
points refunds already clawed back; both looked the order's REFUND and REVERSAL
transactions up by order_id, which only the EARN-only unique index covered. Every refund
scanned all of the program's transactions (64 ms at 135 thousand; a 10-million-entry ledger
ran into the statement limit). Partial, so the index holds only those rare rows and costs
an Earn nothing.

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

_REFUNDS_AND_REVERSALS = "kind IN ('REFUND', 'REVERSAL')"


def upgrade() -> None:
    op.create_index(
        "ix_transactions_order_refunds",
        "transactions",
        ["program_id", "order_id"],
        postgresql_where=sa.text(_REFUNDS_AND_REVERSALS),
        sqlite_where=sa.text(_REFUNDS_AND_REVERSALS),
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_order_refunds", table_name="transactions")
