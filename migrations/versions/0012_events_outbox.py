"""The events outbox: one event per ledger transaction and enrolment, append-only.

events is a ledger table: UPDATE and TRUNCATE are refused like on the others, and so is
DELETE, except of an event older than its program's retention (programs.event_retention_days,
default 30 days), which is what the pruning job deletes. event_heads holds each program's last
event position (the row whose lock orders commits: ledger.store.outbox) and events_since:
transactions written before this migration have no event, and `verify` does not ask for one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_REFUSED = "ledger table events is append-only"
# Now minus the event's program's retention, in stored microseconds.
_POSTGRES_CUTOFF = (
    "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
    " - (SELECT event_retention_days FROM programs WHERE program_id = OLD.program_id) * 86400000000::bigint"
)
_SQLITE_CUTOFF = (
    "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"
    " - (SELECT event_retention_days FROM programs WHERE program_id = OLD.program_id) * 86400000000"
)


def upgrade() -> None:
    op.add_column("programs", sa.Column("event_retention_days", sa.Integer, nullable=False, server_default="30"))
    op.create_table(
        "events",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_events_transaction", "events", ["transaction_id", "program_id"])
    heads = op.create_table(
        "event_heads",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.Column("events_since", sa.BigInteger, nullable=False),
    )
    now = time.time_ns() // 1000
    programs = op.get_bind().execute(sa.text("SELECT program_id FROM programs")).scalars().all()
    if programs:
        op.bulk_insert(heads, [{"program_id": p, "last_position": 0, "events_since": now} for p in programs])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'DELETE' AND OLD.created_at < {_POSTGRES_CUTOFF} THEN
                RETURN OLD;  -- past its program's retention: the pruning job may delete it
              END IF;
              RAISE EXCEPTION '{_REFUSED}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        )
        op.execute("ALTER TABLE events ENABLE ALWAYS TRIGGER events_append_only")
        op.execute("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_truncate")
        return
    op.execute(f"CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, '{_REFUSED}: UPDATE refused'); END")
    op.execute(
        f"CREATE TRIGGER events_no_delete BEFORE DELETE ON events WHEN OLD.created_at >= {_SQLITE_CUTOFF} "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}: DELETE refused'); END"
    )
    op.execute(
        "CREATE TRIGGER events_no_replace BEFORE INSERT ON events "
        "WHEN EXISTS (SELECT 1 FROM events WHERE program_id = NEW.program_id AND position = NEW.position) "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}: replacing a row refused'); END"
    )


def downgrade() -> None:
    op.drop_table("event_heads")
    op.drop_table("events")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION events_append_only()")
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("event_retention_days")
