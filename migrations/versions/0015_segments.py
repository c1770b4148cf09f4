"""Segments: RFM figures per member, the program's quintile cut points, segments and their members.

programs.rfm_window_days (default 365) sets the RFM window. member_rfm and segment_members are
projections of the ledger that the segments refresh rebuilds: this migration leaves them empty,
and the due-work leader's first run (or `loyalty-ledger segments refresh`) fills them, since a
program without cut points is due at once. Every existing program gets the preset segments.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The presets as this migration writes them (ledger.domain.segments.PRESETS may change later).
_PRESETS = (
    ("champions", "Bought recently, often and for the most: R, F and M scores 4-5.",
     {"recency_score": [4, 5], "frequency_score": [4, 5], "monetary_score": [4, 5]}),
    ("loyal", "Buy often and not long ago: F score 4-5, R score 3-5.",
     {"recency_score": [3, 5], "frequency_score": [4, 5]}),
    ("at_risk", "Used to buy often, not lately: R score 1-2, F score 3-5.",
     {"recency_score": [1, 2], "frequency_score": [3, 5]}),
    ("lapsed", "Ordered before, but not in the last 180 days.", {"recency_days": [180, None]}),
    ("new", "Enrolled in the last 30 days, no order yet (a first-purchase offer).", {"days_since_enrolment": [None, 30], "orders": [None, 0]}),
)


def upgrade() -> None:
    op.add_column("programs", sa.Column("rfm_window_days", sa.Integer, nullable=False, server_default="365"))
    op.create_table(
        "member_rfm",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("last_order_at", sa.BigInteger, nullable=True),
        sa.Column("orders", sa.BigInteger, nullable=False),
        sa.Column("spend", sa.BigInteger, nullable=False),
        sa.Column("computed_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rfm_cuts",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("computed_at", sa.BigInteger, nullable=False),
        sa.Column("members", sa.BigInteger, nullable=False),
        sa.Column("recency", sa.Text, nullable=False),
        sa.Column("frequency", sa.Text, nullable=False),
        sa.Column("monetary", sa.Text, nullable=False),
    )
    segments = op.create_table(
        "segments",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("segment_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("conditions", sa.Text, nullable=False),
        sa.Column("preset", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("computed_at", sa.BigInteger, nullable=True),
    )
    op.create_index("uq_segments_name", "segments", ["name", "program_id"], unique=True)
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.String(64), nullable=False),
        sa.Column("program_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("entered_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "program_id", "member_id"),
    )
    op.create_index("ix_segment_members_member", "segment_members", ["member_id", "program_id"])
    now = time.time_ns() // 1000
    programs = op.get_bind().execute(sa.text("SELECT program_id FROM programs")).scalars().all()
    rows = [
        dict(
            program_id=program_id, segment_id=f"seg_{name}", name=name, description=description,
            conditions=json.dumps(conditions, sort_keys=True, separators=(",", ":")), preset=True,
            created_at=now, updated_at=now, computed_at=None,
        )
        for program_id in programs
        for name, description, conditions in _PRESETS
    ]
    if rows:
        op.bulk_insert(segments, rows)


def downgrade() -> None:
    op.drop_table("segment_members")
    op.drop_table("segments")
    op.drop_table("rfm_cuts")
    op.drop_table("member_rfm")
    # In place (SQLite 3.35+ too): a batch copy of programs would trip the events triggers that name it.
    op.execute("ALTER TABLE programs DROP COLUMN rfm_window_days")
