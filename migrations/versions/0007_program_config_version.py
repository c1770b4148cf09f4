"""A version number on each program's configuration, bumped by every settings, tier or
campaign change, so servers can cache that configuration and know when it is stale.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("programs", sa.Column("config_version", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("config_version")
