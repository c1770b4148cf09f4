"""Referrals: who referred whom, and what became of it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("referee_id", sa.String(128), primary_key=True),
        sa.Column("referrer_id", sa.String(128), nullable=False),
        sa.Column("attributed_at", sa.BigInteger, nullable=False),
        sa.Column("decided_at", sa.BigInteger, nullable=True),
        sa.Column("decision", sa.String(500), nullable=False),
        sa.Column("qualifying_order_id", sa.String(128), nullable=True),
        sa.Column("reward_transaction_id", sa.String(64), nullable=True),
        sa.Column("referrer_points", sa.BigInteger, nullable=False),
        sa.Column("referee_points", sa.BigInteger, nullable=False),
        sa.Column("matures_at", sa.BigInteger, nullable=True),
        sa.Column("reversal_transaction_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_referrals_referrer", "referrals", ["program_id", "referrer_id", "attributed_at"])
    op.create_index("ix_referrals_order", "referrals", ["program_id", "qualifying_order_id"])


def downgrade() -> None:
    op.drop_table("referrals")
