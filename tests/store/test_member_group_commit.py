"""Group commit per member (ledger.store.member_group_commit), on a real PostgreSQL.

Operations that line up behind a running one share one database transaction and all
commit; one refused by a rule is rolled back alone; a database failure in the batch
makes every operation run on its own, so the others still commit; on SQLite every
operation runs on its own.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, insert, select, text

from ledger.domain import errors
from ledger.domain.errors import LedgerError
from ledger.store import member_group_commit
from ledger.store.database import Database
from ledger.store.postgres import write_behind

_metadata = MetaData()
rows = Table("member_batch_rows", _metadata, Column("id", Integer, primary_key=True), Column("txid", String))
_insert_row = insert(rows)
MEMBER = ("prg_test", "m1")


@pytest.fixture
def engine(empty_engine):
    _metadata.create_all(empty_engine)
    return empty_engine


def _txid(conn) -> str:
    if conn.dialect.name != "postgresql":
        return "sqlite"
    return str(conn.execute(text("SELECT txid_current()")).scalar_one())


def _writer(row_id: int, *, refuse: bool = False, duplicate_of: int | None = None):
    def work(conn):
        txid = _txid(conn)
        write_behind.execute(conn, _insert_row, {"id": duplicate_of or row_id, "txid": txid})
        if refuse:
            conn.execute(select(rows.c.id)).all()  # the refused write reached the database
            raise errors.refused("TEST_REFUSAL", f"operation {row_id} refused")
        return txid

    return work


def _line_up(engine, operations: dict[int, object]) -> dict[int, object]:
    """Runs operation 0 first and holds it until all others wait behind it, then lets go."""
    started, release, results = threading.Event(), threading.Event(), {}

    def first(conn):
        started.set()
        release.wait(10)
        return _txid(conn)

    def call(key, work):
        try:
            results[key] = member_group_commit.run(Database(engine), MEMBER, work)
        except Exception as error:  # the test inspects what each caller got
            results[key] = error

    threads = [threading.Thread(target=call, args=(0, first))]
    threads[0].start()
    assert started.wait(10)
    for key, work in operations.items():
        threads.append(threading.Thread(target=call, args=(key, work)))
        threads[-1].start()
    if engine.dialect.name == "postgresql":  # on SQLite nothing lines up: each runs on its own
        deadline = time.monotonic() + 10
        while member_group_commit.waiting(MEMBER) < len(operations) and time.monotonic() < deadline:
            time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(20)
    return results


def _stored(engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {row.id: row.txid for row in conn.execute(select(rows))}


def test_operations_lined_up_behind_a_running_one_share_one_transaction(engine):
    results = _line_up(engine, {i: _writer(i) for i in range(1, 6)})
    assert set(_stored(engine)) == {1, 2, 3, 4, 5}
    followers = {results[i] for i in range(1, 6)}
    if engine.dialect.name == "postgresql":
        assert len(followers) == 1, "the five followers committed together"
        assert results[0] not in followers
    else:
        assert followers == {"sqlite"}


def test_a_refused_operation_is_rolled_back_alone(engine):
    results = _line_up(engine, {1: _writer(1), 2: _writer(2, refuse=True), 3: _writer(3)})
    assert isinstance(results[2], LedgerError) and results[2].reason == "TEST_REFUSAL"
    assert set(_stored(engine)) == {1, 3}
    if engine.dialect.name == "postgresql":
        assert results[1] == results[3], "its neighbours still committed together"


def test_a_database_failure_makes_every_operation_run_on_its_own(engine):
    with engine.begin() as conn:
        conn.execute(_insert_row, {"id": 100, "txid": "before"})
    results = _line_up(engine, {1: _writer(1), 2: _writer(2, duplicate_of=100), 3: _writer(3)})
    assert set(_stored(engine)) == {1, 3, 100}
    assert isinstance(results[2], (LedgerError, exc.IntegrityError))
    if engine.dialect.name == "postgresql":
        assert results[1] != results[3], "after the failed batch each ran in its own transaction"


def test_a_refused_operations_events_are_rolled_back_with_it(engine):
    """Each operation's events (ledger.store.outbox) go with its rows: a refused one's are
    dropped with its savepoint, its neighbours' are written once, positions without a gap."""
    from datetime import datetime, timezone

    from ledger.domain import events
    from ledger.store import migrate, outbox

    migrate.upgrade(engine)

    def with_event(row_id: int, refuse: bool = False):
        write = _writer(row_id, refuse=refuse)

        def work(conn):
            outbox.add(conn, MEMBER[0], events.member_enrolled(f"m{row_id}", "CODE", datetime.now(timezone.utc)))
            return write(conn)

        return work

    results = _line_up(engine, {1: with_event(1), 2: with_event(2, refuse=True), 3: with_event(3)})
    assert isinstance(results[2], LedgerError)
    with engine.connect() as conn:
        written = conn.execute(text("SELECT position, member_id FROM events ORDER BY position")).all()
    assert [tuple(row) for row in written] in ([(1, "m1"), (2, "m3")], [(1, "m3"), (2, "m1")])
