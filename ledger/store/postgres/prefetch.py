"""Reads a use case is about to make, fetched together in one round trip.

Right after an operation takes its member's row lock, the reads it will make anyway (the
idempotency record, the program row, the member's tier, an earlier earn of the order, the
member's referral, pending and held points, open lots) are independent of each other. On
PostgreSQL they are sent as one SELECT of scalar subqueries, each as JSON, and kept on the
connection for this transaction. Store functions read through read(), which hands out the
prefetched rows once (a second call reads the database again, so it sees the transaction's
own writes) or runs the statement itself. SQLite has no round trip to save: nothing is
fetched ahead and every read runs as before.

A prefetched read runs after the lock, in its own statement (the lock, queued by
members.lock_ahead, is the statement before it in the same round trip), so it sees what
committed before it exactly as the read made later would (READ COMMITTED). A locked row can
be a read too (members.LOCKED, holds.LOCKED: FOR UPDATE in the subquery), taking a lock the
statement before already holds, or one that only a holder of that lock ever takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.sql import Select

from ledger.store import transaction_scoped

_KEY = "prefetched"
_MISSING = object()


@dataclass(frozen=True)
class Read:
    """A read by name, its statement's bind parameters named after `identity`; `many`: all
    its rows (a list), otherwise its first row or None."""

    name: str
    statement: Select
    identity: tuple[str, ...]
    many: bool = False

    def as_json(self):
        if self.many:
            return select(func.json_agg(self.statement.subquery().table_valued())).scalar_subquery()
        return select(func.row_to_json(self.statement.limit(1).subquery().table_valued())).scalar_subquery()


_COMBINED: dict[tuple[str, ...], Select] = {}


def load(conn: Connection, reads: tuple[Read, ...], params: dict) -> None:
    """Fetches every read with params (one round trip), for read() to hand out."""
    if conn.dialect.name != "postgresql" or not reads:
        return
    names = tuple(read.name for read in reads)
    combined = _COMBINED.get(names)
    if combined is None:
        combined = select(*(read.as_json().label(read.name) for read in reads))
        _COMBINED[names] = combined
    _keep(conn, reads, params, conn.execute(combined, params).one())


def _identity(read: Read, params: dict) -> tuple:
    return (read.name, *(params[name] for name in read.identity))


def _keep(conn: Connection, reads: tuple[Read, ...], params: dict, row) -> None:
    """What one operation's reads found (a row of their combined statement), for read()."""
    store = conn.info.setdefault(_KEY, {})
    for read, found in zip(reads, row):
        store[_identity(read, params)] = (found or []) if read.many else found


_MANY: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, dict]] = {}


def load_many(conn: Connection, reads: tuple[Read, ...], common: dict, rows: list[dict]) -> None:
    """load() for many operations at once (a batch of imported orders): every read for each of
    rows, whose own parameters (the same names in each) join the common ones, in one statement.
    The reads are load()'s statement with each row's parameters taken from a set of rows
    (unnest), so each row finds exactly what load() would have fetched for it."""
    if conn.dialect.name != "postgresql" or not reads or not rows:
        return
    own = tuple(sorted(rows[0]))
    sql, constants = _statement_for_many(conn, reads, own)
    params = {**constants, **common, **{f"many_{name}": [row[name] for row in rows] for name in own}}
    for row, found in zip(rows, conn.exec_driver_sql(sql, params).all()):
        _keep(conn, reads, {**common, **row}, found)


def _statement_for_many(conn: Connection, reads: tuple[Read, ...], own: tuple[str, ...]) -> tuple[str, dict]:
    cache_key = (tuple(read.name for read in reads), own)
    built = _MANY.get(cache_key)
    if built is None:
        compiled = select(*(read.as_json().label(read.name) for read in reads)).compile(dialect=conn.dialect)
        sql = compiled.string
        for name in own:
            # Each row's own parameter becomes the column of the row set it is read from.
            sql = sql.replace(f"%({name})s", f"many.{name}")
        arrays = ", ".join(f"%(many_{name})s::text[]" for name in own)
        sql += f"\nFROM unnest({arrays}) WITH ORDINALITY AS many({', '.join(own)}, ordinal)\nORDER BY many.ordinal"
        constants = {name: value for name, value in compiled.params.items() if value is not None and name not in own}
        built = _MANY[cache_key] = (sql, constants)
    return built


def peek(conn: Connection, read: Read, params: dict):
    """What read() would hand out (a single-row read), leaving a prefetched row for read()."""
    found = conn.info.get(_KEY, {}).get(_identity(read, params), _MISSING)
    if found is _MISSING:
        return conn.execute(read.statement, params).first()
    return None if found is None else SimpleNamespace(**found)


def read(conn: Connection, read: Read, params: dict):
    """The read's first row (None without one), or for a `many` read its rows: the prefetched
    ones if load() fetched them with these params (attribute access like a database row),
    otherwise read from the database now."""
    found = conn.info.get(_KEY, {}).pop(_identity(read, params), _MISSING)
    if found is _MISSING:
        result = conn.execute(read.statement, params)
        return result.all() if read.many else result.first()
    if read.many:
        return [SimpleNamespace(**row) for row in found]
    return None if found is None else SimpleNamespace(**found)


def forget(conn) -> None:
    """Drops whatever was fetched ahead and not taken (its reader was rolled back)."""
    conn.info.pop(_KEY, None)


def install(engine: Engine) -> None:
    """Nothing prefetched outlives its transaction."""
    transaction_scoped.forget_at_transaction_end(engine, _KEY)
