"""The bulk form of the one ledger writer (ledger.store.ledger_writes.insert_from): its column
lists are tables.py's, and a writer that forgets a column, or names one that does not exist,
fails when its statement is built."""

from __future__ import annotations

import pytest

from ledger.store import tables
from ledger.store.ledger_writes import insert_from

ALL_LOT_COLUMNS = {column.name: "NULL" for column in tables.lots.columns}


def test_the_column_list_is_the_tables_in_its_order():
    sql = insert_from(tables.lots, "source", **ALL_LOT_COLUMNS)
    listed = sql.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert listed == [column.name for column in tables.lots.columns]
    assert "FROM source" in sql


def test_a_column_left_out_is_refused():
    values = dict(ALL_LOT_COLUMNS)
    del values["expires_at"]
    with pytest.raises(ValueError, match="no value for \\['expires_at'\\]"):
        insert_from(tables.lots, "source", **values)


def test_a_column_the_table_lacks_is_refused():
    with pytest.raises(ValueError, match="no column for \\['expiry'\\]"):
        insert_from(tables.lots, "source", **ALL_LOT_COLUMNS, expiry="NULL")


def test_every_bulk_writer_builds_against_todays_tables():
    # Built at import: a table that gained or lost a column fails these imports.
    from bench import seed  # noqa: F401
    from ledger.store.postgres import expiry_writes

    for statement in (expiry_writes._TRANSACTIONS, expiry_writes._ENTRIES, expiry_writes._CONSUMPTIONS, expiry_writes._EVENTS):
        assert statement.startswith("INSERT INTO ")
