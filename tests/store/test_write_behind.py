"""Queued writes (ledger.store.postgres.write_behind) land exactly as if sent one by one.

On PostgreSQL they ride in front of the next statement or are sent just before the commit:
values with percent signs, quotes and non-ASCII text arrive intact, order is kept (a later
read sees them), a failing queued write fails its round trip with the driver's error class
and rolls the whole transaction back, and a rollback forgets the queue. On SQLite they run
at once.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, exc, insert, select, update

from ledger.store import unit_of_work
from ledger.store.postgres import write_behind

_metadata = MetaData()
notes = Table("write_behind_notes", _metadata, Column("id", Integer, primary_key=True), Column("text", String))
_insert_note = insert(notes)
_rename = update(notes).where(notes.c.id == bindparam("p_id")).values(text=bindparam("p_text"))


@pytest.fixture
def engine(empty_engine):
    _metadata.create_all(empty_engine)
    return empty_engine


def _texts(engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {row.id: row.text for row in conn.execute(select(notes))}


def test_queued_writes_arrive_intact_and_in_order_before_the_next_read(engine):
    awkward = "50% off 'today' \\ only; ünïcödé %(name)s %s"

    def work(conn):
        write_behind.execute(conn, _insert_note, [{"id": 1, "text": awkward}, {"id": 2, "text": "two"}])
        write_behind.execute(conn, _rename, {"p_id": 2, "p_text": "renamed %"})
        # A read with parameters of its own: the queue rides in front of it.
        seen = conn.execute(select(notes.c.text).where(notes.c.id == 1)).scalar_one()
        write_behind.execute(conn, _insert_note, {"id": 3, "text": "flushed at commit"})
        return seen

    assert unit_of_work.run(engine, work) == awkward
    assert _texts(engine) == {1: awkward, 2: "renamed %", 3: "flushed at commit"}


def test_a_failing_queued_write_rolls_back_the_whole_transaction(engine):
    unit_of_work.run(engine, lambda conn: write_behind.execute(conn, _insert_note, {"id": 1, "text": "first"}))

    def work(conn):
        write_behind.execute(conn, _insert_note, {"id": 2, "text": "would be lost"})
        write_behind.execute(conn, _insert_note, {"id": 1, "text": "duplicate key"})
        conn.execute(select(notes.c.id)).all()

    with engine.connect() as conn:
        with pytest.raises(exc.IntegrityError):  # the driver's class, as for a statement sent alone
            with conn.begin():
                work(conn)
    assert _texts(engine) == {1: "first"}


def test_a_rollback_forgets_queued_writes(engine):
    with engine.connect() as conn:
        with conn.begin() as transaction:
            write_behind.execute(conn, _insert_note, {"id": 1, "text": "never sent"})
            transaction.rollback()
        with conn.begin():
            conn.execute(select(notes.c.id)).all()  # nothing queued rides along any more
    assert _texts(engine) == {}


def test_writes_still_queued_at_the_commit_are_sent_before_it(engine):
    with engine.begin() as conn:
        write_behind.execute(conn, _insert_note, {"id": 1, "text": "queued to the end"})
    assert _texts(engine) == {1: "queued to the end"}


def test_a_failing_write_sent_at_the_commit_commits_nothing(engine):
    unit_of_work.run(engine, lambda conn: write_behind.execute(conn, _insert_note, {"id": 1, "text": "first"}))
    with pytest.raises(exc.IntegrityError):
        with engine.begin() as conn:
            write_behind.execute(conn, _insert_note, {"id": 2, "text": "would be lost"})
            write_behind.execute(conn, _insert_note, {"id": 1, "text": "duplicate key"})
    assert _texts(engine) == {1: "first"}


def test_a_connection_lost_inside_a_transaction_rolls_back_cleanly_and_the_pool_reconnects(engine):
    """The queue's clean-up must not touch a connection SQLAlchemy has invalidated: that would
    raise over the original error and hide the lost connection from unit_of_work's retry."""
    with engine.connect() as conn:
        conn.begin()
        write_behind.execute(conn, _insert_note, {"id": 1, "text": "lost with the connection"})
        conn.execute(select(notes.c.id)).all()
        conn.invalidate()
        conn.rollback()
    assert unit_of_work.run(engine, lambda conn: conn.execute(select(notes.c.id)).all(), read_only=True) == []
