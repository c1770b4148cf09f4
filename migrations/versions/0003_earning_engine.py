"""Earning engine: settings history, tiers, qualifying events, campaigns and counters, rewards.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy) keeps the append-only triggers of transactions in place.
    op.add_column("programs", sa.Column("earning_settings", sa.Text, nullable=False, server_default="{}"))
    op.add_column("transactions", sa.Column("activity_type", sa.String(64), nullable=True))
    op.add_column("transactions", sa.Column("tier_from", sa.String(64), nullable=True))
    op.add_column("transactions", sa.Column("tier_to", sa.String(64), nullable=True))
    op.create_index(
        "ix_transactions_member_kind", "transactions", ["program_id", "member_id", "kind", "occurred_at"]
    )
    op.create_table(
        "program_settings_history",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("effective_at", sa.BigInteger, primary_key=True),
        sa.Column("settings", sa.Text, nullable=False),
    )
    op.create_table(
        "tiers",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("threshold", sa.BigInteger, nullable=False),
        sa.Column("multiplier_bps", sa.BigInteger, nullable=False),
        sa.Column("qualification_days", sa.Integer, nullable=False),
    )
    op.create_table(
        "member_tiers",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("tier_name", sa.String(64), nullable=False),
        sa.Column("multiplier_bps", sa.BigInteger, nullable=False),
        sa.Column("reached_at", sa.BigInteger, nullable=False),
        sa.Column("held_until", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_member_tiers_review", "member_tiers", ["held_until"])
    op.create_table(
        "qualifying_events",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("transaction_id", sa.String(64), primary_key=True),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("spend", sa.BigInteger, nullable=False),
        sa.Column("base_points", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_qualifying_events_window", "qualifying_events", ["program_id", "member_id", "occurred_at"])
    op.create_table(
        "campaigns",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("start_at", sa.BigInteger, nullable=False),
        sa.Column("end_at", sa.BigInteger, nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("multiplier_bps", sa.BigInteger, nullable=False),
        sa.Column("bonus_points", sa.BigInteger, nullable=False),
        sa.Column("conditions", sa.Text, nullable=False),
        sa.Column("stacking", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("per_member_cap", sa.BigInteger, nullable=False),
        sa.Column("budget", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "campaign_counters",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("awarded", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "campaign_member_awards",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("awarded", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rewards",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("reward_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("points_price", sa.BigInteger, nullable=False),
        sa.Column("start_at", sa.BigInteger, nullable=True),
        sa.Column("end_at", sa.BigInteger, nullable=True),
        sa.Column("stock", sa.BigInteger, nullable=True),
        sa.Column("redeemed", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    _guard_append_only("qualifying_events")


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
    for table in (
        "rewards",
        "campaign_member_awards",
        "campaign_counters",
        "campaigns",
        "qualifying_events",
        "member_tiers",
        "tiers",
        "program_settings_history",
    ):
        op.drop_table(table)
    op.drop_index("ix_transactions_member_kind", "transactions")
    # DROP COLUMN is native on PostgreSQL and SQLite >= 3.35; no table copy, triggers stay.
    for column in ("tier_to", "tier_from", "activity_type"):
        op.drop_column("transactions", column)
    op.drop_column("programs", "earning_settings")
