"""Engines for PostgreSQL (production) and SQLite (embedded default).

SQLite: one writer at a time, so every writing transaction starts with
BEGIN IMMEDIATE (takes the write lock up front and never deadlocks on upgrade);
WAL lets statements read while a write is in progress; synchronous=FULL syncs the WAL
at every commit, so an acknowledged write survives a power loss (README: its cost).
PostgreSQL: READ COMMITTED with row locks taken in a fixed order; lock and
statement timeouts keep a stuck lock from stalling a worker forever.
"""

from __future__ import annotations


from sqlalchemy import Connection, Engine, create_engine, event

from ledger import settings
from ledger.store import campaigns, driver_errors, locked_heads, outbox, programs
from ledger.store.postgres import transaction_blocks, prefetch, prepared, write_behind

LOCK_TIMEOUT_MS = 2000
STATEMENT_TIMEOUT_MS = 15000
SQLITE_SYNCHRONOUS = "FULL"


def database_url() -> str:
    """LOYALTY_DATABASE_URL, or ./loyalty.db (ledger.settings checks it)."""
    return settings.database_url()


def without_statement_timeout(conn: Connection) -> None:
    """Lifts, for the rest of conn's transaction, the per-statement time limit every connection
    gets (meant for a till's calls). Work over the whole ledger (a verification) takes as long
    as the ledger is big; cut short, it would do nothing at all."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")


def without_session_statement_timeout(conn: Connection) -> None:
    """Lifts the per-statement limit for the rest of conn's session, across the transactions
    begun on it (without_statement_timeout lasts one transaction). Only for a session that is
    closed afterwards (conn.invalidate()), never one that goes back to the pool."""
    if conn.dialect.name == "postgresql":
        with driver_errors.driver_cursor(conn, "SET statement_timeout = 0") as cursor:
            cursor.execute("SET statement_timeout = 0")  # the driver's autocommit session: not in a transaction


def create_engine_for(url: str, pool_size: int = 16) -> Engine:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the stack is psycopg2.
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            url = "postgresql+psycopg2://" + url[len(bare) :]
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_engine(
        url,
        # Bounded: every server process holds at most pool_size + 4 connections, so several
        # processes (or servers) fit in PostgreSQL's max_connections.
        pool_size=pool_size,
        max_overflow=4,
        # No pre-ping round trip per checkout: a connection found dead mid-call is
        # invalidated and the unit of work retries once on a fresh one.
        pool_pre_ping=False,
        pool_timeout=5,
        # Transactions are written out by postgres.transaction_blocks: BEGIN rides with the first
        # statement and COMMIT with the last writes, instead of round trips of their own.
        isolation_level="AUTOCOMMIT",
        connect_args={
            "connect_timeout": 3,
            "options": f"-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS}",
            "application_name": "loyalty-ledger",
            "client_encoding": "utf8",
        },
    )
    if settings.pg_prepare():
        prepared.install(engine)  # before write_behind: its queue rides in front of EXECUTE
    write_behind.install(engine)
    outbox.install(engine)  # before transaction_blocks: its events go with the COMMIT
    transaction_blocks.install(engine)
    locked_heads.install(engine)
    prefetch.install(engine)
    programs.install(engine)
    campaigns.install(engine)
    return engine


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL syncs only at checkpoints, and a power loss
        # (not a process crash) would take the last acknowledged writes with it.
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        if connection.get_execution_options().get("read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    outbox.install(engine)
    locked_heads.install(engine)
    programs.install(engine)
    campaigns.install(engine)
    return engine


def connection_problem(error: Exception) -> str:
    """One line saying why the database of LOYALTY_DATABASE_URL cannot be used, from the
    driver's error, with what to do where that is clear (a database not created yet)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url())
    shown = url.render_as_string(hide_password=True)
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    reason = next((line for line in lines if "FATAL" in line or "failed" in line.lower()), lines[0] if lines else "")
    reason = reason.split("FATAL:", 1)[-1].strip()
    hint = ""
    if "does not exist" in reason and url.database and url.get_backend_name() == "postgresql":
        host = f" -h {url.host}" if url.host else ""
        port = f" -p {url.port}" if url.port else ""
        user = f" -U {url.username}" if url.username else ""
        hint = f"; create it with: createdb{host}{port}{user} {url.database}"
    return f"cannot use the database {shown}: {reason}{hint}"
