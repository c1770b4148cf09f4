"""PostgreSQL bulk writes through COPY FROM STDIN, for the system jobs that write many rows.

COPY streams rows in PostgreSQL's text format with no SQL to parse per row, several
times cheaper for the server than multi-row INSERTs, and cheap to produce in Python
(one join per row). Ledger tables only refuse UPDATE, DELETE and TRUNCATE, so COPY
into them is an ordinary append.

Everything here runs on the caller's connection, inside its database transaction.
"""

from __future__ import annotations

import io
from typing import Iterable, Sequence

from sqlalchemy import Connection

from ledger.store.postgres import write_behind

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escaped(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)


def _line(row: Iterable[object]) -> str:
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


def copy_text(rows: Iterable[Iterable[object]]) -> io.StringIO:
    """rows in COPY text format, one line per row."""
    return io.StringIO("".join([_line(row) + "\n" for row in rows]))


def copy_rows(conn: Connection, table: str, rows: Sequence[dict]) -> None:
    """Appends rows to table; every row has the same keys (column names) in the same order,
    as the rows given to SQLAlchemy's insert() would."""
    if not rows:
        return
    with write_behind.driver_cursor(conn, f"COPY {table}") as cursor:
        cursor.copy_expert(
            f"COPY {table} ({', '.join(rows[0])}) FROM STDIN", copy_text(row.values() for row in rows)
        )
