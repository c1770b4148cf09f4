"""Locks shared by every process on every machine that uses one database.

Two things must happen in one place at a time however many servers run: migrations (two
servers starting together on a new database would both create the schema) and the due
work (ledger.store.leadership). On PostgreSQL each is a session-level advisory lock of its
own key, held on one connection: PostgreSQL releases it when that session ends, however it
ends (a server killed with SIGKILL, a connection cut). Advisory locks belong to one
database, so servers of different ledgers on one PostgreSQL server never meet.

SQLite is one machine's file: there, the same lock is an flock(2) on a file beside the
database (`loyalty.db-migrations.lock`, `loyalty.db-leader.lock`), which the kernel
releases when the process holding it dies. Not the database file itself: closing any
descriptor of that file would drop SQLite's own POSIX locks held by the process.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL

try:
    import fcntl

    _FILE_LOCKS = True
except ImportError:  # pragma: no cover - not POSIX: one process, nothing to share with
    _FILE_LOCKS = False

# Advisory lock keys (one bigint each; the high bits spell "LOYL").
MIGRATIONS = 0x4C4F_594C_0000_0001
DUE_WORK_LEADER = 0x4C4F_594C_0000_0002
# The one process that sends webhooks and relays events to NATS (ledger.delivery).
EVENT_DELIVERY_LEADER = 0x4C4F_594C_0000_0003


def advisory_ids(key: int) -> tuple[int, int]:
    """(classid, objid) of a bigint advisory lock key as pg_locks shows it (objsubid 1)."""
    return (key >> 32) & 0xFFFF_FFFF, key & 0xFFFF_FFFF


def advisory_holder(cursor, key: int) -> str | None:
    """Who holds the advisory lock key in the cursor's database: its session's
    application_name, client address and backend pid; None when nobody does."""
    classid, objid = advisory_ids(key)
    cursor.execute(
        """SELECT a.application_name, COALESCE(host(a.client_addr), 'local'), a.pid
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid""",
        (classid, objid),
    )
    row = cursor.fetchone()
    return f"{row[0]} ({row[1]}, backend pid {row[2]})" if row else None


def file_locks_available() -> bool:
    return _FILE_LOCKS


def lock_file(url: URL, name: str) -> Path | None:
    """The lock file `name` beside a SQLite database file; None for an in-memory database
    (nothing else can open it, so there is nothing to share a lock with)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(f"{database}-{name}.lock").absolute()


class FileLock:
    """An exclusive flock(2) on a file, held until release() or the process's death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, blocking: bool) -> bool:
        """Takes the lock (waiting for it when blocking); True when held."""
        if self._fd is not None:
            return True
        if not _FILE_LOCKS:  # pragma: no cover
            self._fd = -1
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def write_holder(self, text: str) -> None:
        """Records who holds the lock in the file, for an operator's `cat`."""
        if self._fd is not None and self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text.encode() + b"\n", 0)

    def same_file(self) -> bool:
        """The held descriptor is still the file at path (nobody removed or replaced it, which
        would let another process lock a new file of that name)."""
        if self._fd is None or self._fd < 0:
            return self._fd is not None
        try:
            here, there = os.fstat(self._fd), os.stat(self.path)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the only descriptor of the open file drops the flock
