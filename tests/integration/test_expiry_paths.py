"""On PostgreSQL the expiry job lets the database write each batch (ledger.store.postgres.expiry_writes);
elsewhere Python does, with the domain's rules (ledger.domain.expiry). Both must write the same
ledger: this runs both on the same members, each in a transaction that is rolled back, with
the same transaction ids, and requires the same rows in every table they write.

The members are built through the gRPC API: lots past their date, lots not yet due, lots
partly or wholly spent, several due lots per member, a member with nothing due, a member
whose id is not ASCII (the entry hash counts bytes), and, for the INACTIVITY cutoff, members
idle since before it (one with a lot that has no date) next to members active after it.

The database path is called as the sweep calls it (ledger.service.expiry._expire_batch), with
the keys out of order, one twice and one of no member, and a second program's member among
them; the Python path gets the clean, sorted list. Every column is compared as stored, the
JSON texts (breakdown, the event's payload) byte for byte, and each expiry's event at the
same position in its program. Neither writes an idempotency record for an expiry: its key
is its own id, which no request can carry.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from sqlalchemy import text

from ledger.domain.expiry import expiry_key
from ledger.service import clock
from ledger.store import outbox
from ledger.service.expiry import _expire_batch, _expire_in_python
from tests.conftest import new_program
from tests.grpc_helpers import enroll
from tests.integration.test_lifecycle_expiry import (
    DAY,
    INACTIVITY,
    ROLLING,
    earn_at,
    redeem,
    server_clock_moved,
    update_program,
    whole_seconds_ago,
)

# What an expiry writes (or moves), per table, as rows of the test's members.
_READS = {
    "transactions": "SELECT program_id, transaction_id, member_id, kind, points, breakdown, channel, store_id, order_id, "
    "order_amount, currency, reason, idempotency_key, api_key_id, reverses_transaction_id, occurred_at, created_at, "
    "activity_type, tier_from, tier_to FROM transactions WHERE program_id = ANY(:p) AND member_id = ANY(:m) "
    "ORDER BY program_id, transaction_id",
    "entries": "SELECT program_id, member_id, seq, transaction_id, kind, points, balance_after, created_at, entry_hash "
    "FROM entries WHERE program_id = ANY(:p) AND member_id = ANY(:m) ORDER BY program_id, member_id, seq",
    "lot_consumptions": "SELECT program_id, member_id, transaction_id, lot_id, points, created_at FROM lot_consumptions "
    "WHERE program_id = ANY(:p) AND member_id = ANY(:m) ORDER BY program_id, member_id, transaction_id, lot_id",
    "lots": "SELECT program_id, member_id, lot_id, points, remaining, available_at, expires_at FROM lots "
    "WHERE program_id = ANY(:p) AND member_id = ANY(:m) ORDER BY program_id, member_id, lot_id",
    "members": "SELECT program_id, member_id, posted, last_seq, last_activity_at, updated_at, last_entry_hash FROM members "
    "WHERE program_id = ANY(:p) AND member_id = ANY(:m) ORDER BY program_id, member_id",
    "idempotency_records": "SELECT r.program_id, r.idempotency_key, r.method, r.request_hash, r.outcome, r.created_at "
    "FROM idempotency_records r JOIN transactions t "
    "ON t.program_id = r.program_id AND t.idempotency_key = r.idempotency_key "
    "WHERE r.program_id = ANY(:p) AND t.member_id = ANY(:m) ORDER BY r.program_id, r.idempotency_key",
    # Every record of the programs: an expiry adds none.
    "records of the programs": "SELECT count(*) AS records FROM idempotency_records WHERE program_id = ANY(:p)",
    # Each expiry's event, at the same position in its program on both paths.
    "events": "SELECT program_id, position, type, member_id, transaction_id, occurred_at, created_at, payload "
    "FROM events WHERE program_id = ANY(:p) AND member_id = ANY(:m) ORDER BY program_id, position",
}


def _ledger_after(engine, expire, keys: list[tuple[str, str]], now, cutoff):
    """(tally, every table's rows of the members) after expire(conn, now, cutoff), in a
    transaction rolled back."""
    program_ids = sorted({program_id for program_id, _ in keys})
    member_ids = sorted({member_id for _, member_id in keys})
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            tally = expire(conn, now, cutoff)
            outbox.write_pending(conn)  # what the COMMIT would send: the Python path's events
            tables = {
                table: [dict(row._mapping) for row in conn.execute(text(sql), {"p": program_ids, "m": member_ids})]
                for table, sql in _READS.items()
            }
        finally:
            transaction.rollback()
    return (tally.members, tally.points), tables


def _transaction_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_paths_{n:04d}" for n in range(count)]


def _members(api) -> dict[str, str]:
    def new(label: str) -> str:
        member_id = f"{label}-{secrets.token_hex(3)}"
        enroll(api, member_id)
        return member_id

    # An INACTIVITY program's lots carry no date: only the inactivity cutoff expires this one.
    update_program(api, expiry_mode=INACTIVITY, expiry_days=30)
    undated = new("undated")
    earn_at(api, undated, 80, whole_seconds_ago(50 * DAY))
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    m = {
        "idle, lot without a date": undated,
        "one due lot": new("due"),
        "due lots, partly spent, one not due": new("mixed"),
        "nothing due": new("fresh"),
        "due lot wholly spent": new("spent"),
        "three due lots": new("three"),
        "non-ASCII id": new("mitglied-ü-ß"),
        "idle since before the cutoff": new("idle"),
    }
    earn_at(api, m["one due lot"], 700, whole_seconds_ago(31 * DAY))
    # Spent while still valid: the server's clock set back to before those lots expired.
    with server_clock_moved(-20 * DAY):
        for days, points in ((45, 300), (40, 200)):
            earn_at(api, m["due lots, partly spent, one not due"], points, whole_seconds_ago(days * DAY))
        redeem(api, m["due lots, partly spent, one not due"], 120)  # from the soonest-expiring lot
    earn_at(api, m["due lots, partly spent, one not due"], 90, whole_seconds_ago(5 * DAY))
    earn_at(api, m["nothing due"], 400, whole_seconds_ago(3 * DAY))
    earn_at(api, m["due lot wholly spent"], 250, whole_seconds_ago(33 * DAY))
    with server_clock_moved(-5 * DAY):
        redeem(api, m["due lot wholly spent"], 250)
    for days in (50, 38, 32):
        earn_at(api, m["three due lots"], days, whole_seconds_ago(days * DAY))
    earn_at(api, m["non-ASCII id"], 123, whole_seconds_ago(34 * DAY))
    earn_at(api, m["idle since before the cutoff"], 500, whole_seconds_ago(70 * DAY))
    earn_at(api, m["idle since before the cutoff"], 60, whole_seconds_ago(65 * DAY))
    return m


def test_database_and_python_expire_the_same_rows(pg_program):
    api = pg_program.api()
    try:
        members = _members(api)
    finally:
        api.close()
    # A second program in the same batch: the database path writes each program's share.
    other = new_program(pg_program.backend)
    api = other.api()
    try:
        update_program(api, expiry_mode=ROLLING, expiry_days=30)
        other_member = f"other-{secrets.token_hex(3)}"
        enroll(api, other_member)
        earn_at(api, other_member, 90, whole_seconds_ago(40 * DAY))
    finally:
        api.close()
    engine, now = pg_program.backend.engine, clock.now()
    keys = sorted([(pg_program.program_id, m) for m in members.values()] + [(other.program_id, other_member)])
    # As the sweep would never hand them over: out of order, one member twice, one unknown.
    handed_over = keys[::-1] + [keys[0], (pg_program.program_id, "nobody")]
    everyone = sorted(set(handed_over))

    with engine.connect() as conn:
        records_before = conn.execute(
            text(_READS["records of the programs"]), {"p": sorted({p for p, _ in everyone})}
        ).scalar_one()

    for cutoff in (None, now - timedelta(days=45)):  # ROLLING alone, then with the INACTIVITY cutoff

        def in_database(conn, now, cutoff):  # through the dispatch, as the sweep calls it
            assert conn.dialect.name == "postgresql"
            return _expire_batch(conn, handed_over, now, cutoff, new_ids=_transaction_ids, in_database=True)

        def in_python(conn, now, cutoff):
            return _expire_in_python(conn, everyone, _transaction_ids("tx", len(everyone)), now, cutoff)

        by_database = _ledger_after(engine, in_database, everyone, now, cutoff)
        by_python = _ledger_after(engine, in_python, everyone, now, cutoff)
        (members_expired, points), tables = by_database
        assert by_database == by_python
        # and what they agree on is the expected expiry, not nothing
        expected = {
            "one due lot": 700,
            "due lots, partly spent, one not due": 380,
            "three due lots": 120,
            "non-ASCII id": 123,
            "idle since before the cutoff": 560,
        }
        if cutoff is not None:
            expected["idle, lot without a date"] = 80
        assert (members_expired, points) == (len(expected) + 1, sum(expected.values()) + 90)
        expired = {row["member_id"]: -row["points"] for row in tables["transactions"] if row["kind"] == "EXPIRE"}
        assert expired == {members[label]: points for label, points in expected.items()} | {other_member: 90}
        reasons = {row["member_id"]: row["reason"] for row in tables["transactions"] if row["kind"] == "EXPIRE"}
        idle_reason = reasons[members["idle since before the cutoff"]]
        assert idle_reason == ("points expired: validity ended" if cutoff is None else
                               "points expired: no activity for the program's inactivity period")
        three = next(row for row in tables["transactions"] if row["member_id"] == members["three due lots"]
                     and row["kind"] == "EXPIRE")
        assert three["breakdown"] == (
            '[{"source": "LEDGER_OPERATION", "points": -120, "description": "3 lot(s) expired: validity ended", '
            '"campaign_id": ""}]'
        )
        assert json.loads(three["breakdown"])[0]["points"] == -120
        # each under its own id as key, which no request can carry: no idempotency record for it
        expiries = [row for row in tables["transactions"] if row["kind"] == "EXPIRE"]
        assert {row["idempotency_key"] for row in expiries} == {expiry_key(row["transaction_id"]) for row in expiries}
        recorded = {row["idempotency_key"] for row in tables["idempotency_records"]}
        assert recorded and recorded.isdisjoint(row["idempotency_key"] for row in expiries)
        assert tables["records of the programs"] == [{"records": records_before}]
        # one points.expired event per EXPIRE, saying what it took and what is left
        events = {row["transaction_id"]: row for row in tables["events"] if row["type"] == "points.expired"}
        assert len(events) == len(expired)
        three_event = json.loads(events[three["transaction_id"]]["payload"])
        assert (three_event["kind"], three_event["points"], three_event["balance_after"]) == ("EXPIRE", -120, 0)
