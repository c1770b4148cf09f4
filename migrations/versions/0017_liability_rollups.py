"""Liability rollups: the points issued by source per settled day, summed once.

The liability report's scan by source parses every earn's breakdown (JSON): over ten million
orders it was most of the report's time, and it grows with the ledger. Transactions are
append-only and stamped with the time they are recorded, so a day that ended a while ago
(ledger.store.liability.SETTLED_AFTER) never changes: its sums are kept in
liability_day_sources, and liability_rollups says up to which day (exclusive) they are
complete. The report reads those and scans only what came after. Both start empty: the
first report rolls up the program's history.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "liability_day_sources",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.BigInteger, primary_key=True),
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("points", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "liability_rollups",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("sources_until_day", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("liability_rollups")
    op.drop_table("liability_day_sources")
