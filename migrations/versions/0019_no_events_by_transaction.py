"""Events lose their index by transaction: no operation looks an event up by its transaction.

0012 gave events an index on (transaction_id, program_id) for `verify`'s two checks that
pair every transaction with its event. Those checks read both tables whole, which
PostgreSQL does with a hash join, and SQLite with an automatic index it builds for the query
(the checks keep it from walking a program's events by its primary key instead:
ledger.store.verification). Every ledger write, meanwhile, paid an index entry for it: an
Earn, and each of a million expiries (31.76 and 30.84 s without it against 35.57 and
33.04 s with it, alternating, README "Performance").

On PostgreSQL it is dropped CONCURRENTLY, so the servers still running keep writing events
meanwhile. A concurrent drop waits for every transaction that has read events (a `verify`
takes minutes), while nothing queues behind it: it runs without the migration session's
lock timeout, which would only fail every server starting meanwhile. The downgrade builds
the index again the same way, reading the whole table.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_INDEX = "ix_events_transaction"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(_INDEX, table_name="events")
        return
    with op.get_context().autocommit_block(), _no_lock_timeout():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_INDEX}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(_INDEX, "events", ["transaction_id", "program_id"])
        return
    with op.get_context().autocommit_block(), _no_lock_timeout():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_INDEX}")  # an invalid leftover of a build cut short
        op.create_index(_INDEX, "events", ["transaction_id", "program_id"], postgresql_concurrently=True)


@contextmanager
def _no_lock_timeout() -> Iterator[None]:
    """The session's lock timeout lifted for the concurrent DDL, and put back afterwards."""
    bind = op.get_bind()
    previous = bind.execute(sa.text("SHOW lock_timeout")).scalar_one()
    bind.execute(sa.text("SET lock_timeout = 0"))
    try:
        yield
    finally:
        bind.execute(sa.text("SELECT set_config('lock_timeout', :previous, false)"), {"previous": previous})
