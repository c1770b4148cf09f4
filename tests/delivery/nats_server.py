"""A private nats-server with JetStream for a test: its own port and store directory, never
the machine's server at 4222. Stopped, it can be started again on the same port and store."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

BINARY = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateNats:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [BINARY, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.process.poll() is None, "nats-server exited at start"
                assert time.monotonic() < deadline, "nats-server did not listen within 10 s"
                time.sleep(0.05)

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> "PrivateNats":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop(kill=True)

    def stream_messages(self, stream: str = "LOYALTY") -> list[tuple[str, str, dict]]:
        """Every message of the stream: (subject, Nats-Msg-Id, JSON payload), in stream order."""
        return asyncio.run(_read_stream(self.url, stream))


async def _read_stream(url: str, stream: str) -> list[tuple[str, str, dict]]:
    import nats

    nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            found.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""), json.loads(msg.data)))
        return found
    finally:
        await nc.close()
