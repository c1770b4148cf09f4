"""PostgreSQL tells a batch of post-purchase moments in one statement.

The portable path (ledger.store.moments.tell) claims the batch's keys with one INSERT and
hands an event per claimed key to the outbox, which sends one INSERT per event with the
COMMIT. At a million reminders that is a million statements; here the batch comes in as
arrays and one statement claims the keys, moves the program's event head by the number
claimed and writes their events at the positions that gives (the outbox's rule: the head's
row lock, taken last and held to the commit, orders the program's events as they commit).
Only claimed keys get an event, so a key told before, by this process or another leader,
tells nothing again. The events' columns come from tables.py through insert_from, as the
expiry batch's do (ledger.store.postgres.expiry_writes).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from ledger.domain.moments import Moment
from ledger.store.instants import to_micros
from ledger.store.ledger_writes import insert_from
from ledger.store.postgres import write_behind
from ledger.store.tables import events

_EVENTS = insert_from(
    events,
    "numbered CROSS JOIN bumped",
    program_id="%(program_id)s",
    position="bumped.last_position - numbered.total + numbered.n",
    type="numbered.type",
    member_id="numbered.member_id",
    transaction_id="NULL",
    occurred_at="numbered.occurred_at",
    created_at="%(now)s",
    payload="numbered.payload",
)

_TELL = f"""
WITH batch AS (
    SELECT * FROM unnest(%(keys)s::text[], %(types)s::text[], %(member_ids)s::text[], %(occurred)s::bigint[],
                         %(payloads)s::text[]) WITH ORDINALITY AS b(moment_key, type, member_id, occurred_at, payload, i)
), claimed AS (
    INSERT INTO moment_keys (program_id, moment_key, due_at, created_at)
    SELECT %(program_id)s, moment_key, occurred_at, %(now)s FROM batch
    ON CONFLICT DO NOTHING
    RETURNING moment_key
), numbered AS (
    SELECT batch.*, row_number() OVER (ORDER BY batch.i) AS n, count(*) OVER () AS total
    FROM batch JOIN claimed USING (moment_key)
), bumped AS (
    INSERT INTO event_heads (program_id, last_position, events_since)
    SELECT %(program_id)s, count(*), 0 FROM numbered HAVING count(*) > 0
    ON CONFLICT (program_id) DO UPDATE SET last_position = event_heads.last_position + excluded.last_position
    RETURNING last_position
), written AS (
    {_EVENTS}
    RETURNING 1
)
SELECT count(*) FROM written
"""


def tell(conn: Connection, program_id: str, moments: list[Moment], now: datetime) -> int:
    """Claims the moments' keys and writes an event for each one claimed; returns how many."""
    if not moments:
        return 0
    params = {
        "program_id": program_id,
        "now": to_micros(now),
        "keys": [m.key for m in moments],
        "types": [m.type for m in moments],
        "member_ids": [m.member_id for m in moments],
        "occurred": [to_micros(m.occurred_at) for m in moments],
        "payloads": [m.payload for m in moments],
    }
    with write_behind.driver_cursor(conn, "tell moments") as cursor:
        cursor.execute(_TELL, params)
        return int(cursor.fetchone()[0])
