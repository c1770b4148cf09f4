"""PostgreSQL bulk writes through COPY FROM STDIN, for the system jobs that write many rows.

COPY streams rows in PostgreSQL's text format with no SQL to parse per row, several
times cheaper for the server than multi-row INSERTs, and cheap to produce in Python
(one join per row). Ledger tables only refuse UPDATE, DELETE and TRUNCATE, so COPY
into them is an ordinary append. Updates of many rows go through a temporary table
filled by COPY, then one UPDATE ... FROM it.

Everything here runs on the caller's connection, inside its database transaction.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from typing import Iterable, Sequence

from sqlalchemy import Connection

from ledger.store import driver_errors, write_behind

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escaped(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)


def _line(row: Sequence[object]) -> str:
    """One row in COPY text format: tab-separated, NULL as \\N, and \\, tab, newline and
    carriage return escaped inside values. Values are str, int or None."""
    values = list(row)
    # Ids, keys and numbers need no escaping: build the line as is, and only if it shows a
    # character to escape (a backslash beyond those of the NULLs, a tab beyond the
    # separators) build it again value by value.
    line = "\t".join(["\\N" if v is None else v if type(v) is str else str(v) for v in values])
    if (
        line.count("\t") != len(values) - 1
        or line.count("\\") != values.count(None)
        or "\n" in line
        or "\r" in line
    ):
        line = "\t".join(map(_escaped, values))
    return line


def copy_text(rows: Iterable[Sequence[object]]) -> io.StringIO:
    """rows in COPY text format, one line per row."""
    return io.StringIO("".join([_line(row) + "\n" for row in rows]))


@contextmanager
def _cursor(conn: Connection, what: str):
    # Nothing queued rides on the driver's own cursor: what is queued (the transaction's
    # BEGIN among it) goes first.
    write_behind.send_queued(conn)
    with driver_errors.driver_cursor(conn, what) as cursor:
        yield cursor


def copy_rows(conn: Connection, table: str, rows: Sequence[dict]) -> None:
    """Appends rows to table; every row has the same keys (column names) in the same order,
    as the rows given to SQLAlchemy's insert() would."""
    if not rows:
        return
    with _cursor(conn, f"COPY {table}") as cursor:
        cursor.copy_expert(
            f"COPY {table} ({', '.join(rows[0])}) FROM STDIN", copy_text(row.values() for row in rows)
        )


def update_from_rows(
    conn: Connection, columns: dict[str, str], rows: Sequence[Sequence[object]], update_sql: str
) -> int:
    """Runs update_sql, an UPDATE ... FROM batch_rows, with batch_rows holding `rows`; returns
    how many rows the UPDATE matched.

    columns: {name: SQL type} of batch_rows, in row order. batch_rows is a temporary table
    that lives only for this call (a failure rolls its creation back with the transaction).
    """
    if not rows:
        return 0
    definition = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
    with _cursor(conn, update_sql) as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE batch_rows ({definition})")
        cursor.copy_expert(f"COPY batch_rows ({', '.join(columns)}) FROM STDIN", copy_text(rows))
        cursor.execute("ANALYZE batch_rows")
        # A batch is a sliver of the target table: look each row up through the index. Left to
        # itself the planner may hash-join against a scan of the whole table, whose cost
        # grows with the table instead of the batch.
        cursor.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        cursor.execute(update_sql)
        matched = cursor.rowcount
        cursor.execute("RESET enable_hashjoin; RESET enable_mergejoin")
        cursor.execute("DROP TABLE batch_rows")
        return matched
