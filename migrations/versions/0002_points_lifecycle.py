"""Points lifecycle: lots (pending and expiry), lot consumptions, redemption holds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lots",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("lot_id", sa.String(64), primary_key=True),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.Column("available_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("order_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_lots_due",
        "lots",
        ["expires_at"],
        postgresql_where=sa.text("remaining > 0 AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("remaining > 0 AND expires_at IS NOT NULL"),
    )
    op.create_table(
        "lot_consumptions",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("transaction_id", sa.String(64), primary_key=True),
        sa.Column("lot_id", sa.String(64), primary_key=True),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "holds",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("hold_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("captured_points", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("order_id", sa.String(128), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("store_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_holds_member", "holds", ["program_id", "member_id", "state"])
    op.create_index(
        "ix_holds_due",
        "holds",
        ["expires_at"],
        postgresql_where=sa.text("state = 'OPEN'"),
        sqlite_where=sa.text("state = 'OPEN'"),
    )
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("last_activity_at", sa.BigInteger, nullable=False, server_default="0"))
    _guard_append_only("lot_consumptions")


def _guard_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: {operation} refused'); END"
            )


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("last_activity_at")
    op.drop_table("holds")
    op.drop_table("lot_consumptions")
    op.drop_table("lots")
