"""`verify` finds ledger rows changed or removed behind the application's back (the hash chain).

On PostgreSQL and SQLite, after real transactions written through the service layer,
verify is clean. Then a superuser lifts the append-only guards (PostgreSQL: ALTER TABLE
... DISABLE TRIGGER ALL, since the guards are ENABLE ALWAYS; SQLite: DROP TRIGGER) and
- edits one entry's points: that entry's hash no longer matches;
- edits an entry and rewrites its hash too: the next entry no longer links to it;
- removes the last transaction completely and rewrites every projection to hide it:
  only the chain head (members.last_entry_hash) still tells;
- removes an entry from the middle: its successor links to a hash that is gone.
Migration 0006 backfills the chain of entries written before it: the backfilled hashes
are those the application writes, and the chain continues from them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from ledger.domain import credentials
from ledger.domain.expiry import expiry_key
from ledger.domain.hash_chain import GENESIS, EntryContent, entry_hash
from ledger.domain.kinds import Role
from ledger.service import members, programs, support
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.verify import verify
from ledger.store import migrate
from ledger.store.tables import LEDGER_TABLES
from ledger.store.verification import CHAIN_HEADS, ENTRY_HASHES

BALANCE = "cached posted balance equals the sum of the member's entries"
GAPS = "entry sequence numbers run 1..last_seq with no gap"
RECORDS = "every transaction made by a request has its idempotency record"


@dataclass
class Ledger:
    engine: Engine
    program_id: str
    caller: Caller
    writes: int = 0

    def adjust(self, member_id: str, points: int) -> None:
        self.writes += 1
        mutation = Mutation(f"adjust-{self.writes}", "AdjustPoints", f"request-{self.writes}")
        support.adjust_points(self.engine, self.caller, mutation, member_id, points, "goodwill")


def new_ledger(engine: Engine) -> Ledger:
    created = programs.create_program(engine, "tamper-evidence")
    caller = Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
    ledger = Ledger(engine, created.program_id, caller)
    for member_id in ("m-1", "m-2", "m-3"):
        members.enroll_member(engine, caller, member_id)
    for points in (500, -120, 30, 45):
        ledger.adjust("m-1", points)
    ledger.adjust("m-2", 70)
    return ledger  # m-3 has no entry at all


@pytest.fixture
def ledger(empty_engine) -> Ledger:
    migrate.upgrade(empty_engine)
    return new_ledger(empty_engine)


def as_superuser(engine: Engine, *statements: str, params: dict | None = None) -> None:
    """Runs statements with every append-only guard lifted, then puts the guards back."""
    with engine.begin() as conn:
        postgres = engine.dialect.name == "postgresql"
        saved = []
        if postgres:
            for table in LEDGER_TABLES:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        else:
            saved = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
            for name, _ in saved:
                conn.execute(text(f"DROP TRIGGER {name}"))
        for statement in statements:
            conn.execute(text(statement), params or {})
        if postgres:
            for table in LEDGER_TABLES:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))
                conn.execute(text(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only"))
                conn.execute(text(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate"))
        else:
            for _, sql in saved:
                conn.execute(text(sql))


def entries_of(engine: Engine, member_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT * FROM entries WHERE member_id = :m ORDER BY seq"), {"m": member_id}
        ).all()


def chain_report(engine: Engine) -> dict[str, list[dict]]:
    breaches = verify(engine).breaches
    return {name: breaches.get(name, []) for name in (ENTRY_HASHES, CHAIN_HEADS)}


def test_real_writes_form_a_clean_chain(ledger):
    report = verify(ledger.engine)
    assert report.clean, report.breaches
    previous = GENESIS
    for row in entries_of(ledger.engine, "m-1"):
        content = EntryContent(
            row.program_id, row.member_id, row.seq, row.transaction_id, row.kind, row.points, row.balance_after,
            row.created_at,
        )
        assert row.entry_hash == entry_hash(previous, content)
        previous = row.entry_hash
    with ledger.engine.connect() as conn:
        heads = dict(conn.execute(text("SELECT member_id, last_entry_hash FROM members")).all())
    assert heads == {"m-1": previous, "m-2": entries_of(ledger.engine, "m-2")[-1].entry_hash, "m-3": GENESIS}


def test_edited_entry_is_reported(ledger):
    as_superuser(ledger.engine, "UPDATE entries SET points = points + 1000 WHERE member_id = 'm-1' AND seq = 2")
    report = chain_report(ledger.engine)
    assert [(row["member_id"], row["seq"]) for row in report[ENTRY_HASHES]] == [("m-1", 2)]
    assert report[CHAIN_HEADS] == []


def test_edited_entry_with_a_rewritten_hash_breaks_the_next_link(ledger):
    second = entries_of(ledger.engine, "m-1")[1]
    forged = entry_hash(
        entries_of(ledger.engine, "m-1")[0].entry_hash,
        EntryContent(
            second.program_id, second.member_id, second.seq, second.transaction_id, second.kind, second.points,
            second.balance_after + 1, second.created_at,
        ),
    )
    as_superuser(
        ledger.engine,
        "UPDATE entries SET balance_after = balance_after + 1, entry_hash = :h WHERE member_id = 'm-1' AND seq = 2",
        params={"h": forged},
    )
    report = chain_report(ledger.engine)
    assert [(row["member_id"], row["seq"]) for row in report[ENTRY_HASHES]] == [("m-1", 3)]


def test_removed_last_transaction_is_reported_by_the_chain_head(ledger):
    last = entries_of(ledger.engine, "m-1")[-1]
    assert last.points == 45
    as_superuser(
        ledger.engine,
        # The whole transaction, consistently: its entry, its record, its lot, and the projections,
        "DELETE FROM entries WHERE member_id = 'm-1' AND seq = :seq",
        "DELETE FROM idempotency_records WHERE idempotency_key = "
        "(SELECT idempotency_key FROM transactions WHERE transaction_id = :tx)",
        "DELETE FROM transactions WHERE transaction_id = :tx",
        "DELETE FROM lots WHERE lot_id = :tx",
        # and its event, the later events renumbered so that no gap tells
        "CREATE TEMPORARY TABLE removed AS SELECT position FROM events WHERE transaction_id = :tx",
        "DELETE FROM events WHERE transaction_id = :tx",
        "UPDATE events SET position = position - 1 WHERE position > (SELECT position FROM removed)",
        "UPDATE event_heads SET last_position = last_position - 1",
        "UPDATE members SET last_seq = last_seq - 1, posted = posted - :points WHERE member_id = 'm-1'",
        params={"seq": last.seq, "tx": last.transaction_id, "points": last.points},
    )
    breaches = verify(ledger.engine).breaches
    # Every other invariant holds: only the chain head tells.
    assert set(breaches) == {CHAIN_HEADS}, breaches
    assert [(row["member_id"], row["last_entry_hash"]) for row in breaches[CHAIN_HEADS]] == [
        ("m-1", last.entry_hash)
    ]


def test_a_removed_idempotency_record_is_reported_and_only_an_expiry_needs_none(ledger):
    """An expiry's key is its own id under the system mark, which no request can carry: verify
    asks no record of it. Any other transaction without its record is reported: an expiry
    whose key names another transaction, and a transaction of another kind under its own
    expiry key."""
    adjusted, spent, _, last = entries_of(ledger.engine, "m-1")
    as_superuser(
        ledger.engine,
        "DELETE FROM idempotency_records WHERE idempotency_key IN "
        "(SELECT idempotency_key FROM transactions WHERE transaction_id IN (:expiry, :other_id, :other_kind))",
        "UPDATE transactions SET kind = 'EXPIRE', idempotency_key = :own WHERE transaction_id = :expiry",
        "UPDATE transactions SET kind = 'EXPIRE', idempotency_key = :own WHERE transaction_id = :other_id",
        "UPDATE transactions SET idempotency_key = :last_own WHERE transaction_id = :other_kind",
        params={
            "expiry": adjusted.transaction_id,
            "other_id": spent.transaction_id,
            "other_kind": last.transaction_id,
            "own": expiry_key(adjusted.transaction_id),
            "last_own": expiry_key(last.transaction_id),
        },
    )
    breaches = verify(ledger.engine).breaches
    assert set(breaches) == {RECORDS}, breaches
    assert sorted(row["transaction_id"] for row in breaches[RECORDS]) == sorted(
        [spent.transaction_id, last.transaction_id]
    )


def test_removed_middle_entry_is_reported(ledger):
    as_superuser(ledger.engine, "DELETE FROM entries WHERE member_id = 'm-1' AND seq = 2")
    breaches = verify(ledger.engine).breaches
    assert [(row["member_id"], row["seq"]) for row in breaches[ENTRY_HASHES]] == [("m-1", 3)]
    assert breaches[GAPS]


def test_inserted_entry_without_a_hash_is_reported(ledger):
    as_superuser(
        ledger.engine,
        "INSERT INTO entries (program_id, member_id, seq, transaction_id, kind, points, balance_after, created_at) "
        "SELECT program_id, member_id, seq + 1, transaction_id, kind, 0, balance_after, created_at "
        "FROM entries WHERE member_id = 'm-2' AND seq = 1",
        "UPDATE members SET last_seq = 2 WHERE member_id = 'm-2'",
    )
    report = chain_report(ledger.engine)
    assert [(row["member_id"], row["seq"], row["entry_hash"]) for row in report[ENTRY_HASHES]] == [("m-2", 2, None)]
    assert [row["member_id"] for row in report[CHAIN_HEADS]] == ["m-2"]


def test_migration_backfills_the_chain_of_existing_entries(ledger):
    engine = ledger.engine
    written = {m: [row.entry_hash for row in entries_of(engine, m)] for m in ("m-1", "m-2")}
    migrate.downgrade(engine, "0005")
    assert "entry_hash" not in entries_of(engine, "m-1")[0]._fields
    migrate.upgrade(engine)
    assert {m: [row.entry_hash for row in entries_of(engine, m)] for m in ("m-1", "m-2")} == written
    migrate.upgrade(engine)  # verify reads the tables of later migrations too (0012: events)
    report = verify(engine)
    assert report.clean, report.breaches
    # The chain goes on from the backfilled head, and the guards are back.
    ledger.adjust("m-1", 5)
    ledger.adjust("m-3", 9)
    report = verify(engine)
    assert report.clean, report.breaches
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE entries SET points = 0"))


def test_backfill_carries_the_chain_across_pages(ledger, monkeypatch):
    """Pages of two entries, so members span pages and pages span members."""
    engine = ledger.engine
    written = {m: [row.entry_hash for row in entries_of(engine, m)] for m in ("m-1", "m-2")}
    migrate.downgrade(engine, "0005")
    spec = importlib.util.spec_from_file_location(
        "migration_0006", migrate.MIGRATIONS_DIR / "versions" / "0006_entry_hash_chain.py"
    )
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    monkeypatch.setattr(migration, "PAGE", 2)
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            migration.upgrade()
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    assert {m: [row.entry_hash for row in entries_of(engine, m)] for m in ("m-1", "m-2")} == written
    migrate.upgrade(engine)  # verify reads the tables of later migrations too (0012: events)
    report = verify(engine)
    assert report.clean, report.breaches
