"""Event delivery: webhooks, their retry queue and attempt log, and the NATS relay's position.

webhooks: a program's endpoints; `cursor` is the last event position the sender has taken in
(sent, or put into webhook_deliveries), `version` moves when RedeliverEvents rewinds the
cursor, so a sender that read the old cursor cannot write its batch over the rewind.
webhook_deliveries: the events of a webhook that wait for a retry or failed for good (a
delivered event leaves no row here); a member's later events wait behind its earlier ones.
webhook_attempts: one row per HTTP attempt (what ListWebhookDeliveries shows), pruned after
the program's event retention. relay_positions: per program, the last event position that
JetStream acknowledged (ledger.relay).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.String(64), primary_key=True),
        sa.Column("program_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.Text, nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhooks_program", "webhooks", ["program_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("webhook_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, primary_key=True),
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("since", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhook_deliveries_member", "webhook_deliveries", ["member_id", "webhook_id", "position"])
    op.create_table(
        "webhook_attempts",
        sa.Column("webhook_id", sa.String(64), primary_key=True),
        sa.Column("attempted_at", sa.BigInteger, primary_key=True),
        sa.Column("position", sa.BigInteger, primary_key=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.BigInteger, nullable=False),
        sa.Column("error", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_table(
        "relay_positions",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("relay_positions")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_program", "webhooks")
    op.drop_table("webhooks")
