"""Whether the ledger's database answers: one trivial statement on a connection of its own.

The probe keeps one connection outside the serving pool, so a pool busy with the till's calls
never makes a healthy database look unreachable, and a dead connection is replaced on the
next probe (SQLAlchemy invalidates it on a disconnect error).
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import StaticPool


class StoreProbe:
    def __init__(self, engine: Engine) -> None:
        url = engine.url
        if url.get_backend_name() == "postgresql":
            self._engine = create_engine(
                url,
                pool_size=1,
                max_overflow=0,
                pool_pre_ping=False,
                connect_args={
                    "connect_timeout": 2,
                    "options": "-c statement_timeout=2000",
                    "application_name": "loyalty-ledger-health",
                },
            )
        else:  # SQLite: the file opens (and reads) or it does not
            self._engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})

    def check(self) -> None:
        """Returns when the database answered; raises whatever the driver raised otherwise."""
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()

    def close(self) -> None:
        self._engine.dispose()
