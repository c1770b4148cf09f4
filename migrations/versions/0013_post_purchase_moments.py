"""The post-purchase moments: the keys that make each moment told once, and orders by time.

moment_keys holds one row per moment told (ledger.domain.moments: `points.expiring/<member>/
<date>`, `review.requested/<order>`, ...), inserted in the transaction that writes the moment's
event: a key that is there was told, and a second due-work run, on this process or a new
leader's, finds it and tells nothing (exactly once). due_at lets the due work forget keys
long past, when no scan looks that far back any more (by a scan, once per run: an index
on due_at would cost every moment told).

ix_transactions_earns_by_time finds a program's orders placed in a time range (the review
requests N days after an order, the lapse N days after a member's last one) without reading
every transaction: earns only (a partial index), led by occurred_at (0011's rule: program_id
leads no index of transactions but its primary key). PostgreSQL builds it CONCURRENTLY, so
writes go on while it is built; an interrupted build leaves an invalid index that the next
run drops and builds again.

The moments' settings (each N in days) live in the program's JSON settings with the other
rules (ledger.domain.program.MomentSettings): a program without them has the defaults.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_INDEX = "ix_transactions_earns_by_time"
# `occurred_at >= 0` (true of every earn) keeps other lookups of earns out of this index: only
# a query that states it too can enter it (on statistics that know none of a program's rows,
# an order's earn lookup walked it by program_id otherwise).
_WHERE = "kind = 'EARN' AND occurred_at >= 0"


def upgrade() -> None:
    op.create_table(
        "moment_keys",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("moment_key", sa.String(256), primary_key=True),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(_INDEX, "transactions", ["occurred_at", "program_id"], sqlite_where=sa.text(_WHERE))
        return
    with op.get_context().autocommit_block():
        valid = op.get_bind().execute(
            sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": _INDEX}
        ).scalar()
        if valid:
            return
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_INDEX}")  # a build cut short
        op.create_index(
            _INDEX,
            "transactions",
            ["occurred_at", "program_id"],
            postgresql_where=sa.text(_WHERE),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_INDEX}")
    else:
        op.drop_index(_INDEX, table_name="transactions")
    op.drop_table("moment_keys")
