"""Reads too big to hold in memory, page by page, on the caller's connection.

On PostgreSQL the query is declared as a cursor inside the caller's transaction block and
fetched a page at a time (psycopg2's own server-side cursors need psycopg2's own
transactions, which ledger.store.postgres.transaction_blocks replaces); the caller's unit of work must
therefore be a transaction block (snapshot=True for a read). SQLite's cursor streams as is.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Sequence

from sqlalchemy import Connection, Row, Select, TextClause

_CURSOR = "streamed_rows"


def pages(conn: Connection, statement: TextClause | Select[Any], size: int) -> Iterator[Sequence[Row[Any]]]:
    """statement's rows, `size` at a time."""
    if conn.dialect.name != "postgresql":
        rows = iter(conn.execute(statement))
        while chunk := list(itertools.islice(rows, size)):
            yield chunk
        return
    compiled = statement.compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR {compiled.string}", compiled.params)
    try:
        while page := conn.exec_driver_sql(f"FETCH {int(size)} FROM {_CURSOR}").all():
            yield page
    finally:
        conn.exec_driver_sql(f"CLOSE {_CURSOR}")
