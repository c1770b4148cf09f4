"""What the post-purchase moments read, page by page, and the keys that make each told once.

The reads find the candidates of one program in pages with a stable order, each through an
index: the lots expiring in a time range (ix_lots_due, streamed), a page of members by primary
key and their lots (the INACTIVITY policy), the orders placed in a time range
(ix_transactions_earns_by_time), the tiers under review in a time range (ix_member_tiers_review). Which candidates are due is ledger.domain.moments' to say.

claim() inserts the keys of moments about to be told and returns those that were not there:
the caller writes events for those only, in the same transaction, so a key and its event
commit together or not at all. Two due-work runs at once (a leader and one that lost the
lead without knowing yet) wait on each other's uncommitted key and the second inserts none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterator

from sqlalchemy import Connection, String, cast, delete, literal, select, text
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ledger.domain.events import NewEvent
from ledger.domain.moments import POINTS_EXPIRING, Moment, OrderFacts
from ledger.store.instants import from_micros, to_micros
from ledger.store import outbox
from ledger.store.engine import without_statement_timeout
from ledger.store.postgres import moment_writes, streaming
from ledger.store.tables import lots, member_tiers, members, moment_keys

STREAM_PAGE = 10_000
DAY_MICROS = 86_400_000_000


def claim(conn: Connection, program_id: str, moments: list[Moment], now: datetime) -> list[Moment]:
    """The moments whose keys this call inserted (none told before), in the order given."""
    if not moments:
        return []
    insert = postgres_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(moment_keys).on_conflict_do_nothing().returning(moment_keys.c.moment_key)
    created = to_micros(now)
    rows = [
        {"program_id": program_id, "moment_key": m.key, "due_at": to_micros(m.occurred_at), "created_at": created}
        for m in moments
    ]
    inserted = {row[0] for row in conn.execute(statement, rows)}
    return [m for m in moments if m.key in inserted]


def tell(conn: Connection, program_id: str, moments: list[Moment], now: datetime) -> int:
    """Claims the moments' keys and writes an event (through the outbox's head) for each key
    claimed, in this transaction; returns how many were told. PostgreSQL does it in one
    statement (ledger.store.postgres.moment_writes)."""
    if conn.dialect.name == "postgresql":
        return moment_writes.tell(conn, program_id, moments, now)
    told = claim(conn, program_id, moments, now)
    for moment in told:
        outbox.add(conn, program_id, NewEvent(moment.type, moment.member_id, "", moment.occurred_at, now, moment.payload))
    return len(told)


def forget_before(conn: Connection, before: datetime, limit: int) -> int:
    """Deletes up to `limit` keys of moments due before `before`; returns how many. (A scan:
    it runs once per run of the moments, and an index on due_at would cost every moment told.)"""
    doomed = select(moment_keys.c.program_id, moment_keys.c.moment_key).where(
        moment_keys.c.due_at < to_micros(before)
    ).limit(limit)
    rows = conn.execute(doomed).all()
    for program_id, key in rows:
        conn.execute(
            delete(moment_keys).where(moment_keys.c.program_id == program_id, moment_keys.c.moment_key == key)
        )
    return len(rows)


def member_page(conn: Connection, program_id: str, after: str | None, limit: int) -> list[str]:
    """The next `limit` member ids of the program after `after`, in key order."""
    query = select(members.c.member_id).where(members.c.program_id == program_id)
    if after is not None:
        query = query.where(members.c.member_id > after)
    return list(conn.execute(query.order_by(members.c.member_id).limit(limit)).scalars())


def lots_expiring_by_member(
    conn: Connection, program_id: str, start: datetime, end: datetime, members_per_batch: int
) -> Iterator[dict[str, list[tuple[datetime, int]]]]:
    """{member: [(expires_at, points left)]} of the program's lots with points left expiring in
    (start, end], `members_per_batch` members at a time, streamed off one read of the lots
    index (ix_lots_due: only the lots in the window are read). A member's lots are never split
    between batches. conn should be a read-only snapshot, open while the batches are written on
    other connections (ledger.store.unit_of_work.snapshot)."""
    # A lot whose day was told already is not read again (the hourly rescan of a big program
    # reads only what is new): its key, as ledger.domain.moments.expiring_key makes it, with
    # the day number in integer arithmetic on the stored microseconds.
    told_key = literal(POINTS_EXPIRING + "/") + lots.c.member_id + literal("/") + cast(
        lots.c.expires_at // DAY_MICROS, String
    )
    told = select(moment_keys.c.moment_key).where(
        moment_keys.c.program_id == lots.c.program_id, moment_keys.c.moment_key == told_key
    )
    due = (
        select(lots.c.member_id, lots.c.expires_at, lots.c.remaining)
        .where(
            lots.c.program_id == program_id,
            lots.c.remaining > 0,
            lots.c.expires_at.is_not(None),
            lots.c.expires_at > to_micros(start),
            lots.c.expires_at <= to_micros(end),
            ~told.exists(),
        )
        .order_by(lots.c.member_id)
    )
    # The first page waits for the sort of every lot in the window (a million in a big
    # program's busy month): longer than the statement limit the tills' calls have.
    without_statement_timeout(conn)
    if conn.dialect.name == "postgresql":
        # Each lot is checked against the told keys by the keys' primary key. On statistics
        # taken while moment_keys was small the planner would rather scan it, once per lot:
        # quadratic as the run fills it (a million reminders did not finish in 15 minutes).
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    batch: dict[str, list[tuple[datetime, int]]] = {}
    for rows in streaming.pages(conn, due, STREAM_PAGE):
        for row in rows:
            if row.member_id not in batch and len(batch) >= members_per_batch:
                yield batch
                batch = {}
            batch.setdefault(row.member_id, []).append((from_micros(row.expires_at), int(row.remaining)))
    if batch:
        yield batch


def inactive_points(
    conn: Connection, program_id: str, first: str, last: str, active_after: datetime, active_until: datetime
) -> dict[str, tuple[datetime, int]]:
    """{member: (last activity, points left)} of the members first..last whose last earn or
    spend was in (active_after, active_until] and who have points left (the INACTIVITY policy)."""
    rows = conn.execute(
        select(members.c.member_id, members.c.last_activity_at, lots.c.remaining)
        .select_from(
            members.join(lots, (lots.c.program_id == members.c.program_id) & (lots.c.member_id == members.c.member_id))
        )
        .where(
            members.c.program_id == program_id,
            members.c.member_id >= first,
            members.c.member_id <= last,
            members.c.last_activity_at > to_micros(active_after),
            members.c.last_activity_at <= to_micros(active_until),
            lots.c.remaining > 0,
        )
    )
    found: dict[str, tuple[datetime, int]] = {}
    for member_id, last_activity_at, remaining in rows:
        _, total = found.get(member_id, (None, 0))
        found[member_id] = (from_micros(last_activity_at), total + int(remaining))
    return found


# The program's orders placed in a range, after a (occurred_at, transaction_id) cursor, through
# ix_transactions_earns_by_time (`occurred_at >= 0` is its predicate: the query must say it), with
# what has been refunded of each (a reversed refund no longer counts: transactions.refunded_amount)
# and whether support reversed the earn itself.
_ORDERS = text(
    """
SELECT t.member_id, t.order_id, t.transaction_id, t.occurred_at, t.order_amount, t.currency, t.channel, t.store_id,
       COALESCE((SELECT SUM(r.order_amount) FROM transactions r
                 WHERE r.order_id = t.order_id AND r.program_id = t.program_id AND r.kind = 'REFUND'
                   AND NOT EXISTS (SELECT 1 FROM transactions v
                                   WHERE v.reverses_transaction_id = r.transaction_id
                                     AND v.program_id = t.program_id)), 0) AS refunded,
       EXISTS (SELECT 1 FROM transactions v
               WHERE v.reverses_transaction_id = t.transaction_id AND v.program_id = t.program_id) AS reversed
FROM transactions t
WHERE t.kind = 'EARN' AND t.occurred_at >= 0 AND t.program_id = :program_id
  AND t.occurred_at > :start AND t.occurred_at <= :end
  AND (t.occurred_at > :after_at OR (t.occurred_at = :after_at AND t.transaction_id > :after_id))
  {latest_only}
ORDER BY t.occurred_at, t.transaction_id
LIMIT :limit
"""
)
# A member's latest order: no earn of theirs placed after it (ix_transactions_member_kind).
_LATEST_ONLY = """
  AND NOT EXISTS (SELECT 1 FROM transactions later
                  WHERE later.member_id = t.member_id AND later.program_id = t.program_id AND later.kind = 'EARN'
                    AND (later.occurred_at > t.occurred_at
                         OR (later.occurred_at = t.occurred_at AND later.transaction_id > t.transaction_id)))
"""
_ORDERS_ANY = text(_ORDERS.text.format(latest_only=""))
_ORDERS_LATEST = text(_ORDERS.text.format(latest_only=_LATEST_ONLY))

OrderCursor = tuple[int, str]
START = (-(2**62), "")


def orders_placed(
    conn: Connection,
    program_id: str,
    start: datetime,
    end: datetime,
    after: OrderCursor,
    limit: int,
    *,
    latest_of_member: bool = False,
) -> tuple[list[OrderFacts], OrderCursor]:
    """Orders placed in (start, end] after the cursor, oldest first (only each member's latest
    one, if asked), and the cursor after them."""
    rows = conn.execute(
        _ORDERS_LATEST if latest_of_member else _ORDERS_ANY,
        {
            "program_id": program_id,
            "start": to_micros(start),
            "end": to_micros(end),
            "after_at": after[0],
            "after_id": after[1],
            "limit": limit,
        },
    ).all()
    orders = [
        OrderFacts(
            member_id=row.member_id,
            order_id=row.order_id or "",
            transaction_id=row.transaction_id,
            occurred_at=from_micros(row.occurred_at),
            amount=int(row.order_amount),
            currency=row.currency,
            channel=row.channel,
            store_id=row.store_id,
            refunded_amount=int(row.refunded),
            reversed=bool(row.reversed),
        )
        for row in rows
    ]
    cursor = (rows[-1].occurred_at, rows[-1].transaction_id) if rows else after
    return orders, cursor


def tiers_under_review(
    conn: Connection, program_id: str, start: datetime, end: datetime, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[str, str, datetime]]:
    """(member, tier, held_until) of the program's members whose tier is held until a time in
    (start, end], after a (held_until, member) cursor, in that order."""
    held_until = member_tiers.c.held_until
    query = select(member_tiers.c.member_id, member_tiers.c.tier_name, held_until).where(
        member_tiers.c.program_id == program_id,
        held_until > to_micros(start),
        held_until <= to_micros(end),
        member_tiers.c.tier_name != "",
    )
    if after is not None:
        at = to_micros(after[0])
        query = query.where((held_until > at) | ((held_until == at) & (member_tiers.c.member_id > after[1])))
    rows = conn.execute(query.order_by(held_until, member_tiers.c.member_id).limit(limit)).all()
    return [(row.member_id, row.tier_name, from_micros(row.held_until)) for row in rows]
