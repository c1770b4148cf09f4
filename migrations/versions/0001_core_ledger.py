"""Core ledger: programs, api keys, members, append-only transactions, entries, idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEDGER_TABLES = ("transactions", "entries", "idempotency_records")


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("earn_points", sa.BigInteger, nullable=False),
        sa.Column("earn_per_amount", sa.BigInteger, nullable=False),
        sa.Column("rounding", sa.String(16), nullable=False),
        sa.Column("pending_days", sa.Integer, nullable=False),
        sa.Column("expiry_mode", sa.String(16), nullable=False),
        sa.Column("expiry_days", sa.Integer, nullable=False),
        sa.Column("negative_balance_policy", sa.String(16), nullable=False),
        sa.Column("hold_ttl_seconds", sa.BigInteger, nullable=False),
        sa.Column("max_backdate_days", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("program_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_api_keys_program", "api_keys", ["program_id"])
    op.create_table(
        "members",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("referral_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("enrolled_at", sa.BigInteger, nullable=False),
        sa.Column("posted", sa.BigInteger, nullable=False),
        sa.Column("held", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("uq_members_referral_code", "members", ["program_id", "referral_code"], unique=True)
    op.create_table(
        "transactions",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("transaction_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("breakdown", sa.Text, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("store_id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=True),
        sa.Column("order_amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("api_key_id", sa.String(64), nullable=False),
        sa.Column("reverses_transaction_id", sa.String(64), nullable=True),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "uq_transactions_earned_order",
        "transactions",
        ["program_id", "order_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'EARN'"),
        sqlite_where=sa.text("kind = 'EARN'"),
    )
    op.create_index(
        "uq_transactions_reverses",
        "transactions",
        ["program_id", "reverses_transaction_id"],
        unique=True,
        postgresql_where=sa.text("reverses_transaction_id IS NOT NULL"),
        sqlite_where=sa.text("reverses_transaction_id IS NOT NULL"),
    )
    op.create_table(
        "entries",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_entries_transaction", "entries", ["program_id", "transaction_id"])
    op.create_table(
        "idempotency_records",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("idempotency_key", sa.String(128), primary_key=True),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    _guard_append_only()


def _guard_append_only() -> None:
    """Refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL) on ledger tables, even for superusers."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        for table in LEDGER_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
            )
    else:
        for table in LEDGER_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: {operation} refused'); END"
                )


def downgrade() -> None:
    # Dropping a table drops its triggers on both backends.
    for table in ("idempotency_records", "entries", "transactions", "members", "api_keys", "programs"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_append_only()")
