"""Use cases of loyalty.v1.Events: read a program's events by cursor, page by page or as a
follower, and prune those past the program's retention (DESIGN.md section 10).

Every read is a short read-only unit of work: a follower (WatchEvents) holds no connection
and no worker between its polls. A poll reads the program's event head first and then the
events up to it: every event up to the head is committed (ledger.store.outbox gives
positions out in commit order), so the follower's cursor may move to the head even when a
type filter matched none of them, and never passes an event it has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain import errors, events
from ledger.domain.errors import Category, LedgerError
from ledger.domain.events import Event
from ledger.service import page_tokens
from ledger.service.caller import Caller
from ledger.store import events as event_store
from ledger.store import unit_of_work
from ledger.store.database import Database
from ledger.store.instants import to_micros

MAX_PAGE = 500
DEFAULT_PAGE = 100
PRUNE_BATCH = 10_000


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    next_page_token: str


@dataclass(frozen=True)
class Polled:
    events: list[Event]
    cursor: int  # where the next poll starts


def check_types(types: list[str], field: str = "types") -> tuple[str, ...]:
    problems = [
        errors.FieldViolation(f"{field}[{i}]", f"is not an event type (one of {', '.join(events.TYPES)})")
        for i, name in enumerate(types)
        if name not in events.TYPES
    ]
    if problems:
        raise errors.invalid(problems)
    return tuple(sorted(set(types)))


def cursor_expired(after_event_id: str) -> LedgerError:
    return LedgerError(
        Category.OUT_OF_RANGE,
        "CURSOR_EXPIRED",
        f"the events after {after_event_id} are past the program's event retention and were pruned; "
        "start again from the oldest event kept (an empty after_event_id)",
        metadata={"after_event_id": after_event_id},
    )


def start_position(db: Database, caller: Caller, after_event_id: str) -> int:
    """The position a read after `after_event_id` starts after ("": the oldest event kept)."""
    position = None
    if after_event_id:
        position = events.position_of(after_event_id)
        if position is None:
            raise errors.invalid_field("after_event_id", "is not an event_id of this service")
    window = unit_of_work.run(db, lambda conn: event_store.window(conn, caller.program_id), read_only=True)
    if position is None:
        return window.first - 1
    if window.cursor_unknown(position):
        raise errors.invalid_field("after_event_id", "names no event of this program")
    if window.cursor_expired(position):
        raise cursor_expired(after_event_id)
    return position


def head_position(db: Database, caller: Caller) -> int:
    """The position of the program's last committed event (0: none yet)."""
    return unit_of_work.run(db, lambda conn: event_store.head(conn, caller.program_id), read_only=True)


def poll(db: Database, caller: Caller, after: int, types: tuple[str, ...], limit: int = MAX_PAGE) -> Polled:
    """The committed events after `after` (of `types`, if any), at most `limit`."""

    def read(conn) -> Polled:
        head = event_store.head(conn, caller.program_id)
        if head <= after:
            return Polled([], after)
        found = event_store.after(conn, caller.program_id, after, limit, types, through=head)
        if len(found) == limit:
            return Polled(found, found[-1].position)
        return Polled(found, head)

    return unit_of_work.run(db, read, read_only=True)


def list_events(
    db: Database, caller: Caller, after_event_id: str, page_token: str, page_size: int, types: list[str]
) -> EventPage:
    wanted = check_types(types)
    size = DEFAULT_PAGE if page_size == 0 else page_size
    if not 0 < size <= MAX_PAGE:
        raise errors.invalid_field("page_size", f"must be between 0 and {MAX_PAGE}")
    pages = page_tokens.pages(db, "Events.ListEvents", caller.program_id, ",".join(wanted))
    token_position = pages.position(page_token)
    if token_position is not None:
        after = int(token_position)
        window = unit_of_work.run(db, lambda conn: event_store.window(conn, caller.program_id), read_only=True)
        if window.cursor_expired(after):
            raise cursor_expired(events.event_id(after))
    else:
        after = start_position(db, caller, after_event_id)
    polled = poll(db, caller, after, wanted, size)
    more = len(polled.events) == size
    return EventPage(polled.events, pages.token_after(str(polled.cursor)) if more else "")


def prune(db: Database, now: datetime, program_ids: list[str] | None = None) -> int:
    """Deletes every program's (or these programs') events older than its retention; returns
    how many."""
    programs = unit_of_work.run(db, event_store.programs_with_events, read_only=True)
    if program_ids is not None:
        programs = [(p, days) for p, days in programs if p in program_ids]
    pruned = 0
    for program_id, days in programs:
        cutoff = to_micros(now - timedelta(days=days))

        def batch(conn, program_id: str = program_id, cutoff: int = cutoff, days: int = days) -> int:
            return event_store.prune(conn, program_id, cutoff, PRUNE_BATCH, days)

        while True:
            done = unit_of_work.run(db, batch)
            pruned += done
            if done < PRUNE_BATCH:
                break
    return pruned
