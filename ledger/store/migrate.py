"""Runs the Alembic migrations in migrations/ against an engine, one process at a time.

Every `serve` migrates to head before it serves, so servers started together on a new
database would each create the schema (and crash on each other's tables). The migrations
run under a lock that spans every process on every machine using the database
(ledger.store.locks): PostgreSQL's advisory lock MIGRATIONS, or on SQLite a file lock
beside the database. The others wait for it, then find the schema at head and do nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from ledger.store import locks
from ledger.store.postgres import prepared
from ledger.store.driver_errors import driver_cursor

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# A migration's DDL waits at most this long for its table lock. The tills' statements on
# that table queue behind a waiting ALTER, so it rather fails (the server exits non-zero,
# its supervisor starts it again) than stall them longer.
MIGRATION_LOCK_TIMEOUT_MS = 4000
# How often a server waiting for another's migrations asks again, and tells the log it waits.
POLL_SECONDS = 0.2
LOG_WAIT_EVERY_SECONDS = 30.0
log = logging.getLogger("ledger.migrate")


class _StepsOnly(logging.Filter):
    """Alembic announces its dialect and DDL mode every time it starts, even with nothing to
    do: two lines of noise on every `program list` or `key list`. The steps it runs stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Context impl ", "Will assume "))


logging.getLogger("alembic.runtime.migration").addFilter(_StepsOnly())


def alembic_config(engine: Engine) -> Config:
    # Alembic's Config is a ConfigParser with %-interpolation: a percent-encoded URL (a
    # password with an @, a socket directory in ?host=%2F...) must have its % doubled, or
    # set_main_option fails with "invalid interpolation syntax". get_main_option undoes it.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step, revision: str) -> None:
    """Runs step (Alembic's upgrade or downgrade) on one connection, each migration in a
    transaction of its own, under the migration lock (migrations/env.py, migration_session).
    The connection is closed afterwards, not pooled: its session has no statement limit."""
    config = alembic_config(engine)
    with engine.connect() as connection:
        try:
            config.attributes["connection"] = connection
            step(config, revision)
        finally:
            connection.invalidate()  # the session without a limit is closed, not pooled
    prepared.forget_everywhere()  # statements prepared against the old schema


@contextmanager
def migration_session(connection: Connection) -> Iterator[None]:
    """Prepares connection's session for migrations and holds the migration lock meanwhile.

    PostgreSQL: no per-statement limit (an index built over a big ledger takes as long as
    the ledger is big), a lock timeout of MIGRATION_LOCK_TIMEOUT_MS for the DDL, and the
    advisory lock MIGRATIONS, asked for with pg_try_advisory_lock every POLL_SECONDS rather
    than waited for with pg_advisory_lock: a session waiting inside a statement holds a
    snapshot, which a CREATE INDEX CONCURRENTLY of the migrating session would wait for in
    turn (a deadlock). SQLite: an flock on the file beside the database."""
    if connection.dialect.name == "postgresql":
        with _advisory_lock(connection):
            yield
    elif connection.dialect.name == "sqlite":
        path = locks.lock_file(connection.engine.url, "migrations")
        if path is None:
            yield
            return
        lock = locks.FileLock(path)
        if not lock.acquire(blocking=False):
            log.info("waiting for another process's migrations", extra={"lock_file": str(path)})
            lock.acquire(blocking=True)
        try:
            yield
        finally:
            lock.release()
    else:  # pragma: no cover - the two databases above are the supported ones
        yield


@contextmanager
def _advisory_lock(connection: Connection) -> Iterator[None]:
    name = f"loyalty-ledger migrations {socket.gethostname()}:{os.getpid()}"[:63]
    with driver_cursor(connection, "migration session settings") as cursor:
        # The driver's own cursor, in its autocommit session: outside any transaction, so
        # the settings and the lock last for the session, across the migrations' transactions.
        cursor.execute(
            "SELECT set_config('statement_timeout', '0', false), set_config('lock_timeout', %s, false),"
            " set_config('application_name', %s, false)",
            (f"{MIGRATION_LOCK_TIMEOUT_MS}ms", name),
        )
        waited_since = None
        last_told = 0.0
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (locks.MIGRATIONS,))
            if cursor.fetchone()[0]:
                break
            now = time.monotonic()
            if waited_since is None or now - last_told >= LOG_WAIT_EVERY_SECONDS:
                waited_since = waited_since or now
                last_told = now
                holder = locks.advisory_holder(cursor, locks.MIGRATIONS) or "gone"
                log.info(
                    "waiting for another process's migrations",
                    extra={"holder": holder, "waited_s": round(now - waited_since, 1)},
                )
            time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        try:
            with driver_cursor(connection, "pg_advisory_unlock") as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (locks.MIGRATIONS,))
        except Exception:  # a lost session has released it anyway
            log.debug("could not release the migration lock; its session is gone", exc_info=True)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
