"""A secret shared by every server on this database, to sign page tokens with.

Page tokens were base64 of the position and (for statements) a hash of the query: a token
of another program was accepted, and anyone could forge one. They are now signed with an
HMAC (ledger/domain/page_tokens.py) whose key is this secret. It lives in the database, not
in each process: several server processes and machines serve one database behind a load
balancer, and a token one of them issued must be accepted by the next. Written once here,
32 random bytes; nothing in the application changes it. Downgrade drops it (tokens issued
until then stop being accepted, as after any secret change: the client starts over).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        table, [{"name": "page_token", "secret": secrets.token_hex(32), "created_at": time.time_ns() // 1000}]
    )


def downgrade() -> None:
    op.drop_table("service_secrets")
