"""Each lookup can enter exactly one index by its leading column, whatever the statistics say.

Every index of the tables the hot path reads led with program_id: every primary key, the
referral codes (program_id, referral_code), a member's transactions (program_id,
member_id, kind, occurred_at), an order's earn (program_id, order_id), a transaction's
entries (program_id, transaction_id), and so on. Every lookup names its program, so each
could enter any of its table's indexes by program_id alone, and which one the planner took
rested on its estimate of `program_id = '<this program>'`. On statistics taken before the
program's rows arrived (autovacuum off since) that estimate is zero rows, and an index
entered by program_id alone then costs the planner's minimum, as little as the right
index's one row: the member's row lock, read and update each walked the referral-code index
through the program's members (a 100,000-member program: an Earn 5 ms instead of 1.7 ms
with prepared statements, 295 ms with LOYALTY_PG_PREPARE=off), and an order's earn and
refunds walked the primary key through all the program's transactions.

Now program_id leads at most one index of a table, its primary key, and only on tables
looked up by primary key alone (members, entries, lots, ...; their two lookups by a random
key, a referral code and a transaction's entries, name no program: ledger/store). Every
other index leads with the key it looks up and has program_id after it: the same columns,
so the same uniqueness and the same lookups. Transactions, holds and referrals are also
looked up by other keys (an order, a member, a referrer), so their primary keys lead with
their own ids: (transaction_id, program_id), (hold_id, program_id), (referee_id, program_id).
tests/store/test_plans_without_statistics.py shows the plans; test_migrations.py keeps the rule.

PostgreSQL, with servers still running: each index is built CONCURRENTLY under a temporary
name, outside a transaction, and only then is the old one dropped (CONCURRENTLY too) and
the new one renamed, so a unique index enforces its rule throughout and writes go on. A
primary key is swapped for its new unique index in one ALTER TABLE, which needs the table's
exclusive lock for a moment: it waits at most 100 ms for it at a time (writers queue behind
it meanwhile), and tries again, up to about three minutes, behind a long transaction such
as a `verify`. Run again after an interruption, it builds again what was cut short,
finishes what was built, and skips what is done. SQLite rebuilds the three tables (its
primary keys cannot change in place), with their indexes and append-only triggers.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import re
import time
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


@dataclass(frozen=True)
class _Index:
    name: str
    table: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    unique: bool = False
    where: str | None = None


_PRIMARY_KEYS = {
    "transactions": (("program_id", "transaction_id"), ("transaction_id", "program_id")),
    "holds": (("program_id", "hold_id"), ("hold_id", "program_id")),
    "referrals": (("program_id", "referee_id"), ("referee_id", "program_id")),
}
_INDEXES = (
    _Index("uq_members_referral_code", "members", ("program_id", "referral_code"), ("referral_code", "program_id"), True),
    _Index(
        "ix_transactions_member_kind",
        "transactions",
        ("program_id", "member_id", "kind", "occurred_at"),
        ("member_id", "program_id", "kind", "occurred_at"),
    ),
    _Index(
        "uq_transactions_earned_order",
        "transactions",
        ("program_id", "order_id"),
        ("order_id", "program_id"),
        True,
        "kind = 'EARN'",
    ),
    _Index(
        "ix_transactions_order_refunds",
        "transactions",
        ("program_id", "order_id"),
        ("order_id", "program_id"),
        where="kind = 'REFUND'",
    ),
    _Index(
        "ix_transactions_order_reversals",
        "transactions",
        ("program_id", "order_id"),
        ("order_id", "program_id"),
        where="kind = 'REVERSAL'",
    ),
    _Index(
        "uq_transactions_reverses",
        "transactions",
        ("program_id", "reverses_transaction_id"),
        ("reverses_transaction_id", "program_id"),
        True,
        "reverses_transaction_id IS NOT NULL",
    ),
    _Index("ix_entries_transaction", "entries", ("program_id", "transaction_id"), ("transaction_id", "program_id")),
    _Index("ix_holds_member", "holds", ("program_id", "member_id", "state"), ("member_id", "program_id", "state")),
    _Index(
        "ix_qualifying_events_window",
        "qualifying_events",
        ("program_id", "member_id", "occurred_at"),
        ("member_id", "program_id", "occurred_at"),
    ),
    _Index(
        "ix_referrals_referrer",
        "referrals",
        ("program_id", "referrer_id", "attributed_at"),
        ("referrer_id", "program_id", "attributed_at"),
    ),
    _Index("ix_referrals_order", "referrals", ("program_id", "qualifying_order_id"), ("qualifying_order_id", "program_id")),
)
_LOCK_WAIT = "100ms"  # a primary-key swap's longest wait for its table's lock at a time
_LOCK_ATTEMPTS = 100  # about three minutes in all, with the pauses between attempts
_LOCK_NOT_AVAILABLE = "55P03"


def upgrade() -> None:
    _migrate({table: after for table, (_, after) in _PRIMARY_KEYS.items()}, {index: index.after for index in _INDEXES})


def downgrade() -> None:
    _migrate({table: before for table, (before, _) in _PRIMARY_KEYS.items()}, {index: index.before for index in _INDEXES})


def _migrate(primary_keys: dict[str, tuple[str, ...]], indexes: dict[_Index, tuple[str, ...]]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        for index, columns in indexes.items():
            op.drop_index(index.name, table_name=index.table)
            op.create_index(index.name, index.table, list(columns), unique=index.unique, sqlite_where=_where(index))
        for table, columns in primary_keys.items():
            _rebuild_sqlite_table(table, columns)
        return
    with op.get_context().autocommit_block():
        for table, columns in primary_keys.items():
            _swap_primary_key(table, columns)
        for index, columns in indexes.items():
            _rebuild_index(index, columns)


def _where(index: _Index):
    return sa.text(index.where) if index.where else None


def _rebuild_index(index: _Index, columns: tuple[str, ...]) -> None:
    bind = op.get_bind()
    temporary = f"{index.name}_0011"
    rename = f"ALTER INDEX {temporary} RENAME TO {index.name}"
    current = _leading_column(bind, index.name)
    if current == columns[0]:
        return  # done by a run cut short later
    if current is None and _leading_column(bind, temporary) == columns[0]:
        # cut short after the new index was built and the old one dropped
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}")  # an invalid leftover, if any
        op.execute(rename)
        return
    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {temporary}")  # a build cut short
    op.create_index(
        temporary,
        index.table,
        list(columns),
        unique=index.unique,
        postgresql_where=_where(index),
        postgresql_concurrently=True,
    )
    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}")
    op.execute(rename)


def _swap_primary_key(table: str, columns: tuple[str, ...]) -> None:
    bind = op.get_bind()
    name = f"{table}_pkey"
    if _leading_column(bind, name) == columns[0]:
        return  # done by a run cut short later
    temporary = f"{name}_0011"
    if _leading_column(bind, temporary) != columns[0]:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {temporary}")  # a build cut short
        op.create_index(temporary, table, list(columns), unique=True, postgresql_concurrently=True)
    # The new index becomes the primary key under the old name, in place of the old one.
    swap = f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {temporary}"
    bind.execute(sa.text(f"SET lock_timeout = '{_LOCK_WAIT}'"))
    try:
        for attempt in range(_LOCK_ATTEMPTS):
            try:
                bind.execute(sa.text(swap))
                return
            except sa.exc.OperationalError as error:
                if getattr(error.orig, "pgcode", None) != _LOCK_NOT_AVAILABLE or attempt == _LOCK_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.1 * 2 ** (attempt // 10), 2.0))
    finally:
        bind.execute(sa.text("RESET lock_timeout"))


def _leading_column(bind, name: str) -> str | None:
    """The first column of the valid index of that name, None without one."""
    return bind.execute(
        sa.text(
            "SELECT a.attname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace AND i.indisvalid"
        ),
        {"name": name},
    ).scalar()


def _rebuild_sqlite_table(table: str, columns: tuple[str, ...]) -> None:
    """SQLite's way to change a primary key: a copy of the table with the new one, then its
    indexes and triggers (the append-only guards of transactions) as they were."""
    bind = op.get_bind()
    schema = bind.execute(
        sa.text("SELECT type, sql FROM sqlite_master WHERE tbl_name = :table AND sql IS NOT NULL"), {"table": table}
    ).all()
    create = next(sql for kind, sql in schema if kind == "table")
    create, replaced = re.subn(r"PRIMARY KEY \([^)]*\)", f"PRIMARY KEY ({', '.join(columns)})", create)
    assert replaced == 1, create
    # (once renamed by SQLite, the table's name is quoted in its CREATE TABLE)
    create, renamed = re.subn(rf'^CREATE TABLE "?{table}"? \(', f"CREATE TABLE {table}_0011 (", create)
    assert renamed == 1, create
    op.execute(create)
    op.execute(f"INSERT INTO {table}_0011 SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_0011 RENAME TO {table}")
    for kind, sql in schema:
        if kind in ("index", "trigger"):
            op.execute(sql)
