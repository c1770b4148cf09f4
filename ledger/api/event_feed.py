"""One read of a program's new events for all of its WatchEvents streams in this process.

Each stream used to poll the database itself, four times a second: 64 streams of one program
cost the server 64 reads and 64 conversions of every event to a message, a quarter of a CPU
second each second with nothing to send, and the tills' Earns fell to 0.65 x (bench watch).
Now a stream that has caught up reads from its program's Feed: the recent events, read once
by whichever stream finds them stale, converted to messages once, kept for the streams that
follow. A stream behind what the feed keeps (a consumer replaying from an old cursor) reads
the database itself until it has caught up.

The feed is filled in position order with no gap (ledger.service.events.poll reads only
committed positions, up to the program's head), so a stream served from it sees exactly what
it would have read itself: every event after its cursor, in commit order.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ledger.service import events as event_service
from ledger.service.caller import Caller
from loyalty.v1 import events_pb2

if TYPE_CHECKING:  # the port's type only: the api layer imports nothing of the store
    from ledger.store.database import Database

# How old the feed may be before a stream asking for more reads the database again.
FRESH_S = 0.1
# Events a feed keeps: a stream further behind reads the database itself.
KEPT = 20_000
READ_LIMIT = event_service.MAX_PAGE


class Feed:
    """A program's recent events as messages, positions first..last with no gap."""

    def __init__(self, db: Database, caller: Caller, convert) -> None:
        self._db, self._caller, self._convert = db, caller, convert
        self._reading = threading.Lock()  # one reader of the database at a time
        self._kept = threading.Lock()  # guards the list below
        self._first = 0  # position of _events[0]
        self._events: list[tuple[str, events_pb2.Event]] = []  # (type, message) by position
        self._last = -1  # the last position read; -1: not started
        self._read_at = 0.0

    def after(self, cursor: int, types: tuple[str, ...], limit: int) -> tuple[list[events_pb2.Event], int] | None:
        """The kept events after cursor (of types, if any; at most limit) and the cursor after
        them, or None when the feed does not reach back to cursor (read the database)."""
        self._refresh()
        with self._kept:
            if self._last < 0 or not self._first - 1 <= cursor <= self._last:
                return None
            start = cursor + 1 - self._first
            found: list[events_pb2.Event] = []
            moved = cursor
            for kind, message in self._events[start:]:
                moved += 1
                if not types or kind in types:
                    found.append(message)
                    if len(found) == limit:
                        break
            return found, moved

    def _refresh(self) -> None:
        """Reads what was committed since the last read, unless that read is fresh or another
        stream is reading now (it will have it for the next poll). A new feed starts at the
        program's head: streams behind it catch up from the database."""
        if time.monotonic() - self._read_at < FRESH_S or not self._reading.acquire(blocking=False):
            return
        try:
            if self._last < 0:
                head = event_service.head_position(self._db, self._caller)
                with self._kept:
                    self._first, self._last = head + 1, head
            while True:
                polled = event_service.poll(self._db, self._caller, self._last, (), READ_LIMIT)
                if polled.cursor <= self._last:
                    break
                with self._kept:
                    # Every position after _last up to the head, in order, no gap (no type filter).
                    self._events.extend((e.type, self._convert(e)) for e in polled.events)
                    self._last = polled.cursor
                    if len(self._events) > KEPT:
                        dropped = len(self._events) - KEPT
                        del self._events[:dropped]
                        self._first += dropped
                if len(polled.events) < READ_LIMIT:
                    break
            self._read_at = time.monotonic()
        finally:
            self._reading.release()


class Feeds:
    """The feeds of this process, one per program that has streams."""

    def __init__(self, db: Database, convert) -> None:
        self._db, self._convert = db, convert
        self._lock = threading.Lock()
        self._feeds: dict[str, Feed] = {}

    def of(self, caller: Caller) -> Feed:
        with self._lock:
            feed = self._feeds.get(caller.program_id)
            if feed is None:
                feed = self._feeds[caller.program_id] = Feed(self._db, caller, self._convert)
            return feed
