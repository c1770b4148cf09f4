"""The persistence port: what the layers above hold of the database.

A use case receives a `Database` and runs its unit of work on it (ledger.store.unit_of_work,
ledger.store.member_group_commit); inside, it holds a `Transaction` and hands it to the
store's named operations. Neither the service layer nor the transport ever touches
SQLAlchemy or a driver: which database it is, how statements are batched, prepared or
retried, is the store's business.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

# The open transaction of a unit of work: opaque above the store, passed back into it.
Transaction = Connection


class Database:
    def __init__(self, engine: Engine, replica: Engine | None = None) -> None:
        self.engine = engine
        self._replica = Database(replica) if replica is not None else None

    def for_statements(self) -> "Database":
        """Where statement pages are read: the read replica when one is configured
        (LOYALTY_READ_REPLICA_URL; behind the primary by its replay lag, README "Running in
        production"), else this database. Never for what a till decides on (balances)."""
        return self._replica if self._replica is not None else self

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def describe(self) -> str:
        """The database's URL without its password, for logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def connections_in_use(self) -> int:
        pool = self.engine.pool
        return pool.checkedout() if hasattr(pool, "checkedout") else 0

    def reachability(self):
        """A probe that says whether the database answers (the health service's)."""
        from ledger.store.reachability import StoreProbe

        return StoreProbe(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._replica is not None:
            self._replica.dispose()
