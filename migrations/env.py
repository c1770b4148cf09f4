"""Alembic environment: migrates the database named by the config's URL or LOYALTY_DATABASE_URL."""

from alembic import context

from ledger.store.engine import create_engine_for, database_url
from ledger.store.migrate import migration_session
from ledger.store.tables import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or database_url()
    engine = create_engine_for(url, pool_size=1)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:
    # One process at a time, on every machine (ledger.store.migrate.migration_session: an
    # advisory lock, no statement limit, a lock timeout for the DDL). A transaction per
    # migration: one that must build an index outside any transaction (CREATE INDEX
    # CONCURRENTLY, in an autocommit block) commits the ones before it first.
    with migration_session(connection):
        context.configure(
            connection=connection, target_metadata=metadata, render_as_batch=True, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations()
