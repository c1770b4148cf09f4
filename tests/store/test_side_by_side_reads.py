"""Reads run side by side (unit_of_work.run_side_by_side) all see the one snapshot taken
before any of them ran: a row committed meanwhile is seen by none, on PostgreSQL where they
run on connections of their own, and on SQLite where they run one after another."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, exc, func, insert, select

from ledger.store import unit_of_work
from ledger.store.database import Database

_metadata = MetaData()
counted = Table("side_by_side_rows", _metadata, Column("id", Integer, primary_key=True))


@pytest.fixture
def db(empty_engine):
    _metadata.create_all(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(insert(counted), [{"id": i} for i in range(3)])
    return Database(empty_engine)


def _count(conn) -> int:
    return conn.execute(select(func.count()).select_from(counted)).scalar_one()


def test_every_read_sees_the_snapshot_of_the_first(db):
    written = threading.Event()
    seen_by: dict[str, int] = {}

    def first(conn):
        seen_by["first before"] = _count(conn)
        if db.engine.dialect.name == "postgresql":
            # A row committed by someone else once the snapshot is taken and the others started.
            with db.engine.connect() as other:
                other.execute(insert(counted).values(id=99))
                other.commit()
            written.set()
        seen_by["first after"] = _count(conn)
        return "first"

    def beside(name):
        def work(conn):
            if db.engine.dialect.name == "postgresql":
                assert written.wait(10)
            seen_by[name] = _count(conn)
            return name

        return work

    assert unit_of_work.run_side_by_side(db, [first, beside("second"), beside("third")]) == ["first", "second", "third"]
    assert seen_by == {"first before": 3, "first after": 3, "second": 3, "third": 3}
    with db.engine.connect() as conn:
        assert _count(conn) == (4 if db.engine.dialect.name == "postgresql" else 3)


def test_a_failing_read_fails_the_whole(db):
    def broken(conn):
        conn.exec_driver_sql("SELECT no_such_column FROM side_by_side_rows")

    with pytest.raises(exc.DBAPIError):
        unit_of_work.run_side_by_side(db, [_count, broken])
