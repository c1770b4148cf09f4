"""The member directory: profiles (personal data, erasable) and when a member was closed or erased.

member_profiles holds a member's personal fields apart from the ledger and from the hot
members row: EraseMember empties them (the pseudonymous member_id and its ledger stay, and
still verify). members.closed_at and members.erased_at say when the member was closed
(CloseMember, by the program's close policy) and erased; erased implies closed, and is final.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("closed_at", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("erased_at", sa.BigInteger, nullable=True))
    op.create_table(
        "member_profiles",
        sa.Column("program_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(128), primary_key=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("birth_date", sa.String(10), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("marketing_consent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("marketing_consent_at", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("member_profiles")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("closed_at")
