"""Tamper evidence: a hash chain over each member's entries.

entries.entry_hash: sha256 over the entry and the previous entry's hash
(ledger.domain.hash_chain); members.last_entry_hash: the chain head, a projection
so a write needs no extra read. Existing entries are backfilled by walking each
member's entries in seq order; the UPDATE guard of entries is lifted for that
backfill only, inside this migration's transaction, and restored as it was.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from ledger.domain.hash_chain import GENESIS, EntryContent, entry_hash

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PAGE = 5000

# As 0001 created it.
SQLITE_NO_UPDATE = (
    "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger table entries is append-only: UPDATE refused'); END"
)


def upgrade() -> None:
    op.add_column("members", sa.Column("last_entry_hash", sa.String(64), nullable=False, server_default=GENESIS))
    # Plain ADD COLUMN (no batch copy) keeps the append-only triggers of entries in place.
    op.add_column("entries", sa.Column("entry_hash", sa.String(64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE entries DISABLE TRIGGER entries_append_only")
        _backfill(bind)
        op.execute("ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_append_only")
    else:
        op.execute("DROP TRIGGER entries_no_update")
        _backfill(bind)
        op.execute(SQLITE_NO_UPDATE)


def _backfill(bind) -> None:
    """Walks entries in (program_id, member_id, seq) order, a page at a time (keyset), so the
    database does every comparison and memory stays flat; the chain carries across pages."""
    entries = sa.table(
        "entries",
        *(
            sa.column(name)
            for name in (
                "program_id",
                "member_id",
                "seq",
                "transaction_id",
                "kind",
                "points",
                "balance_after",
                "created_at",
                "entry_hash",
            )
        ),
    )
    members = sa.table("members", sa.column("program_id"), sa.column("member_id"), sa.column("last_entry_hash"))
    set_hash = (
        sa.update(entries)
        .where(
            entries.c.program_id == sa.bindparam("k_program"),
            entries.c.member_id == sa.bindparam("k_member"),
            entries.c.seq == sa.bindparam("k_seq"),
        )
        .values(entry_hash=sa.bindparam("k_hash"))
    )
    set_head = (
        sa.update(members)
        .where(members.c.program_id == sa.bindparam("k_program"), members.c.member_id == sa.bindparam("k_member"))
        .values(last_entry_hash=sa.bindparam("k_hash"))
    )
    key = sa.tuple_(entries.c.program_id, entries.c.member_id, entries.c.seq)
    after, member, previous = None, None, GENESIS
    while True:
        query = sa.select(entries).order_by(entries.c.program_id, entries.c.member_id, entries.c.seq).limit(PAGE)
        if after is not None:
            query = query.where(key > sa.tuple_(*(sa.literal(v) for v in after)))
        rows = bind.execute(query).all()
        if not rows:
            break
        hashes, heads = [], {}
        for row in rows:
            if (row.program_id, row.member_id) != member:
                member, previous = (row.program_id, row.member_id), GENESIS
            previous = entry_hash(
                previous,
                EntryContent(
                    row.program_id,
                    row.member_id,
                    int(row.seq),
                    row.transaction_id,
                    row.kind,
                    int(row.points),
                    int(row.balance_after),
                    int(row.created_at),
                ),
            )
            hashes.append({"k_program": row.program_id, "k_member": row.member_id, "k_seq": row.seq, "k_hash": previous})
            heads[member] = previous
        bind.execute(set_hash, hashes)
        bind.execute(set_head, [{"k_program": p, "k_member": m, "k_hash": h} for (p, m), h in heads.items()])
        last = rows[-1]
        after = (last.program_id, last.member_id, last.seq)


def downgrade() -> None:
    # DROP COLUMN is native on PostgreSQL and SQLite >= 3.35; no table copy, triggers stay.
    op.drop_column("entries", "entry_hash")
    op.drop_column("members", "last_entry_hash")
