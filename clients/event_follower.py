"""An example consumer of the ledger's events, built on the SDK (`loyalty.client`).

    python -m clients.event_follower --target 127.0.0.1:50051 --key KEY [--cursor-file events.cursor]
        [--types points.earned,points.redeemed]

With an `events` (or `admin`) key it follows the program's events (WatchEvents) and prints
each one as a line of JSON, oldest first. After each event it saves the event's id in the
cursor file (written aside, then renamed over it), so a follower that is stopped or
crashes, or whose server restarts, resumes after the last event it printed: a server that
goes away is retried with backoff, forever, from the cursor. Delivery is at least once
(an event printed just before a crash is printed again after it), and the event_id is the
key to de-duplicate on. It exits 0 on SIGTERM or Ctrl-C, 1 when the key is refused, and
2 when the cursor is older than the program keeps events (OUT_OF_RANGE / CURSOR_EXPIRED:
start again without a cursor file, or from a later event id).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format

from loyalty.client import LedgerApiError, LedgerClient
from loyalty.v1 import events_pb2

# Reconnecting to a server that went away: full jitter, doubling up to this many seconds.
MAX_BACKOFF_S = 5.0
# Codes that mean "the server or the network went away": retried from the cursor.
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
           grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m clients.event_follower", description=(__doc__ or "").splitlines()[0])
    cli.add_argument("--target", default="127.0.0.1:50051", help="server HOST:PORT (default 127.0.0.1:50051)")
    cli.add_argument("--key", required=True, help="an events or admin API key")
    cli.add_argument(
        "--cursor-file", default="events.cursor", help="where the last event id is kept (default events.cursor)"
    )
    cli.add_argument("--types", default="", help="comma-separated event types to follow (default: all)")
    return cli


class Cursor:
    """The id of the last event handled, kept in a file that is never half written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.event_id = path.read_text().strip() if path.exists() else ""

    def advance(self, event_id: str) -> None:
        aside = self.path.with_name(self.path.name + ".new")
        aside.write_text(event_id + "\n")
        os.replace(aside, self.path)
        self.event_id = event_id


def as_line(event: events_pb2.Event) -> str:
    """One event as one line of JSON, in the API's JSON names (eventId, occurTime, ...)."""
    return json.dumps(json_format.MessageToDict(event), separators=(",", ":"), sort_keys=True)


def follow(client: LedgerClient, cursor: Cursor, types: Sequence[str], stopping: threading.Event) -> int:
    """Prints every event after the cursor, then new ones as they come, until stopping is set
    (the caller then closes the client, which ends the stream)."""
    attempt = 0
    while not stopping.is_set():
        try:
            for message in client.watch_events(after_event_id=cursor.event_id, types=list(types)):
                attempt = 0
                for event in message.events:
                    print(as_line(event), flush=True)
                    cursor.advance(event.event_id)
        except (LedgerApiError, ValueError) as error:  # ValueError: the channel was closed
            if stopping.is_set():
                break
            code = getattr(error, "code", grpc.StatusCode.CANCELLED)
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                print(f"refused: {error}", file=sys.stderr)
                return 1
            if code is grpc.StatusCode.OUT_OF_RANGE:
                print(f"cursor {cursor.event_id!r} is older than the program keeps events: {error}", file=sys.stderr)
                return 2
            if code not in RETRIED:
                print(f"stopped: {error}", file=sys.stderr)
                return 1
        attempt += 1
        delay = random.uniform(0, min(MAX_BACKOFF_S, 0.1 * 2**attempt))
        resume = cursor.event_id or "the start"
        print(f"stream ended; resuming after {resume} in {delay:.2f}s", file=sys.stderr, flush=True)
        stopping.wait(delay)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    types = [name.strip() for name in args.types.split(",") if name.strip()]
    client = LedgerClient(args.target, args.key)
    outcome: list[int] = []
    worker = threading.Thread(
        target=lambda: outcome.append(follow(client, Cursor(Path(args.cursor_file)), types, stopping)), daemon=True
    )
    worker.start()
    while worker.is_alive() and not stopping.wait(0.2):
        pass
    stopping.set()
    client.close()  # ends a stream in progress
    worker.join(timeout=10)
    return outcome[0] if outcome else 0


if __name__ == "__main__":
    sys.exit(main())
