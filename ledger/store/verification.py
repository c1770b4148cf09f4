"""Set-based queries that find breaches of the ledger's invariants (for `loyalty-ledger verify`).

Each query returns the offending rows, so an empty result means the invariant holds.
The hash chain (tamper evidence, ledger.domain.hash_chain) cannot be recomputed in
portable SQL, so chain_breaches streams every member's entries once, in key order,
and recomputes it in Python with memory bounded by one member.
"""

from __future__ import annotations

from typing import Generator, Iterator

from sqlalchemy import Connection, text

from ledger.domain.expiry import EXPIRY_KEY_PREFIX
from ledger.domain.hash_chain import GENESIS, EntryContent, entry_hash
from ledger.store import liability
from ledger.store.postgres import streaming

CHECKS: dict[str, str] = {
    "cached posted balance equals the sum of the member's entries": """
        SELECT m.program_id, m.member_id, m.posted AS cached, COALESCE(SUM(e.points), 0) AS ledger
        FROM members m
        LEFT JOIN entries e ON e.program_id = m.program_id AND e.member_id = m.member_id
        GROUP BY m.program_id, m.member_id, m.posted
        HAVING m.posted <> COALESCE(SUM(e.points), 0)
    """,
    "entry sequence numbers run 1..last_seq with no gap": """
        SELECT m.program_id, m.member_id, m.last_seq, COUNT(e.seq) AS entries,
               COALESCE(MIN(e.seq), 0) AS first_seq, COALESCE(MAX(e.seq), 0) AS max_seq
        FROM members m
        LEFT JOIN entries e ON e.program_id = m.program_id AND e.member_id = m.member_id
        GROUP BY m.program_id, m.member_id, m.last_seq
        HAVING COUNT(e.seq) <> m.last_seq OR COALESCE(MAX(e.seq), 0) <> m.last_seq
            OR (COUNT(e.seq) > 0 AND MIN(e.seq) <> 1)
    """,
    "each entry's running balance is the previous one plus its points": """
        SELECT program_id, member_id, seq, balance_after, expected FROM (
            SELECT program_id, member_id, seq, balance_after,
                   COALESCE(LAG(balance_after) OVER w, 0) + points AS expected
            FROM entries
            WINDOW w AS (PARTITION BY program_id, member_id ORDER BY seq)
        ) running WHERE balance_after <> expected
    """,
    "every entry belongs to a recorded transaction": """
        SELECT e.program_id, e.member_id, e.seq, e.transaction_id FROM entries e
        LEFT JOIN transactions t ON t.program_id = e.program_id AND t.transaction_id = e.transaction_id
        WHERE t.transaction_id IS NULL
    """,
    "every transaction's points equal its member's entries": """
        SELECT t.program_id, t.transaction_id, t.points, COALESCE(SUM(e.points), 0) AS entries
        FROM transactions t
        LEFT JOIN entries e ON e.program_id = t.program_id AND e.transaction_id = t.transaction_id
             AND e.member_id = t.member_id
        GROUP BY t.program_id, t.transaction_id, t.points
        HAVING COUNT(e.seq) = 0 OR t.points <> COALESCE(SUM(e.points), 0)
    """,
    # An expiry's key is its own id under the system mark (ledger.domain.expiry.expiry_key): no
    # request can ever carry it, so nothing is recorded under it. Any other transaction is asked
    # for its record, whatever its key. The prefix is a literal here: its mark is a control
    # character, never a quote.
    "every transaction made by a request has its idempotency record": f"""
        SELECT t.program_id, t.transaction_id, t.idempotency_key FROM transactions t
        LEFT JOIN idempotency_records i
             ON i.program_id = t.program_id AND i.idempotency_key = t.idempotency_key
        WHERE i.idempotency_key IS NULL
          AND NOT (t.kind = 'EXPIRE' AND t.idempotency_key = '{EXPIRY_KEY_PREFIX}' || t.transaction_id)
    """,
    # Events began with migration 0012, and pruning takes the old ones: event_heads.events_since.
    # events has no index by transaction or member (0019). `e.program_id || ''` keeps SQLite
    # from walking all of a program's events by the primary key for each row: it builds an
    # index of its own for the join instead (test_verify_plans). PostgreSQL hash-joins either way.
    "every transaction has its event": """
        SELECT t.program_id, t.transaction_id, t.kind FROM transactions t
        LEFT JOIN event_heads h ON h.program_id = t.program_id
        LEFT JOIN events e ON e.program_id || '' = t.program_id AND e.transaction_id = t.transaction_id
        WHERE e.position IS NULL AND t.created_at >= COALESCE(h.events_since, 0)
    """,
    "every enrolment has its member.enrolled event": """
        SELECT m.program_id, m.member_id FROM members m
        LEFT JOIN event_heads h ON h.program_id = m.program_id
        LEFT JOIN events e ON e.program_id || '' = m.program_id AND e.member_id = m.member_id
             AND e.type = 'member.enrolled'
        WHERE e.position IS NULL AND m.enrolled_at >= COALESCE(h.events_since, 0)
    """,
    "every event with a transaction belongs to a recorded one, once": """
        SELECT e.program_id, e.transaction_id, COUNT(*) AS events FROM events e
        LEFT JOIN transactions t ON t.program_id = e.program_id AND t.transaction_id = e.transaction_id
        WHERE e.transaction_id IS NOT NULL
        GROUP BY e.program_id, e.transaction_id
        HAVING COUNT(t.transaction_id) = 0 OR COUNT(*) > 1
    """,
    "event positions run without a gap up to the program's head": """
        SELECT h.program_id, h.last_position, COUNT(e.position) AS events,
               COALESCE(MIN(e.position), 0) AS first_position, COALESCE(MAX(e.position), 0) AS max_position
        FROM event_heads h
        LEFT JOIN events e ON e.program_id = h.program_id
        GROUP BY h.program_id, h.last_position
        HAVING COALESCE(MAX(e.position), h.last_position) <> h.last_position
            OR (COUNT(e.position) > 0 AND COUNT(e.position) <> MAX(e.position) - MIN(e.position) + 1)
    """,
    "every entry belongs to a member": """
        SELECT e.program_id, e.member_id, e.seq FROM entries e
        LEFT JOIN members m ON m.program_id = e.program_id AND m.member_id = e.member_id
        WHERE m.member_id IS NULL
    """,
    "every member belongs to a program": """
        SELECT m.program_id, m.member_id FROM members m
        LEFT JOIN programs p ON p.program_id = m.program_id WHERE p.program_id IS NULL
    """,
    "held points are never negative": """
        SELECT program_id, member_id, held FROM members WHERE held < 0
    """,
    "lots hold exactly the positive part of the posted balance": """
        SELECT m.program_id, m.member_id, m.posted, COALESCE(SUM(l.remaining), 0) AS in_lots
        FROM members m
        LEFT JOIN lots l ON l.program_id = m.program_id AND l.member_id = m.member_id
        GROUP BY m.program_id, m.member_id, m.posted
        HAVING COALESCE(SUM(l.remaining), 0) <> CASE WHEN m.posted > 0 THEN m.posted ELSE 0 END
    """,
    "each lot's remaining points are its points less what debits consumed": """
        SELECT l.program_id, l.member_id, l.lot_id, l.points, l.remaining, COALESCE(SUM(c.points), 0) AS consumed
        FROM lots l
        LEFT JOIN lot_consumptions c
             ON c.program_id = l.program_id AND c.member_id = l.member_id AND c.lot_id = l.lot_id
        GROUP BY l.program_id, l.member_id, l.lot_id, l.points, l.remaining
        HAVING l.remaining <> l.points - COALESCE(SUM(c.points), 0) OR l.remaining < 0 OR l.remaining > l.points
    """,
    # A lot is named after the transaction that credited it; a transfer's lots carry a fixed-width
    # suffix ("/000001", ledger.domain.transfers.received_lot_id) after the transfer's id.
    "every lot was credited by a recorded transaction": """
        SELECT l.program_id, l.member_id, l.lot_id FROM lots l
        LEFT JOIN transactions t ON t.program_id = l.program_id AND t.transaction_id =
             CASE WHEN l.lot_id LIKE '%/______' THEN SUBSTR(l.lot_id, 1, LENGTH(l.lot_id) - 7) ELSE l.lot_id END
        WHERE t.transaction_id IS NULL
    """,
    "cached held points equal the open holds": """
        SELECT m.program_id, m.member_id, m.held, COALESCE(SUM(h.points), 0) AS open_holds
        FROM members m
        LEFT JOIN holds h ON h.program_id = m.program_id AND h.member_id = m.member_id AND h.state = 'OPEN'
        GROUP BY m.program_id, m.member_id, m.held
        HAVING m.held <> COALESCE(SUM(h.points), 0)
    """,
    "a captured hold captured at most what it held, and others captured nothing": """
        SELECT program_id, hold_id, state, points, captured_points FROM holds
        WHERE captured_points < 0 OR captured_points > points
           OR (state <> 'CAPTURED' AND captured_points <> 0)
    """,
}


ENTRY_HASHES = "each entry's hash covers its content and the previous entry's hash"
CHAIN_HEADS = "each member's chain head is the hash of its last entry"

# Every member with its entries in seq order; a member without entries comes once with NULLs.
_CHAIN_WALK = """
    SELECT m.program_id, m.member_id, m.last_entry_hash, e.seq, e.transaction_id, e.kind, e.points,
           e.balance_after, e.created_at, e.entry_hash
    FROM members m
    LEFT JOIN entries e ON e.program_id = m.program_id AND e.member_id = m.member_id
    ORDER BY m.program_id, m.member_id, e.seq
"""
_FETCH_ROWS = 2000


def _chain_rows(conn: Connection) -> Iterator:
    """The chain walk's rows, never the whole ledger in memory."""
    for page in streaming.pages(conn, text(_CHAIN_WALK), _FETCH_ROWS):
        yield from page


def _walk(conn: Connection) -> Generator[tuple[str, dict], None, None]:
    """Yields (check name, offending row) for every breach of the hash chain.

    Each entry is checked against the previous entry's *stored* hash, so an edited entry is
    reported by itself rather than with every entry after it; an entry removed from the
    middle shows as its successor linking to a hash that is no longer there, and one removed
    from the end as a chain head that no longer matches the last entry.
    """
    member, previous, head = None, GENESIS, None

    def close():
        if member is not None and head != previous:
            return CHAIN_HEADS, {
                "program_id": member[0],
                "member_id": member[1],
                "last_entry_hash": head,
                "last_entry": previous,
            }
        return None

    for row in _chain_rows(conn):
        key = (row.program_id, row.member_id)
        if key != member:
            breach = close()
            if breach:
                yield breach
            member, previous, head = key, GENESIS, row.last_entry_hash
        if row.seq is None:
            continue
        expected = entry_hash(
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
        if row.entry_hash != expected:
            yield ENTRY_HASHES, {
                "program_id": row.program_id,
                "member_id": row.member_id,
                "seq": row.seq,
                "entry_hash": row.entry_hash,
                "expected": expected,
            }
        # Link the next entry to what is stored, edited or not (see the docstring).
        previous = row.entry_hash if row.entry_hash is not None else expected
    breach = close()
    if breach:
        yield breach


def chain_breaches(conn: Connection, limit: int = 20) -> dict[str, list[dict]]:
    """{check name: up to `limit` offending rows} for the two hash chain checks."""
    found: dict[str, list[dict]] = {ENTRY_HASHES: [], CHAIN_HEADS: []}
    walk = _walk(conn)
    try:
        for name, row in walk:
            if len(found[name]) < limit:
                found[name].append(row)
            if all(len(rows) >= limit for rows in found.values()):
                break
    finally:
        walk.close()  # closes the cursor when stopping early
    return found


def run_checks(conn: Connection, limit: int = 20) -> dict[str, list[dict]]:
    """{check name: up to `limit` offending rows} for every check."""
    results = {}
    for name, sql in CHECKS.items():
        rows = conn.execute(text(f"SELECT * FROM ({sql}) breach LIMIT {int(limit)}")).mappings().all()
        results[name] = [dict(row) for row in rows]
    results.update(chain_breaches(conn, limit))
    results["the liability report's rolled-up days equal the ledger's points by source"] = liability.rollup_breaches(
        conn, limit
    )
    return results


def counts(conn: Connection) -> dict[str, int]:
    found = {
        table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
        for table in ("programs", "members", "transactions", "entries", "idempotency_records", "lots", "holds", "events")
    }
    return found


def program_totals(conn: Connection) -> dict[str, dict[str, int]]:
    """Per program, the points posted (sum of the cached balances) and outstanding (held in
    lots: the positive balances): the totals the liability report at the same instant shows."""
    posted = conn.execute(text("SELECT program_id, COALESCE(SUM(posted), 0) FROM members GROUP BY program_id")).all()
    in_lots: dict[str, int] = {
        row[0]: int(row[1])
        for row in conn.execute(text("SELECT program_id, COALESCE(SUM(remaining), 0) FROM lots GROUP BY program_id"))
    }
    return {
        program_id: {"posted_points": int(total), "outstanding_points": int(in_lots.get(program_id, 0))}
        for program_id, total in posted
    }
