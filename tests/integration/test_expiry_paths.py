"""On PostgreSQL the expiry job lets the database write each batch (ledger.store.expiry_writes);
elsewhere Python does, with the domain's rules (ledger.domain.expiry). Both must write the same
ledger: this runs both on the same members, each in a transaction that is rolled back, with
the same transaction ids, and requires the same rows in every table they write.

The members are built through the gRPC API: lots past their date, lots not yet due, lots
partly or wholly spent, several due lots per member, a member with nothing due, a member
whose id is not ASCII (the entry hash counts bytes), and, for the INACTIVITY cutoff, members
idle since before it (one with a lot that has no date) next to members active after it.

JSON columns (the breakdown and the idempotency record's outcome) are compared as JSON:
PostgreSQL's json text puts a space before each colon where Python's json.dumps does not.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from sqlalchemy import text

from ledger.service import clock
from ledger.service.expiry import _expire_in_database, _expire_in_python
from tests.grpc_helpers import enroll
from tests.integration.test_lifecycle_expiry import (
    DAY,
    INACTIVITY,
    ROLLING,
    earn_at,
    redeem,
    update_program,
    whole_seconds_ago,
)

# What an expiry writes (or moves), per table, as rows of the test's members.
_READS = {
    "transactions": "SELECT transaction_id, member_id, kind, points, breakdown, channel, store_id, order_id, "
    "order_amount, currency, reason, idempotency_key, api_key_id, reverses_transaction_id, occurred_at, created_at, "
    "activity_type, tier_from, tier_to FROM transactions WHERE program_id = :p AND member_id = ANY(:m) "
    "ORDER BY transaction_id",
    "entries": "SELECT member_id, seq, transaction_id, kind, points, balance_after, created_at, entry_hash "
    "FROM entries WHERE program_id = :p AND member_id = ANY(:m) ORDER BY member_id, seq",
    "lot_consumptions": "SELECT member_id, transaction_id, lot_id, points, created_at FROM lot_consumptions "
    "WHERE program_id = :p AND member_id = ANY(:m) ORDER BY member_id, transaction_id, lot_id",
    "lots": "SELECT member_id, lot_id, points, remaining, available_at, expires_at FROM lots "
    "WHERE program_id = :p AND member_id = ANY(:m) ORDER BY member_id, lot_id",
    "members": "SELECT member_id, posted, last_seq, last_activity_at, updated_at, last_entry_hash FROM members "
    "WHERE program_id = :p AND member_id = ANY(:m) ORDER BY member_id",
    "idempotency_records": "SELECT r.idempotency_key, r.method, r.request_hash, r.outcome, r.created_at "
    "FROM idempotency_records r JOIN transactions t "
    "ON t.program_id = r.program_id AND t.idempotency_key = r.idempotency_key "
    "WHERE r.program_id = :p AND t.member_id = ANY(:m) ORDER BY r.idempotency_key",
}
_JSON_COLUMNS = {"breakdown", "outcome"}


def _ledger_after(engine, expire, program_id: str, member_ids: list[str], now, cutoff):
    """(tally, every table's rows of the members) after `expire` ran, in a transaction rolled back."""
    keys = [(program_id, m) for m in member_ids]
    transaction_ids = [f"tx_paths_{n:04d}" for n in range(len(keys))]
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            tally = expire(conn, sorted(keys), transaction_ids, now, cutoff)
            tables = {
                table: [
                    {k: json.loads(v) if k in _JSON_COLUMNS else v for k, v in row._mapping.items()}
                    for row in conn.execute(text(sql), {"p": program_id, "m": member_ids})
                ]
                for table, sql in _READS.items()
            }
        finally:
            transaction.rollback()
    return (tally.members, tally.points), tables


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
    for days, points in ((45, 300), (40, 200), (5, 90)):
        earn_at(api, m["due lots, partly spent, one not due"], points, whole_seconds_ago(days * DAY))
    redeem(api, m["due lots, partly spent, one not due"], 120)  # from the soonest-expiring lot
    earn_at(api, m["nothing due"], 400, whole_seconds_ago(3 * DAY))
    earn_at(api, m["due lot wholly spent"], 250, whole_seconds_ago(33 * DAY))
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
    engine, program_id, member_ids = pg_program.backend.engine, pg_program.program_id, list(members.values())
    now = clock.now()

    for cutoff in (None, now - timedelta(days=45)):  # ROLLING alone, then with the INACTIVITY cutoff
        in_database = _ledger_after(engine, _expire_in_database, program_id, member_ids, now, cutoff)
        in_python = _ledger_after(engine, _expire_in_python, program_id, member_ids, now, cutoff)
        (members_expired, points), tables = in_database
        assert in_database == in_python
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
        assert (members_expired, points) == (len(expected), sum(expected.values()))
        expired = {row["member_id"]: -row["points"] for row in tables["transactions"] if row["kind"] == "EXPIRE"}
        assert expired == {members[label]: points for label, points in expected.items()}
        reasons = {row["member_id"]: row["reason"] for row in tables["transactions"] if row["kind"] == "EXPIRE"}
        idle_reason = reasons[members["idle since before the cutoff"]]
        assert idle_reason == ("points expired: validity ended" if cutoff is None else
                               "points expired: no activity for the program's inactivity period")
        three = next(row for row in tables["transactions"] if row["member_id"] == members["three due lots"]
                     and row["kind"] == "EXPIRE")
        assert three["breakdown"] == [
            {"source": "LEDGER_OPERATION", "points": -120, "description": "3 lot(s) expired: validity ended",
             "campaign_id": ""}
        ]
