"""PostgreSQL expires a batch of members itself: two statements, no row through Python.

The expiry job's Python path (ledger.service.expiry) reads each member's lots, builds an
EXPIRE transaction per member and writes it back in bulk; at a million due lots the
Python work per member was as large as the database's. Here the database does that work
in the statements that write: one locks the batch's members in key order, the next (its
snapshot taken after the locks are held, so no till's redemption committed meanwhile is
missed) finds the due lots, sums them per member, hashes each new entry onto the member's
chain (ledger.store.postgres.hash_chain_sql) and writes every row the Python path
writes: transaction, entry, lot consumptions, lots, member head and event.

What is due is the domain's rule (ledger.domain.expiry.due_consumptions), stated once more
in SQL: a lot with points left whose expires_at has passed, or every such lot of a member
inactive since the cutoff. The texts come from the domain, and the JSON columns are written
in the layout Python's json.dumps gives them. tests/integration/test_expiry_paths.py runs
both paths on the same members and requires the same rows, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from ledger.domain import events as event_types
from ledger.domain import expiry as rules
from ledger.store.postgres.hash_chain_sql import postgres_expression
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.store.ledger_writes import insert_from
from ledger.store.postgres import write_behind
from ledger.store.tables import entries, events, lot_consumptions, transactions

# The Python path's lock (ledger.store.expiry.lock_members): members in key order.
_LOCK = """
SELECT count(*) FROM (
    SELECT 1 FROM members WHERE program_id = %(program_id)s AND member_id = ANY(%(member_ids)s)
    ORDER BY member_id FOR UPDATE
) AS locked
"""

_INACTIVE = "(%(cutoff)s::bigint IS NOT NULL AND m.last_activity_at <= %(cutoff)s::bigint)"

_ENTRY_HASH = postgres_expression(
    "last_entry_hash",
    "%(program_id)s",
    "member_id",
    "last_seq + 1",
    "transaction_id",
    "%(kind)s",
    "-points",
    "posted - points",
    "%(now)s",
)

# The rows, in the bulk form of the one ledger writer (column lists from tables.py); each
# value is what ledger.store.ledger_writes.append_many writes for the same EXPIRE transaction.
_TRANSACTIONS = insert_from(
    transactions,
    "hashed",
    program_id="%(program_id)s",
    transaction_id="transaction_id",
    member_id="member_id",
    kind="%(kind)s",
    points="-points",
    breakdown="""format('[{"source": %%s, "points": %%s, "description": %%s, "campaign_id": ""}]',
                  to_json(%(source)s::text), -points, to_json(format(%(description)s, lot_count, why)))""",
    channel="%(channel)s",
    store_id="''",
    order_id="NULL",
    order_amount="0",
    currency="''",
    reason="format(%(reason)s, why)",
    idempotency_key="%(key_prefix)s || transaction_id",
    api_key_id="%(api_key_id)s",
    reverses_transaction_id="NULL",
    occurred_at="%(now)s",
    created_at="%(now)s",
    activity_type="NULL",
    tier_from="NULL",
    tier_to="NULL",
)
_ENTRIES = insert_from(
    entries,
    "hashed",
    program_id="%(program_id)s",
    member_id="member_id",
    seq="last_seq + 1",
    transaction_id="transaction_id",
    kind="%(kind)s",
    points="-points",
    balance_after="posted - points",
    created_at="%(now)s",
    entry_hash="entry_hash",
)
_CONSUMPTIONS = insert_from(
    lot_consumptions,
    "due",
    program_id="%(program_id)s",
    member_id="member_id",
    transaction_id="transaction_id",
    lot_id="lot_id",
    points="remaining",
    created_at="%(now)s",
)
# The batch's events, as ledger.domain.events.for_transaction gives them (points_payload's keys
# in its order), at the positions the program's head moved by (ledger.store.outbox), in the
# Python path's order: member ids in code point order (UTF-8 bytes: COLLATE "C").
_EVENTS = insert_from(
    events,
    "numbered CROSS JOIN bumped",
    program_id="%(program_id)s",
    position="bumped.last_position - numbered.total + numbered.n",
    type="%(event_type)s",
    member_id="member_id",
    transaction_id="transaction_id",
    occurred_at="%(now)s",
    created_at="%(now)s",
    payload="""format('{"kind": %%s, "points": %%s, "balance_after": %%s, "order_id": "", "channel": %%s, '
                   '"store_id": "", "reason": %%s, "reverses_transaction_id": "", "activity_type": ""}',
                   to_json(%(kind)s::text), -points, posted - points, to_json(%(channel)s::text),
                   to_json(format(%(reason)s, why)))""",
)

# Every CTE scans the batch (up to ledger.service.expiry.BATCH members and their due lots)
# and finds its rows in the big tables through their primary keys. The writes are data-modifying CTEs of one statement: they
# all see the same snapshot, and none reads another's writes.
_WRITE = f"""
WITH due AS (
    SELECT b.member_id, b.transaction_id, m.posted, m.last_seq, m.last_entry_hash,
           {_INACTIVE} AS everything, l.lot_id, l.remaining
    FROM unnest(%(member_ids)s::text[], %(transaction_ids)s::text[]) AS b(member_id, transaction_id)
    JOIN members m ON m.program_id = %(program_id)s AND m.member_id = b.member_id
    JOIN lots l ON l.program_id = %(program_id)s AND l.member_id = b.member_id
    WHERE l.remaining > 0
      AND ({_INACTIVE} OR (l.expires_at IS NOT NULL AND l.expires_at <= %(now)s))
), expired AS (
    SELECT member_id, transaction_id, posted, last_seq, last_entry_hash,
           sum(remaining) AS points, count(*) AS lot_count,
           CASE WHEN everything THEN %(no_activity)s ELSE %(validity_ended)s END AS why
    FROM due
    GROUP BY member_id, transaction_id, posted, last_seq, last_entry_hash, everything
), hashed AS (
    SELECT expired.*, {_ENTRY_HASH} AS entry_hash FROM expired
), written_transactions AS (
    {_TRANSACTIONS}
), written_entries AS (
    {_ENTRIES}
), written_consumptions AS (
    {_CONSUMPTIONS}
), consumed_lots AS (
    UPDATE lots SET remaining = lots.remaining - due.remaining
    FROM due
    WHERE lots.program_id = %(program_id)s AND lots.member_id = due.member_id AND lots.lot_id = due.lot_id
), bumped AS (
    -- The program's event head, locked after the members (ledger.store.outbox's lock order).
    INSERT INTO event_heads (program_id, last_position, events_since)
    SELECT %(program_id)s, count(*), 0 FROM hashed HAVING count(*) > 0
    ON CONFLICT (program_id) DO UPDATE SET last_position = event_heads.last_position + excluded.last_position
    RETURNING last_position
), numbered AS (
    SELECT hashed.*, row_number() OVER (ORDER BY member_id COLLATE "C") AS n, count(*) OVER () AS total FROM hashed
), written_events AS (
    {_EVENTS}
), moved_heads AS (
    -- Guarded by the sequence read under the lock, as the Python path's update is.
    UPDATE members SET posted = hashed.posted - hashed.points, last_seq = hashed.last_seq + 1,
                       updated_at = %(now)s, last_entry_hash = hashed.entry_hash
    FROM hashed
    WHERE members.program_id = %(program_id)s AND members.member_id = hashed.member_id
      AND members.last_seq = hashed.last_seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM hashed), (SELECT coalesce(sum(points), 0) FROM hashed), (SELECT count(*) FROM moved_heads)
"""


# A batch of 10,000 members takes 1-2 s on a slow day (2 cores shared with the job).
WRITE_TIMEOUT_MS = 300_000


@dataclass(frozen=True)
class Expired:
    members: int
    points: int


def expire(
    conn: Connection,
    program_id: str,
    member_ids: list[str],
    transaction_ids: list[str],
    now: int,
    inactive_cutoff: int | None,
    *,
    api_key_id: str,
) -> Expired:
    """Expires the due lots of the program's members (now and inactive_cutoff in stored
    microseconds; no cutoff: only lots past their date). Member i's EXPIRE transaction, if it
    has points due, takes transaction_ids[i] (and its key from it: expiry_key); members with
    nothing due are left as they are."""
    if not member_ids:
        return Expired(0, 0)
    params = {
        "program_id": program_id,
        "member_ids": member_ids,
        "transaction_ids": transaction_ids,
        "key_prefix": rules.EXPIRY_KEY_PREFIX,
        "now": now,
        "cutoff": inactive_cutoff,
        "kind": TransactionKind.EXPIRE.value,
        "channel": Channel.OTHER.value,
        "source": PointsSource.LEDGER_OPERATION.value,
        "api_key_id": api_key_id,
        "no_activity": rules.NO_ACTIVITY,
        "validity_ended": rules.VALIDITY_ENDED,
        "reason": rules.REASON,
        "description": rules.DESCRIPTION,
        "event_type": event_types.POINTS_EXPIRED,
    }
    with write_behind.driver_cursor(conn, "expire a batch") as cursor:
        cursor.execute(_LOCK, params)
        # In one round trip:
        # - The planner cannot see how small the batch is (it comes in as arrays) and, left to
        #   itself, may hash-join it against a scan of a whole table, whose cost grows with the
        #   table instead of the batch.
        # - Compiling the statement (JIT, which its estimated cost turns on) took 60 ms of each
        #   batch's second: more than it ever saved on rows that are each touched once.
        # - The batch's whole write is this one statement, where the Python path sends five
        #   and the outbox its own: it gets the time of many of the session's statements, or a
        #   slow day's batch would time out, and every later run would stop at the same batch.
        cursor.execute(
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off; "
            f"SET LOCAL statement_timeout = {WRITE_TIMEOUT_MS}"
        )
        cursor.execute(_WRITE, params)
        members, points, moved = cursor.fetchone()
        cursor.execute("RESET enable_hashjoin; RESET enable_mergejoin; RESET jit; RESET statement_timeout")
    if moved != members:
        raise RuntimeError("a member changed under its row lock")  # cannot happen while the lock is held
    return Expired(members, int(points))
