"""Runs the real `loyalty-ledger` console script (and server.py) as subprocesses, with bounded waits.

Every wait has a timeout, and a server started here is killed in a finally
(use `ServerProcess` as a context manager).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The console script pip installed next to this interpreter.
CLI = Path(sys.executable).parent / "loyalty-ledger"
SERVER_PY = Path(__file__).resolve().parents[2] / "server.py"
COMMAND_TIMEOUT = 60
START_TIMEOUT = 30
SERVING = re.compile(r"serving on port (\d+)")


def environment(database_url: str | None) -> dict[str, str]:
    """This process's environment with LOYALTY_DATABASE_URL set to database_url (removed when None)."""
    env = {k: v for k, v in os.environ.items() if k != "LOYALTY_DATABASE_URL"}
    if database_url is not None:
        env["LOYALTY_DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(database_url: str | None, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), *args],
        env=environment(database_url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def run_ok(database_url: str | None, *args: str, cwd: Path | None = None) -> list[str]:
    """The stdout lines of a command that must succeed."""
    done = run_cli(database_url, *args, cwd=cwd)
    assert done.returncode == 0, f"{args} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout.splitlines()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_lines(text: str) -> list[dict]:
    """The lines of text that are JSON objects (structured log lines)."""
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def alive(pid: int) -> bool:
    """The process exists and has not ended (a zombie nobody reaped yet counts as ended:
    in a container PID 1 may never reap an orphan)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls predicate until it returns something true (returned); fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


class ServerProcess:
    """A running `loyalty-ledger serve` (or server.py); stdout and stderr are drained by threads."""

    def __init__(self, command: list[str], database_url: str | None, cwd: Path | None = None) -> None:
        self.command = command
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._queues: dict[str, queue.Queue[str | None]] = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self.process = subprocess.Popen(
            command,
            env=environment(database_url),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self.stdout_lines, "stdout"), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, self.stderr_lines, "stderr"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.port: int | None = None

    @classmethod
    def serve(cls, database_url: str | None, listen: str = "127.0.0.1:0", cwd: Path | None = None, extra=()):
        return cls([str(CLI), "serve", "--listen", listen, *extra], database_url, cwd)

    def _drain(self, stream, lines: list[str], name: str) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            self._queues[name].put(line.rstrip("\n"))
        self._queues[name].put(None)

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def logged(self, msg: str, **fields) -> list[dict]:
        """The structured log lines so far with this message (and these field values)."""
        return [
            line
            for line in json_lines(self.stderr)
            if line.get("msg") == msg and all(line.get(k) == v for k, v in fields.items())
        ]

    def wait_logged(self, msg: str, timeout: float = START_TIMEOUT, count: int = 1, **fields) -> list[dict]:
        """Waits until at least count log lines with this message (and field values) were written."""
        return wait_until(
            lambda: (found := self.logged(msg, **fields)) and len(found) >= count and found,
            timeout,
            f"log line {msg!r} {fields} x{count}\n{self.describe()}",
        )

    def describe(self) -> str:
        return f"{self.command} exit={self.process.poll()}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-4000:]}"

    def wait_for_stdout(self, pattern: re.Pattern, timeout: float = START_TIMEOUT) -> re.Match:
        """The next stdout line matching pattern; fails if the process ends or the time runs out first."""
        match = self._next_match("stdout", pattern, timeout)
        if match is None:
            raise AssertionError(f"no stdout line matched {pattern.pattern!r} in {timeout}s\n{self.describe()}")
        return match

    def _next_match(self, stream: str, pattern: re.Pattern, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        lines = self._queues[stream]
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:
                lines.put(None)  # stays ended for the next reader
                return None
            match = pattern.search(line)
            if match:
                return match

    def wait_serving(self, timeout: float = START_TIMEOUT) -> str:
        """Waits for the 'serving' line and a SERVING health check; returns the target host:port."""
        self.port = int(self.wait_for_stdout(SERVING, timeout).group(1))
        with grpc.insecure_channel(self.target) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout, wait_for_ready=True
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, self.describe()
        return self.target

    @property
    def target(self) -> str:
        assert self.port is not None, "wait_serving() first"
        return f"127.0.0.1:{self.port}"

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (fails if it does not exit within timeout)."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the process did not exit within {timeout}s\n{self.describe()}") from None
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=5)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
