"""Each locked member's chain head as the current database transaction knows it.

The head is (posted, last_seq, last_entry_hash): what the next entry of the member links
to. It is read together with the member's row lock and moved by every append in the
same transaction, so an append can write the member row without reading it back first
(one statement instead of a read and two updates). It lives on the connection for one
transaction only: forgotten at its commit or rollback and when the connection goes back
to the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from ledger.store import transaction_scoped

_KEY = "locked_heads"


@dataclass(frozen=True)
class Head:
    posted: int
    last_seq: int
    last_entry_hash: str  # the column is NOT NULL, GENESIS before the first entry


def remember(conn: Connection, program_id: str, member_id: str, head: Head) -> None:
    """Only under the member's row lock: nobody else can move the head until the commit."""
    conn.info.setdefault(_KEY, {})[(program_id, member_id)] = head


def known(conn: Connection, program_id: str, member_id: str) -> Head | None:
    return conn.info.get(_KEY, {}).get((program_id, member_id))


def snapshot(conn: Connection) -> dict:
    return dict(conn.info.get(_KEY, {}))


def restore(conn: Connection, saved: dict) -> None:
    """Back to a snapshot (the writes since were rolled back to a savepoint)."""
    conn.info[_KEY] = dict(saved)


def forget_all(conn) -> None:
    conn.info.pop(_KEY, None)


def install(engine: Engine) -> None:
    transaction_scoped.forget_at_transaction_end(engine, _KEY)
