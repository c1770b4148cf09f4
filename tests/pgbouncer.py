"""A private PgBouncer in transaction pooling mode, for tests that run the ledger through it.

Debian's `pgbouncer` package; when it is missing and the tests run as root (CI containers),
ensure_installed() installs it with apt-get (the way .ci/run does before the tests), else the
test that needs it is skipped with the reason. PgBouncer refuses to run as root: it then
runs as the `postgres` OS user (PRIVATE_PG_USER), like the private clusters.

    with PgBouncer(upstream_port=5432) as bouncer:
        url = bouncer.url("loyalty")          # postgresql://postgres@127.0.0.1:PORT/loyalty

The configuration is the one the README's "Running in production" gives:

- pool_mode = transaction: a client holds a server connection for one transaction only, so
  nothing may rely on session state: the ledger runs with LOYALTY_PG_PREPARE=off (no
  prepared statements), its SETs are SET LOCAL, and what holds a session-level advisory lock
  (migrations, the due-work leader) goes to PostgreSQL directly (LOYALTY_SESSION_DATABASE_URL);
- ignore_startup_parameters = extra_float_digits, options: PgBouncer 1.18 cannot pass the
  `options` startup parameter the ledger sets its lock and statement timeouts with, so the
  database carries them instead (prepare_database(): ALTER DATABASE ... SET).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from tests.cli.processes import free_port

INSTALL_TIMEOUT = 600
# The ledger's own per-session limits (ledger/store/engine.py), for the database to carry.
TIMEOUTS = {"lock_timeout": "2000", "statement_timeout": "15000"}


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(path)), None
    )


def ensure_installed() -> tuple[str | None, str]:
    """(path of pgbouncer, "") or (None, why not): installs Debian's package when missing and root."""
    found = binary()
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "pgbouncer is not installed (apt-get install pgbouncer, as root)"
    # The suite runs on two workers (pytest-xdist): one installs, the other waits for it
    # instead of failing on dpkg's lock.
    with open(os.path.join(tempfile.gettempdir(), "loyalty-pgbouncer-install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install()


def _install() -> tuple[str | None, str]:
    if binary():
        return binary(), ""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    outputs = []
    for command in (["apt-get", "install", "-y", "pgbouncer"], ["apt-get", "update"], ["apt-get", "install", "-y", "pgbouncer"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=env)
        outputs.append(done.stdout[-500:] + done.stderr[-500:])
        if command[1] == "install" and done.returncode == 0 and binary():
            return binary(), ""
    return None, "apt-get could not install pgbouncer: " + " | ".join(outputs)[-800:]


def prepare_database(admin_url_conn, database: str) -> None:
    """Gives the database the ledger's lock and statement timeouts (PgBouncer drops the
    `options` startup parameter that sets them on a direct connection)."""
    with admin_url_conn.cursor() as cursor:
        for name, value in TIMEOUTS.items():
            cursor.execute(f'ALTER DATABASE "{database}" SET {name} = {value}')


class PgBouncer:
    """One PgBouncer process in transaction pooling mode on its own loopback port, in front
    of PostgreSQL at upstream_host:upstream_port; stopped (and its folder removed) on exit."""

    def __init__(self, upstream_port: int = 5432, upstream_host: str = "127.0.0.1", pool_size: int = 20) -> None:
        found, reason = ensure_installed()
        if found is None:
            raise RuntimeError(reason)
        self.binary = found
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.log = self.root / "pgbouncer.log"
        self.user = os.environ.get("PRIVATE_PG_USER", "postgres") if os.geteuid() == 0 else None
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={upstream_host} port={upstream_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 1000\n"
            "ignore_startup_parameters = extra_float_digits, options\n"
            f"logfile = {self.log}\n"
            "admin_users = postgres\n"
        )
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self.root / "pgbouncer.ini")],
            user=self.user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start (exit {self.process.poll()})\n{self.log_tail()}") from None
                time.sleep(0.05)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[tuple]:
        """SHOW POOLS / SHOW CONFIG ... on PgBouncer's admin console."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer", connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"SHOW {what}")
                return cursor.fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PgBouncer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
