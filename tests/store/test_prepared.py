"""Hot statements go out as EXECUTE of server-side prepared statements (ledger.store.postgres.prepared).

On PostgreSQL only (SQLite has no such thing): a statement run THRESHOLD times is prepared
on its connection and gives the same rows; queued writes are prepared too and land
intact; a statement PostgreSQL cannot prepare is sent as text without disturbing its
transaction; a prepared statement outlives a rollback; a table changed under a prepared
SELECT is prepared again (and the transaction that met the stale plan retried); a new
session prepares afresh; LOYALTY_PG_PREPARE=off sends everything as text.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select, text

from ledger.store import unit_of_work
from ledger.store.postgres import prepared, write_behind
from ledger.store.engine import create_engine_for
from tests.store.fresh import fresh_engine

_metadata = MetaData()
notes = Table("prepared_notes", _metadata, Column("id", Integer, primary_key=True), Column("text", String))
_insert_note = insert(notes)
_note_by_id = select(notes.c.id, notes.c.text).where(notes.c.id == bindparam("id"))


@pytest.fixture(autouse=True)
def fresh_counts(monkeypatch):
    """Each test counts uses and refusals from zero (they are per process)."""
    monkeypatch.setattr(prepared, "_uses", Counter())
    monkeypatch.setattr(prepared, "_refused", set())


@pytest.fixture
def engine(tmp_path):
    with fresh_engine("postgresql", tmp_path) as engine:
        _metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(_insert_note, [{"id": 1, "text": "one"}, {"id": 2, "text": "50% 'two'"}])
        yield engine


def _prepared_on(conn) -> list[str]:
    """The statements prepared in this connection's session, as PostgreSQL lists them."""
    return [row.statement for row in conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")]


def _names_on(conn) -> list[str]:
    return [row.name for row in conn.exec_driver_sql("SELECT name FROM pg_prepared_statements")]


def _run_hot(conn, statement, params, times=prepared.THRESHOLD):
    return [conn.execute(statement, params).all() for _ in range(times)]


def test_a_hot_statement_is_prepared_once_per_connection_and_answers_the_same(engine):
    with engine.connect() as conn:
        answers = _run_hot(conn, _note_by_id, {"id": 2}, times=prepared.THRESHOLD + 3)
        listed = _prepared_on(conn)
    assert all(answer == [(2, "50% 'two'")] for answer in answers)
    mine = [statement for statement in listed if "prepared_notes" in statement]
    assert len(mine) == 1  # prepared once, then only executed
    assert "PREPARE ledger_" in mine[0] and "prepared_notes.id = $1" in mine[0]


def test_queued_writes_are_prepared_and_land_intact(engine):
    awkward = "100% off 'today' \\ only; ünïcödé %(name)s %s"
    rows = [{"id": 10 + n, "text": f"{awkward} {n}"} for n in range(prepared.THRESHOLD + 2)]

    def work(conn):
        for row in rows:
            write_behind.execute(conn, _insert_note, row)
        return _prepared_on(conn)

    listed = unit_of_work.run(engine, work)
    assert any(statement.startswith("PREPARE") and "INSERT INTO prepared_notes" in statement for statement in listed)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(notes.c.id, notes.c.text).where(notes.c.id >= 10)).all())
    assert stored == {row["id"]: row["text"] for row in rows}


def test_a_statement_postgresql_cannot_prepare_is_sent_as_text_and_its_transaction_goes_on(engine):
    untyped = text("SELECT :value IS NULL AS missing")  # PostgreSQL cannot infer $1's type

    def work(conn):
        conn.execute(_insert_note, {"id": 3, "text": "before"})
        missing = [conn.execute(untyped, {"value": "x"}).scalar_one() for _ in range(prepared.THRESHOLD + 1)]
        conn.execute(_insert_note, {"id": 4, "text": "after"})
        return missing, _prepared_on(conn)

    missing, listed = unit_of_work.run(engine, work)
    assert missing == [False] * (prepared.THRESHOLD + 1)
    assert not any("missing" in statement for statement in listed)
    with engine.connect() as conn:
        assert conn.execute(select(notes.c.text).where(notes.c.id.in_([3, 4])).order_by(notes.c.id)).scalars().all() == [
            "before",
            "after",
        ]


def test_a_prepared_statement_outlives_the_rollback_of_the_transaction_that_prepared_it(engine):
    with engine.connect() as conn:
        with conn.begin() as transaction:
            _run_hot(conn, _note_by_id, {"id": 1})
            transaction.rollback()
        with conn.begin():
            assert conn.execute(_note_by_id, {"id": 1}).all() == [(1, "one")]
            assert any("prepared_notes" in statement for statement in _prepared_on(conn))


def test_a_table_changed_under_a_prepared_select_is_prepared_again(engine):
    everything = text("SELECT * FROM prepared_notes WHERE id = :id")
    with engine.connect() as conn:
        _run_hot(conn, everything, {"id": 1})
        assert any("SELECT * FROM prepared_notes" in statement for statement in _prepared_on(conn))
    # Another process migrates: the prepared plan's result columns no longer match.
    with create_engine_for(engine.url.render_as_string(hide_password=False), pool_size=1).begin() as other:
        other.exec_driver_sql("ALTER TABLE prepared_notes ADD COLUMN extra integer DEFAULT 7")

    rows = unit_of_work.run(engine, lambda conn: conn.execute(everything, {"id": 1}).all())

    assert [tuple(row) for row in rows] == [(1, "one", 7)]


def test_a_prepared_statement_gone_from_its_session_is_prepared_again(engine):
    with engine.connect() as conn:
        _run_hot(conn, _note_by_id, {"id": 1})
        conn.exec_driver_sql("DEALLOCATE ALL")  # as DISCARD ALL or a pooler would
        assert _prepared_on(conn) == []

    # The pool hands the same connection back: its EXECUTE fails, and the retry prepares anew.
    rows = unit_of_work.run(engine, lambda conn: (conn.execute(_note_by_id, {"id": 2}).all(), _prepared_on(conn)))
    assert rows[0] == [(2, "50% 'two'")]
    assert any("prepared_notes" in statement for statement in rows[1])


def test_after_a_migration_a_connection_drops_what_it_prepared_and_prepares_under_new_names(engine):
    with engine.connect() as conn:
        _run_hot(conn, _note_by_id, {"id": 1})
        before = _names_on(conn)
        prepared.forget_everywhere()
        assert conn.execute(_note_by_id, {"id": 1}).all() == [(1, "one")]
        after = _names_on(conn)
    assert len(before) == len(after) == 1
    assert before != after  # a name is never handed out twice on a session


def test_a_new_session_prepares_afresh(engine):
    with engine.connect() as conn:
        _run_hot(conn, _note_by_id, {"id": 1})
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with create_engine_for(engine.url.render_as_string(hide_password=False), pool_size=1).connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")

    # The pooled connection is dead: the unit of work retries once on a new session, which
    # has prepared nothing yet.
    rows = unit_of_work.run(engine, lambda conn: conn.execute(_note_by_id, {"id": 2}).all())
    assert rows == [(2, "50% 'two'")]


def test_turned_off_every_statement_is_sent_as_text(monkeypatch, tmp_path):
    monkeypatch.setenv("LOYALTY_PG_PREPARE", "off")
    with fresh_engine("postgresql", tmp_path) as engine:
        _metadata.create_all(engine)
        with engine.connect() as conn:
            _run_hot(conn, _note_by_id, {"id": 1}, times=prepared.THRESHOLD + 2)
            assert _prepared_on(conn) == []
