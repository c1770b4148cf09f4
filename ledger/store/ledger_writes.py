"""The one path every ledger write takes: postings, entries, lots, the transaction row.

Keeping it single makes group commit possible later and keeps the invariants in
one place: each posting moves the member's cached balance, appends an entry with
the next per-member sequence number and the running balance, and records which
lots it created, consumed or gave back, all in the same database transaction as
the transaction row and, for every transaction but an expiry, the idempotency record.

Each transaction's event (ledger.domain.events) goes to the outbox (ledger.store.outbox),
written with the transaction's COMMIT.

Three forms, one row layout: append (one transaction, the tills' path), append_many (a
batch of system transactions through Python) and insert_from, the bulk form for writers
that build their rows in SQL (the PostgreSQL expiry batches, bench seed): its column lists
are tables.py's, so a column added to a ledger table reaches every writer or fails its test.
"""

from __future__ import annotations

import json

from sqlalchemy import BigInteger, Connection, Table, bindparam, func, insert, select, update

from ledger.domain import events
from ledger.domain.expiry import ACTIVITY_KINDS
from ledger.domain.hash_chain import EntryContent, entry_hash
from ledger.domain.records import NewTransaction, Posting, breakdown_to_json
from ledger.store import locked_heads, outbox
from ledger.store.postgres import write_behind
from ledger.store.instants import to_micros
from ledger.store.locked_heads import Head
from ledger.store.tables import entries, lot_consumptions, lots, members, transactions


_consume = (
    update(lots)
    .where(
        lots.c.program_id == bindparam("p_program"),
        lots.c.member_id == bindparam("p_member"),
        lots.c.lot_id == bindparam("p_lot"),
    )
    .values(remaining=lots.c.remaining - bindparam("p_points"))
)

_insert_transaction = insert(transactions)
_insert_entry = insert(entries)
_insert_lot = insert(lots)
_insert_consumption = insert(lot_consumptions)

_update_member = (
    update(members)
    .where(
        members.c.program_id == bindparam("p_program"),
        members.c.member_id == bindparam("p_member"),
        members.c.last_seq == bindparam("p_seq"),
    )
    .values(
        posted=bindparam("p_posted"),
        last_seq=bindparam("p_new_seq"),
        updated_at=bindparam("p_now"),
        last_entry_hash=bindparam("p_hash"),
    )
)

# The same, for the member's own activity: it also moves the INACTIVITY expiry clock.
_move_active_member = {
    dialect: _update_member.values(
        last_activity_at=latest(members.c.last_activity_at, bindparam("p_active", type_=BigInteger))
    )
    for dialect, latest in (("postgresql", func.greatest), ("sqlite", func.max))
}


def transaction_row(program_id: str, tx: NewTransaction) -> dict:
    """The transactions row of tx (one shape for append and append_many)."""
    return dict(
        program_id=program_id,
        transaction_id=tx.transaction_id,
        member_id=tx.member_id,
        kind=tx.kind.value,
        points=tx.points,
        breakdown=json.dumps([breakdown_to_json(line) for line in tx.breakdown]),
        channel=tx.channel.value,
        store_id=tx.store_id,
        order_id=tx.order_id or None,
        order_amount=tx.order_amount,
        currency=tx.currency,
        reason=tx.reason,
        idempotency_key=tx.idempotency_key,
        api_key_id=tx.api_key_id,
        reverses_transaction_id=tx.reverses_transaction_id or None,
        occurred_at=to_micros(tx.occurred_at),
        created_at=to_micros(tx.created_at),
        activity_type=tx.activity_type or None,
        tier_from=tx.tier_from or None,
        tier_to=tx.tier_to or None,
    )


def append(conn: Connection, program_id: str, tx: NewTransaction) -> dict[str, tuple[int, int]]:
    """Writes tx; returns {member_id: (posted_after, seq)} for every posting.

    Each entry carries its hash (ledger.domain.hash_chain), linked to the member's chain head
    members.last_entry_hash, which then moves to the new entry.

    The caller holds the row lock of every posted member (taken in member_id order). The
    writes go through write_behind: none is read back here.
    """
    now = to_micros(tx.created_at)
    write_behind.execute(conn, _insert_transaction, transaction_row(program_id, tx))
    applied: dict[str, tuple[int, int]] = {}
    for posting in sorted(tx.postings, key=lambda p: p.member_id):
        head = _head(conn, program_id, posting.member_id)
        content = EntryContent(
            program_id,
            posting.member_id,
            head.last_seq + 1,
            tx.transaction_id,
            tx.kind.value,
            posting.points,
            head.posted + posting.points,
            now,
        )
        digest = entry_hash(head.last_entry_hash, content)
        moved = {
            "p_program": program_id,
            "p_member": posting.member_id,
            "p_seq": head.last_seq,
            "p_posted": content.balance_after,
            "p_new_seq": content.seq,
            "p_now": now,
            "p_hash": digest,
        }
        if tx.kind in ACTIVITY_KINDS:
            moved["p_active"] = to_micros(tx.occurred_at)
            write_behind.execute(conn, _move_active_member[conn.dialect.name], moved)
        else:
            write_behind.execute(conn, _update_member, moved)
        write_behind.execute(conn, _insert_entry, _entry_row(content, digest))
        locked_heads.remember(conn, program_id, posting.member_id, Head(content.balance_after, content.seq, digest))
        _apply_lots(conn, program_id, tx, posting, now)
        applied[posting.member_id] = (content.balance_after, content.seq)
    outbox.add(conn, program_id, events.for_transaction(tx, {m: posted for m, (posted, _) in applied.items()}))
    return applied


def _head(conn: Connection, program_id: str, member_id: str) -> Head:
    """The member's chain head: known from its lock in this transaction, or read (still under the lock)."""
    head = locked_heads.known(conn, program_id, member_id)
    if head is not None:
        return head
    row = conn.execute(
        select(members.c.posted, members.c.last_seq, members.c.last_entry_hash).where(
            members.c.program_id == program_id, members.c.member_id == member_id
        )
    ).one()
    return Head(row.posted, row.last_seq, row.last_entry_hash)


def _entry_row(content: EntryContent, digest: str) -> dict:
    return dict(
        program_id=content.program_id,
        member_id=content.member_id,
        seq=content.seq,
        transaction_id=content.transaction_id,
        kind=content.kind,
        points=content.points,
        balance_after=content.balance_after,
        created_at=content.created_at,
        entry_hash=digest,
    )


def _apply_lots(conn: Connection, program_id: str, tx: NewTransaction, posting: Posting, now: int) -> None:
    moves = [(c.lot_id, c.points) for c in posting.consumed] + [(r.lot_id, -r.points) for r in posting.restored]
    if moves:
        write_behind.execute(
            conn,
            _consume,
            [
                {"p_program": program_id, "p_member": posting.member_id, "p_lot": lot_id, "p_points": points}
                for lot_id, points in moves
            ],
        )
        write_behind.execute(
            conn,
            _insert_consumption,
            [
                {
                    "program_id": program_id,
                    "member_id": posting.member_id,
                    "transaction_id": tx.transaction_id,
                    "lot_id": lot_id,
                    "points": points,
                    "created_at": now,
                }
                for lot_id, points in moves
            ],
        )
    new = [lot for lot in (posting.new_lot, *posting.more_lots) if lot is not None and lot.points > 0]
    if new:
        write_behind.execute(
            conn,
            _insert_lot,
            [
                dict(
                    program_id=program_id,
                    member_id=posting.member_id,
                    lot_id=lot.lot_id or tx.transaction_id,
                    points=lot.points,
                    remaining=lot.points,
                    available_at=to_micros(lot.available_at),
                    expires_at=to_micros(lot.expires_at) if lot.expires_at else None,
                    order_id=lot.order_id or None,
                    created_at=now,
                )
                for lot in new
            ],
        )


def append_many(conn: Connection, items: list[tuple[str, NewTransaction, dict[str, tuple[int, int, str]]]]) -> None:
    """Bulk form of append() for system jobs (expiry): few statements for many transactions.

    Each item is (program_id, tx, {member_id: (posted, last_seq, last_entry_hash) read under the
    row lock}). Postings here only consume lots, at most one posting per member per batch.
    The member update is guarded by the last_seq read under the lock, so a concurrent
    writer can never be overwritten; it moves the chain head in the same statement.
    (On PostgreSQL the expiry job lets the database write its batches itself:
    ledger.store.postgres.expiry_writes.)
    """
    if not items:
        return
    tx_rows, entry_rows, member_rows, consumption_rows = [], [], [], []
    for program_id, tx, before in items:
        now = to_micros(tx.created_at)
        tx_rows.append(transaction_row(program_id, tx))
        balances_after = {}
        for posting in tx.postings:
            posted, last_seq, previous_hash = before[posting.member_id]
            content = EntryContent(
                program_id,
                posting.member_id,
                last_seq + 1,
                tx.transaction_id,
                tx.kind.value,
                posting.points,
                posted + posting.points,
                now,
            )
            digest = entry_hash(previous_hash, content)
            balances_after[posting.member_id] = content.balance_after
            member_rows.append((program_id, posting.member_id, last_seq, posted + posting.points, last_seq + 1, now, digest))
            entry_rows.append(_entry_row(content, digest))
            consumption_rows += [
                dict(
                    program_id=program_id,
                    member_id=posting.member_id,
                    transaction_id=tx.transaction_id,
                    lot_id=c.lot_id,
                    points=c.points,
                    created_at=now,
                )
                for c in posting.consumed
            ]
        outbox.add(conn, program_id, events.for_transaction(tx, balances_after))
    conn.execute(insert(transactions), tx_rows)
    matched = conn.execute(_update_member, [dict(zip(_MEMBER_PARAMS, row)) for row in member_rows]).rowcount
    conn.execute(insert(entries), entry_rows)
    conn.execute(insert(lot_consumptions), consumption_rows)
    if consumption_rows:
        conn.execute(_consume, [_consume_params(row) for row in consumption_rows])
    if matched != len(member_rows):
        raise RuntimeError("a member changed under its row lock")  # cannot happen while the lock is held


# Each member's new balance, sequence and chain head, guarded by the sequence read under the lock.
_MEMBER_PARAMS = ("p_program", "p_member", "p_seq", "p_posted", "p_new_seq", "p_now", "p_hash")

def _consume_params(row: dict) -> dict:
    return {"p_program": row["program_id"], "p_member": row["member_id"], "p_lot": row["lot_id"], "p_points": row["points"]}


def insert_from(table: Table, source: str, **values: str) -> str:
    """`INSERT INTO table (its columns) SELECT values FROM source`, for writers that build ledger
    rows in SQL. The column list and its order are tables.py's; values gives every column's SQL
    expression over source (NULL spelled out), so a column tables.py gains or loses makes the
    writer fail here, at import, until it says what goes there."""
    names = [column.name for column in table.columns]
    missing = [name for name in names if name not in values]
    unknown = sorted(set(values) - set(names))
    if missing or unknown:
        raise ValueError(f"bulk insert into {table.name}: no value for {missing}, no column for {unknown}")
    return (
        f"INSERT INTO {table.name} ({', '.join(names)})\n"
        f"    SELECT {', '.join(values[name] for name in names)}\n"
        f"    FROM {source}"
    )
