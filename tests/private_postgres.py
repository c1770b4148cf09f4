"""A private PostgreSQL cluster for tests that stop, restart or reconfigure PostgreSQL.

The PostgreSQL server at 127.0.0.1:5432 is shared by every test run on the machine (and by
other people's runs): a test that stops it breaks them all. A test that needs PostgreSQL to
go away, or a server configured differently (password authentication, say), starts a
cluster of its own instead: `initdb` into a temporary folder, its own loopback port and
its own socket directory, stopped and removed at the end, whatever happens.

    with private_postgres() as cluster:
        with cluster.database("loyalty_fault") as url:   # a SQLAlchemy URL
            ...
            cluster.stop()      # pg_ctl stop -m fast
            cluster.start()

The server binaries come from PG_BINDIR, else `pg_config --bindir`, else the newest
/usr/lib/postgresql/*/bin (Debian's layout). PostgreSQL refuses to run as root: when the
tests run as root (CI containers), initdb and pg_ctl run as the `postgres` OS user
(PRIVATE_PG_USER) through `runuser`, in a folder that user owns.

It trades durability for speed (fsync off, a small shared_buffers): nothing here outlives
the test. A clean shutdown or restart (`stop`/`start`, `restart`) keeps every committed row;
`stop("immediate")` quits like a crash, and the next `start` runs crash recovery.

A primary with a streaming standby (`primary_and_standby()`): the standby is a
`pg_basebackup -R` of the primary, named `standby1` (its `cluster_name`, which its WAL
receiver gives as application_name), and the primary's `synchronous_standby_names` is
'standby1', so a COMMIT returns only once the standby has flushed its WAL: what the
primary acknowledged is on the standby. `kill_hard()` is kill -9 of the whole cluster (a
machine that dies), `promote()` makes the standby a primary.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from sqlalchemy.engine import URL

from tests.cli.processes import free_port

SUPERUSER = "postgres"
START_TIMEOUT = 60


def bindir() -> Path:
    """Where initdb and pg_ctl are."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
        found = Path(done.stdout.strip())
        if done.returncode == 0 and (found / "initdb").exists():
            return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries (initdb): install postgresql or set PG_BINDIR")
    return Path(candidates[-1]).parent


def _os_user() -> str | None:
    """The OS user to run the server as, or None for this process's own user (not root)."""
    if os.geteuid() != 0:
        return None
    return os.environ.get("PRIVATE_PG_USER", "postgres")


class PrivatePostgres:
    """One private cluster: a data directory, a port on 127.0.0.1, a socket directory."""

    def __init__(self, *, password_auth: bool = False, settings: dict[str, str] | None = None) -> None:
        self.bin = bindir()
        self.os_user = _os_user()
        self.root = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.password_auth = password_auth
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "100",
            **(settings or {}),
        }
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    # -- running the server binaries ----------------------------------------------------------

    def _run(self, tool: str, *args: str, timeout: float = START_TIMEOUT, check: bool = True):
        command = [str(self.bin / tool), *args]
        if self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} {args} exited {done.returncode}\n{done.stdout}\n{done.stderr}\n{self.log_tail()}")
        return done

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            for name, value in self.settings.items():
                conf.write(f"{name} = '{value}'\n")
        if self.password_auth:
            # The superuser keeps trust (the tests' own administration); every other role
            # must give its password, so a password that did not get through is refused.
            (self.data / "pg_hba.conf").write_text(
                f"local all {SUPERUSER} trust\n"
                f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
                "local all all scram-sha-256\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)

    def stop(self, mode: str = "fast", timeout: float = START_TIMEOUT) -> None:
        """pg_ctl stop: "fast" disconnects every session and shuts down cleanly; "immediate"
        quits without a checkpoint (recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop", timeout=timeout + 10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def promote(self) -> None:
        """pg_ctl promote: a standby ends recovery and takes writes (waits until it does)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", str(START_TIMEOUT), "promote")

    def kill_hard(self) -> None:
        """kill -9 of the postmaster and every process it started, at once: the database
        machine dies (no shutdown, no last WAL sent; the next start would run recovery)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        victims = [pid, *_children(pid)]
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def ready(self) -> bool:
        done = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.returncode == 0

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            assert time.monotonic() < deadline, f"the private PostgreSQL did not come up\n{self.log_tail()}"
            time.sleep(0.1)

    def wait_down(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.ready():
            assert time.monotonic() < deadline, "the private PostgreSQL did not go down"
            time.sleep(0.05)

    def destroy(self) -> None:
        """Stops the server however it is, and removes the folder."""
        if self.postmaster_pid() is not None:
            done = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "20", "stop", check=False, timeout=30)
            pid = self.postmaster_pid()
            if done.returncode != 0 and pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)

    # -- clients --------------------------------------------------------------------------------

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """A SQLAlchemy URL over TCP (percent-encoded as SQLAlchemy renders it)."""
        return URL.create(
            "postgresql", username=user, password=password, host="127.0.0.1", port=self.port, database=database
        ).render_as_string(hide_password=False)

    def connect(self, database: str = "postgres"):
        """A psycopg2 session (autocommit) as the superuser."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database, connect_timeout=5)
        conn.autocommit = True
        return conn

    def execute(self, sql: str, params=None, database: str = "postgres") -> list[tuple]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    @contextmanager
    def database(self, name: str = "loyalty_private"):
        """A new empty database on this cluster; yields its URL (dropped afterwards if the
        server still runs)."""
        self.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            if self.ready():
                self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _children(pid: int) -> list[int]:
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(Path(stat).parent.name))
    return found


STANDBY_NAME = "standby1"


def _standby_of(primary: PrivatePostgres, settings: dict[str, str] | None = None) -> PrivatePostgres:
    """A streaming standby of primary (pg_basebackup -R), not started."""
    standby = PrivatePostgres(settings=settings)
    standby._run(
        "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER,
        "-D", str(standby.data), "-R", "-X", "stream", "--no-sync", "-c", "fast",
    )  # fmt: skip
    with open(standby.data / "postgresql.conf", "a") as conf:
        for name, value in {
            **standby.settings,
            "cluster_name": STANDBY_NAME,
            # Once promoted it stands alone: it must not wait for a standby of its own.
            "synchronous_standby_names": "",
            "hot_standby": "on",
        }.items():
            conf.write(f"{name} = '{value}'\n")
    return standby


@contextmanager
def primary_and_standby(settings: dict[str, str] | None = None):
    """(primary, standby): a private primary and its synchronous streaming standby, both
    running and removed afterwards."""
    primary = PrivatePostgres(settings={"synchronous_standby_names": STANDBY_NAME, **(settings or {})})
    standby = None
    try:
        primary.init()
        primary.start()
        primary.wait_ready()
        standby = _standby_of(primary, settings)
        standby.start()
        standby.wait_ready()
        deadline = time.monotonic() + START_TIMEOUT
        while primary.execute(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s AND sync_state = 'sync'",
            (STANDBY_NAME,),
        ) != [(1,)]:
            assert time.monotonic() < deadline, f"the standby did not become synchronous\n{standby.log_tail()}"
            time.sleep(0.1)
        yield primary, standby
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


@contextmanager
def private_postgres(*, password_auth: bool = False, settings: dict[str, str] | None = None):
    """A running private cluster, always stopped and removed afterwards."""
    cluster = PrivatePostgres(password_auth=password_auth, settings=settings)
    try:
        cluster.init()
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.destroy()
