"""Reads a use case is about to make, fetched together in one round trip.

Right after an operation takes its member's row lock, the single-row reads it will make
anyway (the idempotency record, the program row, the member's tier, an earlier earn of
the order, the member's referral) are independent of each other. On PostgreSQL they are
sent as one SELECT of scalar subqueries, each row as JSON, and kept on the connection for
this transaction. The store function that makes the read takes its row from here instead
(once: a second call reads the database again, so it sees the transaction's own writes).
SQLite has no round trip to save: nothing is fetched ahead and every read runs as before.

A prefetched read runs after the lock, in its own statement, so it sees what committed
before it exactly as the read made later would (READ COMMITTED).
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
    """Fetches every read with params (one round trip), for take() to hand out."""
    if conn.dialect.name != "postgresql" or not reads:
        return
    names = tuple(read.name for read in reads)
    combined = _COMBINED.get(names)
    if combined is None:
        combined = select(*(read.as_json().label(read.name) for read in reads))
        _COMBINED[names] = combined
    row = conn.execute(combined, params).one()
    store = conn.info.setdefault(_KEY, {})
    for read, found in zip(reads, row):
        store[(read.name, *(params[name] for name in read.identity))] = (found or []) if read.many else found


def take(conn: Connection, read: Read, *identity):
    """The prefetched row (attribute access like a database row) or None when the read found
    no row; for a `many` read the list of rows. MISSING (see missing()) when it was not
    fetched ahead: then the caller reads it itself."""
    found = conn.info.get(_KEY, {}).pop((read.name, *identity), _MISSING)
    if found is _MISSING or found is None:
        return found
    if read.many:
        return [SimpleNamespace(**row) for row in found]
    return SimpleNamespace(**found)


def missing(found: object) -> bool:
    return found is _MISSING


def forget(conn) -> None:
    """Drops whatever was fetched ahead and not taken (its reader was rolled back)."""
    conn.info.pop(_KEY, None)


def install(engine: Engine) -> None:
    """Nothing prefetched outlives its transaction."""
    transaction_scoped.forget_at_transaction_end(engine, _KEY)
