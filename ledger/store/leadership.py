"""Which process runs the due work: one leader among every server process on every machine.

The due work (lapsing holds, tier reviews, expiring points, and the event jobs to come) runs
in exactly one place at a time, however many servers share the database. Every server
process runs the scheduler thread (ledger.scheduler); before each run it calls hold(), and
only the process for which that answers True does the work.

- PostgreSQL: the leader holds the session-level advisory lock locks.DUE_WORK_LEADER on a
  connection of its own, outside the pool, named `loyalty-ledger leader HOST:PID` (so
  pg_stat_activity and pg_locks show who leads). The others ask for it with
  pg_try_advisory_lock once per interval. The leader checks once per interval that its
  session still holds the lock: if the connection broke, it has lost the leadership (the
  database ended the session and released the lock) and tries again like the others. A
  leader that dies (even by SIGKILL) closes its socket, PostgreSQL ends the session and
  releases the lock at once, so another process takes over at its next try: within one
  interval. A leader cut off by the network is noticed by TCP keepalives on both sides
  (about 15 s), and by its own next check.
- SQLite (one machine): an flock on `loyalty.db-leader.lock` beside the database, which
  the kernel releases when the process dies; the leader writes `HOST:PID` into it.
- An in-memory SQLite database has one process: it always leads.

The lock says who should do the work; the work is also safe if two ever overlapped (in
the moment between a partitioned leader's last check and its session's end): every batch
locks its rows and checks them again, so nothing is lapsed or expired twice.

Leadership changes are logged ("this process now leads the due work", "... lost the
due-work leadership", "another process leads the due work"), and on_change is called with
the new state (the Prometheus gauge loyalty_due_work_leader).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable

from sqlalchemy import Engine

from ledger.store import locks

log = logging.getLogger("ledger.leadership")

# The leader's own session: a check must come back quickly or count as lost.
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 5000
# TCP keepalives (client and server side) and the client's unacknowledged-data limit, so a
# leader cut off from the database loses the lock, and knows it, within about 15 s.
KEEPALIVE = {"idle": 5, "interval": 2, "count": 3}
TCP_USER_TIMEOUT_MS = 15000


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """The state machine and its log lines; subclasses say how the lock is kept."""

    lock_name = ""
    # What is led, for the log lines ("the due work"; "event delivery": ledger.delivery).
    work = "the due work"
    title = "due-work"
    application = "loyalty-ledger leader"  # PostgreSQL: the lock session's application_name

    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self._on_change = on_change
        self.is_leader: bool | None = None  # None: not asked yet

    def hold(self) -> bool:
        """Keeps the leadership or tries to take it; True while this process leads. Called
        by the scheduler once per interval, before each run of the due work."""
        reason = ""
        try:
            leading = self._hold()
        except Exception as error:  # the database is unreachable, the session broke
            self._drop()
            leading, reason = False, f"{type(error).__name__}: {str(error).strip()}"
        self._changed(leading, reason)
        return leading

    def release(self) -> None:
        """Gives the leadership up (shutting down): another process takes it at its next try."""
        was = self.is_leader
        self._drop()
        self.is_leader = False
        if was:
            log.info(f"this process gave up the {self.title} leadership", extra=self._fields())
            if self._on_change is not None:
                self._on_change(False)

    def _changed(self, leading: bool, reason: str) -> None:
        was, self.is_leader = self.is_leader, leading
        if leading and not was:
            log.info(f"this process now leads {self.work}", extra=self._fields())
        elif was and not leading:
            log.warning(f"this process lost the {self.title} leadership", extra={**self._fields(), "reason": reason})
        elif was is None and not leading:
            log.info(f"another process leads {self.work}; this one stands by", extra=self._fields(self._current()))
        elif reason:
            log.debug(f"could not ask for the {self.title} leadership", extra={"reason": reason})
        if leading != was and self._on_change is not None:
            self._on_change(leading)

    def _fields(self, leader: str | None = None) -> dict:
        fields = {"instance": process_name(), "lock": self.lock_name}
        if leader:
            fields["leader"] = leader
        return fields

    def _hold(self) -> bool:
        raise NotImplementedError

    def _drop(self) -> None:
        """Lets go of whatever keeps the lock (closing it releases it)."""

    def _current(self) -> str | None:
        """Who leads, as far as this process can tell (for the log)."""
        return None


class SoleLeadership(Leadership):
    """The only process that can use the database (an in-memory SQLite database)."""

    lock_name = "none (a single process)"

    def _hold(self) -> bool:
        return True


class FileLeadership(Leadership):
    """SQLite: an flock on a file beside the database."""

    def __init__(self, path, on_change=None) -> None:
        super().__init__(on_change)
        self.path = path
        self.lock_name = str(path)
        self._lock = locks.FileLock(path)

    def _hold(self) -> bool:
        if self._lock.held:
            if self._lock.same_file():
                return True
            # Someone removed or replaced the file: another process may lock the new one.
            self._lock.release()
            raise RuntimeError(f"the lock file {self.path} was removed or replaced")
        if not self._lock.acquire(blocking=False):
            return False
        self._lock.write_holder(process_name())
        return True

    def _drop(self) -> None:
        self._lock.release()

    def _current(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None


class PostgresLeadership(Leadership):
    """PostgreSQL: a session-level advisory lock on a connection of this process's own."""

    def __init__(self, engine: Engine, on_change=None, key: int = locks.DUE_WORK_LEADER) -> None:
        super().__init__(on_change)
        self._dialect = engine.dialect
        self._url = engine.url
        self._key = key
        self._conn: Any = None  # the psycopg2 session holding the lock, while there is one
        self.lock_name = f"pg_advisory_lock({key})"

    def _connect(self):
        cargs, cparams = self._dialect.create_connect_args(self._url)
        settings = (
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}"
            f" -c tcp_keepalives_idle={KEEPALIVE['idle']}"
            f" -c tcp_keepalives_interval={KEEPALIVE['interval']} -c tcp_keepalives_count={KEEPALIVE['count']}"
        )
        cparams = {
            **cparams,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": f"{self.application} {process_name()}"[:63],
            "options": f"{cparams.get('options', '')} {settings}".strip(),
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE["idle"],
            "keepalives_interval": KEEPALIVE["interval"],
            "keepalives_count": KEEPALIVE["count"],
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        }
        conn = self._dialect.loaded_dbapi.connect(*cargs, **cparams)
        conn.autocommit = True  # no transaction: the lock is the session's
        return conn

    def _query(self, sql: str, *params):
        with self._conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]

    def _hold(self) -> bool:
        if self._conn is not None and self.is_leader:
            held = self._query(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
                " AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
                *locks.advisory_ids(self._key),
            )
            if held:
                return True
            raise RuntimeError("the session no longer holds the lock")
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return bool(self._query("SELECT pg_try_advisory_lock(%s)", self._key))

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                # Unlocked before the session ends: the server ends a closed session a moment
                # after the client goes, and another process asking at once would find it held.
                with conn.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock_all()")
            except Exception:
                pass  # the session is gone already, and its locks with it
            try:
                conn.close()  # the session ends: PostgreSQL releases its locks
            except Exception:
                pass

    def _current(self) -> str | None:
        if self._conn is None:
            return None
        try:
            with self._conn.cursor() as cursor:
                return locks.advisory_holder(cursor, self._key)
        except Exception:
            return None


def for_engine(engine: Engine, on_change: Callable[[bool], None] | None = None) -> Leadership:
    """The leadership of the due work on engine's database."""
    if engine.dialect.name == "postgresql":
        return PostgresLeadership(engine, on_change)
    path = locks.lock_file(engine.url, "leader") if engine.dialect.name == "sqlite" else None
    if path is None or not locks.file_locks_available():
        return SoleLeadership(on_change)
    return FileLeadership(path, on_change)


def for_delivery(engine: Engine, on_change: Callable[[bool], None] | None = None) -> Leadership:
    """The leadership of event delivery (webhooks, the NATS relay: ledger.delivery): the same
    machinery as the due work's, with a lock of its own, so one process sends however many
    servers (and `loyalty-ledger deliver`) share the database, and the due work and the
    sending may lead from different processes."""
    found: Leadership
    if engine.dialect.name == "postgresql":
        found = PostgresLeadership(engine, on_change, key=locks.EVENT_DELIVERY_LEADER)
    else:
        path = locks.lock_file(engine.url, "delivery") if engine.dialect.name == "sqlite" else None
        if path is None or not locks.file_locks_available():
            found = SoleLeadership(on_change)
        else:
            found = FileLeadership(path, on_change)
    found.work, found.title, found.application = "event delivery", "event-delivery", "loyalty-ledger delivery"
    return found
