"""State kept on a pooled connection for one database transaction only.

Several hot-path helpers (prefetched reads, locked chain heads) keep what they know about
the current transaction in the connection's info dictionary; this drops it when the
transaction commits or rolls back and when the connection goes back to the pool.
"""

from __future__ import annotations

from sqlalchemy import Engine, event


def forget_at_transaction_end(engine: Engine, key: str) -> None:
    def forget(conn) -> None:
        if not conn.invalidated:  # an invalidated connection's info is gone, and touching it raises
            conn.info.pop(key, None)

    event.listen(engine, "commit", forget)
    event.listen(engine, "rollback", forget)
    event.listen(engine.pool, "checkin", lambda _dbapi, record: record.info.pop(key, None))
